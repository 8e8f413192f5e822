#!/usr/bin/env bats
# Access log (Combined Log Format, escaped), error log format, reopening
# on SIGUSR1 after logrotate-style renames.

load helpers

setup() {
	make_docroot
	ALOG=$BATS_TEST_TMPDIR/logs/access.log
	mkdir -p "$BATS_TEST_TMPDIR/logs"
}

CLF_TIME='\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\]'

alog_lines() { [[ -f $ALOG ]] && [[ $(wc -l < "$ALOG") -ge $1 ]]; }

@test "access log: one Combined Log Format line per request" {
	start_server -o access_log="$ALOG"
	curl -s -o /dev/null -A 'test-agent/1.0' -e 'http://ref.example/' \
	    "http://127.0.0.1:$PORT/hello.txt"
	curl -s -o /dev/null "http://127.0.0.1:$PORT/missing"
	wait_until 5 alog_lines 2
	run sed -n 1p "$ALOG"
	assert_output --regexp "^127\.0\.0\.1 - - $CLF_TIME \"GET /hello.txt HTTP/1.1\" 200 6 \"http://ref.example/\" \"test-agent/1.0\"$"
	run sed -n 2p "$ALOG"
	assert_output --regexp "^127\.0\.0\.1 - - $CLF_TIME \"GET /missing HTTP/1.1\" 404 [0-9]+ \"-\" \"curl/[^\"]+\"$"
}

@test "access log: quotes, backslashes and control bytes from clients are escaped" {
	start_server -o access_log="$ALOG"
	# Quotes and backslashes are legal in a User-Agent and Referer.
	http_raw 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: a"b\\c\r\nReferer: x" 200 0 "-\r\nConnection: close\r\n\r\n' >/dev/null
	# Control bytes and quotes in a (rejected) request line.
	http_raw 'GET /a"b\x01\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n' >/dev/null
	wait_until 5 alog_lines 2
	run sed -n 1p "$ALOG"
	assert_output --partial '"GET /hello.txt HTTP/1.1" 200 6 "x\" 200 0 \"-" "a\"b\\c"'
	run sed -n 2p "$ALOG"
	assert_output --partial '"GET /a\"b\001\033[31m HTTP/1.1" 400 '
	# No raw control byte anywhere in the file.
	! LC_ALL=C grep -q '[[:cntrl:]]' <(tr -d '\n' < "$ALOG")
}

@test "access log: lines from many workers never interleave" {
	WORKERS=4 start_server -o access_log="$ALOG"
	seq 1 200 | xargs -P 8 -I{} curl -s -o /dev/null \
	    -A "agent-{}-$(printf 'x%.0s' $(seq 1 300))" \
	    "http://127.0.0.1:$PORT/hello.txt?n={}"
	wait_until 10 alog_lines 200
	[[ $(wc -l < "$ALOG") -eq 200 ]]
	run grep -cE "^127\.0\.0\.1 - - $CLF_TIME \"GET /hello.txt\?n=[0-9]+ HTTP/1.1\" 200 6 \"-\" \"agent-[0-9]+-x{300}\"$" "$ALOG"
	assert_output 200
}

@test "access_log off (the default) writes no access log" {
	start_server
	curl -s -o /dev/null "http://127.0.0.1:$PORT/hello.txt"
	[[ -z $(find "$BATS_TEST_TMPDIR/logs" -type f) ]]
}

@test "error log lines: time, level, role and pid" {
	start_server
	run grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{4} \[info\] master\[[0-9]+\]: started with 2 workers$' "$SERVER_LOG"
	assert_success
}

@test "SIGUSR1 reopens both logs after a rename, in the master and every worker" {
	local elog=$BATS_TEST_TMPDIR/logs/error.log pidf=$BATS_TEST_TMPDIR/d.pid
	# Daemon mode, so the error log is a file.
	run "$PREFORKD" -l 127.0.0.1:0 -r "$DOCROOT" -n 3 -p "$pidf" \
	    -o error_log="$elog" -o access_log="$ALOG"
	assert_success
	SERVER_PID=$(cat "$pidf")
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$elog")
	wait_until 5 worker_count_is 3
	for i in 1 2 3 4 5 6; do
		curl -s -o /dev/null "http://127.0.0.1:$PORT/hello.txt?before=$i"
	done
	wait_until 5 alog_lines 6
	mv "$ALOG" "$ALOG.1"
	mv "$elog" "$elog.1"
	kill -USR1 "$SERVER_PID"
	wait_until 5 test -f "$elog"
	wait_until 5 grep -q 'log files reopened' "$elog"
	# Every worker writes to the new file: enough requests that each
	# of the three is all but sure to serve some (HTTP/1.0: no reuse).
	for i in $(seq 1 30); do
		curl -s -o /dev/null --http1.0 "http://127.0.0.1:$PORT/hello.txt?after=$i"
	done
	wait_until 5 alog_lines 30
	[[ $(grep -c after= "$ALOG") -eq 30 ]]
	[[ $(grep -c after= "$ALOG.1") -eq 0 ]]
	[[ $(grep -c before= "$ALOG.1") -eq 6 ]]
	# The master's lines (here: a crash report) go to the new file too.
	local w
	w=$(worker_pids | head -n 1)
	kill -SEGV "$w"
	wait_until 5 grep -q "worker $w killed by signal 11" "$elog"
	! grep -q "worker $w" "$elog.1"
}

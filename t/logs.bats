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
	if LC_ALL=C grep -q '[[:cntrl:]]' <(tr -d '\n' < "$ALOG"); then
		return 1
	fi
}

@test "access log: client fields are cut to their first 1023 bytes" {
	start_server -o access_log="$ALOG"
	local target ua ref
	target=/$(printf 'a%.0s' {1..1999})
	ua=$(printf 'u%.0s' {1..2000})
	# obs-text escapes to four bytes each: the worst case.
	ref=$(printf '\\xff%.0s' {1..2000})
	http_raw "GET $target HTTP/1.1\r\nHost: x\r\nUser-Agent: $ua\r\nReferer: $ref\r\nConnection: close\r\n\r\n" >/dev/null
	wait_until 5 alog_lines 1
	local want_req want_ua want_ref
	want_req=$(head -c 1023 <<<"GET $target HTTP/1.1")
	want_ua=$(head -c 1023 <<<"$ua")
	want_ref=$(printf '\\377%.0s' {1..1023})
	run cut -d'"' -f2 "$ALOG"
	assert_output "$want_req"
	run cut -d'"' -f4 "$ALOG"
	assert_output "$want_ref"
	run cut -d'"' -f6 "$ALOG"
	assert_output "$want_ua"
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

@test "access log on a full disk: lost lines counted on the status page, reported once a minute" {
	# Writing to /dev/full fails with ENOSPC, as on a full filesystem.
	WORKERS=1 start_server -o access_log=/dev/full -o status_path=/st
	local i w page=$BATS_TEST_TMPDIR/page
	w=$(worker_pids)
	for i in 1 2 3 4 5; do
		curl -sf -o /dev/null "http://127.0.0.1:$PORT/hello.txt?n=$i"
	done
	# One worker, one request at a time: a request's line is written,
	# or lost and counted, before the next request is read.
	curl -sf -o "$page" "http://127.0.0.1:$PORT/st"
	grep -qx 'access log lines lost: 5' "$page" || fail "$(cat "$page")"
	grep -A2 -x 'access log lines lost, by worker:' "$page" |
	    grep -Eqx "$w +5"
	for i in 1 2 3; do
		curl -sf -o /dev/null "http://127.0.0.1:$PORT/hello.txt?m=$i"
	done
	# 5, the text page, 3 more.
	curl -sf -o "$page" "http://127.0.0.1:$PORT/st?json"
	grep -Fq '"connections": 1, "access_log_lost": 9, ' "$page" ||
	    fail "$(cat "$page")"
	grep -Fq "\"pid\": $w," "$page"
	grep -Eq '"request": "GET /st\?json HTTP/1.1", "access_log_lost": 9, ' \
	    "$page"
	if command -v jq >/dev/null; then
		jq -e '.totals.access_log_lost == 9 and
		    .workers[0].access_log_lost == 9' "$page" >/dev/null
	fi
	# One error-log line for all ten, with the first loss.
	[[ $(grep -c 'access log /dev/full: ' "$SERVER_LOG") -eq 1 ]] ||
	    fail "$(grep 'access log' "$SERVER_LOG")"
	grep -q "\[warn\] worker\[$w\]: access log /dev/full: 1 line lost (No space left on device); 1 in all" \
	    "$SERVER_LOG"
	# Requests are still served.
	[[ $(curl -sf "http://127.0.0.1:$PORT/hello.txt") == hello ]]
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
	if grep -q "worker $w" "$elog.1"; then
		return 1
	fi
}

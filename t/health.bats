#!/usr/bin/env bats
# Lame duck, readiness and health (doc/design.md 3.5): health_path for load
# balancers, shutdown_delay between a stop signal and the graceful stop.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
bats_require_minimum_version 1.5.0

setup() {
	make_docroot
	head -c 16777216 /dev/urandom > "$DOCROOT/huge.bin"
	ALOG=$BATS_TEST_TMPDIR/access.log
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
}

# health: the health check's status code and body, on one line.
health() {
	curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$PORT/healthz"
}
is_healthy() { [[ $(health) == 'ok'$'\n'' 200' ]]; }
is_stopping() { [[ $(health) == 'stopping'$'\n'' 503' ]]; }

# worker_reading: the worker's title says it is reading a head.
# shellcheck disable=SC2009 # the title, not a process name
worker_reading() { ps -o args= --ppid "$SERVER_PID" | grep -q 'worker reading'; }

# slow_download OUT [RATE]: background curl of huge.bin; sets DL_PID.
slow_download() {
	curl -s -o "$1" -w '%{http_code}' --limit-rate "${2:-4M}" \
	    "http://127.0.0.1:$PORT/huge.bin" > "$1.status" 2>"$1.err" &
	DL_PID=$!
}

@test "health_path: 200 ok, no-store, no body for HEAD, no file lookup, not in the access log" {
	start_server -o health_path=/healthz -o access_log="$ALOG"
	run curl -si "http://127.0.0.1:$PORT/healthz"
	assert_success
	assert_line --index 0 --partial 'HTTP/1.1 200 OK'
	assert_line --partial 'Content-Type: text/plain; charset=utf-8'
	assert_line --partial 'Cache-Control: no-store'
	assert_line --partial 'Content-Length: 3'
	refute_line --partial 'Connection: close'
	assert_line --index -1 ok
	# A query does not change the path; HEAD has no body.
	run curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/healthz?probe=1"
	assert_output 'ok'$'\n'' 200'
	run curl -sI "http://127.0.0.1:$PORT/healthz"
	assert_line --index 0 --partial '200 OK'
	# No file of that name exists: it was never looked for.
	[[ ! -e $DOCROOT/healthz ]]
	# Another request is logged; the health checks are not.
	curl -s -o /dev/null "http://127.0.0.1:$PORT/hello.txt"
	wait_until 5 grep -q 'GET /hello.txt' "$ALOG"
	run grep -c healthz "$ALOG"
	assert_output 0
	# Only the exact path.
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz/x"
	assert_output 404
}

@test "health_log on: the health checks are in the access log" {
	start_server -o health_path=/healthz -o health_log=on \
	    -o access_log="$ALOG"
	is_healthy
	wait_until 5 grep -q '"GET /healthz HTTP/1.1" 200 3' "$ALOG"
}

@test "health_path is checked: a path of its own, FILE:LINE for bad values" {
	local w
	for w in 'health_path healthz' 'health_path /a?b' \
	    'health_path /status' 'health_path /ws/up' 'health_log maybe' \
	    'shutdown_delay soon'; do
		printf '%s\n' "root $DOCROOT" 'status_path /status' \
		    'websocket /ws /bin/cat' "$w" > "$CONF"
		run "$PREFORKD" -t -c "$CONF"
		assert_failure 1
		assert_output --partial "$CONF:4: ${w%% *}: "
	done
	printf '%s\n' "root $DOCROOT" 'health_path /healthz' \
	    'shutdown_delay 24h' 'health_log on' > "$CONF"
	run "$PREFORKD" -t -c "$CONF"
	assert_success
	run "$PREFORKD" -t -c "$CONF" -o shutdown_delay=25h
	assert_failure 1
	assert_output --partial 'shutdown_delay: invalid value'
}

@test "shutdown_delay: after SIGTERM the server still serves, health says 503, every response closes; then the graceful stop" {
	local delay=$(( 3 * ${TIME_FACTOR:-1} ))
	WORKERS=2 start_server -o health_path=/healthz \
	    -o shutdown_delay="${delay}s" -o keepalive_timeout=30s
	is_healthy
	# A keep-alive client, between two requests when the stop comes.
	local fd line
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	read -r -t 5 line <&"$fd"
	[[ $line == 'HTTP/1.1 200 OK'* ]]
	while read -r -t 5 line <&"$fd"; do [[ $line == $'\r' ]] && break; done
	read -r -N 6 -t 5 line <&"$fd"
	local t0
	t0=$(date +%s%N)
	kill -TERM "$SERVER_PID"
	wait_until 2 log_has "SIGTERM: shutdown_delay ${delay}000 ms before stopping"
	is_stopping
	# Still accepting and serving, but each response is the last on its
	# connection, the kept one's next too.
	run curl -si "http://127.0.0.1:$PORT/hello.txt"
	assert_line --index 0 --partial '200 OK'
	assert_line --partial 'Connection: close'
	assert_line --index -1 hello
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	run timeout 5 cat <&"$fd"
	assert_line --index 0 --partial 'HTTP/1.1 200 OK'
	assert_line --partial 'Connection: close'
	exec {fd}>&-
	run ! log_has 'stopping gracefully'
	worker_count_is 2
	# Then the stop as always: no earlier than the delay, exit 0.
	[[ $(server_exit_status) == 0 ]]
	(( $(date +%s%N) - t0 >= delay * 1000000000 ))
	log_has 'shutdown_delay over'
	log_has 'stopping gracefully: 2 workers'
	port_refuses "$PORT"
}

@test "shutdown_delay: a second SIGTERM ends the delay, a third is the fast stop" {
	WORKERS=2 start_server -o health_path=/healthz -o shutdown_delay=60s
	slow_download "$BATS_TEST_TMPDIR/out" 1M
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -TERM "$SERVER_PID"
	wait_until 2 is_stopping
	kill -TERM "$SERVER_PID"
	wait_until 2 log_has 'second stop signal during shutdown_delay: stopping now'
	wait_until 2 log_has 'stopping gracefully: 2 workers'
	# The idle worker is gone, the download goes on: a graceful stop.
	wait_until 2 worker_count_is 1
	alive "$DL_PID"
	alive "$SERVER_PID"
	kill -TERM "$SERVER_PID"
	wait_until 2 log_has 'second stop signal: 1 workers stop now'
	[[ $(server_exit_status) == 0 ]]
	wait "$DL_PID" || true
	run ! cmp -s "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/out"
}

@test "shutdown_delay: reload, upgrade and resizing are refused; a worker that dies is replaced" {
	WORKERS=2 start_server -o shutdown_delay=60s
	kill -TERM "$SERVER_PID"
	wait_until 2 log_has 'shutdown_delay 60000 ms'
	kill -HUP "$SERVER_PID"
	wait_until 2 log_has 'SIGHUP during a stop: ignored'
	kill -USR2 "$SERVER_PID"
	wait_until 2 log_has 'SIGUSR2 during a stop: ignored'
	kill -TTIN "$SERVER_PID"
	wait_until 2 log_has 'SIGTTIN during a stop: ignored'
	local victim
	victim=$(worker_pids | head -n 1)
	kill -KILL "$victim"
	wait_until 5 gone "$victim"
	wait_until 5 worker_count_is 2
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	# Ctrl-C in a terminal: INT works as TERM.
	kill -INT "$SERVER_PID"
	wait_until 2 log_has 'second stop signal during shutdown_delay'
	[[ $(server_exit_status) == 0 ]]
}

@test "health_path: 503 once the graceful stop began, to a request that was on its way" {
	WORKERS=1 start_server -o health_path=/healthz
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	# A head half sent when the stop comes: it is finished, and answered.
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&"$fd"
	wait_until 5 worker_reading
	kill -TERM "$SERVER_PID"
	wait_until 2 log_has 'stopping gracefully'
	printf '\r\n' >&"$fd"
	run timeout 5 cat <&"$fd"
	exec {fd}>&-
	assert_line --index 0 --partial '503 Service Unavailable'
	assert_line --partial 'Connection: close'
	assert_line --index -1 stopping
	[[ $(server_exit_status) == 0 ]]
}

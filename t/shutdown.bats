#!/usr/bin/env bats
# The graceful-stop contract (design.md section 3): SIGINT/TERM/QUIT stop
# the server without losing a request; a second signal stops it at once.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
bats_require_minimum_version 1.5.0

setup() {
	make_docroot
	# Larger than the loopback socket buffers, so a rate-limited download
	# keeps its worker inside sendfile for seconds.
	head -c 16777216 /dev/urandom > "$DOCROOT/huge.bin"
}

# slow_download OUT [RATE [FILE]]: background curl of FILE (huge.bin);
# sets DL_PID.
slow_download() {
	# shellcheck disable=SC2153 # PORT: set by start_server
	curl -s -o "$1" -w '%{http_code}' --limit-rate "${2:-4M}" \
	    "http://127.0.0.1:$PORT/${3:-huge.bin}" > "$1.status" 2>"$1.err" &
	DL_PID=$!
}

# A worker is busy once the scoreboard shows it writing: from outside we
# see it as a connection established to the server port.
server_has_connections() {
	[[ $(ss -Htn state established "( sport = :$PORT )" | wc -l) -ge ${1:-1} ]]
}

# The master exits 0.
master_exit_status() {
	[[ $(server_exit_status) == 0 ]]
}

@test "SIGINT: a download in flight completes byte-exact, idle workers exit at once, the port refuses, exit 0" {
	WORKERS=3 start_server
	local workers_before
	workers_before=$(worker_pids)
	slow_download "$BATS_TEST_TMPDIR/out"
	wait_until 5 server_has_connections 1
	# Let some bytes flow so the worker is mid-response.
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"

	kill -INT "$SERVER_PID"
	# The two idle workers are gone at once (3 s of slack: t/rolling.bats
	# may load the machine meanwhile under make -j)...
	wait_until 3 worker_count_is 1
	# ...and, the download still running, the port already refuses.
	alive "$DL_PID"
	port_refuses "$PORT"

	wait "$DL_PID"
	run cat "$BATS_TEST_TMPDIR/out.status"
	assert_output 200
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/out"

	run master_exit_status
	assert_success
	for w in $workers_before; do gone "$w"; done
	gone "$SERVER_PID"
	log_has 'stopping gracefully'
	log_has 'stopped'
	run ! log_has 'killing'
}

@test "Ctrl-C (SIGINT to the whole process group) stops gracefully too" {
	WORKERS=3 start_server
	local workers_before
	workers_before=$(worker_pids)
	slow_download "$BATS_TEST_TMPDIR/out"
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"

	kill -INT -- "-$SERVER_PID"
	wait_until 1 worker_count_is 1
	port_refuses "$PORT"
	wait "$DL_PID"
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/out"
	run master_exit_status
	assert_success
	for w in $workers_before; do gone "$w"; done
}

@test "SIGTERM and SIGQUIT stop gracefully with exit 0" {
	for sig in TERM QUIT; do
		start_server
		local ws
		ws=$(worker_pids)
		kill -"$sig" "$SERVER_PID"
		run master_exit_status
		assert_success
		for w in $ws; do gone "$w"; done
		port_refuses "$PORT"
		SERVER_PID=
	done
}

@test "clients queued in the accept backlog while every worker is full are answered" {
	# One connection per worker: two downloads that read nothing yet
	# fill both workers for as long as the test needs (a rate-limited
	# curl may be done in a second: the loopback socket buffers take
	# megabytes at once).
	WORKERS=2 start_server -o worker_connections=1
	local a b i req=$BATS_TEST_TMPDIR/dl.req
	printf 'GET /huge.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' > "$req"
	exec {a}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$req" >&"$a"
	exec {b}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$req" >&"$b"

	# Both workers are full: these three wait in the accept queue.
	local q=()
	for i in 1 2 3; do
		curl -s -o "$BATS_TEST_TMPDIR/q$i" -w '%{http_code}' \
		    "http://127.0.0.1:$PORT/hello.txt" > "$BATS_TEST_TMPDIR/q$i.status" &
		q+=($!)
	done
	queued() { [[ $(accept_queue) -ge 3 ]]; }
	wait_until 5 queued

	kill -INT "$SERVER_PID"
	# Now read the downloads: each completes, byte-exact.
	timeout 60 cat <&"$a" > "$BATS_TEST_TMPDIR/a" &
	local ra=$!
	timeout 60 cat <&"$b" > "$BATS_TEST_TMPDIR/b" &
	local rb=$!
	for p in "$ra" "$rb" "${q[@]}"; do wait "$p"; done
	for f in a b; do
		tail -c 16777216 "$BATS_TEST_TMPDIR/$f" | cmp "$DOCROOT/huge.bin" -
		head -n 1 "$BATS_TEST_TMPDIR/$f" | grep -q '^HTTP/1.1 200 OK'
	done
	for i in 1 2 3; do
		run cat "$BATS_TEST_TMPDIR/q$i.status"
		assert_output 200
		run cat "$BATS_TEST_TMPDIR/q$i"
		assert_output hello
	done
	run master_exit_status
	assert_success
}

@test "an idle keep-alive connection is closed on stop and the stop is prompt" {
	start_server -o keepalive_timeout=60s
	# Open a keep-alive connection, do one request, leave it idle.
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	local line
	read -r -t 5 line <&"$fd"
	[[ $line == 'HTTP/1.1 200 OK'* ]]
	local t0
	t0=$(date +%s%N)
	kill -TERM "$SERVER_PID"
	run master_exit_status
	assert_success
	# Far less than the 60 s keep-alive timeout.
	(( ($(date +%s%N) - t0) < 5000000000 * ${TIME_FACTOR:-1} ))
	exec {fd}>&-
}

@test "a second SIGINT during a graceful stop kills the workers at once" {
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=2 start_server
	slow_download "$BATS_TEST_TMPDIR/out" 500k endless.bin
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	local ws
	ws=$(worker_pids)
	kill -INT "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	kill -INT "$SERVER_PID"
	run master_exit_status
	assert_success
	log_has 'second stop signal'
	for w in $ws; do gone "$w"; done
	wait "$DL_PID" || true
	# The download was cut short, not completed.
	[[ $(stat -c %s "$BATS_TEST_TMPDIR/out") -lt 16777216 ]]
}

# cpu_ticks PID: user + system time the process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

@test "HUP, USR2, TTIN and TTOU during a stop are ignored, with a line for each one received" {
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=2 start_server
	slow_download "$BATS_TEST_TMPDIR/out" 200k endless.bin
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	local sig n
	# Each signal once, then HUP again: one line per signal received.
	for sig in HUP USR2 TTIN TTOU HUP; do
		n=$(grep -c "SIG$sig during a stop: ignored" "$SERVER_LOG" || true)
		kill -"$sig" "$SERVER_PID"
		logged_once_more() { [[ $(grep -c "SIG$sig during a stop: ignored" "$SERVER_LOG") -eq $((n + 1)) ]]; }
		wait_until 5 logged_once_more
	done
	[[ $(grep -c 'SIGHUP during a stop: ignored' "$SERVER_LOG") -eq 2 ]]
	alive "$SERVER_PID"
	run ! log_has 'reloaded'
	run ! log_has 'upgrade: started'
	run ! log_has 'workers: '
	kill -TERM "$SERVER_PID"
	run master_exit_status
	assert_success
	kill "$DL_PID" 2>/dev/null || true
	wait "$DL_PID" || true
}

@test "a TTIN or TTOU during a stop does not make the master spin" {
	# Larger than the socket buffers can ever take: the response is
	# still being sent for as long as the test runs.
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=2 start_server
	slow_download "$BATS_TEST_TMPDIR/out" 200k endless.bin
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	local sig t0
	for sig in TTIN TTOU; do
		# A master waiting for its last worker wakes 4 times a second
		# and uses next to no CPU; measured over one second.
		t0=$(cpu_ticks "$SERVER_PID")
		kill -"$sig" "$SERVER_PID"
		sleep 1
		(( $(cpu_ticks "$SERVER_PID") - t0 < 20 * ${TIME_FACTOR:-1} ))
	done
	alive "$SERVER_PID"
	kill -TERM "$SERVER_PID"
	run master_exit_status
	assert_success
	kill "$DL_PID" 2>/dev/null || true
	wait "$DL_PID" || true
}

@test "shutdown_timeout bounds a graceful stop: stragglers get SIGKILL" {
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=2 start_server -T 1s
	slow_download "$BATS_TEST_TMPDIR/out" 500k endless.bin
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -TERM "$SERVER_PID"
	run master_exit_status
	assert_success
	log_has 'shutdown_timeout reached: killing 1 workers'
	wait "$DL_PID" || true
}

@test "workers ignore SIGINT sent to them alone; only the master decides" {
	start_server
	local w
	w=$(worker_pids | head -n 1)
	kill -INT "$w"
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	alive "$w"
	worker_count_is 2
}

@test "a stopped server restarts on the same port at once (TIME_WAIT or not)" {
	start_server
	local port=$PORT
	# Server-side closes leave connections in TIME_WAIT on this port.
	for i in 1 2 3 4 5; do
		curl -s --http1.0 "http://127.0.0.1:$port/hello.txt" >/dev/null
	done
	stop_server
	LISTEN="127.0.0.1:$port" start_server
	[[ $PORT == "$port" ]]
	run curl -s "http://127.0.0.1:$port/hello.txt"
	assert_output hello
}

@test "stopping at random instants right after start never hangs" {
	local i ws
	for i in $(seq 1 25); do
		: > "$BATS_TEST_TMPDIR/r.log"
		setsid env --default-signal=INT,QUIT "$PREFORKD" -f \
		    -l 127.0.0.1:0 -r "$DOCROOT" -n 4 \
		    >"$BATS_TEST_TMPDIR/r.log" 2>&1 &
		local pid=$!
		# Once the exec is done, SIGINT is default or blocked: never
		# ignored (bash ignores it in background jobs before that).
		is_preforkd() { [[ $(cat "/proc/$pid/comm" 2>/dev/null) == preforkd ]] || dead "$pid"; }
		wait_until 3 is_preforkd
		# A random instant: 0 to 30 ms after the exec, often before
		# the workers are up, sometimes during their start-up.
		sleep "0.0$(( RANDOM % 3 ))$(( RANDOM % 10 ))"
		kill "-$(( i % 2 ? 2 : 15 ))" "$pid" 2>/dev/null || true
		# INT or TERM.  A signal landing before main() blocks them
		# kills it outright; what matters is that it never hangs.
		wait_until 3 dead "$pid" || { cat "$BATS_TEST_TMPDIR/r.log" >&2; kill -KILL "$pid"; false; }
		wait "$pid" || true
		# No worker survives its master.
		ws=$(ps -o pid= --ppid "$pid" | tr -d ' ')
		[[ -z $ws ]]
	done
}

@test "a stop signalled while workers are idle ends every one of them in well under a second" {
	local i ws
	for i in $(seq 1 10); do
		WORKERS=8 start_server
		ws=$(worker_pids)
		local t0
		t0=$(date +%s%N)
		kill -TERM "$SERVER_PID"
		wait_until 1 dead "$SERVER_PID"
		run master_exit_status
		assert_success
		for w in $ws; do gone "$w"; done
		(( ($(date +%s%N) - t0) < 1000000000 * ${TIME_FACTOR:-1} ))
		SERVER_PID=
	done
}

# --- over TLS (t/tls.bash; certificates from t/tls-ca.sh) ---------------------

@test "https: SIGTERM: downloads in flight (curl, Python's ssl) complete byte-exact and end with close_notify; exit 0" {
	load tls
	tls_certs "$BATS_TEST_TMPDIR/certs"
	WORKERS=3 tls_start "$(tls_default)"
	local d=$BATS_TEST_TMPDIR
	curl -sS --cacert "$CERTS/ca.pem" -o "$d/curl.out" -w '%{http_code}' \
	    --limit-rate 4M "https://127.0.0.1:$PORT/huge.bin" > "$d/curl.status" \
	    2> "$d/curl.err" 3>&- &
	local curl_pid=$!
	# Keep-alive: once its response is done the connection is idle, and
	# the stop has to close it, with a close_notify.
	tlsc --ca "$CERTS/ca.pem" get /huge.bin "$d/py.out" --rate 4000000 \
	    --started "$d/py.started" --timeout 30 > "$d/py.log" 2>&1 3>&- &
	local py_pid=$!
	wait_until 5 test -s "$d/curl.out"
	wait_until 5 test -e "$d/py.started"
	kill -TERM "$SERVER_PID"
	# curl: no error at all (56 would be a connection cut short).
	local rc=0
	wait "$curl_pid" || rc=$?
	[[ $rc -eq 0 ]] || fail "curl exited $rc: $(cat "$d/curl.err")"
	[[ $(cat "$d/curl.status") == 200 ]]
	cmp "$DOCROOT/huge.bin" "$d/curl.out"
	wait "$py_pid"
	run cat "$d/py.log"
	assert_output $'status 200\neof close_notify'
	cmp "$DOCROOT/huge.bin" "$d/py.out"
	run master_exit_status
	assert_success
	log_has 'stopped'
	run ! log_has 'killing'
}

@test "https: SIGINT: idle keep-alive connections get a close_notify (Python's ssl, openssl s_client) and the stop is prompt" {
	load tls
	tls_certs "$BATS_TEST_TMPDIR/certs"
	tls_start "$(tls_default)" 'keepalive_timeout 60s'
	local d=$BATS_TEST_TMPDIR
	tlsc --ca "$CERTS/ca.pem" hold /hello.txt --timeout 30 > "$d/py.log" 2>&1 3>&- &
	local py_pid=$!
	# s_client with its stdin held open (a FIFO), so that only the
	# server can end the connection.
	mkfifo "$d/sc.in"
	timeout 30 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$CERTS/ca.pem" \
	    -ign_eof < "$d/sc.in" > "$d/sc.out" 2>&1 3>&- &
	local sc_pid=$! w
	exec {w}> "$d/sc.in"
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' >&"$w"
	wait_until 5 grep -qx 'ready' "$d/py.log"
	wait_until 5 grep -q '^hello' "$d/sc.out"
	local t0
	t0=$(date +%s%N)
	kill -INT "$SERVER_PID"
	wait "$py_pid"
	run cat "$d/py.log"
	assert_output $'status 200\nready\neof close_notify'
	# s_client prints "closed" and exits 0 on a close_notify; on a TCP
	# close without one it says "unexpected eof" and exits 1.
	local rc=0
	wait "$sc_pid" || rc=$?
	exec {w}>&-
	[[ $rc -eq 0 ]] || fail "s_client exited $rc: $(tail -n 5 "$d/sc.out")"
	grep -qx closed "$d/sc.out"
	run ! grep -qi 'unexpected eof' "$d/sc.out"
	run master_exit_status
	assert_success
	(( ($(date +%s%N) - t0) < 5000000000 * ${TIME_FACTOR:-1} ))
}

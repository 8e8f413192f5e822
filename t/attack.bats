#!/usr/bin/env bats
# Hostile clients: a handful of them must not take the server down.  Each
# attack runs from t/hostile.py, bounded in count and time, on loopback,
# while curl probes the server.  The probes allow a generous bound (the
# suite asserts no speed; bench/run measures it): what they catch is a
# server that stops answering, as pre-forked servers do under these
# attacks.

load helpers

# attack PORT MODE COUNT SECONDS [PATH]: start t/hostile.py in the
# background (ATTACK_PID, its output in ATTACK_OUT); wait until it says
# every connection is doing its thing.
attack() {
	ATTACK_OUT=$BATS_TEST_TMPDIR/attack.out
	python3 "$TOP_SRCDIR/t/hostile.py" "$@" > "$ATTACK_OUT" 2>&1 3>&- &
	ATTACK_PID=$!
	wait_until 30 grep -q '^ready' "$ATTACK_OUT" ||
	    fail "the attack did not start: $(cat "$ATTACK_OUT")"
}

extra_teardown() {
	if [[ -n ${ATTACK_PID:-} ]]; then
		kill "$ATTACK_PID" 2>/dev/null || true
		wait "$ATTACK_PID" 2>/dev/null || true
	fi
}

# The attack first: stop_server would wait for its downloads.
teardown() {
	extra_teardown
	stop_server
	unprivileged_done
}

# probe N: N requests one after another, each answered 200 in 2 s.
probe() {
	local i out
	for ((i = 0; i < $1; i++)); do
		out=$(curl -s -o /dev/null -m $((2 * ${TIME_FACTOR:-1})) \
		    -w '%{http_code} %{time_total}' "http://127.0.0.1:$PORT/hello.txt") ||
		    true
		[[ $out == 200\ * ]] || fail "probe $i: $out"
	done
}

open_connections() {
	curl -s "http://127.0.0.1:$PORT/status" | sed -n 's/^open connections: //p'
}

@test "slow readers: 50 reading 4 KB/s and 20 reading nothing on 2 workers; others are answered, nobody is cut" {
	make_docroot
	buffer_proof_file "$DOCROOT/big.bin"
	WORKERS=2 start_server -o status_path=/status
	attack "$PORT" slowread 50 12 /big.bin
	local noread_out=$BATS_TEST_TMPDIR/noread.out
	python3 "$TOP_SRCDIR/t/hostile.py" "$PORT" noread 20 12 /big.bin \
	    > "$noread_out" 2>&1 3>&- &
	local noread=$!
	wait_until 30 grep -q '^ready' "$noread_out"
	probe 20
	# All 70 downloads are still in flight, none cut (send_timeout is
	# 60 s): a slow reader is not a stalled one, and holds no worker.
	(( $(open_connections) >= 71 ))
	kill "$noread"
	wait "$noread" || true
}

@test "rejected requests that stay open: their lingering holds no place a client needs" {
	WORKERS=2 start_server -o worker_connections=16
	# 40 connections, more than the 32 places: each gets 400 and stays.
	attack "$PORT" reject 40 8
	probe 10
}

@test "slowloris: 300 trickling heads on 2 workers; a normal request is answered at once" {
	WORKERS=2 start_server -o worker_connections=400
	attack "$PORT" trickle 300 10
	probe 10
}

@test "slowloris: 1000 trickling heads on 2 workers; a normal request is answered at once" {
	WORKERS=2 start_server -o worker_connections=600
	attack "$PORT" trickle 1000 12
	probe 10
}

@test "idle keep-alive connections beyond every worker's places do not starve new clients" {
	WORKERS=4 start_server -o worker_connections=100 -o keepalive_timeout=60s
	# 500 idle connections for 400 places: the rest wait in the queue,
	# and the longest-idle give theirs to new clients.
	attack "$PORT" idle 500 12
	# Every one of the 500 was answered, the last ones in a place an
	# idle connection gave up, not after keepalive_timeout.
	grep -q '^ready answered=500$' "$ATTACK_OUT" || fail "$(cat "$ATTACK_OUT")"
	probe 10
}

@test "the fd budget: 300 clients under a hard limit of 400 descriptors are all answered, no EMFILE" {
	# worker_connections 336 cannot fit in 400 descriptors: the worker
	# says so once, shrinks its cache and its places, and never meets
	# EMFILE in accept(2).
	# start_server runs in a subshell here (for ulimit): the variables
	# helpers.bash reads later are set out here.
	SERVER_LOG=$BATS_TEST_TMPDIR/preforkd.log
	# shellcheck disable=SC2034  # read by helpers.bash
	EXIT_FILE=$BATS_TEST_TMPDIR/preforkd.exit
	( ulimit -Sn 400 && ulimit -Hn 400 &&
	    WORKERS=2 start_server -o worker_connections=336 \
	    -o keepalive_timeout=60s ) 3>&-
	SERVER_PID=$(sed -n 's/.*master\[\([0-9]*\)\]: started with.*/\1/p' "$SERVER_LOG" | tail -n 1)
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SERVER_LOG" | tail -n 1)
	attack "$PORT" idle 300 8
	wait "$ATTACK_PID" || true
	ATTACK_PID=
	grep -q '^idle open=300 answered=300 ' "$ATTACK_OUT" ||
	    fail "$(cat "$ATTACK_OUT")"
	log_has 'worker_connections 336: the open files limit is 400'
	run log_has 'Too many open files'
	assert_failure
}

@test "a graceful stop under load refuses new clients at once and ends on its own" {
	command -v wrk >/dev/null || skip "wrk not installed"
	WORKERS=2 start_server
	wrk -t1 -c16 -d8s "http://127.0.0.1:$PORT/hello.txt" >/dev/null 2>&1 3>&- &
	local load=$!
	wait_until 5 test "$(accept_queue)" -ge 0
	probe 3
	kill -TERM "$SERVER_PID"
	# wrk still runs: the master must not wait for it.
	wait_until 5 dead "$SERVER_PID"
	alive "$load"
	run curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/hello.txt"
	assert_equal "$status" 7	# connection refused
	kill "$load" 2>/dev/null || true
	wait "$load" || true
}

#!/usr/bin/env bats
# Zero-downtime supervision: reload (HUP), binary upgrade (USR2), pool
# management (TTIN/TTOU, dynamic pool, max_requests, request_timeout).

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
bats_require_minimum_version 1.5.0

setup() {
	make_docroot
	head -c 16777216 /dev/urandom > "$DOCROOT/huge.bin"
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	PIDF=$BATS_TEST_TMPDIR/preforkd.pid
}

extra_teardown() {
	[[ -z ${SA_PID:-} ]] || kill -KILL "$SA_PID" 2>/dev/null || true
	[[ -z ${STRACE_PID:-} ]] || kill -TERM "$STRACE_PID" 2>/dev/null || true
	local p
	for f in "$PIDF" "$PIDF.oldbin"; do
		p=$(cat "$f" 2>/dev/null) || continue
		[[ -n $p ]] || continue
		local ws
		mapfile -t ws < <(ps -o pid= --ppid "$p" | tr -d ' ')
		kill -TERM "$p" 2>/dev/null || true
		wait_until 10 dead "$p" || kill -KILL "$p" "${ws[@]}" 2>/dev/null || true
	done
}

conf() { printf '%s\n' "$@" > "$CONF"; }

serves() { [[ $(curl -s "http://127.0.0.1:${1:-$PORT}/hello.txt") == hello ]]; }

# the worker pids, sorted, on one line
pids_now() { worker_pids | sort -n | tr '\n' ' '; }

none_of() {	# none_of "PIDS": none of these processes is alive
	for p in $1; do gone "$p" || return 1; done
}

@test "SIGHUP with a valid configuration: a new generation serves, the old one is gone" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2'
	CONF_ONLY=1 start_server -c "$CONF"
	local old
	old=$(pids_now)
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 3'
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 2 with 3 workers; retiring 2 workers'
	wait_until 5 none_of "$old"
	wait_until 5 worker_count_is 3
	serves
	run ps -o args= -p "$SERVER_PID"
	assert_output --partial 'master (3 workers)'
}

@test "SIGHUP with an invalid configuration changes nothing and says why" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2'
	CONF_ONLY=1 start_server -c "$CONF"
	local old
	old=$(pids_now)
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' 'bogus yes'
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has "reload failed: $CONF:4: unknown keyword 'bogus'; still serving generation 1"
	[[ $(pids_now) == "$old" ]]
	serves
}

@test "reload binds new listen addresses and closes removed ones" {
	local p1 p2
	p1=$(pick_port)
	p2=$(pick_port)
	conf "root $DOCROOT" "listen 127.0.0.1:$p1" 'workers 2'
	CONF_ONLY=1 LISTEN=127.0.0.1:$p1 start_server -c "$CONF"
	serves "$p1"
	conf "root $DOCROOT" "listen 127.0.0.1:$p2" 'workers 2'
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 2'
	serves "$p2"
	wait_until 5 port_refuses "$p1"
}

@test "reload: a download in flight on an old worker completes byte-exact" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0'
	start_server -c "$CONF"
	curl -s -o "$BATS_TEST_TMPDIR/out" --limit-rate 8M "http://127.0.0.1:$PORT/huge.bin" &
	local dl=$!
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 2'
	serves
	wait "$dl"
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/out"
}

@test "reload: a keep-alive client's next request is answered, with Connection: close" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 1' 'keepalive_timeout 30s'
	WORKERS=1 start_server -c "$CONF"
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	local line
	read -r -t 5 line <&"$fd"
	[[ $line == 'HTTP/1.1 200 OK'* ]]
	# Drain the rest of the first response (6-byte body).
	while read -r -t 5 line <&"$fd"; do [[ $line == $'\r' ]] && break; done
	read -r -N 6 -t 5 line <&"$fd"
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 2'
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	run timeout 5 cat <&"$fd"
	assert_line --index 0 --partial 'HTTP/1.1 200 OK'
	assert_line --partial 'Connection: close'
	exec {fd}>&-
}

@test "SIGUSR2: a new master takes over the sockets; the pidfile names it; the old one leaves" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	start_server -c "$CONF"
	local old_master=$SERVER_PID old_workers
	old_workers=$(pids_now)
	kill -USR2 "$old_master"
	wait_until 10 log_has 'upgrade: new master [0-9]* is serving; stopping gracefully'
	wait_until 10 gone "$old_master"
	local new_master
	new_master=$(cat "$PIDF")
	[[ $new_master != "$old_master" ]]
	alive "$new_master"
	[[ ! -e $PIDF.oldbin ]]
	none_of "$old_workers"
	SERVER_PID=$new_master
	wait_until 5 worker_count_is 2
	serves
	# The old master exited 0.
	[[ $(server_exit_status) == 0 ]]
}

@test "SIGUSR2: a download in flight on the old master completes byte-exact" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	CONF_ONLY=1 start_server -c "$CONF"
	curl -s -o "$BATS_TEST_TMPDIR/out" --limit-rate 4M "http://127.0.0.1:$PORT/huge.bin" &
	local dl=$!
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has 'upgrade: new master [0-9]* is serving'
	serves
	wait "$dl"
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/out"
	wait_until 15 gone "$SERVER_PID"
	log_has 'stopped: [0-9]* requests finished during the stop, 0 workers killed'
	run ! log_has 'killing it'
}

@test "daemon with relative paths: reload and upgrade still find the files" {
	cd "$BATS_TEST_TMPDIR"
	printf 'root www\nlisten 127.0.0.1:0\nworkers 1\npidfile rel.pid\nerror_log rel.log\n' > rel.conf
	run "$PREFORKD" -c rel.conf
	assert_success
	PIDF=$BATS_TEST_TMPDIR/rel.pid
	SERVER_PID=$(cat rel.pid)
	SERVER_LOG=$BATS_TEST_TMPDIR/rel.log
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' rel.log)
	wait_until 5 serves
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 2'
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has 'upgrade: new master [0-9]* is serving'
	wait_until 10 gone "$SERVER_PID"
	SERVER_PID=$(cat rel.pid)
	alive "$SERVER_PID"
	serves
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 4'
	serves
}

@test "a stop while an upgrade is pending calls the upgrade off" {
	cp "$PREFORKD" "$BATS_TEST_TMPDIR/preforkd"
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	PREFORKD=$BATS_TEST_TMPDIR/preforkd CONF_ONLY=1 start_server -c "$CONF"
	# A new binary that never gets ready.
	rm -f "$BATS_TEST_TMPDIR/preforkd"
	printf '#!/bin/sh\nexec sleep 30\n' > "$BATS_TEST_TMPDIR/preforkd"
	chmod +x "$BATS_TEST_TMPDIR/preforkd"
	kill -USR2 "$SERVER_PID"
	wait_until 5 log_has 'upgrade: started'
	local newpid
	newpid=$(sed -n 's/.*upgrade: started .* as pid \([0-9]*\)$/\1/p' "$SERVER_LOG")
	kill -TERM "$SERVER_PID"
	[[ $(server_exit_status) == 0 ]]
	wait_until 5 gone "$newpid"
	log_has 'upgrade failed: .*called off by a stop'
	[[ ! -e $PIDF.oldbin ]]
}

# upgraded_pid: the new master's pid, from the old master's log line.
upgraded_pid() {
	sed -n 's/.*upgrade: started .* as pid \([0-9]*\)$/\1/p' "$SERVER_LOG" | tail -n 1
}

# slow_new_binary: the binary the old master execs on SIGUSR2 becomes a
# script that waits half a second before it is preforkd again.
slow_new_binary() {
	rm -f "$BATS_TEST_TMPDIR/preforkd"
	printf '#!/bin/sh\nsleep 0.5\nexec "%s" "$@"\n' "$PREFORKD" > "$BATS_TEST_TMPDIR/preforkd"
	chmod +x "$BATS_TEST_TMPDIR/preforkd"
}

traced() { [[ $(awk '/^TracerPid:/ { print $2 }' "/proc/$1/status") != 0 ]]; }

@test "a stop sent right after SIGUSR2 wins: both masters exit, the port refuses, no pidfile is left" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	local i old newpid upgrades=0
	for i in $(seq 1 10); do
		CONF_ONLY=1 start_server -c "$CONF"
		old=$SERVER_PID
		# The TERM reaches the old master while its new master is being
		# forked, exec'd or started: it must stop both.
		kill -USR2 "$old"
		kill -TERM "$old"
		[[ $(server_exit_status) == 0 ]] || { cat "$SERVER_LOG" >&2; false; }
		wait_until 5 gone "$old"
		newpid=$(upgraded_pid)
		if [[ -n $newpid ]]; then
			upgrades=$((upgrades + 1))
			# The old master reaps the new one before it exits.
			gone "$newpid" || { echo "iteration $i: new master $newpid survived" >&2; cat "$SERVER_LOG" >&2; false; }
		fi
		wait_until 5 port_refuses "$PORT"
		[[ ! -e $PIDF ]] || { echo "iteration $i: pidfile left naming $(cat "$PIDF")" >&2; false; }
		[[ ! -e $PIDF.oldbin ]]
		run ! log_has 'is serving; stopping gracefully'
		SERVER_PID=
	done
	echo "# $upgrades of 10 stops came after the new master was forked" >&3
}

@test "a \"ready\" that comes after a stop called the upgrade off is refused: both masters exit" {
	cp "$PREFORKD" "$BATS_TEST_TMPDIR/preforkd"
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	PREFORKD=$BATS_TEST_TMPDIR/preforkd CONF_ONLY=1 start_server -c "$CONF"
	local old=$SERVER_PID newpid
	# Half a second before the new master runs: time to stop the old
	# master before it can read the "ready".
	slow_new_binary
	kill -USR2 "$old"
	wait_until 5 log_has 'upgrade: started'
	kill -STOP "$old"
	newpid=$(upgraded_pid)
	# The "ready" is in the pipe when the old master, continued, takes
	# the TERM: the "ready" it reads next must be refused.
	wait_until 10 log_has "master\[$newpid\]: upgrade: serving"
	kill -TERM "$old"
	kill -CONT "$old"
	[[ $(server_exit_status) == 0 ]] || { cat "$SERVER_LOG" >&2; false; }
	gone "$newpid" || { cat "$SERVER_LOG" >&2; false; }
	wait_until 5 port_refuses "$PORT"
	[[ ! -e $PIDF ]]
	[[ ! -e $PIDF.oldbin ]]
	log_has "upgrade: new master $newpid got ready after the stop"
	log_has 'upgrade failed: .*called off by a stop; stopping$'
	run ! log_has 'is serving; stopping gracefully'
}

@test "a stop already pending when the old master wakes to the new master's ready wins" {
	command -v strace >/dev/null || skip "no strace"
	cp "$PREFORKD" "$BATS_TEST_TMPDIR/preforkd"
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	PREFORKD=$BATS_TEST_TMPDIR/preforkd CONF_ONLY=1 start_server -c "$CONF"
	local old=$SERVER_PID newpid delay=$((2 * ${TIME_FACTOR:-1}))
	slow_new_binary
	# Every ppoll() of the old master starts $delay seconds late, its
	# signals blocked: the new master's "ready" and our TERM are both
	# waiting when it gets there.
	strace -qq -o "$BATS_TEST_TMPDIR/strace.out" -p "$old" -e trace=ppoll \
	    -e inject=ppoll:delay_enter="${delay}s" 2>"$BATS_TEST_TMPDIR/strace.err" &
	STRACE_PID=$!
	wait_until 5 traced "$old" 2>/dev/null || skip "cannot ptrace: $(cat "$BATS_TEST_TMPDIR/strace.err")"
	kill -USR2 "$old"
	wait_until 10 log_has 'upgrade: started'
	newpid=$(upgraded_pid)
	wait_until 10 log_has "master\[$newpid\]: upgrade: serving"
	kill -TERM "$old"
	wait_until 10 log_has "master\[$old\]: stopping gracefully"
	kill -TERM "$STRACE_PID"
	wait "$STRACE_PID" || true
	STRACE_PID=
	[[ $(server_exit_status) == 0 ]] || { cat "$SERVER_LOG" >&2; false; }
	gone "$newpid" || { cat "$SERVER_LOG" >&2; false; }
	wait_until 5 port_refuses "$PORT"
	[[ ! -e $PIDF ]]
	[[ ! -e $PIDF.oldbin ]]
	log_has 'upgrade failed: .*called off by a stop; stopping$'
	run ! log_has 'is serving; stopping gracefully'
}

@test "during the upgrade hand-over a first TERM is the stop under way, a second kills the old workers" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' "pidfile $PIDF"
	CONF_ONLY=1 start_server -c "$CONF"
	local old=$SERVER_PID new dl
	# An old worker stays busy: the hand-over lasts.
	curl -s -o "$BATS_TEST_TMPDIR/out" --limit-rate 200k "http://127.0.0.1:$PORT/huge.bin" &
	dl=$!
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -USR2 "$old"
	wait_until 10 log_has 'upgrade: new master [0-9]* is serving; stopping gracefully'
	new=$(upgraded_pid)
	kill -TERM "$old"
	wait_until 5 log_has "master\[$old\]: SIGTERM during the upgrade hand-over: stopping gracefully already (1 workers)"
	alive "$old"
	alive "$dl"
	kill -HUP "$old"
	wait_until 5 log_has "master\[$old\]: SIGHUP during a stop: ignored"
	alive "$old"
	kill -TERM "$old"
	wait_until 5 log_has "master\[$old\]: second stop signal: 1 workers stop now"
	[[ $(server_exit_status) == 0 ]]
	log_has "master\[$old\]: stopped: [0-9]* requests finished during the stop, 1 workers killed"
	kill "$dl" 2>/dev/null || true
	wait "$dl" || true
	# The new master serves on, and the pidfile names it.
	[[ $(cat "$PIDF") == "$new" ]]
	[[ ! -e $PIDF.oldbin ]]
	SERVER_PID=$new
	serves
	run ! log_has 'reloaded'
}

@test "SIGUSR2 to a binary that fails: the old master keeps serving and says why" {
	cp "$PREFORKD" "$BATS_TEST_TMPDIR/preforkd"
	conf "root $DOCROOT" 'listen 127.0.0.1:0' "pidfile $PIDF"
	PREFORKD=$BATS_TEST_TMPDIR/preforkd start_server -c "$CONF"
	local old
	old=$(pids_now)
	# The binary on disk is replaced by one that cannot start.
	rm -f "$BATS_TEST_TMPDIR/preforkd"
	printf '#!/bin/sh\necho "broken build" >&2\nexit 3\n' > "$BATS_TEST_TMPDIR/preforkd"
	chmod +x "$BATS_TEST_TMPDIR/preforkd"
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has 'upgrade failed: new master [0-9]* exited with status 3; still serving'
	[[ $(cat "$PIDF") == "$SERVER_PID" ]]
	[[ ! -e $PIDF.oldbin ]]
	[[ $(pids_now) == "$old" ]]
	serves
	# Not executable at all.
	chmod -x "$BATS_TEST_TMPDIR/preforkd"
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has 'upgrade failed: .*Permission denied'
	serves
}

@test "SIGUSR2 with a configuration the new master rejects: rollback with the reason" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' "pidfile $PIDF"
	start_server -c "$CONF"
	printf 'nonsense here\n' >> "$CONF"
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has "upgrade failed: .*$CONF:4: unknown keyword 'nonsense'"
	[[ $(cat "$PIDF") == "$SERVER_PID" ]]
	serves
}

@test "a reload that adds an ephemeral listener before a kept port keeps both" {
	local p1
	p1=$(pick_port)
	conf "root $DOCROOT" "listen 127.0.0.1:$p1" 'workers 1'
	CONF_ONLY=1 WORKERS=1 start_server -c "$CONF"
	serves "$p1"
	conf "root $DOCROOT" 'listen 127.0.0.1:0' "listen 127.0.0.1:$p1" 'workers 1'
	kill -HUP "$SERVER_PID"
	wait_until 10 log_has 'reloaded: generation 2'
	run log_has 'reload failed'
	assert_failure
	serves "$p1"
}

@test "SIGTTIN adds a worker, SIGTTOU removes one" {
	WORKERS=2 start_server
	kill -TTIN "$SERVER_PID"
	wait_until 5 worker_count_is 3
	kill -TTIN "$SERVER_PID"
	wait_until 5 worker_count_is 4
	kill -TTOU "$SERVER_PID"
	wait_until 5 worker_count_is 3
	log_has 'workers: 3'
	serves
}

@test "a fixed pool shrunk by SIGTTOU stays fixed while its last worker is busy" {
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=2 start_server
	kill -TTOU "$SERVER_PID"
	wait_until 5 worker_count_is 1
	curl -s -o /dev/null --limit-rate 100k "http://127.0.0.1:$PORT/endless.bin" &
	local dl=$!
	# A dynamic pool would spawn a spare within a tick (250 ms); watch
	# for eight ticks.
	if wait_until 2 log_has 'idle workers' 2>/dev/null; then
		kill "$dl"
		return 1
	fi
	[[ $(worker_count) -eq 1 ]]
	kill "$dl"
	wait "$dl" || true
}

@test "request_timeout: a response still running is cut, the log names the request, the worker lives on" {
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=2 start_server -o request_timeout=1s
	local before
	before=$(pids_now)
	curl -s -o /dev/null --limit-rate 100k "http://127.0.0.1:$PORT/endless.bin" &
	local dl=$!
	wait_until 10 log_has 'request "GET /endless.bin HTTP/1.1" still running after [0-9]* ms (request_timeout): closing the connection'
	wait "$dl" || true
	# No worker was killed for it: a worker carries many responses.
	[[ $(pids_now) == "$before" ]]
	serves
}

@test "the dynamic pool grows under load and shrinks after" {
	# One connection per worker: each download fills a worker.
	WORKERS=2 start_server -o max_workers=6 -o min_spare_workers=1 \
	    -o max_spare_workers=1 -o worker_connections=1
	local dls=()
	for i in 1 2 3 4; do
		curl -s -o /dev/null --limit-rate 4M "http://127.0.0.1:$PORT/huge.bin" &
		dls+=($!)
	done
	grown() { [[ $(worker_count) -ge 5 ]]; }
	wait_until 10 grown
	log_has 'idle workers (min_spare_workers 1): spawning'
	for p in "${dls[@]}"; do wait "$p"; done
	wait_until 15 worker_count_is 2
	log_has 'idle workers (max_spare_workers 1): retiring one'
	serves
}

@test "max_requests recycles workers gracefully" {
	WORKERS=1 start_server -o max_requests=3
	local first
	first=$(pids_now)
	for i in $(seq 1 7); do
		run curl -s --http1.1 "http://127.0.0.1:$PORT/hello.txt"
		assert_output hello
	done
	wait_until 5 log_has 'recycled after 3 requests'
	[[ $(pids_now) != "$first" ]]
	run ! log_has 'respawning'
}

@test "the stop log line counts requests finished and workers killed" {
	# One worker, the busy one: an idle second worker still exiting at
	# the 1 s deadline (ASan's exit under load) would be counted too.
	WORKERS=1 start_server -T 1s
	curl -s -o "$BATS_TEST_TMPDIR/out" --limit-rate 200k "http://127.0.0.1:$PORT/huge.bin" &
	local dl=$!
	# A worker is mid-response once bytes arrive.
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	kill -TERM "$SERVER_PID"
	[[ $(server_exit_status) == 0 ]]
	log_has 'stopped: [0-9]* requests finished during the stop, 1 workers killed'
	wait "$dl" || true
}

@test "under wrk load, 20 reloads and one binary upgrade lose no request" {
	command -v wrk >/dev/null || skip "wrk not installed"
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 4' "pidfile $PIDF"
	CONF_ONLY=1 WORKERS=4 start_server -c "$CONF"
	local out=$BATS_TEST_TMPDIR/wrk.out master=$SERVER_PID
	wrk -t2 -c32 -d8s "http://127.0.0.1:$PORT/index.html" > "$out" 2>&1 &
	local w=$!
	for i in $(seq 1 20); do
		kill -HUP "$master"
		reloads_done() { [[ $(grep -c 'reloaded: generation' "$SERVER_LOG") -ge $i ]]; }
		wait_until 5 reloads_done
		[[ $i == 10 ]] && { kill -USR2 "$master"; wait_until 10 log_has 'upgrade: new master [0-9]* is serving'; master=$(cat "$PIDF"); }
	done
	wait "$w"
	cat "$out" >&3
	run ! grep -q 'Socket errors' "$out"
	run ! grep -q 'Non-2xx' "$out"
	grep -qE '[0-9]+ requests in' "$out"
	# The old master is gone, the pidfile names the new one, pool as configured.
	wait_until 10 gone "$SERVER_PID"
	[[ $(cat "$PIDF") == "$master" ]]
	SERVER_PID=$master
	wait_until 10 worker_count_is 4
	serves
}

@test "socket activation: sockets passed with LISTEN_FDS are used instead of binding" {
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate"
	local port
	port=$(pick_port)
	SERVER_LOG=$BATS_TEST_TMPDIR/sa.log
	# It listens, and starts preforkd when the first client connects.
	setsid systemd-socket-activate -l "127.0.0.1:$port" -- \
	    "$PREFORKD" -f -l "127.0.0.1:$port" -r "$DOCROOT" -n 2 \
	    > "$SERVER_LOG" 2>&1 3>&- &
	SA_PID=$!
	wait_until 5 log_has 'Listening on'
	# The very connection that started it is answered.
	run curl -sS -m $((10 * ${TIME_FACTOR:-1})) "http://127.0.0.1:$port/hello.txt"
	[[ $output == hello ]] || { echo "curl: $output" >&2; cat "$SERVER_LOG" >&2; false; }
	wait_until 5 log_has 'started with 2 workers'
	SERVER_PID=$(sed -n 's/.*master\[\([0-9]*\)\]: started with.*/\1/p' "$SERVER_LOG")
	run ! log_has 'Address already in use'
	run curl -s "http://127.0.0.1:$port/hello.txt"
	assert_output hello
	kill -TERM "$SERVER_PID"
	wait_until 10 gone "$SERVER_PID"
	SERVER_PID=
	kill -TERM "$SA_PID" 2>/dev/null || true
}

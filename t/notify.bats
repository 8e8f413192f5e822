#!/usr/bin/env bats
# sd_notify (doc/design.md 1.10): the master's datagrams to $NOTIFY_SOCKET,
# received here by a socket the test owns (a small python3 listener that
# writes one line per datagram, "PID: KEY=VALUE KEY=VALUE...", PID being
# the sender's from SCM_CREDENTIALS); and the status file next to the
# pidfile that the init script reads.

# Each @test runs in a subshell of its own: what it sets is for it and for
# its teardown.
# shellcheck disable=SC2030,SC2031
load helpers

setup() {
	make_docroot
	NOTES=$BATS_TEST_TMPDIR/notes
	PIDF=$BATS_TEST_TMPDIR/preforkd.pid
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	: > "$NOTES"
}

extra_teardown() {
	[[ -z ${LISTENER:-} ]] || kill -TERM "$LISTENER" 2>/dev/null || true
	local p
	for p in ${MORE_PIDS:-}; do kill -KILL "$p" 2>/dev/null || true; done
}

# listen ADDR: a datagram socket at ADDR ('@NAME': abstract) whose every
# datagram becomes a line of $NOTES; sets LISTENER and NOTIFY_SOCKET.
listen() {
	cat > "$BATS_TEST_TMPDIR/listen.py" <<'EOF'
import array, socket, struct, sys
addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\0' + addr[1:] if addr.startswith('@') else addr)
with open(out, 'a', buffering=1) as f:
    f.write('listening\n')
    while True:
        data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = 0
        for level, kind, body in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack('iII', body[:12])[0]
        f.write('%d: %s\n' % (pid, data.decode().strip().replace('\n', ' ')))
EOF
	/usr/bin/python3 "$BATS_TEST_TMPDIR/listen.py" "$1" "$NOTES" 3>&- &
	LISTENER=$!
	wait_until 5 grep -qx listening "$NOTES"
	export NOTIFY_SOCKET=$1
}

# noted REGEX: a datagram matched (ERE, on the whole line).
noted() { grep -qE -- "^$1\$" "$NOTES"; }
count_noted() { grep -cE -- "^$1\$" "$NOTES" || true; }

need_python() {
	[[ -x /usr/bin/python3 ]] || skip "no /usr/bin/python3"
}

@test "notify: READY=1 with MAINPID once the workers accept, STOPPING=1 at the stop; the master alone speaks" {
	need_python
	listen "$BATS_TEST_TMPDIR/notify.sock"
	WORKERS=3 start_server
	wait_until 5 noted "$SERVER_PID: READY=1 MAINPID=$SERVER_PID STATUS=serving: generation 1, 3 workers"
	# Ready means serving: every worker is in its accept loop.
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	kill -TERM "$SERVER_PID"
	[[ $(server_exit_status) == 0 ]]
	noted "$SERVER_PID: STOPPING=1 STATUS=stopping"
	# Nothing from anyone else (workers), nothing twice.
	run grep -vE "^($SERVER_PID: |listening$)" "$NOTES"
	assert_failure
	[[ $(count_noted '.*READY=1.*') -eq 1 ]]
}

@test "notify: an abstract socket name (@NAME) works" {
	need_python
	listen "@preforkd-test-$$-$BATS_TEST_NUMBER"
	start_server
	wait_until 5 noted "$SERVER_PID: READY=1 MAINPID=$SERVER_PID .*"
}

@test "notify: SIGHUP says RELOADING=1 with MONOTONIC_USEC, then READY=1; a failed reload says why in STATUS=" {
	need_python
	listen "$BATS_TEST_TMPDIR/notify.sock"
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' > "$CONF"
	CONF_ONLY=1 start_server -c "$CONF"
	wait_until 5 noted "$SERVER_PID: READY=1 .*"
	# CLOCK_MONOTONIC, in microseconds, as Type=notify-reload wants it.
	mono() { /usr/bin/python3 -c 'import time; print(int(time.monotonic() * 1e6))'; }
	local before after usec
	before=$(mono)
	kill -HUP "$SERVER_PID"
	wait_until 5 noted "$SERVER_PID: READY=1 STATUS=serving: generation 2, 2 workers"
	after=$(mono)
	noted "$SERVER_PID: RELOADING=1 MONOTONIC_USEC=[0-9]+"
	# RELOADING comes before its READY, and was sent in between.
	[[ $(grep -n RELOADING "$NOTES" | cut -d: -f1) -lt \
	    $(grep -n 'generation 2' "$NOTES" | cut -d: -f1) ]]
	usec=$(sed -n 's/.*MONOTONIC_USEC=\([0-9]*\).*/\1/p' "$NOTES")
	(( usec >= before && usec <= after ))

	# Invalid: the old configuration keeps serving, READY=1 all the same.
	echo 'bogus 1' >> "$CONF"
	kill -HUP "$SERVER_PID"
	wait_until 5 noted "$SERVER_PID: STATUS=reload failed: $CONF:4: unknown keyword 'bogus' READY=1"
	[[ $(count_noted '.*RELOADING=1.*') -eq 2 ]]
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

@test "notify: WATCHDOG=1 every WATCHDOG_USEC/2, and none when WATCHDOG_PID names another process" {
	need_python
	listen "$BATS_TEST_TMPDIR/notify.sock"
	WATCHDOG_USEC=200000 start_server
	wait_until 5 noted "$SERVER_PID: READY=1 .*"
	pings() { [[ $(count_noted "$SERVER_PID: WATCHDOG=1") -ge $1 ]]; }
	wait_until 5 pings 5
	stop_server

	echo listening > "$NOTES"
	WATCHDOG_USEC=200000 WATCHDOG_PID=1 start_server -o shutdown_delay=1s
	wait_until 5 noted "$SERVER_PID: READY=1 .*"
	# The delay makes the master live a second more: five pings due.
	kill -TERM "$SERVER_PID"
	[[ $(server_exit_status) == 0 ]]
	log_has 'shutdown_delay over'
	[[ $(count_noted '.*WATCHDOG.*') -eq 0 ]]
}

@test "notify: after SIGUSR2 the old master names the new one MAINPID, which then notifies and pings itself" {
	need_python
	listen "$BATS_TEST_TMPDIR/notify.sock"
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' \
	    "pidfile $PIDF" > "$CONF"
	WATCHDOG_USEC=400000 CONF_ONLY=1 start_server -c "$CONF"
	wait_until 5 noted "$SERVER_PID: READY=1 .*"
	local old=$SERVER_PID new
	kill -USR2 "$old"
	wait_until 10 gone "$old"
	new=$(cat "$PIDF")
	SERVER_PID=$new
	MORE_PIDS="${MORE_PIDS:-} $new"
	noted "$old: MAINPID=$new READY=1 STATUS=upgraded: new master $new"
	# The new master got NOTIFY_SOCKET and the watchdog back.
	newpings() { [[ $(count_noted "$new: WATCHDOG=1") -ge $1 ]]; }
	wait_until 5 newpings 2
	kill -HUP "$new"
	wait_until 5 noted "$new: READY=1 STATUS=serving: generation 3, 2 workers"
	noted "$new: RELOADING=1 MONOTONIC_USEC=[0-9]+"
	# The old master stopped pinging at the hand-over; no STOPPING from
	# it (the service did not stop), nothing from the new one before.
	local last_old
	last_old=$(grep -n "^$old: MAINPID" "$NOTES" | cut -d: -f1)
	run awk -v n="$last_old" -v p="$old: " 'NR > n && index($0, p) == 1' "$NOTES"
	assert_output ''
	run awk -v n="$last_old" -v p="$new: " 'NR < n && index($0, p) == 1' "$NOTES"
	assert_output ''
	kill -TERM "$new"
	wait_until 10 gone "$new"
	noted "$new: STOPPING=1 STATUS=stopping"
}

@test "notify: shutdown_delay says STOPPING=1 at the signal, with the delay in STATUS=" {
	need_python
	listen "$BATS_TEST_TMPDIR/notify.sock"
	start_server -o shutdown_delay=300ms
	wait_until 5 noted "$SERVER_PID: READY=1 .*"
	kill -TERM "$SERVER_PID"
	wait_until 5 noted "$SERVER_PID: STOPPING=1 STATUS=shutdown_delay: stopping in 300 ms"
	[[ $(server_exit_status) == 0 ]]
	[[ $(count_noted '.*STOPPING=1.*') -eq 1 ]]
}

@test "notify: neither workers nor their programs see NOTIFY_SOCKET or WATCHDOG_*" {
	need_python
	/usr/bin/python3 -c 'import websockets' 2>/dev/null ||
	    skip "no python3-websockets"
	listen "$BATS_TEST_TMPDIR/notify.sock"
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 1' \
	    'websocket /env /usr/bin/env' \
	    'program_env NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID NOTIFY_TEST' \
	    > "$CONF"
	NOTIFY_TEST=passed WATCHDOG_USEC=10000000 CONF_ONLY=1 WORKERS=1 \
	    start_server -c "$CONF"
	run /usr/bin/python3 "$TOP_SRCDIR/t/wsclient.py" "ws://127.0.0.1:$PORT/env"
	assert_success
	# program_env passes what preforkd has: the control variable...
	assert_line NOTIFY_TEST=passed
	# ... but not these, taken out of the environment at start-up.
	refute_line --partial NOTIFY_SOCKET
	refute_line --partial WATCHDOG_
}

@test "status file: PIDFILE.status says how the last start, reload and upgrade went, and goes with the pidfile" {
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' \
	    "pidfile $PIDF" > "$CONF"
	CONF_ONLY=1 start_server -c "$CONF"
	run cat "$PIDF.status"
	assert_output "1 $SERVER_PID start ok"
	kill -HUP "$SERVER_PID"
	wait_until 5 grep -qx "2 $SERVER_PID reload ok" "$PIDF.status"
	# A reload that binds an address in use: refused, and why.
	busy_port
	echo "listen 127.0.0.1:$BPORT" >> "$CONF"
	kill -HUP "$SERVER_PID"
	wait_until 5 grep -qx "3 $SERVER_PID reload failed: $CONF:5: listen 127.0.0.1:$BPORT: Address already in use" "$PIDF.status"
	sed -i '$d' "$CONF"
	kill -USR2 "$SERVER_PID"
	wait_until 10 gone "$SERVER_PID"
	local new
	new=$(cat "$PIDF")
	SERVER_PID=$new
	MORE_PIDS="${MORE_PIDS:-} $new"
	run cat "$PIDF.status"
	assert_output "1 $new upgrade ok"
	kill -TERM "$new"
	wait_until 10 gone "$new"
	[[ ! -e $PIDF && ! -e $PIDF.status ]]
}

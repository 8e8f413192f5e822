#!/usr/bin/env bats
# Daemon mode, the pidfile, privileges and process titles.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	make_docroot
	PIDF=$BATS_TEST_TMPDIR/run/preforkd.pid
	ELOG=$BATS_TEST_TMPDIR/error.log
	mkdir -p "$BATS_TEST_TMPDIR/run"
}

extra_teardown() {
	local p
	p=$(cat "$PIDF" 2>/dev/null) || return 0
	[[ -n $p ]] || return 0
	local ws
	ws=$(ps -o pid= --ppid "$p" | tr -d ' ')
	kill -TERM "$p" 2>/dev/null || true
	# shellcheck disable=SC2086 # $ws: a list of pids
	wait_until 10 dead "$p" || kill -KILL "$p" $ws 2>/dev/null || true
}

# daemon [ARGS]: start in daemon mode on an ephemeral port; sets DPID, PORT.
# shellcheck disable=SC2120 # ARGS are optional
daemon() {
	run "$PREFORKD" -l 127.0.0.1:0 -r "$DOCROOT" -n 2 -p "$PIDF" \
	    -o error_log="$ELOG" "$@"
	assert_success
	assert_output ''
	# The launcher returned only after the pidfile was written.
	[[ -s $PIDF ]]
	DPID=$(cat "$PIDF")
	alive "$DPID"
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$ELOG" | tail -n 1)
	[[ -n $PORT ]]
}

# shellcheck disable=SC2009 # ps --ppid counts the children; no pattern
daemon_workers() { [[ $(ps -o pid= --ppid "$DPID" | grep -c .) -eq ${1:-2} ]]; }

@test "daemon mode: returns 0 once the pidfile names a detached master that serves" {
	daemon
	# Detached: its own session, not our child, stdio on /dev/null.
	[[ $(ps -o sid= -p "$DPID" | tr -d ' ') == "$DPID" ]]
	[[ $(readlink "/proc/$DPID/fd/0") == /dev/null ]]
	[[ $(readlink "/proc/$DPID/cwd") == / ]]
	wait_until 5 daemon_workers 2
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	kill -TERM "$DPID"
	wait_until 10 dead "$DPID"
	# A clean stop removes the pidfile.
	[[ ! -e $PIDF ]]
	port_refuses "$PORT"
	grep -q 'stopped' "$ELOG"
}

@test "a second instance on the same pidfile refuses and the first keeps serving" {
	daemon
	run "$PREFORKD" -l 127.0.0.1:0 -r "$DOCROOT" -n 2 -p "$PIDF" -f
	assert_failure 1
	assert_output "preforkd: already running as pid $DPID (pidfile $PIDF)"
	run "$PREFORKD" -l 127.0.0.1:0 -r "$DOCROOT" -n 2 -p "$PIDF"
	assert_failure 1
	[[ $(cat "$PIDF") == "$DPID" ]]
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

@test "a stale pidfile from a dead master does not block a start" {
	echo 999999 > "$PIDF"
	daemon
	[[ $DPID != 999999 ]]
}

@test "start-up errors in daemon mode are printed and exit 1, with no pidfile" {
	run "$PREFORKD" -l 127.0.0.1:0 -r "$DOCROOT" -p "$PIDF" \
	    -o error_log="$BATS_TEST_TMPDIR/nodir/error.log"
	assert_failure 1
	assert_output --partial "error_log $BATS_TEST_TMPDIR/nodir/error.log: No such file or directory"
	[[ ! -e $PIDF ]]
}

@test "relative pidfile and log paths are relative to where preforkd started" {
	cd "$BATS_TEST_TMPDIR"
	run "$PREFORKD" -l 127.0.0.1:0 -r www -n 1 -p run/rel.pid -o error_log=rel.log
	assert_success
	[[ -s run/rel.pid ]]
	local p
	p=$(cat run/rel.pid)
	echo "$p" > "$PIDF"	# for teardown
	wait_until 5 grep -q 'started with' rel.log
	kill -TERM "$p"
	wait_until 10 dead "$p"
	# Removed from the right place although the daemon runs in /.
	[[ ! -e run/rel.pid ]]
}

@test "process titles say who is who" {
	WORKERS=2 start_server
	run ps -o args= -p "$SERVER_PID"
	# libbsd pads a title shorter than argv (a long path: make distcheck)
	assert_output --regexp "^preforkd: master \(2 workers\) 127\.0\.0\.1:$PORT *\.?\$"
	for w in $(worker_pids); do
		run ps -o args= -p "$w"
		# libbsd marks a title shorter than argv with a trailing '.'
		assert_output --regexp '^preforkd: worker idle *\.?$'
	done
}

# policy_of PID: SCHED_OTHER, SCHED_BATCH, ... as chrt(1) reports it.
policy_of() { chrt -p "$1" | sed -n 's/.*scheduling policy: //p'; }

@test "workers run under SCHED_BATCH, the master under SCHED_OTHER; worker_sched_batch off keeps them all normal" {
	command -v chrt >/dev/null || skip "chrt (util-linux) not installed"
	[[ $(policy_of $$) == SCHED_OTHER ]] ||
	    skip "the tests run under $(policy_of $$), which preforkd keeps"
	WORKERS=2 start_server
	[[ $(policy_of "$SERVER_PID") == SCHED_OTHER ]]
	for w in $(worker_pids); do
		[[ $(policy_of "$w") == SCHED_BATCH ]]
	done
	stop_server
	WORKERS=2 start_server -o worker_sched_batch=off
	for w in $(worker_pids); do
		[[ $(policy_of "$w") == SCHED_OTHER ]]
	done
}

@test "as root with no user configured, the log says workers run as root" {
	[[ $(id -u) -eq 0 ]] || skip "not running as root"
	start_server
	log_has 'no user configured: workers run as root'
	[[ $(grep -c 'workers run as root' "$SERVER_LOG") -eq 1 ]]
}

@test "privileges: workers run as the configured user, the master stays root" {
	[[ $(id -u) -eq 0 ]] || skip "needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	chmod -R a+rX "$DOCROOT"
	start_server -u nobody
	[[ $(ps -o uid= -p "$SERVER_PID" | tr -d ' ') -eq 0 ]]
	local uid
	uid=$(id -u nobody)
	# A worker just forked drops its privileges at once, but a loaded
	# machine may show it before it did.
	uid_is() { [[ $(ps -o uid= -p "$1" | tr -d ' ') -eq $2 ]]; }
	for w in $(worker_pids); do
		wait_until 5 uid_is "$w" "$uid"
		# Real, effective and saved ids all dropped, groups too.
		run awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$w/status"
		assert_output "$uid $uid $uid $uid"
		run awk '/^Groups:/ {print $2}' "/proc/$w/status"
		refute_output 0
	done
	run log_has 'workers run as root'
	assert_failure
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

@test "chroot: workers are confined to the document root and still serve" {
	[[ $(id -u) -eq 0 ]] || skip "needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	chmod -R a+rX "$DOCROOT"
	start_server -u nobody -o chroot=on
	for w in $(worker_pids); do
		[[ $(readlink "/proc/$w/root") == "$DOCROOT" ]]
	done
	run curl -s "http://127.0.0.1:$PORT/dir/"
	assert_output '<h1>dir</h1>'
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

@test "a user other than ourselves cannot be taken without root" {
	unprivileged_setup
	# It is really that user who runs it (as root: nobody).
	run as_unprivileged id -u
	assert_success
	[[ $output -ne 0 ]]
	run as_unprivileged "$UNPRIV_DIR/preforkd" -f -l 127.0.0.1:0 \
	    -r "$UNPRIV_DIR/www" -u root
	assert_failure 1
	assert_output 'preforkd: user: cannot switch to root without root'
}

@test "daemon mode: the launcher returns once the workers accept" {
	daemon
	# No waiting: they are up when the command returns.
	daemon_workers 2
	grep -q 'started with 2 workers' "$ELOG"
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

# --- workers that cannot drop privileges ---------------------------------
# As under systemd with a CapabilityBoundingSet that lacks what the
# configuration needs: setpriv takes the capability out of the bounding set
# (root keeps the rest).

need_setpriv() {
	[[ $(id -u) -eq 0 ]] || skip "needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	command -v setpriv >/dev/null || skip "no setpriv"
	setpriv --bounding-set=-sys_chroot true 2>/dev/null ||
	    skip "setpriv cannot change the bounding set here"
	chmod -R a+rX "$DOCROOT"
}

# nothing_left LOG: no process that logged to LOG is left, not even a zombie.
nothing_left() {
	local p
	while read -r p; do
		gone "$p" || return 1
	done < <(sed -n 's/.* \(master\|worker\)\[\([0-9]*\)\]: .*/\2/p' "$1")
}

@test "start-up refuses when the workers cannot switch user: exit 1, one line, no pidfile" {
	need_setpriv
	run setpriv --bounding-set=-setuid,-setgid "$PREFORKD" -l 127.0.0.1:0 \
	    -r "$DOCROOT" -n 2 -u nobody -p "$PIDF" -o error_log="$ELOG"
	assert_failure 1
	assert_output 'preforkd: workers cannot start: switching to user nobody: Operation not permitted'
	[[ ! -e $PIDF ]]
	wait_until 5 nothing_left "$ELOG"
	# The log has the worker's line and the master's; never "started".
	grep -q 'worker\[[0-9]*\]: cannot drop privileges: switching to user nobody' "$ELOG"
	grep -q 'master\[[0-9]*\]: workers cannot start: switching to user nobody' "$ELOG"
	run grep -q 'started with' "$ELOG"
	assert_failure
}

@test "start-up refuses when the workers cannot chroot (foreground): exit 1, the reason last" {
	need_setpriv
	run setpriv --bounding-set=-sys_chroot "$PREFORKD" -f -l 127.0.0.1:0 \
	    -r "$DOCROOT" -n 2 -u nobody -o chroot=on -p "$PIDF"
	assert_failure 1
	assert_line --index -1 "preforkd: workers cannot start: chroot $DOCROOT: Operation not permitted"
	refute_output --partial 'started with'
	[[ ! -e $PIDF ]]
	echo "$output" > "$BATS_TEST_TMPDIR/out.log"
	wait_until 5 nothing_left "$BATS_TEST_TMPDIR/out.log"
}

# nochroot_server ARGS: start_server under a bounding set without
# CAP_SYS_CHROOT (a wrapper: an upgrade execs the real binary again, which
# keeps the bounding set).
nochroot_server() {
	printf '#!/bin/sh\nexec setpriv --bounding-set=-sys_chroot %s "$@"\n' \
	    "$PREFORKD" > "$BATS_TEST_TMPDIR/nochroot"
	chmod +x "$BATS_TEST_TMPDIR/nochroot"
	PREFORKD=$BATS_TEST_TMPDIR/nochroot CONF_ONLY=1 start_server "$@"
}

@test "a reload whose workers cannot chroot: the old generation keeps serving, the log says why" {
	need_setpriv
	local conf=$BATS_TEST_TMPDIR/preforkd.conf
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' \
	    'user nobody' > "$conf"
	nochroot_server -c "$conf"
	local old
	old=$(worker_pids | sort | tr '\n' ' ')
	echo 'chroot on' >> "$conf"
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has "reload failed: workers of generation 2 cannot start: chroot $DOCROOT: Operation not permitted; generation 1 keeps serving"
	run ! log_has 'reloaded:'
	for w in $old; do alive "$w"; done
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	# Fixed, the next reload retires them.
	sed -i '$d' "$conf"
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reloaded: generation 3 with 2 workers'
	for w in $old; do wait_until 5 gone "$w"; done
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

@test "an upgrade whose workers cannot chroot rolls back with the reason" {
	need_setpriv
	local conf=$BATS_TEST_TMPDIR/preforkd.conf
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 2' \
	    'user nobody' "pidfile $PIDF" > "$conf"
	nochroot_server -c "$conf"
	echo 'chroot on' >> "$conf"
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has "upgrade failed: new master [0-9]* exited with status 1: workers cannot start: chroot $DOCROOT: Operation not permitted; still serving"
	[[ $(cat "$PIDF") == "$SERVER_PID" ]]
	[[ ! -e $PIDF.oldbin ]]
	run cat "$PIDF.status"
	assert_output --regexp "^[0-9]+ $SERVER_PID upgrade failed: new master [0-9]+ exited with status 1: workers cannot start: chroot $DOCROOT: Operation not permitted\$"
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

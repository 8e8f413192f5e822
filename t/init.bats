#!/usr/bin/env bats
# The files under etc/: the LSB init script (generated in the build tree as
# etc/init.d/preforkd, next to the binary), the sample configuration, the
# systemd unit and the logrotate snippet.
#
# The init script is pointed at the build's binary, a configuration, pidfile
# and error log under $BATS_TEST_TMPDIR and a port on 127.0.0.1 through its
# environment variables; /etc/default/preforkd is not read (DEFAULTS_FILE=)
# and no log directory is created (LOGDIR=).

# Each @test body runs in a subshell of its own: what it sets (PID, PORT,
# MASTERS) is meant for it and for teardown, which bats runs in the same.
# shellcheck disable=SC2030,SC2031
load helpers

BUILDDIR=$(cd "$(dirname "$PREFORKD")" && pwd)
INIT=$BUILDDIR/etc/init.d/preforkd
SAMPLE=$TOP_SRCDIR/etc/preforkd.conf

setup() {
	T=$BATS_TEST_TMPDIR
	PIDF=$T/run/preforkd.pid
	CONFF=$T/preforkd.conf
	ELOG=$T/error.log
	ALOG=$T/access.log
	mkdir -p "$T/run"
	MASTERS=()
}

# Everything we started is stopped by pid: the masters we saw (the one in
# the pidfile and any earlier one), then whatever workers they left.
teardown() {
	stop_server
	local p ws
	p=$(cat "$PIDF" 2>/dev/null) && [[ -n $p ]] && MASTERS+=("$p")
	for p in "${MASTERS[@]}"; do
		alive "$p" || continue
		ws=$(ps -o pid= --ppid "$p" | tr -d ' ')
		kill -TERM "$p" 2>/dev/null || true
		wait_until 10 dead "$p" 2>/dev/null || {
			kill -KILL "$p" 2>/dev/null || true
			for w in $ws; do kill -KILL "$w" 2>/dev/null || true; done
		}
	done
	if [[ -n ${DECOY:-} ]]; then
		kill -KILL "$DECOY" 2>/dev/null || true
	fi
	busy_port_done
}

need_init() {
	[[ -f $INIT ]] || skip "$INIT not generated (run make)"
	command -v start-stop-daemon >/dev/null || skip "no start-stop-daemon"
}

# free_port: a port nothing listens on, below the kernel's ephemeral range
# (which the other suites' port-0 servers use) where that leaves room.
free_port() {
	local lo=20000 hi=60000 eph p
	read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph=0
	if (( eph > lo + 1000 )); then hi=$(( eph - 1 )); fi
	for _ in $(seq 200); do
		p=$(( lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1) ))
		if port_refuses "$p"; then echo "$p"; return 0; fi
	done
	echo "no free port found in $lo-$hi" >&2
	return 1
}

# write_conf [EXTRA LINES...]: the configuration the init script uses.
write_conf() {
	{
		echo "# written by t/init.bats"
		echo "listen 127.0.0.1:$PORT"
		echo "root $DOCROOT"
		echo "workers ${WORKERS:-2}"
		echo "pidfile $PIDF"
		echo "error_log $ELOG"
		echo "access_log $ALOG"
		echo "shutdown_timeout 5s"
		local l
		for l in "$@"; do echo "$l"; done
	} >"$CONFF"
}

# init ACTION: run the generated init script the way a sysadmin would, with
# the settings that point it at this test's files.
init() {
	env DAEMON="$PREFORKD" CONF="$CONFF" PIDFILE="$PIDF" \
	    SHUTDOWN_TIMEOUT=15 LOGDIR= DEFAULTS_FILE= \
	    ${INIT_FUNCTIONS+INIT_FUNCTIONS="$INIT_FUNCTIONS"} \
	    sh "$INIT" "$@"
}

master_pid() { cat "$PIDF"; }
serving() { [[ $(curl -s --max-time 5 "http://127.0.0.1:$PORT/hello.txt") == hello ]]; }
# shellcheck disable=SC2009 # ps --ppid counts the children; no pattern
workers_of() { ps -o pid= --ppid "$1" | grep -c . || true; }
has_workers() { [[ $(workers_of "$1") -eq $2 ]]; }

# init_start: "start" on a fresh port; another port is tried if something
# took ours between the check and the bind.  Sets PID.
# shellcheck disable=SC2120 # EXTRA LINES for write_conf are optional
init_start() {
	make_docroot
	local _
	for _ in 1 2 3 4 5; do
		PORT=$(free_port)
		write_conf "$@"
		run init start
		if [[ $status -eq 0 ]] || [[ $output != *"Address already in use"* ]]; then
			break
		fi
	done
	assert_success
	[[ -s $PIDF ]]
	PID=$(master_pid)
	MASTERS+=("$PID")
	alive "$PID"
	wait_until 10 has_workers "$PID" "${WORKERS:-2}"
	serving
}

@test "init: start serves, a second start finds it running, status 0, configtest OK" {
	need_init
	init_start
	# Detached, in its own session, and named in the pidfile.
	[[ $(ps -o sid= -p "$PID" | tr -d ' ') == "$PID" ]]
	grep -q 'started with 2 workers' "$ELOG"

	# LSB: starting a running service succeeds (exit 0) and changes nothing.
	run init start
	assert_success
	assert_output --partial 'already running'
	[[ $(master_pid) == "$PID" ]]
	alive "$PID"

	run init status
	assert_success
	assert_output --partial "running (pid $PID)"

	run init configtest
	assert_success
	assert_output 'configuration OK'
}

@test "init: reload checks the configuration and sends SIGHUP; the server keeps serving" {
	need_init
	init_start
	run init reload
	assert_success
	# The master logs the SIGHUP (what a reload does is t/reload.bats's).
	wait_until 5 grep -qiE 'SIGHUP|reload' "$ELOG"
	[[ $(master_pid) == "$PID" ]]
	alive "$PID"
	serving

	# An invalid configuration is not sent to the server.
	echo "backlog many" >>"$CONFF"
	local n
	n=$(wc -l <"$CONFF")
	: >"$ELOG"
	run init reload
	assert_failure 1
	assert_output --partial "$CONFF:$n: backlog: invalid value 'many' (expected 1 to 65535)"
	sleep 0.3
	run grep -qiE 'SIGHUP|reload' "$ELOG"
	assert_failure 1
	serving

	run init force-reload
	assert_failure 1
	alive "$PID"
}

@test "init: restart refuses an invalid configuration and leaves the server running" {
	need_init
	init_start
	echo "no_such_keyword 1" >>"$CONFF"
	local n
	n=$(wc -l <"$CONFF")
	run init restart
	assert_failure 1
	assert_output --partial "$CONFF:$n: unknown keyword 'no_such_keyword'"
	[[ $(master_pid) == "$PID" ]]
	alive "$PID"
	serving
	run grep -q 'stopping' "$ELOG"
	assert_failure 1

	run init configtest
	assert_failure 1
	assert_output --partial "$CONFF:$n: unknown keyword 'no_such_keyword'"
}

@test "init: restart with a valid configuration starts a new master that uses it" {
	need_init
	init_start
	write_conf "workers 3"
	sed -i '/^workers 2$/d' "$CONFF"
	run init restart
	assert_success
	gone "$PID" || wait_until 5 gone "$PID"
	local new
	new=$(master_pid)
	MASTERS+=("$new")
	[[ $new != "$PID" ]]
	alive "$new"
	wait_until 10 has_workers "$new" 3
	serving
}

# shellcheck disable=SC2153 # BPORT: set by busy_port (helpers.bash)
@test "init: reload waits for the master's verdict, and reports a reload it refused with the reason" {
	need_init
	init_start
	run init reload
	assert_success
	# Reported once the new generation serves.
	grep -q 'reloaded: generation 2' "$ELOG"
	grep -qx "2 $PID reload ok" "$PIDF.status"
	# Valid for -t, but the master cannot bind it: it keeps serving.
	busy_port
	echo "listen 127.0.0.1:$BPORT" >>"$CONFF"
	local n
	n=$(wc -l <"$CONFF")
	run init reload
	assert_failure 1
	assert_line --index 0 --regexp '^Reloading preforkd HTTP server: preforkd.* failed!'
	assert_line --index 1 "preforkd: reload failed: $CONFF:$n: listen 127.0.0.1:$BPORT: Address already in use"
	[[ $(master_pid) == "$PID" ]]
	serving
}

# shellcheck disable=SC2153 # BPORT: set by busy_port (helpers.bash)
@test "init: restart with a configuration that cannot start says why on its own line and brings the previous one back" {
	need_init
	init_start
	local old_port=$PORT
	busy_port
	sed -i "s|^listen .*|listen 127.0.0.1:$BPORT|" "$CONFF"
	local n
	n=$(grep -n '^listen' "$CONFF" | cut -d: -f1)
	run init restart
	assert_failure 1
	assert_line --index 0 --regexp '^Restarting preforkd HTTP server: preforkd.* failed!'
	assert_line --index 1 "$CONFF:$n: listen 127.0.0.1:$BPORT: Address already in use"
	refute_output --partial 'in use failed!'
	assert_line --index 2 --regexp '^Starting preforkd HTTP server with the previous configuration: preforkd.*\.'
	assert_output --partial "not restarted with $CONFF; serving with the previous configuration ($PIDF.conf)"
	# Up again, as it was.
	local new
	new=$(master_pid)
	MASTERS+=("$new")
	[[ $new != "$PID" ]]
	PORT=$old_port
	serving
	# That master reads the saved copy on SIGHUP: reload says so.
	run init reload
	assert_failure 1
	assert_output --partial "runs the previous configuration ($PIDF.conf) since a restart failed; restart to use $CONFF"
	# Fixed, a restart takes the configuration file again.
	sed -i "s|^listen .*|listen 127.0.0.1:$PORT|" "$CONFF"
	echo 'workers 3' >>"$CONFF"
	sed -i '/^workers 2$/d' "$CONFF"
	run init restart
	assert_success
	MASTERS+=("$(master_pid)")
	wait_until 10 has_workers "$(master_pid)" 3
	[[ ! -e $PIDF.fallback ]]
	serving
}

@test "init: upgrade waits until the new master serves and the old one is gone" {
	need_init
	init_start
	run init upgrade
	assert_success
	local new
	new=$(master_pid)
	MASTERS+=("$new")
	[[ $new != "$PID" ]]
	assert_output --regexp "^Upgrading preforkd HTTP server: preforkd.*new master $new"
	gone "$PID" || dead "$PID"
	[[ ! -e $PIDF.oldbin ]]
	alive "$new"
	serving
}

@test "init: an upgrade the old master rolls back is reported, and the old master serves on" {
	need_init
	# A copy of the binary, which the master will exec on SIGUSR2.
	cp "$PREFORKD" "$T/preforkd"
	PREFORKD=$T/preforkd
	init_start
	# A new build that passes -t but cannot start.
	rm -f "$T/preforkd"
	printf '#!/bin/sh\ncase " $* " in *" -t "*) echo "configuration OK"; exit 0;; esac\necho "broken build" >&2\nexit 3\n' >"$T/preforkd"
	chmod +x "$T/preforkd"
	run init upgrade
	assert_failure 1
	assert_line --index 0 --regexp '^Upgrading preforkd HTTP server: preforkd.* failed!'
	assert_line --index 1 --regexp "^preforkd: upgrade failed: new master [0-9]+ exited with status 3; pid $PID still serving\$"
	[[ $(master_pid) == "$PID" ]]
	[[ ! -e $PIDF.oldbin ]]
	serving
}

@test "init: rotate makes the master reopen its logs; reload, upgrade and rotate need a running server" {
	need_init
	init_start
	run init rotate
	assert_success
	wait_until 5 grep -q 'log files reopened' "$ELOG"
	run init stop
	assert_success
	local a
	for a in reload upgrade rotate; do
		run init "$a"
		assert_failure 7
		assert_output --partial 'not running'
	done
}

@test "init: a start whose workers cannot drop privileges fails, the reason on a line of its own" {
	need_init
	[[ $(id -u) -eq 0 ]] || skip "needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	setpriv --bounding-set=-setuid true 2>/dev/null ||
	    skip "setpriv cannot change the bounding set here"
	make_docroot
	chmod -R a+rX "$DOCROOT"
	PORT=$(free_port)
	write_conf 'user nobody'
	# As under a CapabilityBoundingSet without CAP_SETUID and CAP_SETGID.
	run setpriv --bounding-set=-setuid,-setgid env DAEMON="$PREFORKD" \
	    CONF="$CONFF" PIDFILE="$PIDF" LOGDIR= DEFAULTS_FILE= sh "$INIT" start
	assert_failure 1
	assert_line --index 0 --regexp '^Starting preforkd HTTP server: preforkd.* failed!'
	assert_line --index 1 'preforkd: workers cannot start: switching to user nobody: Operation not permitted'
	[[ ! -e $PIDF ]]
	port_refuses "$PORT"
}

@test "init: stop waits for the master, removes the pidfile and frees the port" {
	need_init
	init_start
	local ws
	ws=$(ps -o pid= --ppid "$PID" | tr -d ' ')
	run init stop
	assert_success
	# Gone when stop returns, workers too: nothing left to wait for.
	dead "$PID"
	for w in $ws; do dead "$w"; done
	[[ ! -e $PIDF ]]
	port_refuses "$PORT"
	grep -q 'stopping gracefully' "$ELOG"
	grep -q 'stopped' "$ELOG"

	run init status
	assert_failure 3
	assert_output --partial 'not running'

	# LSB: stopping a stopped service succeeds.
	run init stop
	assert_success
	assert_output --partial 'not running'

	# And it starts again.
	run init start
	assert_success
	MASTERS+=("$(master_pid)")
	serving
}

@test "init: status 1 for a stale pidfile; stop leaves an unrelated process alone" {
	need_init
	make_docroot
	PORT=$(free_port)
	write_conf
	# A pid that is not a preforkd: neither status nor stop may take it
	# for ours.
	# (Not our child, so that killing it in teardown is not reported.)
	DECOY=$(sh -c 'sleep 60 >/dev/null 2>&1 & echo $!')
	echo "$DECOY" >"$PIDF"
	run init status
	assert_failure 1
	run init stop
	assert_success
	alive "$DECOY"
	# start is not fooled either (the pidfile is not locked).
	run init start
	assert_success
	PID=$(master_pid)
	MASTERS+=("$PID")
	[[ $PID != "$DECOY" ]]
	serving
}

@test "init: works without /lib/lsb/init-functions" {
	need_init
	INIT_FUNCTIONS=
	init_start
	assert_output --partial 'Starting preforkd HTTP server: preforkd.'
	run init status
	assert_success
	run init stop
	assert_success
	assert_output 'Stopping preforkd HTTP server: preforkd.'
	dead "$PID"
	run init status
	assert_failure 3
}

@test "init: a start that fails prints why and exits 1" {
	need_init
	make_docroot
	PORT=$(free_port)
	write_conf
	sed -i "s|^error_log .*|error_log $T/nodir/error.log|" "$CONFF"
	run init start
	assert_failure 1
	assert_output --partial "error_log $T/nodir/error.log: No such file or directory"
	[[ ! -e $PIDF ]]
	port_refuses "$PORT"
}

@test "init: an unknown action prints the usage and exits 2" {
	need_init
	run init frobnicate
	assert_failure 2
	assert_output --partial 'usage:'
	run init
	assert_failure 2
}

@test "init: the generated script names the install paths and is shellcheck-clean" {
	need_init
	run grep -n '@[a-z]*@' "$INIT"
	assert_failure 1
	grep -q '^### BEGIN INIT INFO' "$INIT"
	grep -q '^### END INIT INFO' "$INIT"
	sh -n "$INIT"
	command -v shellcheck >/dev/null || skip "no shellcheck"
	run shellcheck -s sh "$TOP_SRCDIR/etc/init.d/preforkd.in"
	assert_success
}

# --- the sample configuration ------------------------------------------------

# check_sample FILE: preforkd -t with what does not exist here overridden
# (flags win over the file).
check_sample() {
	run "$PREFORKD" -t -c "$1" -r "$BATS_TEST_TMPDIR" -u "$(id -un)" \
	    -o group="$(id -gn)" -p "$BATS_TEST_TMPDIR/preforkd.pid" \
	    -o error_log="$BATS_TEST_TMPDIR/error.log" \
	    -o access_log="$BATS_TEST_TMPDIR/access.log"
}

@test "sample: etc/preforkd.conf parses with -t" {
	check_sample "$SAMPLE"
	assert_success
	assert_output 'configuration OK'
	# The settings a sysadmin expects to find set.
	grep -qx 'listen 0.0.0.0:80' "$SAMPLE"
	grep -qx 'root /var/www/html' "$SAMPLE"
	grep -qx 'user www-data' "$SAMPLE"
	grep -qx 'group www-data' "$SAMPLE"
	grep -qx 'pidfile /run/preforkd/preforkd.pid' "$SAMPLE"
	grep -qx 'error_log /var/log/preforkd/error.log' "$SAMPLE"
	grep -qx 'access_log /var/log/preforkd/access.log' "$SAMPLE"
}

@test "sample: every keyword is there, and the commented defaults parse too" {
	local cfgc=$TOP_SRCDIR/common/cfg.c k missing=()
	[[ -f $cfgc ]] || skip "no common/cfg.c"
	# The keys[] table: { "name", T_...
	local keys
	keys=$(sed -n 's/^[[:space:]]*{ "\([a-z_]*\)",[[:space:]]*T_.*/\1/p' "$cfgc")
	[[ $(wc -w <<<"$keys") -ge 20 ]]
	for k in listen $keys; do
		grep -Eq "^#?$k " "$SAMPLE" || missing+=("$k")
	done
	[[ ${#missing[@]} -eq 0 ]] || { echo "missing: ${missing[*]}"; false; }
	# Uncomment every "#keyword value" line: still valid, no keyword twice.
	sed 's/^#\([a-z_][a-z_]* \)/\1/' "$SAMPLE" >"$BATS_TEST_TMPDIR/all.conf"
	check_sample "$BATS_TEST_TMPDIR/all.conf"
	assert_success
	assert_output 'configuration OK'
}

# --- systemd unit, logrotate -------------------------------------------------

@test "systemd: the unit is generated and systemd-analyze verify accepts it" {
	local unit=$BUILDDIR/etc/preforkd.service
	[[ -f $unit ]] || skip "$unit not generated (run make)"
	run grep -n '@[a-z]*@' "$unit"
	assert_failure 1
	# sd_notify, in the foreground; notify-reload where systemd has it.
	grep -Eqx 'Type=notify(-reload)?' "$unit"
	run grep -q '^PIDFile=' "$unit"
	assert_failure
	grep -q '^ExecStart=.*/preforkd -f -c .*/preforkd.conf -p /run/preforkd/preforkd.pid$' "$unit"
	grep -q '^ExecStartPre=.*/preforkd -t -c ' "$unit"
	if grep -qx 'Type=notify' "$unit"; then
		# shellcheck disable=SC2016 # $MAINPID as the unit says it
		grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit"
	else
		run grep -q '^ExecReload=' "$unit"
		assert_failure
	fi
	# The pidfile's directory, and the hardening.
	grep -qx 'RuntimeDirectory=preforkd' "$unit"
	grep -qx 'NoNewPrivileges=yes' "$unit"
	grep -qx 'ProtectSystem=strict' "$unit"
	grep -qx 'ReadWritePaths=-/var/log/preforkd' "$unit"
	grep -qx 'ProtectHome=yes' "$unit"
	grep -qx 'PrivateTmp=yes' "$unit"
	grep -qx 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' "$unit"
	grep -qx 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_KILL' "$unit"
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	# Point the commands at files that exist here: verify checks them.
	local sbindir sysconfdir
	sbindir=$(sed -n 's|^ExecStart=\(.*\)/preforkd -f -c .*|\1|p' "$unit")
	sysconfdir=$(sed -n 's|^ExecStart=.* -c \(.*\)/preforkd.conf .*|\1|p' "$unit")
	sed -e "s|$sbindir/preforkd|$PREFORKD|g" \
	    -e "s|$sysconfdir/preforkd.conf|$SAMPLE|g" "$unit" \
	    >"$BATS_TEST_TMPDIR/preforkd.service"
	run systemd-analyze verify --man=no "$BATS_TEST_TMPDIR/preforkd.service"
	assert_success
}

@test "logrotate: the snippet is valid and signals the pidfile's process" {
	local lr=$TOP_SRCDIR/etc/logrotate.d/preforkd
	# shellcheck disable=SC2016 # the snippet's own words
	grep -q 'kill -USR1 "$(cat /run/preforkd/preforkd.pid)"' "$lr"
	command -v logrotate >/dev/null || skip "no logrotate"
	# Debug mode (-d) changes nothing; a private state file.
	run logrotate -d -s "$BATS_TEST_TMPDIR/logrotate.state" "$lr"
	assert_success
	refute_output --partial 'error:'
}

@test "logrotate: a forced rotation makes the running daemon write to new files" {
	need_init
	command -v logrotate >/dev/null || skip "no logrotate"
	[[ $(id -u) -eq 0 ]] || skip "create 0640 root adm needs root"
	getent group adm >/dev/null || skip "no group adm"
	mkdir -p "$T/log"
	chmod 0755 "$T/log"
	ELOG=$T/log/error.log
	ALOG=$T/log/access.log
	init_start
	wait_until 5 test -s "$ALOG"
	# The snippet with this test's log directory and pidfile.
	sed -e "s|/var/log/preforkd|$T/log|g" \
	    -e "s|/run/preforkd/preforkd.pid|$PIDF|g" \
	    "$TOP_SRCDIR/etc/logrotate.d/preforkd" >"$T/logrotate.conf"
	chmod 0644 "$T/logrotate.conf"
	run logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf"
	assert_success
	[[ -s $T/log/error.log.1 && -s $T/log/access.log.1 ]]
	# SIGUSR1 from postrotate: the master reopens, the workers get the
	# new files.
	wait_until 5 grep -q 'log files reopened' "$ELOG"
	[[ $(stat -c '%a %U %G' "$ALOG") == '640 root adm' ]]
	curl -s -o /dev/null "http://127.0.0.1:$PORT/style.css"
	wait_until 5 grep -q 'GET /style.css' "$ALOG"
	run grep -q 'GET /style.css' "$T/log/access.log.1"
	assert_failure 1
	[[ $(master_pid) == "$PID" ]]
}

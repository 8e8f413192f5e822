#!/usr/bin/env bats
# A rolling restart under load (issue 14, "Proof"): three preforkd
# instances on 127.0.0.1 behind haproxy, which speaks PROXY protocol v2 to
# them and checks health_path; wrk sends requests through haproxy for the
# whole test while each instance in turn is stopped and started again
# (with shutdown_delay), then upgraded (SIGUSR2), then reloaded (SIGHUP).
# Required: 0 socket errors and 0 non-2xx in wrk, the client's address in
# every access-log line (127.0.0.1, carried by PROXY; haproxy itself
# connects from 127.0.0.2), every server UP in haproxy's stats at the end.
# The control run is the same test without shutdown_delay: it must show
# the errors that the delay prevents, and says how many.
#
# haproxy is configured for a strict count: "retries 0" and no "option
# redispatch", so a request that haproxy sends to an instance no longer
# taking connections is an error the client sees (503), not hidden by a
# retry. The default (retries 3, redispatch off) would try the same
# server again after a pause of up to a second, long enough for a quick
# restart to be back: a short outage would show as latency, not as an
# error, and the control run would prove little.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
bats_require_minimum_version 1.5.0

NINST=3
# How long a stopped instance keeps accepting while /healthz says 503:
# five of haproxy's check intervals (200 ms).
DELAY=1s

setup() {
	command -v haproxy >/dev/null ||
	    skip "haproxy not installed (./quickstart test installs it)"
	command -v wrk >/dev/null || skip "wrk not installed"
	command -v python3 >/dev/null || skip "python3 not installed"
	make_docroot
	# The features this test proves: skip, saying which, until they exist.
	local probe=$BATS_TEST_TMPDIR/probe.conf out
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0 proxy_protocol' \
	    'proxy_trusted 127.0.0.2/32' 'health_path /healthz' \
	    "shutdown_delay $DELAY" > "$probe"
	if ! out=$("$PREFORKD" -t -c "$probe" 2>&1); then
		skip "preforkd lacks proxy_protocol, health_path or shutdown_delay: $out"
	fi
	# A short path: a unix socket's name has at most 107 bytes.
	HA_DIR=$(mktemp -d /tmp/preforkd-rolling.XXXXXX)
}

extra_teardown() {
	[[ -z ${WRK_PID:-} ]] || kill -KILL "$WRK_PID" 2>/dev/null || true
	inst_kill_all
	if [[ -n ${HA_PID:-} ]]; then
		kill -TERM "$HA_PID" 2>/dev/null || true
		wait_until 5 dead "$HA_PID" 2>/dev/null ||
		    kill -KILL "$HA_PID" 2>/dev/null || true
	fi
	[[ -z ${HA_DIR:-} ]] || rm -rf "$HA_DIR"
}

# --- instances --------------------------------------------------------------
# Instance I (1 to NINST) has its own files (inst_file I conf, log: the
# master's stderr with -f, access, pid), and a port chosen once and
# kept across its restarts: IPORT[I]. IPID[I] is its master, ILAUNCH[I]
# the subshell that started it (and waits for it, unless it was upgraded
# away), IMARK[I] the length of its log when the last step began, so
# that what a step awaits is looked for in the lines it caused.

declare -a IPORT IPID ILAUNCH IMARK IPORT_FIXED

inst_file() { echo "$BATS_TEST_TMPDIR/inst$1.$2"; }

# inst_conf I DELAY: the configuration, DELAY for shutdown_delay (0: none).
inst_conf() {
	local i=$1 lines
	lines=("root $DOCROOT"
	    "listen 127.0.0.1:${IPORT[i]} proxy_protocol"
	    'proxy_trusted 127.0.0.2/32'
	    'workers 2'
	    'health_path /healthz'
	    'shutdown_timeout 5s'
	    # Longer than the test: no idle connection of haproxy's is
	    # closed under it except by a stop (the race of an idle close
	    # with a request on its way is not what is measured here).
	    'keepalive_timeout 60s'
	    'keepalive_requests 0'
	    "access_log $(inst_file "$i" access)"
	    "pidfile $(inst_file "$i" pid)")
	[[ $2 == 0 ]] || lines+=("shutdown_delay $2")
	printf '%s\n' "${lines[@]}" > "$(inst_file "$i" conf)"
}

inst_log() { tail -n +$(( IMARK[$1] + 1 )) "$(inst_file "$1" log)"; }
inst_log_has() { inst_log "$1" | grep -q -- "$2"; }
inst_mark() { IMARK[$1]=$(wc -l < "$(inst_file "$1" log)"); }
inst_workers() { pgrep -c -P "${IPID[$1]}" || true; }
inst_workers_are() { [[ $(inst_workers "$1") -eq $2 ]]; }

# inst_start I: start instance I on IPORT[I] (picked the first time, and
# picked again if someone else took it); sets IPID[I] and ILAUNCH[I].
inst_start() {
	local i=$1 log try
	log=$(inst_file "$i" log)
	touch "$log"
	for try in 1 2 3 4 5; do
		[[ -n ${IPORT[i]:-} ]] || IPORT[i]=$(pick_port)
		inst_conf "$i" "${INST_DELAY:-$DELAY}"
		inst_mark "$i"
		# As start_server does: INT and QUIT back to their default,
		# the exit status recorded, bats's fd 3 not held.
		( setsid env --default-signal=INT,QUIT "$PREFORKD" -f \
		    -c "$(inst_file "$i" conf)" >>"$log" 2>&1 3>&-
		  echo $? > "$(inst_file "$i" exit)" ) 3>&- &
		ILAUNCH[i]=$!
		started_or_failed() {
			inst_log_has "$1" 'started with' || ! alive "${ILAUNCH[$1]}"
		}
		wait_until 10 started_or_failed "$i" || return 1
		inst_log_has "$i" 'started with' && break
		wait "${ILAUNCH[i]}" 2>/dev/null || true
		# A port taken between the pick and the bind: another one,
		# only for a first start (a restart keeps its port: haproxy
		# knows it).
		if inst_log_has "$i" 'Address already in use' && (( try < 5 )) &&
		    [[ -z ${IPORT_FIXED[i]:-} ]]; then
			IPORT[i]=
			continue
		fi
		echo "instance $i did not start:" >&2
		inst_log "$i" >&2
		return 1
	done
	IPORT_FIXED[i]=1
	IPID[i]=$(inst_log "$i" | sed -n 's/.*master\[\([0-9]*\)\]: started with.*/\1/p' | tail -n 1)
	[[ -n ${IPID[i]} ]]
	wait_until 10 inst_workers_are "$i" 2
}

# inst_stop I: SIGTERM; wait until the master has exited 0 (after its
# delay and the graceful stop).
inst_stop() {
	inst_mark "$1"
	kill -TERM "${IPID[$1]}"
	inst_wait_exit "$1"
}

# shellcheck disable=SC2317 # called through wait_until
exit_recorded() { [[ -s $(inst_file "$1" exit) ]]; }

inst_wait_exit() {
	local i=$1 st
	wait_until 15 exit_recorded "$i"
	st=$(cat "$(inst_file "$i" exit)")
	rm -f "$(inst_file "$i" exit)"
	wait "${ILAUNCH[i]}" 2>/dev/null || true
	[[ $st == 0 ]] || { echo "instance $i exited $st" >&2; inst_log "$i" >&2; return 1; }
	IPID[i]=
}

# inst_upgrade I: SIGUSR2; wait until the new master serves and the old
# one is gone; IPID[I] becomes the new master (from the pidfile).
inst_upgrade() {
	local i=$1 old=${IPID[$1]} new
	inst_mark "$i"
	kill -USR2 "$old"
	wait_until 10 inst_log_has "$i" 'upgrade: new master [0-9]* is serving' ||
	    { inst_log "$i" >&2; return 1; }
	wait_until 15 gone "$old"
	new=$(cat "$(inst_file "$i" pid)")
	[[ -n $new && $new != "$old" ]]
	alive "$new"
	IPID[i]=$new
	wait_until 10 inst_workers_are "$i" 2
}

# inst_reload I: SIGHUP; wait until the new generation serves and the
# old one is gone.
inst_reload() {
	local i=$1 old
	old=$(ps -o pid= --ppid "${IPID[i]}" | tr -d ' ')
	inst_mark "$i"
	kill -HUP "${IPID[i]}"
	wait_until 10 inst_log_has "$i" 'reloaded: generation' ||
	    { inst_log "$i" >&2; return 1; }
	local p
	for p in $old; do wait_until 15 gone "$p"; done
	wait_until 10 inst_workers_are "$i" 2
}

# inst_kill_all: teardown: the masters of every instance (ours, and the
# ones their pidfiles name after an upgrade) and their workers, gone by
# any means; all at once, since each takes its shutdown_delay.
inst_kill_all() {
	local i m masters=() kids=()
	for (( i = 1; i <= NINST; i++ )); do
		for m in "${IPID[i]:-}" "$(cat "$(inst_file "$i" pid)" 2>/dev/null)" \
		    "$(cat "$(inst_file "$i" pid).oldbin" 2>/dev/null)"; do
			# Each once: a second TERM would be a fast stop.
			[[ -n $m && " ${masters[*]} " != *" $m "* ]] || continue
			alive "$m" || continue
			masters+=("$m")
			mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$m")
		done
	done
	if (( ${#masters[@]} )); then
		kill -TERM "${masters[@]}" 2>/dev/null || true
		# shellcheck disable=SC2317 # called through wait_until
		all_dead() { local p; for p; do alive "$p" && return 1; done; return 0; }
		wait_until 10 all_dead "${masters[@]}" 2>/dev/null ||
		    kill -KILL "${masters[@]}" "${kids[@]}" 2>/dev/null || true
	fi
	for (( i = 1; i <= NINST; i++ )); do
		[[ -z ${ILAUNCH[i]:-} ]] || wait "${ILAUNCH[i]}" 2>/dev/null || true
	done
}

# --- haproxy ----------------------------------------------------------------

# ha_config PORT: haproxy.cfg with a frontend on 127.0.0.1:PORT (the
# essentials are in etc/examples/haproxy.cfg and the README).
ha_config() {
	local i
	cat <<EOF
global
    stats socket $HA_DIR/stats.sock mode 600 level admin
    log stderr format raw local0

defaults
    mode http
    log global
    option httplog
    # Only what went wrong is logged (it is shown when a test fails).
    option dontlog-normal
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
    # A request sent to an instance that does not take it fails visibly:
    # no second try, and never on another server.
    retries 0
    no option redispatch

frontend www
    bind 127.0.0.1:$1
    default_backend preforkd

backend preforkd
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    # PROXY v2 to the instances (health checks get its LOCAL command),
    # from 127.0.0.2: what the instances log is the client's address,
    # 127.0.0.1, never haproxy's.
    default-server send-proxy-v2 source 127.0.0.2 check inter 200ms fall 1 rise 1
EOF
	for (( i = 1; i <= NINST; i++ )); do
		echo "    server s$i 127.0.0.1:${IPORT[i]}"
	done
}

# ha_start: haproxy in the foreground (-db) on a free port: HA_PORT,
# HA_PID. haproxy cannot bind port 0 and say which it got, so a port is
# picked, and picked again if it was taken in between.
ha_start() {
	local try
	HA_LOG=$BATS_TEST_TMPDIR/haproxy.log
	for try in 1 2 3 4 5; do
		HA_PORT=$(pick_port)
		ha_config "$HA_PORT" > "$HA_DIR/haproxy.cfg"
		: > "$HA_LOG"
		haproxy -db -f "$HA_DIR/haproxy.cfg" >>"$HA_LOG" 2>&1 3>&- &
		HA_PID=$!
		ha_up_or_dead() { ! alive "$HA_PID" || ha_cmd 'show info' >/dev/null 2>&1; }
		wait_until 10 ha_up_or_dead
		alive "$HA_PID" && break
		wait "$HA_PID" 2>/dev/null || true
		HA_PID=
		grep -q 'cannot bind' "$HA_LOG" && (( try < 5 )) && continue
		cat "$HA_LOG" >&2
		return 1
	done
}

# ha_cmd CMD: CMD on haproxy's stats socket; prints the answer.
ha_cmd() {
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
sys.stdout.write(out.decode())
' "$HA_DIR/stats.sock" "$1"
}

# ha_field PROXY SERVER FIELD: one field of "show stat" (CSV, named by its
# header line), e.g. ha_field preforkd s1 status, ha_field www FRONTEND
# hrsp_5xx.
ha_field() {
	ha_cmd 'show stat' | awk -F, -v px="$1" -v sv="$2" -v f="$3" '
		NR == 1 { sub(/^# */, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
		$1 == px && $2 == sv { print $col[f] }'
}

ha_server_is() { [[ $(ha_field preforkd "s$1" status) == "$2"* ]]; }
all_up() {
	local i
	for (( i = 1; i <= NINST; i++ )); do ha_server_is "$i" UP || return 1; done
}

# ha_errors: what haproxy counted as failed so far: the frontend's 5xx
# (its own 503s when an instance refused, 502s for a broken response)
# plus requests it could not even read (ereq).
ha_errors() {
	echo $(( $(ha_field www FRONTEND hrsp_5xx) + $(ha_field www FRONTEND ereq) ))
}

# --- load ---------------------------------------------------------------------

# wrk_start: wrk through haproxy for at most WRK_MAX seconds; the test
# stops it with SIGINT (wrk prints its summary then) once the steps are
# done, and checks that it was still running then.
WRK_MAX=60
wrk_start() {
	WRK_OUT=$BATS_TEST_TMPDIR/wrk.out
	( exec env --default-signal=INT wrk -t2 -c20 -d"$(( WRK_MAX * ${TIME_FACTOR:-1} ))s" \
	    "http://127.0.0.1:$HA_PORT/hello.txt" > "$WRK_OUT" 2>&1 3>&- ) 3>&- &
	WRK_PID=$!
}

wrk_stop() {
	alive "$WRK_PID" || { echo "wrk ended before the steps did" >&2; cat "$WRK_OUT" >&2; return 1; }
	kill -INT "$WRK_PID"
	wait "$WRK_PID" || true
	WRK_PID=
	grep -qE '[0-9]+ requests in' "$WRK_OUT" || { cat "$WRK_OUT" >&2; return 1; }
}

# wrk_count WHAT: socket errors (connect + read + write + timeout) or
# non-2xx responses (wrk counts statuses above 399) from its summary;
# wrk prints neither line when there were none.
wrk_count() {
	case $1 in
	socket) sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$WRK_OUT" |
	    awk '{ n += $1 + $2 + $3 + $4 } END { print n + 0 }' ;;
	non2xx) sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WRK_OUT" |
	    awk '{ n += $1 } END { print n + 0 }' ;;
	requests) sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WRK_OUT" ;;
	esac
}

# --- the steps ----------------------------------------------------------------

# now_ms: the time in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# phase_done NAME: one entry of PHASE_ERRORS: haproxy's errors during the
# phase and how long it took (from "before" and "t0", set by the caller).
phase_done() {
	PHASE_ERRORS+=("$1 $(( $(ha_errors) - before )) ($(( $(now_ms) - t0 )) ms)")
}

# rolling: start the instances and haproxy, run wrk, and do the three
# rolling rounds; PHASE_ERRORS gets haproxy's error count for each.
rolling() {
	local i before t0
	for (( i = 1; i <= NINST; i++ )); do inst_start "$i"; done
	ha_start
	wait_until 10 all_up
	wrk_start
	sleep 1
	PHASE_ERRORS=()

	# 1. Stop and start each instance in turn, on its own port.
	before=$(ha_errors) t0=$(now_ms)
	for (( i = 1; i <= NINST; i++ )); do
		inst_stop_checked "$i"
		inst_start "$i"
		wait_until 10 ha_server_is "$i" UP
	done
	phase_done restarts

	# 2. A binary upgrade of each in turn.
	before=$(ha_errors) t0=$(now_ms)
	for (( i = 1; i <= NINST; i++ )); do
		inst_upgrade "$i"
		wait_until 10 all_up
	done
	phase_done upgrades

	# 3. A reload of each in turn.
	before=$(ha_errors) t0=$(now_ms)
	for (( i = 1; i <= NINST; i++ )); do
		inst_reload "$i"
		wait_until 10 all_up
	done
	phase_done reloads

	sleep 0.5
	wrk_stop
}

# inst_stop_checked I: inst_stop; with a shutdown_delay, haproxy must also
# see the instance go DOWN (its /healthz says 503) while its master still
# runs, that is while it still accepts.
inst_stop_checked() {
	local i=$1
	if [[ ${INST_DELAY:-$DELAY} == 0 ]]; then
		inst_stop "$i"
		return
	fi
	inst_mark "$i"
	kill -TERM "${IPID[i]}"
	wait_until 5 ha_server_is "$i" DOWN
	alive "${IPID[i]}" ||
	    { echo "instance $i: master gone before haproxy saw it DOWN" >&2; return 1; }
	inst_wait_exit "$i"
}

# show_failure: what haproxy and the instances said, for a failed test.
show_failure() {
	echo "--- wrk" >&2; cat "$WRK_OUT" >&2
	echo "--- haproxy" >&2; cat "$HA_LOG" >&2
	local i
	for (( i = 1; i <= NINST; i++ )); do
		echo "--- instance $i" >&2; tail -n 20 "$(inst_file "$i" log)" >&2
	done
}

@test "a rolling restart, upgrade and reload behind haproxy lose no request" {
	rolling
	local sock non2xx req
	sock=$(wrk_count socket)
	non2xx=$(wrk_count non2xx)
	req=$(wrk_count requests)
	echo "# wrk: $req requests, $sock socket errors, $non2xx non-2xx; haproxy errors: ${PHASE_ERRORS[*]}" >&3
	(( sock == 0 && non2xx == 0 )) || { show_failure; false; }
	# Every line of every access log names the client, never haproxy
	# (no "run" in this loop: bats's run would reset its counter).
	local n log nlines=0
	for (( n = 1; n <= NINST; n++ )); do
		log=$(inst_file "$n" access)
		[[ -s $log ]] || { echo "instance $n logged no request" >&2; false; }
		if grep -m 5 -v '^127\.0\.0\.1 ' "$log" >&2; then
			echo "instance $n logged another address than the client's" >&2
			false
		fi
		nlines=$(( nlines + $(wc -l < "$log") ))
	done
	echo "# access logs: $nlines lines, every one from 127.0.0.1" >&3
	all_up
}

@test "control: the same without shutdown_delay loses requests" {
	INST_DELAY=0 rolling
	local sock non2xx req
	sock=$(wrk_count socket)
	non2xx=$(wrk_count non2xx)
	req=$(wrk_count requests)
	echo "# control: wrk: $req requests, $sock socket errors, $non2xx non-2xx; haproxy errors: ${PHASE_ERRORS[*]}" >&3
	if (( sock + non2xx == 0 )); then
		skip "the control run happened to lose no request this time ($req requests)"
	fi
	all_up
}

# --- the examples the README points to ---------------------------------------

@test "etc/examples/haproxy.cfg is what haproxy accepts" {
	run haproxy -c -f "$TOP_SRCDIR/etc/examples/haproxy.cfg"
	assert_success
	# The test's own configuration, the same essentials.
	IPORT=(0 8081 8082 8083)
	ha_config 8080 > "$HA_DIR/test.cfg"
	run haproxy -c -f "$HA_DIR/test.cfg"
	assert_success
	local line
	for line in 'send-proxy-v2 source 127.0.0.2 check inter 200ms fall 1 rise 1' \
	    'http-check send meth GET uri /healthz' 'http-check expect status 200' \
	    'retries 0' 'no option redispatch'; do
		grep -qF -- "$line" "$TOP_SRCDIR/etc/examples/haproxy.cfg"
		grep -qF -- "$line" "$HA_DIR/test.cfg"
	done
}

# seconds TIME: a preforkd time (ms, s, m, h; bare: seconds) in seconds.
seconds() {
	case $1 in
	*ms) echo $(( ${1%ms} / 1000 )) ;;
	*s) echo "${1%s}" ;;
	*m) echo $(( ${1%m} * 60 )) ;;
	*h) echo $(( ${1%h} * 3600 )) ;;
	*) echo "$1" ;;
	esac
}

@test "etc/examples/kubernetes.yaml: its preforkd.conf is valid, the grace period covers delay and timeout" {
	local yaml=$TOP_SRCDIR/etc/examples/kubernetes.yaml conf=$BATS_TEST_TMPDIR/k8s.conf
	# The ConfigMap's block, unindented; the site where the test has one.
	awk '/^  preforkd.conf: \|$/ { on = 1; next }
	    on && /^    / { sub(/^    /, ""); print; next }
	    on { exit }' "$yaml" | sed "s|^root .*|root $DOCROOT|" > "$conf"
	grep -q '^health_path /healthz$' "$conf"
	run "$PREFORKD" -t -c "$conf"
	assert_success
	local delay timeout grace
	delay=$(seconds "$(sed -n 's/^shutdown_delay //p' "$conf")")
	timeout=$(seconds "$(sed -n 's/^shutdown_timeout //p' "$conf")")
	grace=$(sed -n 's/^ *terminationGracePeriodSeconds: *//p' "$yaml")
	(( delay > 0 && timeout > 0 && grace > delay + timeout ))
	# The readiness probe asks health_path; no preStop hook (but in
	# the comments that say why).
	grep -A2 'readinessProbe:' "$yaml" | grep -q 'path: /healthz'
	run ! grep -qE '^[^#]*preStop:' "$yaml"
}

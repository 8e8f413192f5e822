# Shared helpers for the bats suites.
#
# start_server starts the real preforkd in the foreground on 127.0.0.1 with
# an ephemeral port (asking for port 0 means no race for a "free" port),
# in its own session so a test can signal its process group like Ctrl-C.
# Everything started is stopped by pid in teardown, never by name.

bats_load_library bats-support 2>/dev/null || load /usr/lib/bats/bats-support/load
bats_load_library bats-assert 2>/dev/null || load /usr/lib/bats/bats-assert/load

PREFORKD=${PREFORKD:-${BATS_TEST_DIRNAME}/../preforkd}
TOP_SRCDIR=${TOP_SRCDIR:-${BATS_TEST_DIRNAME}/..}

# wait_until SECONDS CMD...: poll CMD every 20 ms until it succeeds or the
# deadline passes (then fail, naming what was awaited).
# Deadlines scale with TIME_FACTOR (sanitizer builds are slower).
wait_until() {
	local limit=$(( $1 * ${TIME_FACTOR:-1} )); shift
	local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
	until "$@"; do
		if (( $(date +%s%N) > deadline )); then
			echo "timed out after ${limit}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

# buffer_proof_file PATH: a sparse file (no disk cost) far larger than
# the loopback socket buffers can grow to, so that a slow download of it
# is still in flight, its response unfinished, for as long as a test runs.
buffer_proof_file() {
	local rmax wmax size=$(( 1 << 30 ))
	read -r _ _ rmax </proc/sys/net/ipv4/tcp_rmem
	read -r _ _ wmax </proc/sys/net/ipv4/tcp_wmem
	(( size > 8 * (rmax + wmax) )) || size=$(( 8 * (rmax + wmax) ))
	truncate -s "$size" "$1"
}

# make_docroot: a small site under $BATS_TEST_TMPDIR/www.
make_docroot() {
	DOCROOT=$BATS_TEST_TMPDIR/www
	mkdir -p "$DOCROOT/dir" "$DOCROOT/noindex"
	printf 'hello\n' > "$DOCROOT/hello.txt"
	printf '<h1>root</h1>\n' > "$DOCROOT/index.html"
	printf '<h1>dir</h1>\n' > "$DOCROOT/dir/index.html"
	printf 'body{}\n' > "$DOCROOT/style.css"
	head -c 1048576 /dev/urandom > "$DOCROOT/big.bin"
	: > "$DOCROOT/empty.txt"
}

log_has() { grep -q -- "$1" "$SERVER_LOG"; }

# start_server [preforkd args...]: sets SERVER_PID (the master), PORT,
# SERVER_LOG.  Defaults: 2 workers, docroot from make_docroot.
start_server() {
	[[ -n ${DOCROOT:-} ]] || make_docroot
	SERVER_LOG=${SERVER_LOG:-$BATS_TEST_TMPDIR/preforkd.log}
	EXIT_FILE=$BATS_TEST_TMPDIR/preforkd.exit
	: > "$SERVER_LOG"
	rm -f "$EXIT_FILE"
	# bash starts background jobs with SIGINT ignored; restore it, as in
	# a terminal.  The subshell records the master's exit status.
	# CONF_ONLY=1: everything from the -c file (flags would override it
	# on every reload too).
	local defaults=(-l "${LISTEN:-127.0.0.1:0}" -r "$DOCROOT" -n "${WORKERS:-2}")
	[[ -z ${CONF_ONLY:-} ]] || defaults=()
	( setsid env --default-signal=INT,QUIT "$PREFORKD" -f \
	    "${defaults[@]}" "$@" \
	    >>"$SERVER_LOG" 2>&1 3>&-; echo $? > "$EXIT_FILE" ) 3>&- &
	LAUNCH_PID=$!
	wait_until 10 log_has 'started with' || { cat "$SERVER_LOG" >&2; return 1; }
	SERVER_PID=$(sed -n 's/.*master\[\([0-9]*\)\]: started with.*/\1/p' "$SERVER_LOG" | tail -n 1)
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SERVER_LOG" | tail -n 1)
	[[ -n $SERVER_PID ]]
	wait_until 10 worker_count_is "${WORKERS:-2}"
}

# server_exit_status: wait for the master to exit and print its status.
server_exit_status() {
	wait_until 15 test -s "$EXIT_FILE" && cat "$EXIT_FILE"
}

# worker_pids: the master's children, one per line.
worker_pids() { ps -o pid= --ppid "$SERVER_PID" | tr -d ' '; }
worker_count() { worker_pids | grep -c . || true; }
worker_count_is() { [[ $(worker_count) -eq $1 ]]; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
# Gone, and not even a zombie.
gone() { ! ps -p "$1" >/dev/null 2>&1; }

# stop_server: graceful stop by pid; fast stop, then SIGKILL of the master
# and every worker it had, if a deadline passes.
stop_server() {
	[[ -n ${SERVER_PID:-} ]] || return 0
	local kids
	kids=$(worker_pids)
	if alive "$SERVER_PID"; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait_until 10 dead "$SERVER_PID" 2>/dev/null || {
			kill -KILL "$SERVER_PID" 2>/dev/null || true
		}
	fi
	for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
	wait "$LAUNCH_PID" 2>/dev/null || true
	SERVER_PID=
}

teardown() {
	stop_server
	if declare -F extra_teardown >/dev/null; then extra_teardown; fi
	unprivileged_done
	busy_port_done
}

# busy_port: BPORT, a port on 127.0.0.1 that another process (BUSY_PID)
# listens on, until busy_port_done (teardown).
busy_port() {
	local f=$BATS_TEST_TMPDIR/busy.port
	rm -f "$f"
	/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(sys.argv[1] + ".tmp", "w").write("%d\n" % s.getsockname()[1])
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1]); time.sleep(600)' \
	    "$f" >/dev/null 2>&1 3>&- &
	BUSY_PID=$!
	disown "$BUSY_PID"	# no job report when teardown kills it
	wait_until 5 test -s "$f"
	# shellcheck disable=SC2034 # read by the suites
	BPORT=$(cat "$f")
}

busy_port_done() {
	[[ -z ${BUSY_PID:-} ]] || kill -KILL "$BUSY_PID" 2>/dev/null || true
	BUSY_PID=
}

# --- tests that need a user without root -------------------------------
# As root they run as nobody; otherwise as ourselves.  $BATS_TEST_TMPDIR
# is no place for what that user runs (bats makes its run directory 0700,
# and the build tree may be under /root), hence a directory of its own.

# unprivileged_setup: UNPRIV_DIR, a directory nobody can read, with a
# copy of $PREFORKD and a document root (www, hello.txt); removed in
# teardown (unprivileged_done).
unprivileged_setup() {
	if [[ $(id -u) -eq 0 ]]; then
		id nobody >/dev/null 2>&1 || skip "no user nobody to run as"
	fi
	UNPRIV_DIR=$(mktemp -d /tmp/preforkd-unpriv.XXXXXX)
	mkdir "$UNPRIV_DIR/www"
	printf 'hello\n' > "$UNPRIV_DIR/www/hello.txt"
	cp "$PREFORKD" "$UNPRIV_DIR/preforkd"
	chmod -R a+rX "$UNPRIV_DIR"
}

unprivileged_done() {
	[[ -z ${UNPRIV_DIR:-} ]] || rm -rf "$UNPRIV_DIR"
	UNPRIV_DIR=
}

# as_unprivileged CMD...: CMD as nobody (no groups, no capabilities left)
# when we are root, else as ourselves.
as_unprivileged() {
	if [[ $(id -u) -ne 0 ]]; then
		"$@"
		return
	fi
	setpriv --reuid "$(id -u nobody)" --regid "$(id -g nobody)" \
	    --clear-groups -- "$@"
}

# http_raw BYTES: send BYTES (printf %b escapes) on a new connection and
# print everything the server sends until it closes (5 s at most).
http_raw() {
	local fd req=$BATS_TEST_TMPDIR/http_raw.req
	# One write: bash's printf would write each line separately.
	printf '%b' "$1" > "$req"
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$req" >&"$fd"
	timeout 5 cat <&"$fd"
	exec {fd}>&-
}

# status_of RESPONSE: the status code of the first response.
status_of() { head -n 1 <<<"$1" | cut -d' ' -f2; }

# accept_queue: how many connections wait in the listener's accept queue
# (ss shows it as the listener's Recv-Q).
accept_queue() { ss -Hltn "( sport = :$PORT )" | awk '{ print $2 }'; }

# port_refuses PORT: nothing accepts on 127.0.0.1:PORT.
port_refuses() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port: a port nobody listens on, for tests that must name a port in
# advance.  It is below the kernel's ephemeral range (32768 and up), so no
# client connection of a test running alongside can be using it as its
# local port when the test binds it.
pick_port() {
	local p _
	for _ in $(seq 1 200); do
		p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
		if port_refuses "$p"; then
			echo "$p"
			return 0
		fi
	done
	echo "pick_port: no free port found" >&2
	return 1
}

# raw_to FILE SECS BYTES: send BYTES (printf %b) on a new connection, in
# one write, and save everything the server sends to FILE until it
# closes.  Fails with 124 if the server still holds the connection open
# after SECS.  (printf alone writes line by line: cat from a file makes
# "pipelined in one write" true.)
raw_to() {
	local out=$1 secs=$2 fd rc=0 req=$BATS_TEST_TMPDIR/req
	printf '%b' "$3" > "$req"
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$req" >&"$fd"
	timeout "$secs" cat <&"$fd" > "$out" || rc=$?
	exec {fd}>&-
	return "$rc"
}

# split_responses FILE: cut a stream of responses into
# $BATS_TEST_TMPDIR/r.N.head (CRs removed) and r.N.body, N from 1, framing
# bodies by Content-Length; sets NRESP.  Responses listed in $NOBODY
# (answers to HEAD) and 204/304 have no body.
split_responses() {
	local f=$1 d=$BATS_TEST_TMPDIR size off=0 n=0 end len st
	size=$(stat -c %s "$f")
	rm -f "$d"/r.*.head "$d"/r.*.body
	while (( off < size )); do
		n=$((n + 1))
		# -z: the head has no NUL, so it is within the first "line".
		end=$(tail -c +$((off + 1)) "$f" | grep -obUaPz -m 1 '\r\n\r\n' |
		    head -n 1 | cut -d: -f1)
		[[ -n $end ]] || { echo "response $n: no end of head" >&2; return 1; }
		tail -c +$((off + 1)) "$f" | head -c $((end + 2)) |
		    tr -d '\r' > "$d/r.$n.head"
		off=$((off + end + 4))
		st=$(head -n 1 "$d/r.$n.head" | cut -d' ' -f2)
		len=$(sed -n 's/^Content-Length: //Ip' "$d/r.$n.head")
		if [[ $st == 204 || $st == 304 || " ${NOBODY:-} " == *" $n "* ]]; then
			len=0
		fi
		tail -c +$((off + 1)) "$f" | head -c "${len:-0}" > "$d/r.$n.body"
		# LENIENT_BODY=1: an answer to a HEAD the caller did not
		# list in NOBODY may rightly stop short.
		[[ -n ${LENIENT_BODY:-} ]] ||
		    (( $(stat -c %s "$d/r.$n.body") == ${len:-0} )) ||
		    { echo "response $n: short body" >&2; return 1; }
		off=$((off + ${len:-0}))
	done
	# shellcheck disable=SC2034 # read by the suites
	NRESP=$n
}

# --- python3 with the websockets module ----------------------------------

# ws_python: export WS_PYTHON, a python3 that can import websockets, or
# fail (leaving WS_PYTHON as it was).  Debian's python3-websockets is for
# /usr/bin/python3; a python3 found first in PATH (pyenv, a venv) may not
# have it.
ws_python() {
	local p
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import websockets' 2>/dev/null; then
			export WS_PYTHON=$p
			return 0
		fi
	done
	return 1
}

# --- a process's memory -------------------------------------------------
# MAX_RSS: the peak RSS noted by rss_watch and rss_sample in this @test,
# in kB (this file is loaded anew for each one); the bound, RSS_BOUND_KB.

RSS_BOUND_KB=$(( 64 * 1024 ))
MAX_RSS=0

# rss_kb PID: the process's resident memory, in kB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# rss_watch PID CMD...: for wait_until: note PID's RSS in MAX_RSS, then
# succeed at once if it reached the bound (no use waiting: the caller
# fails on MAX_RSS), else as CMD does.
rss_watch() {
	local r pid=$1; shift
	r=$(rss_kb "$pid")
	(( r <= MAX_RSS )) || MAX_RSS=$r
	(( r < RSS_BOUND_KB )) || return 0
	"$@"
}

# rss_sample PID: note PID's RSS in MAX_RSS ten times over a second.
rss_sample() {
	local _
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		rss_watch "$1" true
		sleep 0.1
	done
}

# rss_bounded: fail, naming the peak, if MAX_RSS reached the bound.
rss_bounded() {
	(( MAX_RSS < RSS_BOUND_KB )) || fail "worker RSS ${MAX_RSS} kB"
}

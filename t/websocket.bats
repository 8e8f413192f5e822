#!/usr/bin/env bats
# WebSocket sessions bridged to programs (design.md section 10): the
# upgrade, the program's environment, messages both ways, every way a
# session ends, graceful stop and reload, many sessions, back-pressure and
# the status page.  Clients: t/wsclient.py (python3-websockets, or a raw
# socket that misbehaves on request), bash's /dev/tcp and curl for the
# handshakes; the programs are t/ws-*.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
bats_require_minimum_version 1.5.0

# RFC 6455 1.3: the sample key and the accept value it must get.
SAMPLE_KEY=dGhlIHNhbXBsZSBub25jZQ==
SAMPLE_ACCEPT=s3pPLMBiTxaQ9kYGzzhZRbK+xOo=

# WS_PYTHON: a python3 with websockets (ws_python), if there is one.
setup_file() { ws_python || true; }

setup() {
	[[ -n ${WS_PYTHON:-} ]] ||
	    fail "no python3 with the websockets module (package python3-websockets)"
	make_docroot
	# Programs are named by absolute paths.
	TDIR=$(cd "$TOP_SRCDIR/t" && pwd)
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	# Programs append their pids here (each a process group leader).
	PIDS=$BATS_TEST_TMPDIR/prog.pids
	CLIENTS=()
}

# Clients first: a client that answers no Close would hold a stopping
# server until its deadline.  Then whatever program a failed test left
# behind, by the process groups it recorded.
teardown() {
	local p
	for p in "${CLIENTS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	stop_server
	cat "$BATS_TEST_TMPDIR"/*.pids 2>/dev/null | while read -r p _; do
		group_gone "$p" || kill -KILL -- "-$p" 2>/dev/null || true
	done
}

# ws_start LINE...: a configuration file with the document root, the
# listener, WORKERS and LINEs; the server runs on it alone (CONF_ONLY: a
# reload reads the very same file).
ws_start() {
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' \
	    "workers ${WORKERS:-2}" "$@" > "$CONF"
	CONF_ONLY=1 start_server -c "$CONF"
}

url() { echo "ws://127.0.0.1:$PORT$1"; }

# wsc ARGS...: t/wsclient.py in the foreground.
wsc() { "$WS_PYTHON" "$TDIR/wsclient.py" "$@"; }

# wsc_bg NAME ARGS...: t/wsclient.py in the background, its output in
# $BATS_TEST_TMPDIR/NAME.out; its pid in WSC_PID, killed in teardown.
wsc_bg() {
	local name=$1; shift
	"$WS_PYTHON" "$TDIR/wsclient.py" "$@" > "$BATS_TEST_TMPDIR/$name.out" \
	    2> "$BATS_TEST_TMPDIR/$name.err" 3>&- &
	WSC_PID=$!
	CLIENTS+=("$WSC_PID")
}

out_of() { cat "$BATS_TEST_TMPDIR/$1.out"; }
# has_line NAME LINE: the client NAME has printed LINE.
has_line() { grep -qxF -- "$2" "$BATS_TEST_TMPDIR/$1.out"; }
# closed NAME: the client NAME has printed its close line.
closed() { grep -q '^close ' "$BATS_TEST_TMPDIR/$1.out"; }
close_of() { grep '^close ' "$BATS_TEST_TMPDIR/$1.out"; }
lines_of() { grep -c . "$BATS_TEST_TMPDIR/$1.out" || true; }
# The output of a client that ended: it must have ended by itself.
finished() { wait "$1"; }

# pgid_of PID
pgid_of() { ps -o pgid= -p "$1" | tr -d ' '; }
# group_gone PGID: no process is left in that process group.
group_gone() {
	ps -e -o pgid= | awk -v g="$1" '$1 == g { f = 1 } END { exit f }'
}
# progs_gone FILE: every pid in FILE is gone (not even a zombie), and so
# is every process group named by a line's first pid.
progs_gone() {
	local line p
	while read -r -a line; do
		group_gone "${line[0]}" || return 1
		for p in "${line[@]}"; do gone "$p" || return 1; done
	done < "$1"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# before MS T0: less than MS (plus a slack that scales with TIME_FACTOR)
# has passed since T0 (from now_ms).
before() { (( $(now_ms) - $2 < $1 + 200 * ${TIME_FACTOR:-1} )); }

# --- the upgrade, byte by byte --------------------------------------------

# upgrade PATH [HEADER...]: a handshake for PATH on a new connection, the
# RFC 6455 sample key; METHOD, PROTO, KEY, VERSION, UPGRADE, CONNECTION
# and BODY change its parts (an empty one is left out), HEADERs are added.
# The response head (CRs removed) is in $HEAD, then the connection is
# closed.
upgrade() {
	local path=$1 fd line req=$BATS_TEST_TMPDIR/upgrade.req
	shift
	{
		printf '%s %s %s\r\n' "${METHOD:-GET}" "$path" "${PROTO:-HTTP/1.1}"
		printf 'Host: 127.0.0.1:%s\r\n' "$PORT"
		[[ -z ${UPGRADE-websocket} ]] ||
		    printf 'Upgrade: %s\r\n' "${UPGRADE-websocket}"
		[[ -z ${CONNECTION-Upgrade} ]] ||
		    printf 'Connection: %s\r\n' "${CONNECTION-Upgrade}"
		[[ -z ${KEY-$SAMPLE_KEY} ]] ||
		    printf 'Sec-WebSocket-Key: %s\r\n' "${KEY-$SAMPLE_KEY}"
		[[ -z ${VERSION-13} ]] ||
		    printf 'Sec-WebSocket-Version: %s\r\n' "${VERSION-13}"
		(( $# == 0 )) || printf '%s\r\n' "$@"
		printf '\r\n%s' "${BODY:-}"
	} > "$req"
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$req" >&"$fd"
	HEAD=
	while IFS= read -r -t 5 line <&"$fd"; do
		line=${line%$'\r'}
		[[ -n $line ]] || break
		HEAD+=$line$'\n'
	done
	exec {fd}>&-
}

# status_is CODE: the status code of $HEAD.
status_is() {
	local code
	code=$(head -n 1 <<<"$HEAD" | cut -d' ' -f2)
	[[ $code == "$1" ]] || fail "expected $1, got: $HEAD"
}
# header NAME: its value in $HEAD (the name in any case).
header() { sed -n "s/^$1: *//Ip" <<<"$HEAD"; }

@test "upgrade: 101 with the accept of the RFC 6455 sample key; tokens in any case" {
	ws_start "websocket /echo /bin/cat"
	upgrade /echo
	[[ $(head -n 1 <<<"$HEAD") == 'HTTP/1.1 101 Switching Protocols' ]] ||
	    fail "got: $HEAD"
	[[ $(header Sec-WebSocket-Accept) == "$SAMPLE_ACCEPT" ]]
	[[ $(header Upgrade) == websocket ]]
	[[ $(header Connection) == Upgrade ]]
	[[ -z $(header Sec-WebSocket-Protocol) ]]
	# Connection is a token list, Upgrade case-insensitive.
	UPGRADE=WebSocket CONNECTION='keep-alive, UPGRADE' upgrade /echo
	status_is 101
	[[ $(header Sec-WebSocket-Accept) == "$SAMPLE_ACCEPT" ]]
}

@test "upgrade: 426 with Upgrade for a plain GET, 426 with the version for version 8" {
	ws_start "websocket /echo /bin/cat"
	local hdr=$BATS_TEST_TMPDIR/hdr
	run curl -s -o /dev/null -D "$hdr" -w '%{http_code}' \
	    "http://127.0.0.1:$PORT/echo"
	assert_output 426
	tr -d '\r' < "$hdr" | grep -qix 'Upgrade: websocket'
	UPGRADE='' CONNECTION='' upgrade /echo
	status_is 426
	[[ $(header Upgrade) == websocket ]]

	VERSION=8 upgrade /echo
	status_is 426
	[[ $(header Sec-WebSocket-Version) == 13 ]]
}

@test "upgrade: 400 for HTTP/1.0, a bad key, a body, HEAD; POST and PUT get the parser's 405" {
	ws_start "websocket /echo /bin/cat"
	METHOD=HEAD upgrade /echo
	status_is 400
	PROTO=HTTP/1.0 upgrade /echo
	status_is 400
	KEY='' upgrade /echo
	status_is 400
	KEY='not a key' upgrade /echo
	status_is 400
	# base64 of 15 bytes, not 16
	KEY=AAAAAAAAAAAAAAAAAAAA upgrade /echo
	status_is 400
	BODY=hello upgrade /echo 'Content-Length: 5'
	status_is 400
	# Methods the parser refuses on every path: 405, as anywhere else
	# (doc/design.md 10.2).
	METHOD=POST upgrade /echo
	status_is 405
	run curl -s -o /dev/null -w '%{http_code}' -X PUT \
	    -H 'Upgrade: websocket' -H 'Connection: Upgrade' \
	    -H "Sec-WebSocket-Key: $SAMPLE_KEY" -H 'Sec-WebSocket-Version: 13' \
	    "http://127.0.0.1:$PORT/echo"
	assert_output 405
}

@test "Origin: same by default (absent is let in), any, or a list; refused with 403" {
	ws_start "websocket /echo /bin/cat"
	upgrade /echo "Origin: http://127.0.0.1:$PORT"
	status_is 101
	upgrade /echo
	status_is 101
	upgrade /echo 'Origin: http://evil.example'
	status_is 403
	upgrade /echo 'Origin: http://127.0.0.1:1'
	status_is 403
	stop_server

	ws_start "websocket /echo /bin/cat" 'websocket_origin any'
	upgrade /echo 'Origin: http://evil.example'
	status_is 101
	stop_server

	ws_start "websocket /echo /bin/cat" \
	    'websocket_origin http://app.example https://other.example:8443'
	upgrade /echo 'Origin: http://app.example'
	status_is 101
	upgrade /echo 'Origin: https://other.example:8443'
	status_is 101
	upgrade /echo 'Origin: http://evil.example'
	status_is 403
	upgrade /echo "Origin: http://127.0.0.1:$PORT"
	status_is 403
	upgrade /echo
	status_is 101
	# The well-behaved client agrees.
	run wsc "$(url /echo)" --origin http://app.example --send hi --expect 1
	assert_output $'hi\nclose 1000'
	run wsc "$(url /echo)" --origin http://evil.example --timeout 5
	assert_failure 1
	assert_output 'status 403'
}

@test "subprotocol: the first the client lists that websocket_protocol offers, given to the program" {
	ws_start "websocket /env /usr/bin/env" 'websocket_protocol chat superchat'
	run wsc "$(url /env)" --protocol x --protocol superchat --protocol chat \
	    --print-protocol
	assert_success
	assert_line --index 0 'subprotocol superchat'
	assert_line WEBSOCKET_PROTOCOL=superchat
	KEY=$SAMPLE_KEY upgrade /env 'Sec-WebSocket-Protocol: chat, superchat'
	status_is 101
	[[ $(header Sec-WebSocket-Protocol) == chat ]]
	# None in common: none chosen, none given.
	run wsc "$(url /env)" --protocol nope --print-protocol
	assert_success
	assert_line --index 0 'subprotocol -'
	refute_line --regexp '^WEBSOCKET_PROTOCOL='
	upgrade /env 'Sec-WebSocket-Protocol: nope'
	status_is 101
	[[ -z $(header Sec-WebSocket-Protocol) ]]
}

@test "PATH and what is under PATH/ run the program; other paths still serve files" {
	ws_start "websocket /env /usr/bin/env"
	run wsc "$(url /env)"
	assert_line PATH_INFO=
	assert_line SCRIPT_NAME=/env
	assert_line --index -1 'close 1000'
	run wsc "$(url '/env/a/b?x=1&y=2')"
	assert_line PATH_INFO=/a/b
	assert_line SCRIPT_NAME=/env
	assert_line 'QUERY_STRING=x=1&y=2'
	assert_line 'REQUEST_URI=/env/a/b?x=1&y=2'
	run wsc "$(url /env/)"
	assert_line PATH_INFO=/
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/envx"
	assert_output 404
	upgrade /envx
	status_is 404
}

@test "a program that cannot be started: 500, logged; the worker goes on" {
	cp "$TDIR/ws-cat.sh" "$BATS_TEST_TMPDIR/prog.sh"
	ws_start "websocket /gone $BATS_TEST_TMPDIR/prog.sh $PIDS" \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	rm "$BATS_TEST_TMPDIR/prog.sh"
	upgrade /gone
	status_is 500
	wait_until 5 log_has "$BATS_TEST_TMPDIR/prog.sh"
	run wsc "$(url /cat)" --send ok --expect 1
	assert_output $'ok\nclose 1000'
	worker_count_is 2
}

# rejected_at LINE PREFIX: -t refuses $CONF with exit 1 and one line,
# "$CONF:LINE: PREFIX...".
rejected_at() {
	run "$PREFORKD" -t -c "$CONF"
	assert_failure 1
	[[ ${#lines[@]} -eq 1 && $output == "$CONF:$1: $2"* ]] ||
	    fail "expected '$CONF:$1: $2...', got: $output"
}
# bad_conf LINE...: $CONF with the document root, a comment, then LINEs
# (so the first of them is line 3).
bad_conf() { printf '%s\n' "root $DOCROOT" '# websockets' "$@" > "$CONF"; }

@test "-t: a relative, missing or non-executable PROGRAM and bad websocket_* values, with FILE:LINE" {
	printf 'not run\n' > "$BATS_TEST_TMPDIR/plain"
	chmod 644 "$BATS_TEST_TMPDIR/plain"
	bad_conf 'websocket /a /bin/cat' "websocket /b $TDIR/ws-cat.sh x" \
	    'websocket_binary on' 'websocket_origin same' \
	    'websocket_protocol a b' 'websocket_max_message 64k' \
	    'websocket_send_buffer 1m' 'websocket_ping_interval 0' \
	    'websocket_close_timeout 2s' 'program_grace 500ms' \
	    'program_env HOME X=y'
	run "$PREFORKD" -t -c "$CONF"
	assert_success
	assert_output 'configuration OK'

	bad_conf 'websocket /ws bin/cat'
	rejected_at 3 'websocket: '
	assert_output --partial 'bin/cat'
	bad_conf 'websocket /ok /bin/cat' "websocket /ws $BATS_TEST_TMPDIR/plain"
	rejected_at 4 'websocket: '
	assert_output --partial "$BATS_TEST_TMPDIR/plain"
	bad_conf "websocket /ws $BATS_TEST_TMPDIR/missing"
	rejected_at 3 'websocket: '
	bad_conf "websocket /ws $BATS_TEST_TMPDIR"
	rejected_at 3 'websocket: '
	bad_conf 'websocket ws /bin/cat'
	rejected_at 3 'websocket: '
	bad_conf 'websocket /ws'
	rejected_at 3 'websocket: '

	bad_conf 'websocket_nosuch on'
	rejected_at 3 "unknown keyword 'websocket_nosuch'"
	bad_conf 'websocket_binary maybe'
	rejected_at 3 'websocket_binary: '
	bad_conf 'websocket_max_message 100'
	rejected_at 3 'websocket_max_message: '
	bad_conf 'websocket_max_message 2g'
	rejected_at 3 'websocket_max_message: '
	bad_conf 'websocket_ping_interval soon'
	rejected_at 3 'websocket_ping_interval: '
	bad_conf 'websocket_close_timeout 5x'
	rejected_at 3 'websocket_close_timeout: '
	bad_conf 'websocket_origin nope'
	rejected_at 3 'websocket_origin: '
	bad_conf 'program_grace forever'
	rejected_at 3 'program_grace: '
	bad_conf 'program_env 1BAD'
	rejected_at 3 'program_env: '
	# 16 paths at most.
	local i ls=()
	for i in $(seq 1 17); do ls+=("websocket /p$i /bin/cat"); done
	bad_conf "${ls[@]}"
	rejected_at 19 'websocket: '
}

# --- the program ----------------------------------------------------------

@test "the program's environment: CGI variables, HTTP_*, program_env, and nothing else" {
	export WSTEST_FOO=from-preforkd WSTEST_SECRET=hidden
	ws_start "websocket /env /usr/bin/env" \
	    'program_env WSTEST_FOO WSTEST_BAR=baz'
	run wsc "$(url '/env/sub?q=1')" --print-local -H 'X-Custom-Thing: hello there'
	assert_success
	local client
	client=$(sed -n 's/^local //p' <<<"$output")
	assert_line GATEWAY_INTERFACE=CGI/1.1
	assert_line --regexp '^SERVER_SOFTWARE=preforkd'
	assert_line SERVER_PROTOCOL=HTTP/1.1
	assert_line SERVER_NAME=127.0.0.1
	assert_line SERVER_ADDR=127.0.0.1
	assert_line "SERVER_PORT=$PORT"
	assert_line REMOTE_ADDR=127.0.0.1
	assert_line "REMOTE_PORT=${client##*:}"
	assert_line REQUEST_METHOD=GET
	assert_line 'REQUEST_URI=/env/sub?q=1'
	assert_line SCRIPT_NAME=/env
	assert_line PATH_INFO=/sub
	assert_line QUERY_STRING=q=1
	assert_line "HTTP_HOST=127.0.0.1:$PORT"
	assert_line 'HTTP_X_CUSTOM_THING=hello there'
	assert_line HTTP_SEC_WEBSOCKET_VERSION=13
	assert_line PATH=/usr/local/bin:/usr/bin:/bin
	assert_line WSTEST_FOO=from-preforkd
	assert_line WSTEST_BAR=baz
	refute_line --partial WSTEST_SECRET
	refute_line --partial hidden
	assert_line --index -1 'close 1000'
	# Nothing else: every name is one the contract gives.
	local extra
	extra=$(grep -v -e '^local ' -e '^close ' <<<"$output" | cut -d= -f1 |
	    grep -Evx 'GATEWAY_INTERFACE|SERVER_(SOFTWARE|PROTOCOL|NAME|ADDR|PORT)|REMOTE_(ADDR|PORT)|REQUEST_(METHOD|URI)|SCRIPT_NAME|PATH_INFO|QUERY_STRING|HTTP_[A-Z0-9_]+|WEBSOCKET_PROTOCOL|PATH|WSTEST_FOO|WSTEST_BAR' || true)
	[[ -z $extra ]] || fail "unexpected variables: $extra"
	# program_env may set PATH.
	stop_server
	ws_start "websocket /env /usr/bin/env" 'program_env PATH=/opt/x:/bin'
	run wsc "$(url /env)"
	assert_line PATH=/opt/x:/bin
}

@test "the program runs as the workers do: their user, no groups of root" {
	[[ $(id -u) -eq 0 ]] || skip "needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	chmod -R a+rX "$DOCROOT"
	ws_start 'user nobody' "websocket /id /usr/bin/id"
	run wsc "$(url /id)"
	assert_success
	assert_line --index 0 --regexp "^uid=$(id -u nobody)\\(nobody\\) gid=$(id -g nobody)\\("
	refute_line --partial '(root)'
	assert_line --index -1 'close 1000'
}

@test "text mode: lines both ways with /bin/cat; the program's stderr in the error log" {
	ws_start "websocket /cat $TDIR/ws-cat.sh $PIDS"
	run wsc "$(url /cat)" --send hello --send 'two words' --send '' \
	    --send 'ünïcödé ✓' --send '  spaces  ' --expect 5
	assert_success
	assert_output $'hello\ntwo words\n\nünïcödé ✓\n  spaces  \nclose 1000'
	local pid
	pid=$(head -n 1 "$PIDS")
	# The server closed TCP first (RFC 6455 7.1.1): the TIME-WAIT is its.
	[[ -n $(ss -Htan state time-wait "( sport = :$PORT )") ]] ||
	    fail "no TIME-WAIT on the server's side: $(ss -Htan state time-wait)"
	wait_until 5 log_has "program $pid /cat: ws-cat $pid started"
	grep "program $pid /cat: " "$SERVER_LOG" | grep -q '\[warn\]'
	wait_until 5 progs_gone "$PIDS"
}

@test "binary mode: bytes both ways, the concatenation unchanged" {
	ws_start 'websocket_binary on' "websocket /cat /bin/cat"
	local in=$BATS_TEST_TMPDIR/in.bin got=$BATS_TEST_TMPDIR/got.bin
	# Every byte value, newlines and NULs among them.
	{ "$WS_PYTHON" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4)'
	  head -c 300000 /dev/urandom; } > "$in"
	run wsc "$(url /cat)" --send-file "$in" --chunk 7000 --out "$got" \
	    --expect-bytes "$(stat -c %s "$in")"
	assert_success
	assert_output 'close 1000'
	cmp "$in" "$got"
}

@test "websocket_max_message: a longer line is cut on a UTF-8 boundary; a longer client message gets 1009" {
	ws_start 'websocket_max_message 1k' "websocket /long $TDIR/ws-long.sh" \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	run wsc "$(url /long)"
	assert_success
	assert_line --index -1 'close 1000'
	local msgs
	msgs=$(sed '$d' <<<"$output")
	# Every message fits, and the pieces make the lines again.
	[[ $(LC_ALL=C awk 'length > 1024' <<<"$msgs") == '' ]]
	[[ $(head -n 4 <<<"$msgs" | tr -d '\n') == "$(seq -s , 1 1000)" ]]
	[[ $(tail -n +5 <<<"$msgs" | tr -d '\n') == "$("$TDIR/ws-long.sh" | tail -n 1)" ]]
	run wsc "$(url /cat)" --send "$(head -c 2000 /dev/zero | tr '\0' a)" \
	    --hold
	assert_line --index -1 --regexp '^close 1009( |$)'
	wait_until 5 progs_gone "$PIDS"
}

# --- how sessions end -------------------------------------------------------

# lines_then_close N CODE: $output is 1 to N, then a close with CODE.
lines_then_close() {
	[[ $(sed '$d' <<<"$output") == "$(seq 1 "$1")" ]] ||
	    fail "not 1 to $1: $(head -c 300 <<<"$output")"
	[[ $(tail -n 1 <<<"$output") =~ ^close\ $2( |$) ]] ||
	    fail "expected close $2, got: $(tail -n 1 <<<"$output")"
}

@test "the program ends: exit 0 gives every line then 1000; exit 3 and a signal give 1011" {
	ws_start "websocket /ok $TDIR/ws-lines.sh 2000 0" \
	    "websocket /three $TDIR/ws-lines.sh 2000 3" \
	    "websocket /killed $TDIR/ws-lines.sh 2000 kill" \
	    "websocket /orphan $TDIR/ws-lines.sh 2000 orphan $PIDS"
	run wsc "$(url /ok)"
	assert_success
	lines_then_close 2000 1000
	# A straggler in its group, holding stdout, does not hold the
	# session open: it is killed once the leader exits.
	run wsc "$(url /orphan)" --timeout 5
	assert_success
	lines_then_close 2000 1000
	wait_until 5 progs_gone "$PIDS"
	run wsc "$(url /three)"
	assert_success
	lines_then_close 2000 1011
	run wsc "$(url /killed)"
	assert_success
	lines_then_close 2000 1011
}

@test "the client sends Close: its code echoed; the program, its grandchild and its group are gone, no zombie" {
	ws_start "websocket /tree $TDIR/ws-cat.sh $PIDS tree"
	wsc_bg c "$(url /tree)" --send hi --expect 1 --hold --close-code 4000 \
	    --close-reason finished
	wait_until 5 has_line c ready
	wait_until 5 test -s "$PIDS"
	local leader grand
	read -r leader grand < "$PIDS"
	# A process group of its own, the grandchild in it.
	[[ $(pgid_of "$leader") == "$leader" ]]
	[[ $(pgid_of "$grand") == "$leader" ]]
	kill -USR1 "$WSC_PID"
	finished "$WSC_PID"
	[[ $(close_of c) =~ ^close\ 4000( |$) ]] || fail "got: $(out_of c)"
	has_line c hi
	wait_until 5 progs_gone "$PIDS"
}

@test "the client vanishes (a reset, or EOF without Close): the program and its group are gone" {
	ws_start "websocket /tree $TDIR/ws-cat.sh $PIDS tree"
	wsc_bg c --raw "$(url /tree)" --send hi
	wait_until 5 has_line c hi
	kill -USR1 "$WSC_PID"
	finished "$WSC_PID"
	has_line c vanished
	wait_until 5 progs_gone "$PIDS"
	# The same for a client that only closes its end (upgrade() does).
	: > "$PIDS"
	upgrade /tree
	status_is 101
	wait_until 5 test -s "$PIDS"
	wait_until 5 progs_gone "$PIDS"
	# Nothing left under the workers but the workers.
	local w
	for w in $(worker_pids); do
		[[ -z $(ps -o pid= --ppid "$w") ]]
	done
}

@test "ping: a client that never answers is closed with 1001 in bounded time; one that does stays open" {
	ws_start 'websocket_ping_interval 1s' 'program_grace 200ms' \
	    'websocket_close_timeout 1s' \
	    "websocket /good $TDIR/ws-cat.sh $BATS_TEST_TMPDIR/good.pids" \
	    "websocket /mute $TDIR/ws-cat.sh $BATS_TEST_TMPDIR/mute.pids"
	local t0
	t0=$(now_ms)
	wsc_bg good "$(url /good)" --hold
	local good=$WSC_PID
	wsc_bg mute --raw "$(url /mute)" --show-pings --time-eof
	wait_until 5 has_line good ready
	wait_until 5 has_line mute ready
	wait_until 6 closed mute
	[[ $(close_of mute) == 'close 1001 ping timeout' ]] ||
	    fail "got: $(out_of mute)"
	# No pong for twice the interval: not before 2 s.
	(( $(now_ms) - t0 >= 1800 ))
	# It answers no Close either: TCP is closed websocket_close_timeout
	# (1 s) after the server's Close, as the client measured it (the
	# poll above may see the Close late on a loaded machine).
	wait_until 5 has_line mute eof
	local gap
	gap=$(sed -n 's/^eof after close \([0-9]*\)$/\1/p' \
	    "$BATS_TEST_TMPDIR/mute.out")
	[[ -n $gap ]] || fail "no gap: $(out_of mute)"
	(( gap >= 900 && gap < 2000 * ${TIME_FACTOR:-1} )) ||
	    fail "TCP closed $gap ms after the Close"
	# It was pinged (once or twice: "no pong for twice the interval").
	has_line mute ping
	wait_until 5 progs_gone "$BATS_TEST_TMPDIR/mute.pids"
	# The answering client is still open past 3 intervals.
	past_3_intervals() { (( $(now_ms) - t0 >= 3500 )); }
	wait_until 5 past_3_intervals
	alive "$good"
	run ! closed good
	kill -USR1 "$good"
	finished "$good"
	[[ $(close_of good) == 'close 1000' ]]
}

# --- stop and reload --------------------------------------------------------

# numbered_then NAME LAST: the messages of client NAME ("ready" aside) are
# 1, 2, ... K with no gap, K > 0, then LAST; then its close line.
numbered_then() {
	grep -vx ready "$BATS_TEST_TMPDIR/$1.out" | grep -v '^close ' |
	    awk -v last="$2" '
		$0 == last { seen = 1; next }
		seen { print "after " last ": " $0; bad = 1; exit }
		$0 != NR { print "line " NR ": " $0; bad = 1; exit }
		END { if (!bad && (!seen || NR < 2)) { print "no " last; bad = 1 }
		      exit bad }'
}

@test "graceful stop while the program writes: every line up to its bye, then 1001; exit 0 in time" {
	ws_start 'shutdown_timeout 5s' "websocket /count $TDIR/ws-count.py $PIDS"
	wsc_bg c "$(url /count)" --hold --timeout 30
	wait_until 5 has_line c ready
	many_lines() { (( $(lines_of c) > 500 )); }
	wait_until 5 many_lines
	local t0
	t0=$(now_ms)
	kill -TERM "$SERVER_PID"
	finished "$WSC_PID"
	run numbered_then c bye
	assert_success
	[[ $(close_of c) == 'close 1001 going away' ]] || fail "got: $(close_of c)"
	[[ $(server_exit_status) == 0 ]]
	before 5000 "$t0"
	progs_gone "$PIDS"
	run ! log_has 'shutdown_timeout reached'
}

@test "graceful stop: a program that ignores SIGTERM is killed, its client closed with 1001, within shutdown_timeout" {
	ws_start 'shutdown_timeout 3s' "websocket /stub $TDIR/ws-stubborn.sh $PIDS"
	wsc_bg c "$(url /stub)" --hold
	wait_until 5 has_line c started
	local t0
	t0=$(now_ms)
	kill -TERM "$SERVER_PID"
	finished "$WSC_PID"
	[[ $(close_of c) == 'close 1001 going away' ]] || fail "got: $(out_of c)"
	before 3000 "$t0"
	[[ $(server_exit_status) == 0 ]]
	before 3000 "$t0"
	progs_gone "$PIDS"
	run ! log_has 'shutdown_timeout reached'
}

@test "graceful stop: a client that never answers the Close does not hold the master past shutdown_timeout" {
	ws_start 'shutdown_timeout 3s' 'websocket_close_timeout 60s' \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	wsc_bg c --raw "$(url /cat)" --send hi
	wait_until 5 has_line c hi
	local t0
	t0=$(now_ms)
	kill -TERM "$SERVER_PID"
	[[ $(server_exit_status) == 0 ]]
	before 3000 "$t0"
	wait_until 2 has_line c eof
	has_line c 'close 1001 going away'
	progs_gone "$PIDS"
	run ! log_has 'shutdown_timeout reached'
}

@test "reload: sessions of the old workers end with 1012 in time; a new session on the new generation works" {
	ws_start 'shutdown_timeout 3s' "websocket /cat $TDIR/ws-cat.sh $PIDS"
	local old t0
	old=$(worker_pids)
	wsc_bg a "$(url /cat)" --send one --expect 1 --hold
	wait_until 5 has_line a ready
	t0=$(now_ms)
	kill -HUP "$SERVER_PID"
	finished "$WSC_PID"
	before 3000 "$t0"
	[[ $(close_of a) == 'close 1012 service restart' ]] || fail "got: $(out_of a)"
	wait_until 5 log_has 'reloaded: generation 2'
	old_gone() { local p; for p in $old; do gone "$p" || return 1; done; }
	wait_until 5 old_gone
	progs_gone "$PIDS"
	run wsc "$(url /cat)" --send again --expect 1
	assert_output $'again\nclose 1000'
}

@test "recycling (max_requests): the worker's sessions end with 1012, a new worker takes over" {
	WORKERS=1 ws_start 'max_requests 2' 'shutdown_timeout 3s' \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	local old
	old=$(worker_pids)
	wsc_bg a "$(url /cat)" --send one --expect 1 --hold
	wait_until 5 has_line a ready
	# The second request of the worker: it retires.
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	finished "$WSC_PID"
	[[ $(close_of a) == 'close 1012 service restart' ]] || fail "got: $(out_of a)"
	wait_until 5 gone "$old"
	progs_gone "$PIDS"
	wait_until 5 worker_count_is 1
	run wsc "$(url /cat)" --send again --expect 1
	assert_output $'again\nclose 1000'
}

@test "a second SIGTERM: 1001 at once, the programs killed" {
	ws_start 'shutdown_timeout 20s' "websocket /stub $TDIR/ws-stubborn.sh $PIDS"
	wsc_bg c "$(url /stub)" --hold
	wait_until 5 has_line c started
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	# The first stop gives the program until its output deadline.
	run ! closed c
	local t0
	t0=$(now_ms)
	kill -TERM "$SERVER_PID"
	finished "$WSC_PID"
	[[ $(close_of c) =~ ^close\ 1001( |$) ]] || fail "got: $(out_of c)"
	before 2000 "$t0"
	[[ $(server_exit_status) == 0 ]]
	wait_until 2 progs_gone "$PIDS"
}

# --- many sessions, files beside them, back-pressure -------------------------

@test "200 sessions on 2 workers through a stop: each echoed everything, each closed with 1001" {
	# The client holds 200 sockets, the server 200 more and 3 pipes and a
	# pidfd for each program.
	if (( $(ulimit -n) < 2048 )); then
		ulimit -n 2048 2>/dev/null ||
		    skip "ulimit -n is $(ulimit -n) and cannot be raised to 2048"
	fi
	WORKERS=2 ws_start 'shutdown_timeout 10s' \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	wsc_bg many "$(url /cat)" --count 200 --send one --send two \
	    --send three --timeout 60
	wait_until 30 has_line many ready
	[[ $(wc -l < "$PIDS") -eq 200 ]]
	kill -TERM "$SERVER_PID"
	finished "$WSC_PID"
	[[ $(grep -c '^session ' "$BATS_TEST_TMPDIR/many.out") -eq 200 ]]
	run grep -Ev '^(ready|session [0-9]+ close 100[01] echoed 3/3)$' \
	    "$BATS_TEST_TMPDIR/many.out"
	assert_output ''
	[[ $(server_exit_status) == 0 ]]
	wait_until 5 progs_gone "$PIDS"
}

@test "a worker with open sessions still serves files and new sessions" {
	WORKERS=1 ws_start "websocket /cat $TDIR/ws-cat.sh $PIDS"
	wsc_bg a "$(url /cat)" --send a --expect 1 --hold
	local a=$WSC_PID
	wsc_bg b "$(url /cat)" --send b --expect 1 --hold
	local b=$WSC_PID
	wait_until 5 has_line a ready
	wait_until 5 has_line b ready
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	curl -s -o "$BATS_TEST_TMPDIR/big" "http://127.0.0.1:$PORT/big.bin"
	cmp "$DOCROOT/big.bin" "$BATS_TEST_TMPDIR/big"
	run wsc "$(url /cat)" --send c --expect 1
	assert_output $'c\nclose 1000'
	kill -USR1 "$a" "$b"
	finished "$a"
	finished "$b"
	[[ $(close_of a) == 'close 1000' && $(close_of b) == 'close 1000' ]]
	wait_until 5 progs_gone "$PIDS"
}

@test "sessions count against worker_connections and are never evicted for waiting clients" {
	WORKERS=1 ws_start 'worker_connections 2' \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	wsc_bg a "$(url /cat)" --send a --expect 1 --hold
	local a=$WSC_PID
	wsc_bg b "$(url /cat)" --send b --expect 1 --hold
	local b=$WSC_PID
	wait_until 5 has_line a ready
	wait_until 5 has_line b ready
	# The worker is full: a client waits in the accept queue...
	run curl -s --max-time 1.5 "http://127.0.0.1:$PORT/hello.txt"
	assert_failure 28
	# ...and no session was closed to make room for it.
	run ! closed a
	run ! closed b
	alive "$a"
	alive "$b"
	kill -USR1 "$a"
	finished "$a"
	[[ $(close_of a) == 'close 1000' ]]
	run curl -s --max-time 5 "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	run ! closed b
	kill -USR1 "$b"
	finished "$b"
}

# cpu_ticks PID: user + system time the process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# wchar PID: the bytes the process has written so far.
wchar() { awk '/^wchar:/ { print $2 }' "/proc/$1/io"; }
# blocked_writing PID: the process sleeps in a write to a full pipe.
blocked_writing() { [[ $(cat "/proc/$1/wchan" 2>/dev/null) == *pipe_write* ]]; }

@test "back-pressure: a flooding program and a client that reads nothing keep the worker's memory bounded" {
	WORKERS=1 ws_start 'program_grace 200ms' \
	    "websocket /flood $TDIR/ws-flood.sh $PIDS" \
	    "websocket /cat /bin/cat"
	local w pid
	w=$(worker_pids)
	wsc_bg f --raw --no-read "$(url /flood)" --timeout 60
	wait_until 5 has_line f ready
	wait_until 5 test -s "$PIDS"
	pid=$(head -n 1 "$PIDS")
	# Once the socket buffers and the send buffer are full, the program
	# is no longer read: it sleeps in write(2).  Meanwhile, and for a
	# while after, the worker's memory stays bounded.
	wait_until 20 rss_watch "$w" blocked_writing "$pid"
	# And it stays held: in a second, it writes next to nothing (the
	# socket buffers may still grow a little), and the memory stays low.
	local w0
	w0=$(wchar "$pid")
	rss_sample "$w"
	(( $(wchar "$pid") - w0 < 16 << 20 )) ||
	    fail "the program wrote $(( $(wchar "$pid") - w0 )) bytes in 1 s"
	rss_bounded
	# Others are served meanwhile, by the same worker.
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	run wsc "$(url /cat)" --send x --expect 1
	assert_output $'x\nclose 1000'
	(( $(rss_kb "$w") < RSS_BOUND_KB ))
	kill -USR1 "$WSC_PID"
	finished "$WSC_PID"
	wait_until 5 progs_gone "$PIDS"
}

# server_unread: some connection to the server has bytes the worker has
# not read (its Recv-Q).
server_unread() {
	[[ $(ss -Htn state established "( sport = :$PORT )" |
	    awk '{ print $1 }' | sort -n | tail -n 1) -gt 0 ]]
}

@test "back-pressure the other way: a program that reads nothing and a client that floods it keep the worker's memory bounded" {
	WORKERS=1 ws_start 'program_grace 200ms' 'shutdown_timeout 3s' \
	    "websocket /stub $TDIR/ws-stubborn.sh $PIDS"
	local w big=$BATS_TEST_TMPDIR/big.in
	w=$(worker_pids)
	truncate -s 256M "$big"
	wsc_bg f --raw "$(url /stub)" --send-file "$big" --chunk 65536 \
	    --timeout 60
	wait_until 5 test -s "$PIDS"
	# The program's stdin is full, so the client is not read: its
	# bytes wait in the worker's socket buffer, and the client in send.
	wait_until 20 server_unread
	rss_sample "$w"
	server_unread
	rss_bounded
	run ! has_line f sent
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	# The client vanishes with a reset: the session ends all the same.
	kill -USR1 "$WSC_PID"
	finished "$WSC_PID"
	has_line f vanished
	wait_until 5 progs_gone "$PIDS"
}

# Its FIN waits in its kernel behind the bytes the worker does not read
# (the window is closed): no socket event can tell; the pings do.
@test "a client that dies while the worker is not reading it (its program's stdin is full) is found by the pings" {
	WORKERS=1 ws_start 'program_grace 200ms' 'shutdown_timeout 3s' \
	    'websocket_ping_interval 1s' \
	    "websocket /stub $TDIR/ws-stubborn.sh $PIDS"
	local w big=$BATS_TEST_TMPDIR/big.in
	w=$(worker_pids)
	truncate -s 256M "$big"
	wsc_bg f "$(url /stub)" --send-file "$big" --chunk 65536 --timeout 60
	wait_until 5 has_line f started
	wait_until 20 server_unread
	# It goes away: its socket closes (a FIN), the bytes it had sent
	# still unread by the worker.
	kill -KILL "$WSC_PID"
	wait "$WSC_PID" || true
	# Nor does the worker spin on it meanwhile.
	local t0
	t0=$(cpu_ticks "$w")
	sleep 1
	(( $(cpu_ticks "$w") - t0 < 20 * ${TIME_FACTOR:-1} )) ||
	    fail "the worker used $(( $(cpu_ticks "$w") - t0 )) ticks in 1 s"
	# Two pings unanswered (3 s at most), then the ladder.
	wait_until 8 progs_gone "$PIDS"
}

# --- the status page -----------------------------------------------------------

# session_row FILE PID: the row of the text page's sessions table whose
# program is PID, as "NAME=VALUE" words named by the table's header.
session_row() {
	awk -v pid="$2" '
		/^WebSocket sessions:$/ { t = 1; next }
		t && $1 == "worker" { for (i = 1; i <= NF; i++) name[i] = $i; next }
		t && NF == 0 { t = 0 }
		t { for (i = 1; i <= NF; i++) if (name[i] == "program" && $i == pid)
			for (j = 1; j <= NF; j++) printf "%s=%s\n", name[j], $j }' "$1"
}

@test "the status page lists sessions: path, client, program pid, messages each way (text and JSON)" {
	command -v jq >/dev/null || fail "jq is not installed (package jq)"
	ws_start 'status_path /status' "websocket /cat $TDIR/ws-cat.sh $PIDS"
	wsc_bg a "$(url '/cat/x?y=1')" --print-local --send one --send two \
	    --send three --expect 3 --hold
	wait_until 5 has_line a ready
	local client addr pid w body=$BATS_TEST_TMPDIR/status
	client=$(sed -n 's/^local //p' "$BATS_TEST_TMPDIR/a.out")
	addr=${client%:*}
	pid=$(head -n 1 "$PIDS")
	w=$(ps -o ppid= -p "$pid" | tr -d ' ')
	curl -s -o "$body" "http://127.0.0.1:$PORT/status"
	grep -qx 'WebSocket sessions: 1' "$body" || fail "$(cat "$body")"
	# After the workers table, a row for the session.
	run session_row "$body" "$pid"
	assert_line "worker=$w"
	assert_line path=/cat
	assert_line --regexp "^client=$addr(:${client##*:})?$"
	assert_line in=3
	assert_line out=3
	curl -s -o "$body" "http://127.0.0.1:$PORT/status?json"
	jq -e --arg addr "$addr" --arg client "$client" --argjson pid "$pid" \
	    --argjson w "$w" '
	    .totals.sessions == 1 and
	    ([.workers[].sessions[]] | length) == 1 and
	    (.workers[] | select(.pid == $w) | .sessions_open == 1 and
	     (.sessions[0] | .path == "/cat" and .program_pid == $pid and
	      (.client == $addr or .client == $client) and
	      .messages_in == 3 and .messages_out == 3))' "$body" >/dev/null ||
	    fail "not in the JSON page: $(cat "$body")"
	kill -USR1 "$WSC_PID"
	finished "$WSC_PID"
	gone_from_page() {
		curl -s -o "$body" "http://127.0.0.1:$PORT/status?json"
		jq -e '.totals.sessions == 0 and
		    ([.workers[].sessions[]] | length) == 0' "$body" >/dev/null
	}
	wait_until 5 gone_from_page
}

# --- found in review ---------------------------------------------------------

@test "a stop with every place of the worker taken by sessions: 1001 at once, no worker killed" {
	WORKERS=1 ws_start 'worker_connections 2' 'shutdown_timeout 5s' \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	wsc_bg a "$(url /cat)" --send a --expect 1 --hold
	local a=$WSC_PID t0
	wsc_bg b "$(url /cat)" --send b --expect 1 --hold
	local b=$WSC_PID
	wait_until 5 has_line a ready
	wait_until 5 has_line b ready
	t0=$(now_ms)
	kill -TERM "$SERVER_PID"
	finished "$a"
	finished "$b"
	before 2000 "$t0"
	[[ $(close_of a) == 'close 1001 going away' ]]
	[[ $(close_of b) == 'close 1001 going away' ]]
	[[ $(server_exit_status) == 0 ]]
	log_has 'stopped: [0-9]* requests finished during the stop, 0 workers killed'
	progs_gone "$PIDS"
}

@test "a program that exits while its client answers no Close does not stall the worker" {
	WORKERS=1 ws_start 'websocket_close_timeout 5s' \
	    'websocket /hi /bin/sh -c "echo hi; exit 0"'
	local w t0
	w=$(worker_pids)
	wsc_bg c --raw "$(url /hi)"
	wait_until 5 has_line c hi
	# Its Close is out, unanswered, for 5 s: the worker serves meanwhile
	# and does not spin.
	t0=$(cpu_ticks "$w")
	run curl -s --max-time 2 "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	sleep 1
	(( $(cpu_ticks "$w") - t0 < 20 * ${TIME_FACTOR:-1} )) ||
	    fail "the worker used $(( $(cpu_ticks "$w") - t0 )) ticks in 1 s"
	# Its Close came (1000), and TCP is still open, waiting for ours.
	has_line c 'close 1000'
	run ! has_line c eof
}

@test "a client that pings without end and reads nothing keeps the worker's memory bounded" {
	WORKERS=1 ws_start 'websocket_ping_interval 1s' \
	    "websocket /cat $TDIR/ws-cat.sh $PIDS"
	local w
	w=$(worker_pids)
	# 125-byte pings, masked, never reading the pongs: bounded in count
	# and in time.
	"$WS_PYTHON" - "$PORT" <<-'PY' &
	import base64, os, socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
	key = base64.b64encode(os.urandom(16)).decode()
	s.sendall(("GET /cat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
	s.recv(4096)
	ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125
	s.settimeout(0.5)
	end = time.time() + 8
	for _ in range(400000):
	    if time.time() > end:
	        break
	    try:
	        s.sendall(ping * 64)
	    except (socket.timeout, OSError):
	        pass
	PY
	local pinger=$!
	CLIENTS+=("$pinger")
	wait_until 5 test -s "$PIDS"
	# The worker stops reading it once its pongs are queued beyond the
	# bound; with no pong read, two pings later it is closed.
	wait_until 10 rss_watch "$w" progs_gone "$PIDS"
	rss_bounded
	kill "$pinger" 2>/dev/null || true
}

@test "a long argument of a websocket line survives the keywords after it" {
	local long
	long=$(printf 'x%.0s' {1..300})
	WORKERS=1 ws_start "websocket /args /bin/echo $long tail" \
	    'log_level info' 'websocket_protocol chat'
	run wsc "$(url /args)" --expect 1
	assert_success
	assert_line "$long tail"
}

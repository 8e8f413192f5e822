#!/usr/bin/env bats
# Real client addresses behind a balancer (issue 14): the PROXY protocol
# (v1, v2) on a proxy_protocol listener, only from proxy_trusted; the v2
# LOCAL command served quietly; refused headers closed with a
# rate-limited log line; X-Forwarded-For, Forwarded and X-Real-IP from
# real_ip_from; and the address every consumer sees: the access log,
# status_allow, a WebSocket program's REMOTE_ADDR.  The balancer is
# t/proxyclient.py on a raw socket.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
bats_require_minimum_version 1.5.0

# WS_PYTHON: a python3 with websockets (ws_python), if there is one.
setup_file() { ws_python || true; }

setup() {
	make_docroot
	TDIR=$(cd "$TOP_SRCDIR/t" && pwd)
	PY=${WS_PYTHON:-python3}
	ALOG=$BATS_TEST_TMPDIR/access.log
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	CLIENTS=()
}

teardown() {
	local p
	for p in "${CLIENTS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	stop_server
}

# proxy_start ARGS...: the server on a proxy_protocol listener that
# trusts 127.0.0.1 (what ARGS do not say otherwise), with an access log.
proxy_start() {
	LISTEN="127.0.0.1:0 proxy_protocol" start_server \
	    -o access_log="$ALOG" -o proxy_trusted=127.0.0.1 "$@"
}

# pc ARGS...: t/proxyclient.py to $PORT.
pc() { "$PY" "$TDIR/proxyclient.py" "$PORT" "$@"; }

# pc_bg NAME ARGS...: the same in the background, its output in
# $BATS_TEST_TMPDIR/NAME.out, its pid in PC_PID (killed in teardown).
pc_bg() {
	local name=$1; shift
	"$PY" "$TDIR/proxyclient.py" "$PORT" "$@" \
	    > "$BATS_TEST_TMPDIR/$name.out" 2>&1 3>&- &
	PC_PID=$!
	CLIENTS+=("$PC_PID")
}

# The client addresses of the access log, one per line, in order.
clients() { cut -d' ' -f1 "$ALOG" 2>/dev/null; }
logged() { [[ $(grep -c . "$ALOG" 2>/dev/null) -ge $1 ]]; }
# refusals: the PROXY refusal lines of the error log.
refusals() { grep -c 'PROXY protocol: connection from' "$SERVER_LOG" || true; }
refused() { [[ $(refusals) -ge $1 ]]; }

# bad_conn BYTES: a connection that sends BYTES (printf %b) and leaves.
bad_conn() {
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf '%b' "$1" >&"$fd"
	exec {fd}>&-
}

# --- configuration ----------------------------------------------------------

@test "config: a proxy_protocol listener needs proxy_trusted, named by its line" {
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:8080 proxy_protocol' \
	    > "$CONF"
	run "$PREFORKD" -t -c "$CONF"
	assert_failure 1
	local why='needs proxy_trusted (the addresses allowed to send the PROXY header)'
	assert_output "$CONF:2: listen 127.0.0.1:8080 proxy_protocol: $why"
	printf '%s\n' 'proxy_trusted 10.0.0.0/8 ::1 # the balancers' >> "$CONF"
	run "$PREFORKD" -t -c "$CONF"
	assert_success
	assert_output 'configuration OK'
	# -l takes the option too; -l alone still works as before.
	run "$PREFORKD" -t -r "$DOCROOT" -l '127.0.0.1:8080 proxy_protocol' \
	    -o proxy_trusted=192.0.2.1
	assert_success
	run "$PREFORKD" -t -r "$DOCROOT" -l 127.0.0.1:8080
	assert_success
	assert_output 'configuration OK'
}

@test "config: bad values are FILE:LINE: message and exit 1" {
	local line
	while IFS='|' read -r line want; do
		printf '%s\n' "root $DOCROOT" "$line" > "$CONF"
		run "$PREFORKD" -t -c "$CONF"
		assert_failure 1
		assert_output "$CONF:2: $want"
	done <<-'EOF'
	listen 127.0.0.1:8080 proxy|listen: unknown option 'proxy' (expected proxy_protocol, tls or redirect_https)
	proxy_trusted 10.0.0.0/33|proxy_trusted: invalid address or prefix '10.0.0.0/33'
	real_ip_from 10.0.0.1 nonsense|real_ip_from: invalid address or prefix 'nonsense'
	real_ip_header X-Client-IP|real_ip_header: 'X-Client-IP' (expected X-Forwarded-For, Forwarded or X-Real-IP)
	EOF
	printf '%s\n' "root $DOCROOT" 'real_ip_header forwarded' \
	    'real_ip_from "10.0.0.0/8 127.0.0.1" ::1' > "$CONF"
	run "$PREFORKD" -t -c "$CONF"
	assert_success
}

# --- the PROXY protocol ------------------------------------------------------

@test "PROXY v1: the header's source is the client in the access log" {
	proxy_start
	run pc --v1 192.0.2.1:4000
	assert_success
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line hello
	run pc --v1 '[2001:db8::1]:4001'
	assert_success
	assert_line --index 0 'HTTP/1.1 200 OK'
	wait_until 5 logged 2
	run clients
	assert_output $'192.0.2.1\n2001:db8::1'
	[[ $(refusals) -eq 0 ]]
}

@test "PROXY v2: TCP over IPv4 and IPv6, a TLV skipped, in one write or byte by byte" {
	proxy_start
	run pc --v2 192.0.2.2:4000 --same-write
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc --v2 '[2001:db8::2]:4001'
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc --v2 192.0.2.3:4002 --slow
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc --v1 192.0.2.4:4003 --slow
	assert_line --index 0 'HTTP/1.1 200 OK'
	wait_until 5 logged 4
	run clients
	assert_output $'192.0.2.2\n2001:db8::2\n192.0.2.3\n192.0.2.4'
}

@test "the request behind the header, pipelined in the same write, is served" {
	proxy_start
	local n
	for v in --v1 --v2; do
		run pc "$v" 192.0.2.5:1 --same-write --requests 3
		assert_success
		n=$(grep -c '^HTTP/1.1 200 OK' <<<"$output")
		[[ $n -eq 3 ]] || fail "$v: $n responses of 3: $output"
	done
	wait_until 5 logged 6
	[[ $(clients | sort -u) == 192.0.2.5 ]]
}

@test "v2 LOCAL and v1 UNKNOWN: served as the balancer's own address, without a log line" {
	WORKERS=1 proxy_start
	run pc --v2-local
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc --v1-unknown
	assert_line --index 0 'HTTP/1.1 200 OK'
	# A TCP check that connects and leaves: closed quietly too.
	bad_conn ''
	# Served in order by the one worker: after the check was closed.
	run pc --v2-local
	assert_line --index 0 'HTTP/1.1 200 OK'
	wait_until 5 logged 3
	run clients
	assert_output $'127.0.0.1\n127.0.0.1\n127.0.0.1'
	[[ $(refusals) -eq 0 ]] || fail "$(cat "$SERVER_LOG")"
}

@test "a header from outside proxy_trusted: closed unanswered, one log line" {
	proxy_start -o proxy_trusted="10.0.0.0/8 ::1"
	run pc --v1 192.0.2.1:4000
	assert_failure 3
	assert_output ''
	wait_until 5 refused 1
	run grep 'PROXY protocol' "$SERVER_LOG"
	assert_output --partial 'PROXY protocol: connection from 127.0.0.1 refused: not in proxy_trusted'
	[[ ! -s $ALOG ]]
}

@test "a missing or malformed header: closed unanswered, one line a second with a count" {
	WORKERS=1 proxy_start
	# A plain request where the header should be.
	run pc
	assert_failure 3
	wait_until 5 refused 1
	run grep 'PROXY protocol' "$SERVER_LOG"
	assert_output --partial 'connection from 127.0.0.1 refused: not a PROXY protocol header'
	# A burst within the second: no line of its own each.
	for h in 'PROXY TCP4 1.2.3.4\r\n' 'PROXY TCP9 a b 1 2\r\n' \
	    'PROXY TCP4 192.0.2.1 198.51.100.2 99999 80\r\n' \
	    '\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c' 'GET / HTTP/1.1\r\n\r\n'; do
		bad_conn "$h"
	done
	# Served in order by the one worker: the burst was judged before it.
	run pc --v2-local
	assert_line --index 0 'HTTP/1.1 200 OK'
	[[ $(refusals) -eq 1 ]] || fail "$(grep PROXY "$SERVER_LOG")"
	# A second later, the next line counts those refused unsaid.
	another() { bad_conn 'PROXY?\r\n'; refused 2; }
	wait_until 5 another
	run grep 'PROXY protocol' "$SERVER_LOG"
	assert_line --index 1 --regexp \
	    'refused: not a PROXY protocol header; [0-9]+ more refused since the last such line$'
	n=$(sed -n 's/.*; \([0-9]*\) more refused.*/\1/p' <<<"${lines[1]}")
	(( n >= 5 )) || fail "only $n counted: ${lines[1]}"
	[[ $(clients) == 127.0.0.1 ]]
}

@test "a header arriving slowly holds no worker; one cut short by header_timeout is logged" {
	WORKERS=1 proxy_start -o header_timeout=1s
	pc_bg held --v1 192.0.2.20:1 --hold "$BATS_TEST_TMPDIR/go"
	local held=$PC_PID
	wait_until 5 grep -qx held "$BATS_TEST_TMPDIR/held.out"
	# Half a header is in; the one worker serves another client meanwhile.
	run pc --v2 192.0.2.21:2 --timeout 5
	assert_line --index 0 'HTTP/1.1 200 OK'
	# The held one is cut at header_timeout, unanswered.
	wait_until 5 refused 1
	local st=0
	wait "$held" || st=$?
	assert_equal "$st" 3
	run grep 'PROXY protocol' "$SERVER_LOG"
	assert_output --partial 'refused: header incomplete after header_timeout'
	# In time, it is served.
	rm -f "$BATS_TEST_TMPDIR/go"
	pc_bg late --v2 192.0.2.22:3 --hold "$BATS_TEST_TMPDIR/go"
	touch "$BATS_TEST_TMPDIR/go"
	wait "$PC_PID"
	grep -q '^HTTP/1.1 200 OK' "$BATS_TEST_TMPDIR/late.out"
	run clients
	assert_output $'192.0.2.21\n192.0.2.22'
}

@test "status_allow judges the proxied address" {
	proxy_start -o status_path=/status -o status_allow=192.0.2.0/24
	run pc --v1 192.0.2.7:1 --path /status
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc --v2 203.0.113.5:1 --path /status
	assert_line --index 0 'HTTP/1.1 403 Forbidden'
	# LOCAL: the balancer itself, 127.0.0.1, is not in status_allow.
	run pc --v2-local --path /status
	assert_line --index 0 'HTTP/1.1 403 Forbidden'
}

@test "a reload turns proxy_protocol on for a kept listener" {
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' 'workers 1' \
	    "access_log $ALOG" 'proxy_trusted 127.0.0.1' > "$CONF"
	WORKERS=1 CONF_ONLY=1 start_server -c "$CONF"
	run pc
	assert_line --index 0 'HTTP/1.1 200 OK'
	# The same socket (matched by its bound address), a PROXY one now.
	sed -i "s/^listen .*/listen 127.0.0.1:$PORT proxy_protocol/" "$CONF"
	kill -HUP "$SERVER_PID"
	wait_until 10 log_has 'reloaded: generation 2'
	wait_until 10 worker_count_is 1
	run pc --v1 192.0.2.30:1
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc
	assert_failure 3
	wait_until 5 logged 2
	run clients
	assert_output $'127.0.0.1\n192.0.2.30'
	run ! log_has 'no longer listening'
}

# --- forwarding headers ------------------------------------------------------

@test "X-Forwarded-For from real_ip_from: the right-most untrusted address" {
	start_server -o access_log="$ALOG" -o real_ip_from="127.0.0.0/8 10.0.0.0/8"
	local u=http://127.0.0.1:$PORT/hello.txt
	curl -sf -o /dev/null -H 'X-Forwarded-For: 203.0.113.9, 10.0.0.1' "$u"
	# Whatever the client claimed before the first untrusted hop is ignored.
	curl -sf -o /dev/null -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.8' \
	    -H 'X-Forwarded-For: 10.0.0.2' "$u"
	# All trusted: the left-most; no address at the right: the peer.
	curl -sf -o /dev/null -H 'X-Forwarded-For: 10.9.9.9, 10.0.0.1' "$u"
	curl -sf -o /dev/null -H 'X-Forwarded-For: 203.0.113.7, unknown' "$u"
	curl -sf -o /dev/null -H 'X-Forwarded-For: [2001:db8::9]:1234' "$u"
	curl -sf -o /dev/null "$u"
	wait_until 5 logged 6
	run clients
	assert_output $'203.0.113.9\n203.0.113.8\n10.9.9.9\n127.0.0.1\n2001:db8::9\n127.0.0.1'
}

@test "a forwarding header from a peer outside real_ip_from is ignored" {
	start_server -o access_log="$ALOG" -o real_ip_from=10.0.0.0/8 \
	    -o status_path=/status -o status_allow=203.0.113.0/24
	curl -sf -o /dev/null -H 'X-Forwarded-For: 203.0.113.9' \
	    "http://127.0.0.1:$PORT/hello.txt"
	# Nor does a spoofed header open the status page.
	run curl -s -o /dev/null -w '%{http_code}' \
	    -H 'X-Forwarded-For: 203.0.113.9' "http://127.0.0.1:$PORT/status"
	assert_output 403
	wait_until 5 logged 2
	run clients
	assert_output $'127.0.0.1\n127.0.0.1'
}

@test "Forwarded (RFC 7239) and X-Real-IP" {
	start_server -o access_log="$ALOG" -o real_ip_from="127.0.0.1 10.0.0.0/8" \
	    -o real_ip_header=Forwarded
	local u=http://127.0.0.1:$PORT/hello.txt
	curl -sf -o /dev/null -H 'Forwarded: for="[2001:db8::5]:4711";proto=http, for=10.0.0.1' "$u"
	curl -sf -o /dev/null -H 'Forwarded: for=198.51.100.1, for=192.0.2.60;by=10.0.0.1' "$u"
	# An obfuscated hop ends the walk: the trusted one right of it.
	curl -sf -o /dev/null -H 'Forwarded: for=192.0.2.1, for=_hidden, for=10.0.0.3' "$u"
	# X-Forwarded-For is not the header asked for.
	curl -sf -o /dev/null -H 'X-Forwarded-For: 192.0.2.99' "$u"
	wait_until 5 logged 4
	run clients
	assert_output $'2001:db8::5\n192.0.2.60\n10.0.0.3\n127.0.0.1'
	stop_server
	: > "$ALOG"
	start_server -o access_log="$ALOG" -o real_ip_from=127.0.0.1 \
	    -o real_ip_header=x-real-ip
	curl -sf -o /dev/null -H 'X-Real-IP: 192.0.2.77' "http://127.0.0.1:$PORT/hello.txt"
	wait_until 5 logged 1
	[[ $(clients) == 192.0.2.77 ]]
}

@test "the forwarded client is the request's: the next one on the connection has its own" {
	start_server -o access_log="$ALOG" -o real_ip_from=127.0.0.0/8 \
	    -o status_path=/status -o status_allow=203.0.113.0/24
	run pc --requests 2 --header 'X-Forwarded-For: 203.0.113.9'
	assert_success
	[[ $(grep -c '^HTTP/1.1 200 OK' <<<"$output") -eq 2 ]]
	wait_until 5 logged 2
	run clients
	assert_output $'203.0.113.9\n127.0.0.1'
	# status_allow sees the forwarded client too.
	run curl -s -o /dev/null -w '%{http_code}' \
	    -H 'X-Forwarded-For: 203.0.113.9' "http://127.0.0.1:$PORT/status"
	assert_output 200
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/status"
	assert_output 403
}

@test "PROXY then X-Forwarded-For: the header counts only from a proxied real_ip_from" {
	proxy_start -o real_ip_from=10.0.0.0/8
	run pc --v1 10.0.0.7:1 --header 'X-Forwarded-For: 198.51.100.4'
	assert_line --index 0 'HTTP/1.1 200 OK'
	run pc --v2 203.0.113.1:1 --header 'X-Forwarded-For: 198.51.100.4'
	assert_line --index 0 'HTTP/1.1 200 OK'
	# The balancer itself (LOCAL: 127.0.0.1) is not in real_ip_from.
	run pc --v2-local --header 'X-Forwarded-For: 198.51.100.4'
	assert_line --index 0 'HTTP/1.1 200 OK'
	wait_until 5 logged 3
	run clients
	assert_output $'198.51.100.4\n203.0.113.1\n127.0.0.1'
}

# --- WebSocket programs ---------------------------------------------------

@test "a WebSocket program's REMOTE_ADDR and REMOTE_PORT are the real client's" {
	[[ -n ${WS_PYTHON:-} ]] ||
	    fail "no python3 with the websockets module (package python3-websockets)"
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0 proxy_protocol' \
	    'workers 2' 'proxy_trusted 127.0.0.1' 'real_ip_from 10.0.0.0/8' \
	    'websocket /env /usr/bin/env' > "$CONF"
	CONF_ONLY=1 start_server -c "$CONF"
	run pc --v2 192.0.2.44:5555 --ws /env
	assert_success
	assert_line REMOTE_ADDR=192.0.2.44
	assert_line REMOTE_PORT=5555
	assert_line 'close 1000'
	run pc --v1 '[2001:db8::44]:6666' --ws /env
	assert_line REMOTE_ADDR=2001:db8::44
	assert_line REMOTE_PORT=6666
	# From a proxied proxy of real_ip_from: its forwarding header's.
	run pc --v1 10.0.0.9:7777 --ws /env \
	    --header 'X-Forwarded-For: 198.51.100.8:8888'
	assert_line REMOTE_ADDR=198.51.100.8
	assert_line REMOTE_PORT=8888
}

# --- a real balancer ----------------------------------------------------

@test "haproxy's send-proxy and send-proxy-v2, health checks included (when installed)" {
	command -v haproxy >/dev/null || skip "haproxy is not installed"
	local hp1 hp2 cfg=$BATS_TEST_TMPDIR/haproxy.cfg
	WORKERS=1 proxy_start
	hp1=$(pick_port)
	hp2=$(pick_port)
	cat > "$cfg" <<-HA
	global
	    maxconn 64
	defaults
	    mode http
	    timeout connect 2s
	    timeout client 5s
	    timeout server 5s
	frontend v1
	    bind 127.0.0.1:$hp1
	    default_backend v1
	frontend v2
	    bind 127.0.0.1:$hp2
	    default_backend v2
	backend v1
	    server s 127.0.0.1:$PORT send-proxy
	backend v2
	    option httpchk GET /hello.txt
	    server s 127.0.0.1:$PORT send-proxy-v2 check check-send-proxy inter 100ms
	HA
	haproxy -db -f "$cfg" > "$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	CLIENTS+=("$!")
	# Its health checks reach the server, as LOCAL: the balancer's own.
	wait_until 10 logged 3
	# A client on another loopback address, through each.
	up() { curl -sf --interface 127.0.0.2 "http://127.0.0.1:$1/hello.txt"; }
	wait_until 10 up "$hp1"
	wait_until 10 up "$hp2"
	run grep -c '^127\.0\.0\.2 ' "$ALOG"
	assert_output 2
	grep -q '^127\.0\.0\.1 .*"GET /hello.txt HTTP/1.0" 200' "$ALOG"
	[[ $(refusals) -eq 0 ]] || fail "$(grep PROXY "$SERVER_LOG")"
}

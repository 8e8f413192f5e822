#!/usr/bin/env bats
# HTTP/1.1 protocol: keep-alive, pipelining, limits, errors, methods.
# Each test starts its own daemon (the limits differ); teardown from
# helpers stops it by pid.

load helpers

URL() { echo "http://127.0.0.1:$PORT$1"; }


# rhdr N NAME: header NAME of response N.
rhdr() { sed -n "s/^$2: //Ip" "$BATS_TEST_TMPDIR/r.$1.head" | head -n 1; }
rstatus() { head -n 1 "$BATS_TEST_TMPDIR/r.$1.head" | cut -d' ' -f2; }
rbody() { cat "$BATS_TEST_TMPDIR/r.$1.body"; }

IMF='^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT$'

# expect_error BYTES CODE [EXTRA-HEADER]: BYTES get exactly one response,
# CODE with a small HTML body, correct Content-Length, Date, Server and
# Connection: close, and then the server closes the connection.
expect_error() {
	local out=$BATS_TEST_TMPDIR/err.out
	raw_to "$out" 5 "$1" || { echo "server did not close" >&2; return 1; }
	split_responses "$out"
	if [[ $NRESP -ne 1 || $(rstatus 1) != "$2" ]]; then
		echo "want one $2, got $NRESP:" >&2
		cat -A "$out" >&2
		return 1
	fi
	[[ $(rhdr 1 Connection) == close ]]
	[[ $(rhdr 1 Date) =~ $IMF ]]
	[[ -n $(rhdr 1 Server) ]]
	[[ $(rhdr 1 Content-Type) == 'text/html; charset=utf-8' ]]
	[[ $(rhdr 1 Content-Length) -gt 0 ]]
	grep -q "<h1>$2 " "$BATS_TEST_TMPDIR/r.1.body"
	if [[ -n ${3:-} ]]; then
		grep -qx -- "$3" "$BATS_TEST_TMPDIR/r.1.head"
	fi
}

REQ='GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n'
LAST='GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'

@test "HTTP/1.1 keeps the connection alive by default (curl)" {
	start_server
	run curl -sv -o "$BATS_TEST_TMPDIR/a" "$(URL /hello.txt)" \
	    -o "$BATS_TEST_TMPDIR/b" "$(URL /style.css)"
	assert_success
	assert_output --partial 'Re-using existing connection'
	refute_output --partial 'Connection: close'
	[[ $(cat "$BATS_TEST_TMPDIR/a") == hello ]]
	[[ $(cat "$BATS_TEST_TMPDIR/b") == 'body{}' ]]
}

@test "HTTP/1.1 keep-alive: two requests on one socket, answered in order" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 "$REQ$LAST"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 ]]
	[[ $(rstatus 1) == 200 && $(rbody 1) == hello ]]
	[[ -z $(rhdr 1 Connection) ]]
	[[ $(rstatus 2) == 200 && $(rbody 2) == 'body{}' ]]
	[[ $(rhdr 2 Connection) == close ]]
}

@test "HTTP/1.0 closes by default" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 'GET /hello.txt HTTP/1.0\r\n\r\nGET /style.css HTTP/1.0\r\n\r\n'
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 1 ]]
	[[ $(head -n 1 "$BATS_TEST_TMPDIR/r.1.head") == 'HTTP/1.1 200 OK' ]]
	[[ $(rhdr 1 Connection) == close ]]
	[[ $(rbody 1) == hello ]]
	run curl -s --http1.0 -D - -o /dev/null "$(URL /hello.txt)"
	assert_output --partial $'Connection: close\r'
}

@test "HTTP/1.0 with Connection: keep-alive stays open" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 'GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /style.css HTTP/1.0\r\n\r\n'
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 ]]
	[[ $(rhdr 1 Connection) == keep-alive ]]
	[[ $(rbody 1) == hello ]]
	[[ $(rhdr 2 Connection) == close ]]
	[[ $(rbody 2) == 'body{}' ]]
	run curl -sv --http1.0 -H 'Connection: keep-alive' \
	    "$(URL /hello.txt)" "$(URL /style.css)"
	assert_output --partial 'Re-using existing connection'
}

@test "Connection: close is honoured; what follows is not answered" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 "${LAST}$REQ"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 1 ]]
	[[ $(rhdr 1 Connection) == close ]]
	[[ $(rbody 1) == 'body{}' ]]
	# Any case, and as one token of a list.
	raw_to "$BATS_TEST_TMPDIR/out" 5 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n'
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 1 && $(rhdr 1 Connection) == close ]]
}

@test "pipelining: 3 requests in one write, 3 responses in order, byte-exact" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 'GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /dir/ HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-3\r\nConnection: close\r\n\r\n'
	NOBODY=2 split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 4 ]]
	[[ $(rstatus 1) == 200 ]]
	cmp "$BATS_TEST_TMPDIR/r.1.body" "$DOCROOT/big.bin"
	[[ $(rstatus 2) == 200 && $(rhdr 2 Content-Length) == 6 ]]
	[[ $(rstatus 3) == 200 && $(rbody 3) == '<h1>dir</h1>' ]]
	[[ $(rstatus 4) == 206 && $(rbody 4) == ell ]]
	# Many at once (printf -v: $(...) would eat the last CRLF).
	local many out=$BATS_TEST_TMPDIR/out
	printf -v many "$REQ%.0s" {1..300}
	raw_to "$out" 5 "$many$LAST"
	[[ $(grep -c $'^HTTP/1.1 200 OK\r$' "$out") -eq 301 ]]
	[[ $(grep -c $'^Content-Length: 6\r$' "$out") -eq 300 ]]
	[[ $(grep -c '^hello$' "$out") -eq 300 ]]
	[[ $(grep -c '^Connection: close' "$out") -eq 1 ]]
	[[ $(tail -n 1 "$out") == 'body{}' ]]
}

@test "keepalive_requests caps the requests on one connection" {
	start_server -o keepalive_requests=2
	raw_to "$BATS_TEST_TMPDIR/out" 5 "$REQ$REQ$REQ"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 ]]
	[[ -z $(rhdr 1 Connection) ]]
	[[ $(rhdr 2 Connection) == close ]]
	[[ $(rbody 1) == hello && $(rbody 2) == hello ]]
}

@test "keepalive_timeout: the server closes an idle connection" {
	local t0 t1 fd
	start_server -o keepalive_timeout=1s
	t0=$(date +%s%N)
	# The deadline of raw_to is the poll: it returns when the server closes.
	raw_to "$BATS_TEST_TMPDIR/out" 5 "$REQ"
	t1=$(date +%s%N)
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 1 && $(rbody 1) == hello ]]
	[[ -z $(rhdr 1 Connection) ]]
	# Closed after about the timeout, not at once and not much later.
	(( t1 - t0 >= 800000000 ))
	(( t1 - t0 < 4000000000 ))
}

@test "header_timeout: a half-sent head gets 408" {
	start_server -o header_timeout=1s
	expect_error 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n' 408
	# After a HEAD on the same connection, the 408 still has its body.
	raw_to "$BATS_TEST_TMPDIR/out" 5 'HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hel'
	NOBODY=1 split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 && $(rstatus 1) == 200 && $(rstatus 2) == 408 ]]
	grep -q '<h1>408 ' "$BATS_TEST_TMPDIR/r.2.body"
	[[ $(rhdr 2 Connection) == close ]]
}

@test "400: bad request lines, missing Host, bad headers" {
	start_server
	local r
	for r in 'GET  /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' \
	    'GET /hello.txt\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1 \r\nHost: x\r\n\r\n' \
	    'GET hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' \
	    'garbage\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost : x\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' \
	    'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' \
	    'GET /hello%00.txt HTTP/1.1\r\nHost: x\r\n\r\n'; do
		expect_error "$r" 400 || { echo "request: $r" >&2; false; }
	done
}

@test "405 with Allow for POST and DELETE" {
	start_server
	expect_error 'POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc' 405 \
	    'Allow: GET, HEAD, OPTIONS'
	expect_error 'DELETE /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' 405 \
	    'Allow: GET, HEAD, OPTIONS'
	run curl -s -o /dev/null -w '%{http_code}' -d x "$(URL /hello.txt)"
	assert_output 405
}

@test "501 for an unknown method, 505 for HTTP/2.0" {
	start_server
	expect_error 'BREW /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' 501
	expect_error 'get /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' 501
	expect_error 'GET /hello.txt HTTP/2.0\r\nHost: x\r\n\r\n' 505
	expect_error 'GET /hello.txt HTTP/3.0\r\nHost: x\r\n\r\n' 505
}

@test "414 for a request line over max_request_line" {
	local long
	start_server -o max_request_line=128
	long=/$(printf 'a%.0s' {1..200})
	expect_error "GET $long HTTP/1.1\r\nHost: x\r\n\r\n" 414
	# Even before the line ends: no need to wait for the rest.
	expect_error "GET $long" 414
	# At the limit it is only a missing file.
	run curl -s -o /dev/null -w '%{http_code}' "$(URL "/$(printf 'a%.0s' {1..100})")"
	assert_output 404
}

# line_of N TARGET: a GET request line of exactly N octets for TARGET,
# padded with a query string (TARGET may hold one already).
line_of() {
	local sep='?' pad
	[[ $2 != *'?'* ]] || sep=x
	pad=$(( $1 - ${#2} - 14 ))
	printf 'GET %s%s%s HTTP/1.1' "$2" "$sep" "$(head -c "$pad" /dev/zero | tr '\0' x)"
}

# status_for LINE: the status answering LINE plus a Host.
status_for() {
	raw_to "$BATS_TEST_TMPDIR/out" 5 "$1\r\nHost: x\r\nConnection: close\r\n\r\n" &&
	    head -n 1 "$BATS_TEST_TMPDIR/out" | cut -d' ' -f2
}

@test "request lines of 8000 octets and of max_request_line are served; one more is 414" {
	# RFC 9112 3: support request lines of at least 8000 octets.  The
	# path is what makes them long: 300 directories deep, or one name
	# no file can have (over NAME_MAX), which is only missing.
	make_docroot
	local deep=/deep line
	deep+=$(printf '/d%.0s' {1..300})
	mkdir -p "$DOCROOT$deep"
	printf 'deep\n' > "$DOCROOT$deep/f.txt"
	start_server
	local long n
	long=/$(head -c 7000 /dev/zero | tr '\0' a)
	for n in 8000 8192; do
		line=$(line_of "$n" "$deep/f.txt")
		[[ ${#line} -eq $n ]]
		[[ $(status_for "$line") == 200 ]] || fail "$n octets: $(head -n 1 "$BATS_TEST_TMPDIR/out")"
		split_responses "$BATS_TEST_TMPDIR/out"
		[[ $(rbody 1) == deep ]]
		line=$(line_of "$n" "$long")
		[[ ${#line} -eq $n ]]
		[[ $(status_for "$line") == 404 ]] || fail "$n octets: $(head -n 1 "$BATS_TEST_TMPDIR/out")"
	done
	line=$(line_of 8193 "$deep/f.txt")
	expect_error "$line\r\nHost: x\r\n\r\n" 414
	line=$(line_of 8193 "$long")
	expect_error "$line\r\nHost: x\r\n\r\n" 414
	# The limit is the option's, not 8192.
	stop_server
	start_server -o max_request_line=9000
	[[ $(status_for "$(line_of 9000 "$deep/f.txt")") == 200 ]]
	expect_error "$(line_of 9001 "$deep/f.txt")\r\nHost: x\r\n\r\n" 414
}

@test "431 for too large a head or too many headers" {
	local big
	start_server -o max_header_size=512 -o max_headers=4
	big=$(printf 'b%.0s' {1..600})
	expect_error "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Big: $big\r\n\r\n" 431
	expect_error 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n' 431
	# Exactly max_headers is fine.
	run curl -s -H 'A: 1' -H 'B: 2' "$(URL /hello.txt)" -H 'User-Agent:' -H 'Accept:'
	assert_output hello
}

@test "a GET body is skipped; the next pipelined request is answered" {
	start_server
	# The body looks like a request: it must never be parsed as one.
	local body='GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n'
	raw_to "$BATS_TEST_TMPDIR/out" 5 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\n$body$LAST"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 ]]
	[[ $(rbody 1) == hello ]]
	[[ $(rbody 2) == 'body{}' ]]
	if grep -q 'octet-stream' "$BATS_TEST_TMPDIR/out"; then
		return 1
	fi
	# A body far larger than the head buffer, up to max_body_size.
	body=$(printf 'GET /big.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n%.0s' {1..3000})
	raw_to "$BATS_TEST_TMPDIR/out" 5 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: $((34 * 3000))\r\n\r\n$body$LAST"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 && $(rbody 1) == hello && $(rbody 2) == 'body{}' ]]
}

@test "a body that arrives in pieces is skipped too" {
	local fd out=$BATS_TEST_TMPDIR/out
	start_server
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345' >&"$fd"
	# The server answers before it has the whole body: read one byte
	# (dd reads no more than that) before sending the rest.
	timeout 5 dd bs=1 count=1 status=none <&"$fd" > "$out"
	[[ $(cat "$out") == H ]]
	printf '67890%b' "$LAST" >&"$fd"
	timeout 5 cat <&"$fd" >> "$out"
	exec {fd}>&-
	split_responses "$out"
	[[ $NRESP -eq 2 ]]
	[[ $(rbody 1) == hello && $(rbody 2) == 'body{}' ]]
}

@test "413 for a body over max_body_size" {
	start_server -o max_body_size=10
	expect_error 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890' 413
	# The answer to a HEAD has no body, even an error.
	raw_to "$BATS_TEST_TMPDIR/out" 5 'HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890'
	NOBODY=1 split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 1 && $(rstatus 1) == 413 ]]
	[[ $(rhdr 1 Content-Length) -gt 0 ]]
	raw_to "$BATS_TEST_TMPDIR/out" 5 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789$LAST"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 && $(rbody 1) == hello && $(rbody 2) == 'body{}' ]]
}

@test "a chunked request body is never read as the next request" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n'
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 1 ]]
	[[ $(rhdr 1 Connection) == close ]]
}

@test "OPTIONS: 204 with Allow" {
	start_server
	raw_to "$BATS_TEST_TMPDIR/out" 5 "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n$LAST"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 3 ]]
	[[ $(rstatus 1) == 204 && $(rstatus 2) == 204 ]]
	[[ $(rhdr 1 Allow) == 'GET, HEAD, OPTIONS' ]]
	[[ $(rhdr 2 Allow) == 'GET, HEAD, OPTIONS' ]]
	[[ $(rhdr 1 Date) =~ $IMF ]]
	[[ -n $(rhdr 1 Server) ]]
	# A 204 has no Content-Length (RFC 9110 8.6).
	[[ -z $(rhdr 1 Content-Length) ]]
	[[ $(rbody 3) == 'body{}' ]]
}

@test "absolute-form request target" {
	start_server
	run curl -s -x "http://127.0.0.1:$PORT" http://example.test/hello.txt
	assert_output hello
	raw_to "$BATS_TEST_TMPDIR/out" 5 "GET http://127.0.0.1:$PORT/dir/index.html?x=1 HTTP/1.1\r\nHost: 127.0.0.1:$PORT\r\n\r\nGET http://h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	split_responses "$BATS_TEST_TMPDIR/out"
	[[ $NRESP -eq 2 ]]
	[[ $(rbody 1) == '<h1>dir</h1>' ]]
	[[ $(rbody 2) == '<h1>root</h1>' ]]
}

@test "the workers survive every malformed request" {
	local before after r big fd
	start_server -o max_request_line=128 -o max_header_size=512 -o max_headers=4 -o max_body_size=10
	before=$(worker_pids | sort)
	big=$(printf 'z%.0s' {1..2000})
	for r in 'GET  / HTTP/1.1\r\n\r\n' 'garbage\r\n\r\n' '\r\n\r\n\r\n\r\n\r\n' \
	    'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/1.1\r\nHost: x\r\nX: \001\r\n\r\n' \
	    'GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n' 'GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n' \
	    'GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
	    'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc' \
	    'BREW / HTTP/1.1\r\n\r\n' 'GET / HTTP/9.9\r\n\r\n' "GET /$big HTTP/1.1\r\n\r\n" \
	    "GET / HTTP/1.1\r\nHost: x\r\nX: $big\r\n\r\n" \
	    'GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999999999999999999-\r\nConnection: close\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: \0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\0377\r\nConnection: close\r\n\r\n' \
	    'GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: "\r\nIf-Range: W/\r\nRange: bytes=-\r\nConnection: close\r\n\r\n' \
	    'GET http:// HTTP/1.1\r\nHost: x\r\n\r\n' 'GET http://h?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
	    'OPTIONS * HTTP/1.0\r\n\r\n' 'GET * HTTP/1.1\r\nHost: x\r\n\r\n' \
	    'GET /dir HTTP/1.0\r\n\r\n' 'HEAD /dir?x HTTP/1.0\r\n\r\n' 'GET /\r\n' ; do
		raw_to /dev/null 5 "$r" || { echo "held open: $r" >&2; false; }
	done
	# Half a request, then the client goes away.
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET / HTTP/1.1\r\nHo' >&"$fd"
	exec {fd}>&-
	after=$(worker_pids | sort)
	[[ $before == "$after" ]]
	run curl -s "$(URL /hello.txt)"
	assert_output hello
	[[ $(worker_pids | sort) == "$before" ]]
}

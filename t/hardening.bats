#!/usr/bin/env bats
# Hardening: hostile input, request smuggling, limits, slow clients.
# Every rejection is answered and the connection closed: a test puts a
# second request behind each bad one and checks it is never answered.
# Slow-client tests use short deadlines and trickle clearly below (or
# above) the minimum rates, so that they do not depend on timing luck.

load helpers

URL() { echo "http://127.0.0.1:$PORT$1"; }

REQ='GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n'
LAST='GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'


rhdr() { sed -n "s/^$2: //Ip" "$BATS_TEST_TMPDIR/r.$1.head" | head -n 1; }
rstatus() { head -n 1 "$BATS_TEST_TMPDIR/r.$1.head" | cut -d' ' -f2; }
rbody() { cat "$BATS_TEST_TMPDIR/r.$1.body"; }

# only_answer BYTES CODE: BYTES, with $LAST behind them, get exactly one
# response, CODE with Connection: close, and the server closes: whatever
# followed the bad request was never read as a request.
only_answer() {
	local out=$BATS_TEST_TMPDIR/one.out
	raw_to "$out" 5 "$1$LAST" || { echo "held open: $1" >&2; return 1; }
	LENIENT_BODY=1 split_responses "$out"
	if [[ $NRESP -ne 1 || $(rstatus 1) != "$2" ]] ||
	    [[ $(rhdr 1 Connection) != close ]] || grep -q 'body{}' "$out"; then
		echo "want one $2 and a close for: $1" >&2
		cat -A "$out" >&2
		return 1
	fi
}

# in_sync BYTES CODE: BYTES are answered with CODE and the connection
# stays in sync: $LAST behind them is answered on its own.
in_sync() {
	local out=$BATS_TEST_TMPDIR/sync.out
	raw_to "$out" 5 "$1$LAST" || { echo "held open: $1" >&2; return 1; }
	LENIENT_BODY=1 split_responses "$out"
	if [[ $NRESP -ne 2 || $(rstatus 1) != "$2" || $(rbody 2) != 'body{}' ]]; then
		echo "want $2 then the next request for: $1" >&2
		cat -A "$out" >&2
		return 1
	fi
}

# ms: a monotonic-enough clock in milliseconds.
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# trickle FD STRING CHUNK DELAY: write STRING to FD, CHUNK bytes every
# DELAY seconds, in the background (TRICKLE_PIDS).  It stops by itself at
# the end of STRING or when the server closes (EPIPE).
TRICKLE_PIDS=()
trickle() {
	local fd=$1 s=$2 chunk=$3 delay=$4
	( trap 'exit 0' PIPE
	  for ((i = 0; i < ${#s}; i += chunk)); do
		printf '%b' "${s:i:chunk}" >&"$fd" 2>/dev/null || exit 0
		sleep "$delay"
	  done ) 3>&- &
	TRICKLE_PIDS+=($!)
}

extra_teardown() {
	local p
	for p in "${TRICKLE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${TRICKLE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# --- parser strictness (RFC 9110, RFC 9112) ---------------------------------

# CODE<TAB>request: CODE >= 400 must be the only answer, followed by a
# close; a lower CODE must leave the connection in sync.
TABLE='200	GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
200	GET /hello.txt HTTP/1.1\r\nHost: a.b-c:8080\r\n\r\n
200	GET /hello.txt HTTP/1.1\r\nHost: [::1]:80\r\n\r\n
200	GET /hello.txt HTTP/1.1\r\nHost:\r\n\r\n
200	\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
200	GET /hello.txt HTTP/1.1\nHost: x\n\n
200	GET http://x/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
200	GET HTTPS://other:1/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
200	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX:\t v \t\r\n\r\n
200	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n
200	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde
204	OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n
404	GET /back%5C..%5Chello.txt HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /hello.txt\r\n
400	GET /hello.txt HTTP/1.1 \r\nHost: x\r\n\r\n
400	GET  /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /hello.txt http/1.1\r\nHost: x\r\n\r\n
400	GET /hello.txt HTTP/1.10\r\nHost: x\r\n\r\n
400	\rGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
505	GET /hello.txt HTTP/2.0\r\nHost: x\r\n\r\n
505	GET /hello.txt HTTP/0.9\r\n\r\n
505	PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n
501	BREW /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
501	get /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
405	PUT /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
400	GET * HTTP/1.1\r\nHost: x\r\n\r\n
400	HEAD * HTTP/1.1\r\nHost: x\r\n\r\n
400	GET hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /hello.txt#f HTTP/1.1\r\nHost: x\r\n\r\n
400	GET http://u@x/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
400	GET http:///hello.txt HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x/y\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x y\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: u@x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x:port\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost : x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost\t: x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\n Host: x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: a\r\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX\0: b\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: \001\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nX(y): b\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1,1\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
400	GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n
501	GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n
400	GET /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
417	GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n
400	GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /% HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /%4 HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /hello.txt%00 HTTP/1.1\r\nHost: x\r\n\r\n
400	GET /a%0d%0aX:%201 HTTP/1.1\r\nHost: x\r\n\r\n
403	GET /%2e%2e%2fsecret HTTP/1.1\r\nHost: x\r\n\r\n'

@test "parser table: every rejection is answered and closed, every acceptance stays in sync" {
	local code req n=0
	start_server
	while IFS=$'\t' read -r code req; do
		n=$((n + 1))
		if (( code >= 400 )) && [[ $code != 403 && $code != 404 ]]; then
			only_answer "$req" "$code"
		else
			in_sync "$req" "$code"
		fi
	done <<<"$TABLE"
	(( n > 60 ))
	# A 403 or 404 is an answer to a sound request: it keeps the
	# connection.  A 400 from decoding the path (above) closes it.
}

@test "smuggling: CL.TE, TE.CL, duplicate CL, obfuscated TE: the hidden request is never answered" {
	start_server
	local hidden='GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n'
	# CL.TE: a front end using Content-Length would forward all of it.
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 43\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$hidden" 400
	# TE.CL
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n26\r\n$hidden\r\n0\r\n\r\n" 400
	# Two Content-Lengths: the front end may use either.
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n$hidden" 400
	# Obfuscated Transfer-Encoding next to a Content-Length.
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\nTransfer-Encoding : chunked\r\n\r\n$hidden" 400
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\nTransfer-Encoding: xchunked\r\n\r\n$hidden" 501
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n$hidden" 400
	only_answer "GET /hello.txt HTTP/1.0\r\nContent-Length: 38\r\nTransfer-Encoding: chunked\r\n\r\n$hidden" 400
	# A bare CR that a lenient parser would take for a line end.
	only_answer "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX: y\rContent-Length: 38\r\n\r\n$hidden" 400
}

@test "request bodies: Content-Length bodies are skipped in sync, chunked ones answered and closed" {
	local out=$BATS_TEST_TMPDIR/out
	start_server
	# A Content-Length body that looks like a request is skipped.
	in_sync 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n' 200
	! grep -q octet-stream "$BATS_TEST_TMPDIR/sync.out"
	# A chunked body is not decoded: answered, then the connection is
	# closed, so nothing inside the body is taken for a request.
	raw_to "$out" 5 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n24\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n$LAST"
	LENIENT_BODY=1 split_responses "$out"
	[[ $NRESP -eq 1 && $(rstatus 1) == 200 && $(rbody 1) == hello ]]
	[[ $(rhdr 1 Connection) == close ]]
	! grep -q 'octet-stream\|body{}' "$out"
}

@test "Expect: 100-continue: the final answer comes at once, the body is not awaited" {
	local out=$BATS_TEST_TMPDIR/out t0 t1
	start_server -o max_body_size=1k
	head -c 4096 /dev/zero > "$BATS_TEST_TMPDIR/data"
	# curl waits up to 1 s for a 100 before it sends the body anyway.
	run curl -s -m 5 -H 'Expect: 100-continue' --data-binary "@$BATS_TEST_TMPDIR/data" \
	    -X GET -w ' %{http_code} %{time_total}' "$(URL /hello.txt)" -H 'Content-Length: 500'
	[[ $output =~ ^hello$'\n'\ 200\ 0\.[0-8] ]] || { echo "$output"; false; }
	# Raw: no 100 Continue, the final status and Connection: close.
	t0=$(ms)
	raw_to "$out" 5 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 500\r\n\r\n'
	t1=$(ms)
	LENIENT_BODY=1 split_responses "$out"
	[[ $NRESP -eq 1 && $(rstatus 1) == 200 && $(rhdr 1 Connection) == close ]]
	! grep -q '100 Continue' "$out"
	(( t1 - t0 < 1000 ))
	# Too large: 413 before a byte of the body.
	run curl -s -m 5 -o /dev/null -H 'Expect: 100-continue' --data-binary "@$BATS_TEST_TMPDIR/data" \
	    -X GET -w '%{http_code} %{time_total}' "$(URL /hello.txt)"
	[[ $output =~ ^413\ 0\.[0-8] ]] || { echo "$output"; false; }
}

@test "percent-decoding: %2F is a slash, backslashes are file-name bytes, bad escapes 400" {
	make_docroot
	printf 'bs\n' > "$DOCROOT/a\\b.txt"
	start_server
	run curl -s --path-as-is "$(URL /dir%2Findex.html)"
	assert_output '<h1>dir</h1>'
	# Dot segments are removed after decoding: %2F cannot climb out.
	run curl -s -o /dev/null -w '%{http_code}' --path-as-is "$(URL /dir/..%2F..%2Fhello.txt)"
	assert_output 403
	# A backslash is not a separator, raw or encoded.
	in_sync 'GET /a\\b.txt HTTP/1.1\r\nHost: x\r\n\r\n' 200
	[[ $(rbody 1) == bs ]]
	in_sync 'GET /a%5cb.txt HTTP/1.1\r\nHost: x\r\n\r\n' 200
	in_sync 'GET /dir\\..\\hello.txt HTTP/1.1\r\nHost: x\r\n\r\n' 404
	only_answer 'GET /a%5 HTTP/1.1\r\nHost: x\r\n\r\n' 400
	only_answer 'GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n' 400
}

# --- limits ----------------------------------------------------------------

@test "limits: 414, 431 and 413 come at once, without the rest of the request" {
	local fd out=$BATS_TEST_TMPDIR/out t0 t1 long
	start_server -o max_request_line=256 -o max_header_line=128 \
	    -o max_header_size=1k -o max_headers=5 -o max_body_size=10 \
	    -o header_timeout=10s
	long=$(printf 'a%.0s' {1..300})
	for req in "GET /$long" \
	    "GET / HTTP/1.1\r\nHost: x\r\nX: $long" \
	    "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n" \
	    "GET / HTTP/1.1\r\nHost: x\r\nA: ${long:0:100}\r\nB: ${long:0:100}\r\nC: ${long:0:100}\r\nD: ${long:0:100}\r\nE: ${long:0:100}\r\nF: ${long:0:100}\r\nG: ${long:0:100}\r\nH: ${long:0:100}\r\nI: ${long:0:100}\r\nJ: ${long:0:100}" \
	    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123"; do
		# The client keeps the connection open and sends no more: the
		# answer must not wait for header_timeout.
		t0=$(ms)
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		printf '%b' "$req" >&"$fd"
		timeout 3 head -c 12 <&"$fd" > "$out" || true
		t1=$(ms)
		exec {fd}>&-
		[[ $(cat "$out") =~ ^HTTP/1.1\ (414|431|413) ]] || { echo "$req: $(cat "$out")"; false; }
		(( t1 - t0 < 1000 ))
	done
}

@test "max_header_line is its own limit, apart from max_request_line" {
	local long
	start_server -o max_request_line=512 -o max_header_line=100
	long=$(printf 'a%.0s' {1..200})
	# A 200-byte request line is fine (404), a 200-byte header line not.
	in_sync "GET /$long HTTP/1.1\r\nHost: x\r\n\r\n" 404
	only_answer "GET / HTTP/1.1\r\nHost: x\r\nX: $long\r\n\r\n" 431
	in_sync "GET / HTTP/1.1\r\nHost: x\r\nX: ${long:0:90}\r\n\r\n" 200
}

# --- slow clients ------------------------------------------------------------

# slow_head CHUNK DELAY STRING: trickle STRING on a new connection; sets
# ELAPSED (ms until the server closed) and the response in $OUT.
slow_head() {
	local fd t0
	OUT=$BATS_TEST_TMPDIR/slow.out
	t0=$(ms)
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	trickle "$fd" "$3" "$1" "$2"
	timeout 8 cat <&"$fd" > "$OUT" || true
	ELAPSED=$(( $(ms) - t0 ))
	exec {fd}>&-
}

@test "header_min_rate: a head arriving above the rate earns time, up to header_timeout_max" {
	start_server -o header_timeout=1s -o header_timeout_max=3s -o header_min_rate=50
	# 100 bytes/s, twice the rate: complete after about 1.5 s, past
	# header_timeout, and answered.
	slow_head 10 0.1 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Pad: $(printf 'p%.0s' {1..100})\r\nConnection: close\r\n\r\n"
	[[ $(head -n 1 "$OUT") == $'HTTP/1.1 200 OK\r' ]] || { cat -A "$OUT"; false; }
	(( ELAPSED > 1000 ))
	# The same rate, a head that never ends: 408 at header_timeout_max.
	slow_head 10 0.1 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Pad: $(printf 'p%.0s' {1..600})"
	[[ $(head -n 1 "$OUT") == $'HTTP/1.1 408 Request Timeout\r' ]] || { cat -A "$OUT"; false; }
	(( ELAPSED >= 2800 && ELAPSED < 4500 )) || { echo "$ELAPSED ms"; false; }
}

@test "header_min_rate: a head arriving below the rate gets 408 near header_timeout" {
	start_server -o header_timeout=1s -o header_timeout_max=3s -o header_min_rate=50
	# 4 bytes/s: each byte earns 20 ms.
	slow_head 1 0.25 "GET /hello.txt HTTP/1.1\r\nHost: x\r\n"
	[[ $(head -n 1 "$OUT") == $'HTTP/1.1 408 Request Timeout\r' ]] || { cat -A "$OUT"; false; }
	[[ $(sed -n 's/^Connection: //p' "$OUT") == $'close\r' ]]
	(( ELAPSED >= 900 && ELAPSED < 2500 )) || { echo "$ELAPSED ms"; false; }
}

@test "body_min_rate: a discarded body that stalls ends the connection" {
	local fd t0 elapsed out=$BATS_TEST_TMPDIR/out
	start_server -o header_timeout=1s -o body_min_rate=50
	t0=$(ms)
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789' >&"$fd"
	timeout 8 cat <&"$fd" > "$out" || true
	elapsed=$(( $(ms) - t0 ))
	exec {fd}>&-
	# Answered at once, then closed after 1 s + 10 bytes / 50 B/s.
	LENIENT_BODY=1 split_responses "$out"
	[[ $NRESP -eq 1 && $(rbody 1) == hello ]]
	(( elapsed >= 1000 && elapsed < 3000 )) || { echo "$elapsed ms"; false; }
}

@test "send_timeout: a client that stops reading a large file frees the worker" {
	local fd code
	make_docroot
	# More than the loopback socket buffers hold.
	head -c 16777216 /dev/zero > "$DOCROOT/huge.bin"
	WORKERS=1 start_server -o send_timeout=1s
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	sleep 0.2
	# The only worker is stuck in sendfile until send_timeout.
	code=$(curl -s -o /dev/null -m $((5 * ${TIME_FACTOR:-1})) -w '%{http_code} %{time_total}' "$(URL /hello.txt)")
	exec {fd}>&-
	[[ $code =~ ^200\ [0-3]\. ]] || { echo "$code"; false; }
}

@test "TCP_DEFER_ACCEPT: connections that send nothing never occupy a worker" {
	local fds=() fd i code
	WORKERS=1 start_server
	for i in 1 2 3 4 5; do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		fds+=("$fd")
	done
	code=$(curl -s -o /dev/null -m $((2 * ${TIME_FACTOR:-1})) -w '%{http_code} %{time_total}' "$(URL /hello.txt)")
	for fd in "${fds[@]}"; do exec {fd}>&-; done
	[[ $code =~ ^200\ 0\.[0-4] ]] || { echo "$code"; false; }
}

# slowloris N: N connections that trickle a head, one byte every 200 ms
# (5 bytes/s, a hundredth of header_min_rate), for 6 s at most.
slowloris() {
	local i fd
	for ((i = 0; i < $1; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		trickle "$fd" "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: $(printf 's%.0s' {1..30})" 1 0.2
		exec {fd}>&-
	done
	# The trickled heads are being read now (the titles say so); one
	# worker may hold all of them: each takes whom its event core names.
	wait_until 5 workers_reading 1
}

workers_reading() {
	[[ $(for w in $(worker_pids); do ps -o args= -p "$w"; done |
	    grep -c 'worker reading') -ge $1 ]]
}

@test "slowloris: 4 trickling heads and 2 workers, a normal request still gets 200 fast" {
	local code
	WORKERS=2 start_server -o header_timeout_busy=300ms
	slowloris 4
	# Workers drop heads slower than header_min_rate after
	# header_timeout_busy while clients wait: this one waits for at most
	# two rounds of 300 ms.
	code=$(curl -s -o /dev/null -m $((2 * ${TIME_FACTOR:-1})) -w '%{http_code} %{time_total}' "$(URL /hello.txt)")
	[[ $code =~ ^200\ [01]\. ]] || { echo "$code"; false; }
	[[ $(worker_count) -eq 2 ]]
}

@test "slowloris on full workers: a trickler's place goes to a waiting client after header_timeout_busy" {
	local code
	# Four tricklers fill both workers (two places each).
	WORKERS=2 start_server -o worker_connections=2 -o header_timeout_busy=300ms
	slowloris 4
	code=$(curl -s -o /dev/null -m $((2 * ${TIME_FACTOR:-1})) -w '%{http_code} %{time_total}' "$(URL /hello.txt)")
	[[ $code =~ ^200\ [01]\. ]] || { echo "$code"; false; }
}

@test "slowloris control: full workers with header_timeout_busy off keep their tricklers" {
	local code
	WORKERS=2 start_server -o worker_connections=2 -o header_timeout_busy=0
	slowloris 4
	code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$(URL /hello.txt)") || true
	[[ $code == 000 ]]
}

#!/usr/bin/env bats
# TLS (issue 15): tls listeners, certificates chosen by SNI, protocol
# versions and ALPN, session resumption shared by every worker (ticket
# keys from the master) across reloads, certificates renewed by a
# reload, the configuration's errors and warnings, what a TLS port does
# with plain HTTP, garbage and stalled handshakes, redirect_https, hsts,
# wss, the status page's TLS counters, and reloads under load.
# Certificates: t/tls-ca.sh, once per file; clients: curl, openssl
# s_client, t/tlsclient.py, python3-websockets, wrk.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).
# shellcheck disable=SC2030,SC2031

load helpers
load tls
bats_require_minimum_version 1.5.0

setup_file() {
	sh "$TOP_SRCDIR/t/tls-ca.sh" "$BATS_FILE_TMPDIR/certs"
	# WS_PYTHON for wss (its test fails without it, the others run).
	ws_python || true
}

setup() {
	make_docroot
	tls_certs "$BATS_FILE_TMPDIR/certs"
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	ALOG=$BATS_TEST_TMPDIR/access.log
	CLIENTS=()
}

extra_teardown() {
	local p
	for p in "${CLIENTS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}

# the worker pids, sorted, on one line
pids_now() { worker_pids | sort -n | tr '\n' ' '; }
none_of() { local p; for p in $1; do gone "$p" || return 1; done; }
reloaded() { log_has "reloaded: generation $1"; }
# logged N: the access log has N lines or more.
logged() { [[ $(grep -c . "$ALOG" 2>/dev/null) -ge $1 ]]; }
# established N: at least N connections to PORT are established.
established() {
	(( $(ss -Htn state established "( sport = :$PORT )" | wc -l) >= $1 ))
}

# json FILTER: jq FILTER of the status page (?json), fetched over TLS.
json() {
	command -v jq >/dev/null || fail "jq is not installed (package jq)"
	https '/server-status?json' | jq -e "$1"
}

# --- serving over TLS ------------------------------------------------------

@test "https: GET byte-exact, HEAD without a body, 404, the certificate verified" {
	tls_start "$(tls_default)"
	run https /hello.txt
	assert_success
	assert_output hello
	https /big.bin -o "$BATS_TEST_TMPDIR/big"
	cmp "$DOCROOT/big.bin" "$BATS_TEST_TMPDIR/big"
	# By name too (SAN DNS:localhost), with the chain verified by curl.
	run curl -sS -m 10 --cacert "$CERTS/ca.pem" \
	    --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/hello.txt"
	assert_output hello
	run https /nothing-here -o /dev/null -w '%{http_code}'
	assert_output 404
	# HEAD: the head with the length, and not one byte of body.
	local out=$BATS_TEST_TMPDIR/head.out
	printf 'HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	    timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" \
	    -CAfile "$CERTS/ca.pem" > "$out" 2>/dev/null || true
	run tr -d '\r' < "$out"
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'Content-Length: 1048576'
	# Everything after the blank line that ends the head: nothing.
	[[ $(sed '1,/^\r$/d' "$out" | wc -c) -eq 0 ]] ||
	    fail "HEAD had a body: $(cat -A "$out" | tail -n 3)"
	# A client that does not trust the CA refuses the server.
	run curl -sS -m 10 -o /dev/null "https://127.0.0.1:$PORT/hello.txt"
	assert_failure 60
}

@test "https: keep-alive, several requests on one connection and one handshake" {
	tls_start "$(tls_default)"
	local err=$BATS_TEST_TMPDIR/curl.err
	local out
	out=$(curl -sS -v -m 10 --cacert "$CERTS/ca.pem" \
	    "https://127.0.0.1:$PORT/hello.txt" "https://127.0.0.1:$PORT/style.css" \
	    "https://127.0.0.1:$PORT/dir/" 2> "$err")
	[[ $out == $'hello\nbody{}\n<h1>dir</h1>' ]] || fail "got: $out"
	grep -q 'Re-using existing connection' "$err" ||
	    fail "no connection re-used: $(cat "$err")"
	[[ $(grep -c 'SSL connection using' "$err") -eq 1 ]] ||
	    fail "more than one handshake: $(grep 'SSL connection' "$err")"
	# Three requests pipelined in one write, answered in order.
	local req=$BATS_TEST_TMPDIR/pipe.req
	out=$BATS_TEST_TMPDIR/pipe.out
	printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' > "$req"
	timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" \
	    -CAfile "$CERTS/ca.pem" < "$req" > "$out" 2>/dev/null || true
	split_responses "$out"
	[[ $NRESP -eq 3 ]]
	[[ $(cat "$BATS_TEST_TMPDIR/r.1.body") == hello ]]
	[[ $(cat "$BATS_TEST_TMPDIR/r.2.body") == 'body{}' ]]
	[[ $(cat "$BATS_TEST_TMPDIR/r.3.body") == hello ]]
}

@test "https: a 16 MiB file byte-exact, over TLS 1.2 and TLS 1.3" {
	head -c 16777216 /dev/urandom > "$DOCROOT/huge.bin"
	tls_start "$(tls_default)"
	https /huge.bin -o "$BATS_TEST_TMPDIR/huge.13" --tlsv1.3
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/huge.13"
	https /huge.bin -o "$BATS_TEST_TMPDIR/huge.12" --tlsv1.2 --tls-max 1.2
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/huge.12"
	# A range of it, from the middle.
	https /huge.bin -o "$BATS_TEST_TMPDIR/part" -r 10000000-10999999
	cmp <(tail -c +10000001 "$DOCROOT/huge.bin" | head -c 1000000) \
	    "$BATS_TEST_TMPDIR/part"
	# Python's ssl (another client) reads it to the end too.
	run tlsc --ca "$CERTS/ca.pem" get /huge.bin "$BATS_TEST_TMPDIR/huge.py" \
	    --close --timeout 10
	assert_output $'status 200\neof close_notify'
	cmp "$DOCROOT/huge.bin" "$BATS_TEST_TMPDIR/huge.py"
}

@test "an RSA 2048 certificate serves TLS 1.2 (ECDHE-RSA) and TLS 1.3" {
	tls_start 'listen 127.0.0.1:0 tls' "tls_certificate $CERTS/rsa.chain.pem" \
	    "tls_key $CERTS/rsa.key"
	run https /hello.txt
	assert_output hello
	run sc -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
	assert_success
	assert_line --partial 'New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256'
	run sc -tls1_3
	assert_success
	assert_line --regexp '^New, TLSv1.3, Cipher is TLS_'
	assert_line --partial 'Peer signature type: RSA-PSS'
}

@test "a key inside the certificate file is used when there is no tls_key" {
	tls_start 'listen 127.0.0.1:0 tls' \
	    "tls_certificate $CERTS/localhost.combined.pem"
	run https /hello.txt
	assert_output hello
}

# --- protocols and ALPN ----------------------------------------------------

@test "ALPN: http/1.1 is chosen over h2; no ALPN at all is fine too" {
	tls_start "$(tls_default)"
	run sc -alpn h2,http/1.1
	assert_success
	assert_line 'ALPN protocol: http/1.1'
	run sc -alpn http/1.1
	assert_line 'ALPN protocol: http/1.1'
	run sc
	assert_success
	assert_line 'No ALPN negotiated'
	# curl offers h2 first: it gets http/1.1, and an answer.
	local err=$BATS_TEST_TMPDIR/curl.err
	[[ $(https /hello.txt -v 2> "$err") == hello ]]
	grep -q 'ALPN.*accepted.*http/1.1' "$err" || fail "$(grep ALPN "$err")"
}

@test "TLS 1.2 and 1.3 work; TLS 1.1 and 1.0 are refused" {
	tls_start "$(tls_default)"
	run sc -tls1_2
	assert_success
	assert_line --regexp '^New, TLSv1.2, Cipher is ECDHE-ECDSA-'
	run sc -tls1_3
	assert_success
	assert_line --regexp '^New, TLSv1.3, Cipher is TLS_'
	# The client sends its TLS 1.1 (1.0) hello (security level 0 lets
	# it), the server refuses it: no cipher, no certificate.
	for v in tls1_1 tls1; do
		run sc "-$v" -cipher 'DEFAULT:@SECLEVEL=0'
		assert_failure
		assert_line 'New, (NONE), Cipher is (NONE)'
		assert_line 'no peer certificate available'
		refute_output --partial 'no protocols available'
		refute_output --regexp 'written 0 bytes'
	done
	# ...and the server is fine.
	run https /hello.txt
	assert_output hello
}

@test "tls_protocols TLSv1.3 refuses TLS 1.2; TLSv1.2 refuses TLS 1.3" {
	tls_start "$(tls_default)" 'tls_protocols TLSv1.3'
	run sc -tls1_3
	assert_success
	assert_line --regexp '^New, TLSv1.3, '
	run sc -tls1_2
	assert_failure
	assert_line 'New, (NONE), Cipher is (NONE)'
	run https /hello.txt --tlsv1.2 --tls-max 1.2 -o /dev/null
	assert_failure
	stop_server
	tls_start "$(tls_default)" 'tls_protocols TLSv1.2'
	run sc -tls1_2
	assert_success
	run sc -tls1_3
	assert_failure
	assert_line 'New, (NONE), Cipher is (NONE)'
	# Both, in any order, is the default.
	stop_server
	tls_start "$(tls_default)" 'tls_protocols TLSv1.3 TLSv1.2'
	run sc -tls1_2
	assert_success
	run sc -tls1_3
	assert_success
}

@test "no renegotiation: a TLS 1.2 client asking for one is refused, the server serves on" {
	tls_start "$(tls_default)"
	local d=$BATS_TEST_TMPDIR w
	# s_client renegotiates on a line "R"; its stdin held open (a FIFO)
	# until the server has answered.
	mkfifo "$d/sc.in"
	timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 \
	    -CAfile "$CERTS/ca.pem" < "$d/sc.in" > "$d/sc.out" 2>&1 3>&- &
	CLIENTS+=($!)
	exec {w}> "$d/sc.in"
	wait_until 5 grep -q '^New, TLSv1.2' "$d/sc.out"
	printf 'R\n' >&"$w"
	wait_until 5 grep -q 'RENEGOTIATING' "$d/sc.out"
	wait_until 5 grep -q 'no renegotiation' "$d/sc.out"
	exec {w}>&-
	run sc -tls1_2
	assert_success
	assert_line 'Compression: NONE'
	tls_serves
}

@test "tls_ciphers: only the TLS 1.2 suites listed are offered" {
	tls_start "$(tls_default)" 'tls_ciphers ECDHE-ECDSA-AES128-GCM-SHA256'
	run sc -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384
	assert_failure
	assert_line 'New, (NONE), Cipher is (NONE)'
	run sc -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384
	assert_success
	assert_line 'New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256'
	# TLS 1.3 suites are not this list's business.
	run sc -tls1_3
	assert_success
}

@test "cipher order: the server's decides for TLS 1.2; a client putting ChaCha20 first gets it with TLS 1.3" {
	local a128=ECDHE-ECDSA-AES128-GCM-SHA256 a256=ECDHE-ECDSA-AES256-GCM-SHA384
	tls_start "$(tls_default)" "tls_ciphers $a256:$a128"
	run sc -tls1_2 -cipher "$a128:$a256"
	assert_success
	assert_line "New, TLSv1.2, Cipher is $a256"
	stop_server
	tls_start "$(tls_default)" "tls_ciphers $a128:$a256"
	run sc -tls1_2 -cipher "$a256:$a128"
	assert_success
	assert_line "New, TLSv1.2, Cipher is $a128"
	# TLS 1.3: the client's ChaCha20 first wins, AES otherwise.
	run sc -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384
	assert_line 'New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256'
	run sc -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	assert_line 'New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384'
}

@test "access_log_tls: the protocol and cipher as a last quoted field, \"-\" for plain HTTP; off by default" {
	local p1 p2
	p1=$(pick_port)
	p2=$(pick_port)
	local base=("listen 127.0.0.1:$p1 tls" "listen 127.0.0.1:$p2"
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key"
	    "access_log $ALOG")
	tls_start "${base[@]}" 'access_log_tls on'
	https /hello.txt --tlsv1.3 -o /dev/null
	https /hello.txt --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 -o /dev/null
	curl -s -m 5 -o /dev/null "http://127.0.0.1:$p2/hello.txt"
	wait_until 5 logged 3
	run cat "$ALOG"
	assert_line --index 0 --regexp '" 200 6 "-" "curl/[^"]*" "TLSv1.3 TLS_AES_256_GCM_SHA384"$'
	assert_line --index 1 --regexp '" 200 6 "-" "curl/[^"]*" "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"$'
	assert_line --index 2 --regexp '" 200 6 "-" "curl/[^"]*" "-"$'
	# Off (the default): the Combined Log Format, nothing after the agent.
	local old
	old=$(pids_now)
	tls_conf "${base[@]}"
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	https /hello.txt -o /dev/null
	wait_until 5 logged 4
	run tail -n 1 "$ALOG"
	assert_output --regexp '" 200 6 "-" "curl/[^"]*"$'
}

# --- SNI ---------------------------------------------------------------------

@test "SNI: each name gets its certificate; no SNI or an unknown name gets the first" {
	tls_start "$(tls_default)" \
	    "tls_certificate $CERTS/a.test.chain.pem" "tls_key $CERTS/a.test.key" \
	    "tls_certificate $CERTS/b.test.chain.pem" "tls_key $CERTS/b.test.key" \
	    "tls_certificate $CERTS/wild.chain.pem" "tls_key $CERTS/wild.key"
	local name want
	while read -r name want; do
		run subject_for "$name"
		assert_output "subject=CN = $want"
	done <<-'EOF'
	a.test a.test
	b.test b.test
	- localhost
	localhost localhost
	unknown.test localhost
	x.w.test wild.w.test
	other.w.test wild.w.test
	a.x.w.test localhost
	w.test localhost
	EOF
	# curl checks each name against the certificate it gets.
	local n
	for n in a.test b.test x.w.test; do
		run curl -sS -m 10 --cacert "$CERTS/ca.pem" \
		    --resolve "$n:$PORT:127.0.0.1" "https://$n:$PORT/hello.txt"
		assert_success
		assert_output hello
	done
	# An unknown name gets the default certificate, which curl refuses.
	run curl -sS -m 10 --cacert "$CERTS/ca.pem" \
	    --resolve "unknown.test:$PORT:127.0.0.1" \
	    "https://unknown.test:$PORT/hello.txt"
	assert_failure 60
}

@test "SNI: names given on tls_certificate replace its subjectAltName" {
	tls_start "$(tls_default)" \
	    "tls_certificate $CERTS/a.test.chain.pem a.test" "tls_key $CERTS/a.test.key" \
	    "tls_certificate $CERTS/b.test.chain.pem c.test d.test" \
	    "tls_key $CERTS/b.test.key"
	local name want
	while read -r name want; do
		run subject_for "$name"
		assert_output "subject=CN = $want"
	done <<-'EOF'
	a.test a.test
	c.test b.test
	d.test b.test
	b.test localhost
	- localhost
	EOF
}

@test "SNI: names match whatever their case" {
	tls_start "$(tls_default)" \
	    "tls_certificate $CERTS/a.test.chain.pem" "tls_key $CERTS/a.test.key" \
	    "tls_certificate $CERTS/wild.chain.pem" "tls_key $CERTS/wild.key"
	run subject_for A.Test
	assert_output 'subject=CN = a.test'
	run subject_for X.W.TEST
	assert_output 'subject=CN = wild.w.test'
}

# --- session resumption --------------------------------------------------------

# resume_all PROTO N SESS: N connections resuming the session saved in
# SESS, each with a request; every one must report Reused.
resume_all() {
	local i out hs
	for i in $(seq 1 "$2"); do
		out=$(sc_get /hello.txt "-$1" -sess_in "$3")
		hs=$(handshake_of "$out")
		[[ $hs == "Reused, "* ]] || {
			echo "connection $i of $2 ($1): ${hs:-no handshake}" >&2
			return 1
		}
		grep -qx hello <<<"$out" || { echo "connection $i: no body" >&2; return 1; }
	done
}

@test "session resumption works on every worker (ticket keys shared), TLS 1.2 and 1.3" {
	WORKERS=2 tls_start "$(tls_default)" 'status_path /server-status'
	local v out
	for v in tls1_3 tls1_2; do
		out=$(sc_get /hello.txt "-$v" -sess_out "$BATS_TEST_TMPDIR/$v.sess")
		[[ $(handshake_of "$out") == "New, TLSv1.${v#tls1_}, "* ]] ||
		    fail "first connection: $(handshake_of "$out")"
		[[ -s $BATS_TEST_TMPDIR/$v.sess ]]
		resume_all "$v" 12 "$BATS_TEST_TMPDIR/$v.sess"
	done
	# The 26 requests were spread over both workers (accept(2) wakes the
	# longest waiting one): each resumed sessions it had not made.
	json '[.workers[] | select(.requests >= 5)] | length == 2' ||
	    fail "$(https '/server-status?json')"
}

@test "session resumption survives a reload: a session from generation 1 resumes on generation 2" {
	WORKERS=2 tls_start "$(tls_default)"
	local v out old
	for v in tls1_3 tls1_2; do
		out=$(sc_get /hello.txt "-$v" -sess_out "$BATS_TEST_TMPDIR/$v.sess")
		[[ $(handshake_of "$out") == New,* ]]
	done
	old=$(pids_now)
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	for v in tls1_3 tls1_2; do
		resume_all "$v" 6 "$BATS_TEST_TMPDIR/$v.sess"
	done
}

@test "session resumption survives a binary upgrade (USR2): the new master shares the old keys" {
	local pidf=$BATS_TEST_TMPDIR/preforkd.pid
	WORKERS=2 tls_start "$(tls_default)" "pidfile $pidf"
	local v out old_master=$SERVER_PID
	for v in tls1_3 tls1_2; do
		out=$(sc_get /hello.txt "-$v" -sess_out "$BATS_TEST_TMPDIR/$v.sess")
		[[ $(handshake_of "$out") == New,* ]]
	done
	kill -USR2 "$SERVER_PID"
	wait_until 10 log_has 'upgrade: new master [0-9]* is serving'
	wait_until 15 gone "$old_master"
	SERVER_PID=$(cat "$pidf")
	[[ $SERVER_PID != "$old_master" ]]
	wait_until 5 worker_count_is 2
	for v in tls1_3 tls1_2; do
		resume_all "$v" 6 "$BATS_TEST_TMPDIR/$v.sess"
	done
}

# lifetime_hint OUTPUT: the session ticket lifetime hint s_client shows.
lifetime_hint() {
	sed -n 's/.*session ticket lifetime hint: \([0-9]*\).*/\1/p' <<<"$1" | head -n 1
}

@test "tls_ticket_rotate: from 1m to 24h; a ticket's lifetime hint is two rotations" {
	local tls=('listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem"
	    "tls_key $CERTS/localhost.key")
	local bad
	for bad in 59s 25h 0 soon; do
		printf '%s\n' "root $DOCROOT" "${tls[@]}" "tls_ticket_rotate $bad" > "$CONF"
		run "$PREFORKD" -t -c "$CONF"
		assert_failure 1
		assert_output --regexp "^$CONF:5: tls_ticket_rotate"
	done
	tls_start "$(tls_default)" 'tls_ticket_rotate 1m'
	local out
	out=$(sc_get /hello.txt -tls1_3)
	[[ $(lifetime_hint "$out") == 120 ]] || fail "hint: $(grep -i 'lifetime' <<<"$out")"
	out=$(sc_get /hello.txt -tls1_2)
	[[ $(lifetime_hint "$out") == 120 ]] || fail "hint: $(grep -i 'lifetime' <<<"$out")"
	stop_server
	# The default, 1h.
	tls_start "$(tls_default)"
	out=$(sc_get /hello.txt -tls1_3)
	[[ $(lifetime_hint "$out") == 7200 ]] || fail "hint: $(grep -i 'lifetime' <<<"$out")"
}

# --- certificates and reloads ----------------------------------------------

@test "reload: a renewed certificate is served by the new generation" {
	cp "$CERTS/localhost.chain.pem" "$BATS_TEST_TMPDIR/cur.pem"
	cp "$CERTS/localhost.key" "$BATS_TEST_TMPDIR/cur.key"
	WORKERS=2 tls_start 'listen 127.0.0.1:0 tls' \
	    "tls_certificate $BATS_TEST_TMPDIR/cur.pem" \
	    "tls_key $BATS_TEST_TMPDIR/cur.key"
	run serial_for localhost
	assert_output 'serial=1001'
	local old i
	old=$(pids_now)
	cp "$CERTS/localhost2.chain.pem" "$BATS_TEST_TMPDIR/cur.pem"
	cp "$CERTS/localhost2.key" "$BATS_TEST_TMPDIR/cur.key"
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	for i in 1 2 3 4; do
		run subject_for localhost
		assert_output 'subject=CN = localhost renewed'
		run serial_for localhost
		assert_output 'serial=1002'
	done
	tls_serves
}

@test "reload: a key that does not match fails, names the file, and the old certificate keeps serving" {
	cp "$CERTS/localhost.chain.pem" "$BATS_TEST_TMPDIR/cur.pem"
	cp "$CERTS/localhost.key" "$BATS_TEST_TMPDIR/cur.key"
	WORKERS=2 tls_start 'listen 127.0.0.1:0 tls' \
	    "tls_certificate $BATS_TEST_TMPDIR/cur.pem" \
	    "tls_key $BATS_TEST_TMPDIR/cur.key"
	local old
	old=$(pids_now)
	# A renewed certificate with the old key: they do not match.
	cp "$CERTS/localhost2.chain.pem" "$BATS_TEST_TMPDIR/cur.pem"
	kill -HUP "$SERVER_PID"
	wait_until 5 log_has 'reload failed: '
	local line
	line=$(grep 'reload failed: ' "$SERVER_LOG")
	# FILE:LINE of the certificate (4) or of its key (5).
	[[ $line =~ reload\ failed:\ $CONF:[45]:\  ]] || fail "got: $line"
	[[ $line == *"$BATS_TEST_TMPDIR/cur."* ]] || fail "no file named: $line"
	run ! reloaded 2
	[[ $(pids_now) == "$old" ]]
	run subject_for localhost
	assert_output 'subject=CN = localhost'
	tls_serves
	# A key file that is no key at all, and one that is missing: the same.
	cp "$CERTS/localhost.chain.pem" "$BATS_TEST_TMPDIR/cur.pem"
	printf 'not a key\n' > "$BATS_TEST_TMPDIR/cur.key"
	kill -HUP "$SERVER_PID"
	failures() { [[ $(grep -c 'reload failed: ' "$SERVER_LOG") -ge $1 ]]; }
	wait_until 5 failures 2
	rm "$BATS_TEST_TMPDIR/cur.key"
	kill -HUP "$SERVER_PID"
	wait_until 5 failures 3
	[[ $(pids_now) == "$old" ]]
	tls_serves
	# Put right, the reload goes through.
	cp "$CERTS/localhost2.chain.pem" "$BATS_TEST_TMPDIR/cur.pem"
	cp "$CERTS/localhost2.key" "$BATS_TEST_TMPDIR/cur.key"
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	run subject_for localhost
	assert_output 'subject=CN = localhost renewed'
}

@test "reload turns a plain listener into a TLS one on the same port, and back" {
	local p
	p=$(pick_port)
	tls_conf "listen 127.0.0.1:$p"
	CONF_ONLY=1 LISTEN=127.0.0.1:$p start_server -c "$CONF"
	PORT=$p
	[[ $(curl -s -m 5 "http://127.0.0.1:$p/hello.txt") == hello ]]
	local old
	old=$(pids_now)
	tls_conf "listen 127.0.0.1:$p tls" "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/localhost.key"
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	tls_serves
	run tlsc plain --timeout 5
	assert_line --index 0 --partial 'HTTP/1.1 400'
	old=$(pids_now)
	tls_conf "listen 127.0.0.1:$p"
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 3
	wait_until 5 none_of "$old"
	[[ $(curl -s -m 5 "http://127.0.0.1:$p/hello.txt") == hello ]]
}

@test "keys are read by the master: workers running as nobody serve a key only root can read" {
	[[ $(id -u) -eq 0 ]] || skip "needs root (to run the workers as nobody)"
	unprivileged_setup
	# $BATS_TEST_TMPDIR is root's alone (0700): nobody cannot read there.
	cp "$CERTS/localhost.chain.pem" "$CERTS/localhost.key" "$BATS_TEST_TMPDIR/"
	chmod 600 "$BATS_TEST_TMPDIR/localhost.key"
	DOCROOT=$UNPRIV_DIR/www tls_start 'user nobody' 'listen 127.0.0.1:0 tls' \
	    "tls_certificate $BATS_TEST_TMPDIR/localhost.chain.pem" \
	    "tls_key $BATS_TEST_TMPDIR/localhost.key"
	local w
	for w in $(worker_pids); do
		[[ $(ps -o user= -p "$w" | tr -d ' ') == nobody ]]
	done
	run ! as_unprivileged cat "$BATS_TEST_TMPDIR/localhost.key"
	tls_serves
	# A reload reads them again (the master is still root).
	cp "$CERTS/localhost2.chain.pem" "$BATS_TEST_TMPDIR/localhost.chain.pem"
	cp "$CERTS/localhost2.key" "$BATS_TEST_TMPDIR/localhost.key"
	local old
	old=$(pids_now)
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	run subject_for localhost
	assert_output 'subject=CN = localhost renewed'
	tls_serves
}

# --- configuration: -t and start-up --------------------------------------------

# check LINE...: preforkd -t on a configuration of the root and LINEs
# (line 2 is the first LINE).
check() {
	printf '%s\n' "root $DOCROOT" "$@" > "$CONF"
	run "$PREFORKD" -t -c "$CONF"
}

@test "-t: a key that does not match its certificate is FILE:LINE: and exit 1" {
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/other.key"
	assert_failure 1
	assert_output --regexp "^$CONF:[34]: "
	[[ ${#lines[@]} -eq 1 ]] || fail "more than one line: $output"
	refute_output --partial 'configuration OK'
	# No tls_key, and no key in the certificate's file.
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem"
	assert_failure 1
	assert_output --regexp "^$CONF:3: "
	# The certificate file with its key in it: fine.
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.combined.pem"
	assert_success
	assert_output 'configuration OK'
	# The right key: fine, not a word more.
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/localhost.key"
	assert_success
	assert_output 'configuration OK'
}

@test "-t: a tls listener without a certificate, a missing or unreadable file are FILE:LINE: and exit 1" {
	check 'listen 127.0.0.1:8443 tls'
	assert_failure 1
	assert_output --regexp "^$CONF:2: "
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $BATS_TEST_TMPDIR/missing.pem"
	assert_failure 1
	assert_output --regexp "^$CONF:3: .*missing\.pem: No such file or directory"
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $BATS_TEST_TMPDIR/missing.key"
	assert_failure 1
	assert_output --regexp "^$CONF:4: .*missing\.key"
	# A file that is no certificate.
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $DOCROOT/hello.txt" \
	    "tls_key $CERTS/localhost.key"
	assert_failure 1
	assert_output --regexp "^$CONF:3: "
	# tls_key with no tls_certificate before it.
	check 'listen 127.0.0.1:8443 tls' "tls_key $CERTS/localhost.key" \
	    "tls_certificate $CERTS/localhost.chain.pem"
	assert_failure 1
	assert_output --regexp "^$CONF:3: "
	# Certificates without a tls listener are no error, but checked.
	check 'listen 127.0.0.1:8080' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/localhost.key"
	assert_success
	check 'listen 127.0.0.1:8080' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/other.key"
	assert_failure 1
	assert_output --regexp "^$CONF:4: .*does not match"
	# An encrypted key: said so, never a pass phrase asked for.
	openssl pkey -in "$CERTS/localhost.key" -aes256 -passout pass:secret \
	    -out "$BATS_TEST_TMPDIR/enc.key" 2>/dev/null
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $BATS_TEST_TMPDIR/enc.key" < /dev/null
	assert_failure 1
	assert_output --regexp "^$CONF:4: .*encrypted key .* is not supported"
	refute_output --partial 'pass phrase:'
}

@test "-t: hsts directives once each; redirect_https needs a tls listener with a port" {
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.combined.pem" \
	    'hsts 1y preload preload'
	assert_failure 1
	assert_output --regexp "^$CONF:4: hsts: 'preload' .*each once"
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.combined.pem" \
	    'hsts 1y includeSubDomains preload'
	assert_success
	# A bare port is a tls listener like any (nothing is bound by -t).
	check 'listen 8443 tls' 'listen 127.0.0.1:8080 redirect_https' \
	    "tls_certificate $CERTS/localhost.combined.pem"
	assert_success
	check 'listen 127.0.0.1:0 tls' 'listen 127.0.0.1:8080 redirect_https' \
	    "tls_certificate $CERTS/localhost.combined.pem"
	assert_failure 1
	assert_output --regexp "^$CONF:3: .*with a port of its own"
}

@test "-t: up to 16 certificates; the 17th is FILE:LINE: and exit 1" {
	local cfg=('listen 127.0.0.1:8443 tls') i
	for i in $(seq 1 16); do
		cfg+=("tls_certificate $CERTS/localhost.chain.pem n$i.test"
		    "tls_key $CERTS/localhost.key")
	done
	check "${cfg[@]}"
	assert_success
	assert_output 'configuration OK'
	check "${cfg[@]}" "tls_certificate $CERTS/a.test.chain.pem" \
	    "tls_key $CERTS/a.test.key"
	assert_failure 1
	assert_output --regexp "^$CONF:35: tls_certificate"
}

@test "-t: tls_protocols takes TLSv1.2 and TLSv1.3 only; listen options in any order" {
	local tls=("tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key")
	check 'listen 127.0.0.1:8443 tls' "${tls[@]}" 'tls_protocols TLSv1.1'
	assert_failure 1
	assert_output --regexp "^$CONF:5: "
	check 'listen 127.0.0.1:8443 tls' "${tls[@]}" 'tls_protocols TLSv1.2 SSLv3'
	assert_failure 1
	assert_output --regexp "^$CONF:5: "
	check 'listen 127.0.0.1:8443 tls' "${tls[@]}" 'tls_protocols TLSv1.3'
	assert_success
	check 'listen 127.0.0.1:8443 tls' "${tls[@]}" 'tls_handshake_timeout soon'
	assert_failure 1
	assert_output --regexp "^$CONF:5: "
	check 'listen 127.0.0.1:8443 tls proxy_protocol' "${tls[@]}" \
	    'proxy_trusted 127.0.0.1'
	assert_success
	check 'listen 127.0.0.1:8443 proxy_protocol tls' "${tls[@]}" \
	    'proxy_trusted 127.0.0.1'
	assert_success
	check 'listen 127.0.0.1:8443 redirect_https' 'listen 127.0.0.1:8444 tls' "${tls[@]}"
	assert_success
	check 'listen 127.0.0.1:8443 tls' "${tls[@]}" 'hsts 24h includeSubDomains preload'
	assert_success
	check 'listen 127.0.0.1:8443 tls' "${tls[@]}" 'hsts 24h everywhere'
	assert_failure 1
	assert_output --regexp "^$CONF:5: "
}

@test "-t: a certificate expiring within 14 days, an incomplete chain: FILE:LINE: warning, exit 0" {
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/soon.chain.pem" \
	    "tls_key $CERTS/soon.key"
	assert_success
	assert_line --regexp "$CONF:3: warning: .*soon\.chain\.pem"
	assert_line 'configuration OK'
	# The leaf alone: its issuer is not in the file nor the system store.
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.pem" \
	    "tls_key $CERTS/localhost.key"
	assert_success
	assert_line --regexp "$CONF:3: warning: .*localhost\.pem"
	assert_line 'configuration OK'
	# The same leaf with its CA: not a word.
	check 'listen 127.0.0.1:8443 tls' "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/localhost.key"
	assert_success
	assert_output 'configuration OK'
}

@test "start-up: a bad key exits 1 before binding or forking; a warning does not stop it" {
	local p
	p=$(pick_port)
	printf '%s\n' "root $DOCROOT" "listen 127.0.0.1:$p tls" \
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/other.key" \
	    > "$CONF"
	run timeout 10 "$PREFORKD" -f -c "$CONF"
	assert_failure 1
	assert_output --regexp "$CONF:[34]: "
	refute_output --partial 'listening on'
	refute_output --partial 'started with'
	refute_output --regexp 'worker\[[0-9]+\]'
	port_refuses "$p"
	# An expiring certificate: the warning, then it serves.
	tls_start 'listen 127.0.0.1:0 tls' "tls_certificate $CERTS/soon.chain.pem" \
	    "tls_key $CERTS/soon.key"
	log_has "$CONF:4: warning: "
	tls_serves
}

# --- what a TLS port does with anything else -------------------------------

@test "bad input: plain HTTP gets a plain 400; garbage is closed; stalled handshakes end at tls_handshake_timeout" {
	WORKERS=2 tls_start "$(tls_default)" 'tls_handshake_timeout 1s'
	local before
	before=$(pids_now)
	run tlsc plain --timeout 5
	assert_success
	assert_line --index 0 'HTTP/1.1 400 Bad Request'
	assert_line --regexp '^closed after [0-9]+ ms$'
	# Garbage, and a handshake record of nonsense: closed at once (long
	# before the handshake's 1 s), and no HTTP answer.
	local mode ms
	for mode in 'garbage 3000' 'record 512'; do
		# shellcheck disable=SC2086 # the mode and its argument
		run tlsc $mode --timeout 5
		assert_success
		refute_output --partial 'HTTP/'
		ms=$(sed -n 's/^closed after \([0-9]*\) ms$/\1/p' <<<"$output")
		[[ -n $ms ]] && (( ms < 800 )) || fail "$mode: $output"
	done
	# Half a ClientHello, twice at once: each closed after about 1 s.
	local i c
	for i in 1 2; do
		tlsc half --timeout 10 > "$BATS_TEST_TMPDIR/half$i.out" 3>&- &
		CLIENTS+=($!)
	done
	for c in "${CLIENTS[@]}"; do wait "$c"; done
	for i in 1 2; do
		ms=$(sed -n 's/^closed after \([0-9]*\) ms$/\1/p' "$BATS_TEST_TMPDIR/half$i.out")
		[[ -n $ms ]] && (( ms >= 900 && ms < 1000 + 2000 * ${TIME_FACTOR:-1} )) ||
		    fail "half $i: $(cat "$BATS_TEST_TMPDIR/half$i.out")"
	done
	# No worker died of any of it, and the server serves.
	[[ $(pids_now) == "$before" ]]
	tls_serves
	run sc -tls1_2
	assert_success
}

@test "stalled handshakes do not hold the worker; a silent client is closed by the handshake's bound too" {
	WORKERS=1 tls_start "$(tls_default)" 'tls_handshake_timeout 5s' \
	    'header_timeout 60s'
	# Nothing at all: the kernel keeps the connection until it has data
	# (TCP_DEFER_ACCEPT, 10 s; the connection reaches the worker with
	# the SYN-ACK retransmitted at 15 s), then tls_handshake_timeout
	# ends it; header_timeout (60 s) would be far later.
	tlsc silent --timeout 40 > "$BATS_TEST_TMPDIR/silent.out" 3>&- &
	local silent=$!
	CLIENTS+=("$silent")
	tlsc half --timeout 20 > "$BATS_TEST_TMPDIR/half1.out" 3>&- &
	CLIENTS+=($!)
	tlsc half --timeout 20 > "$BATS_TEST_TMPDIR/half2.out" 3>&- &
	CLIENTS+=($!)
	wait_until 5 established 2
	# One worker, two stalled handshakes on it: a third client is served
	# at once, and again.
	local t0
	t0=$(date +%s%N)
	tls_serves
	run sc -tls1_2
	assert_success
	(( $(date +%s%N) - t0 < 2000000000 * ${TIME_FACTOR:-1} ))
	alive "${CLIENTS[1]}"
	alive "${CLIENTS[2]}"
	wait "$silent"
	local ms
	ms=$(sed -n 's/^closed after \([0-9]*\) ms$/\1/p' "$BATS_TEST_TMPDIR/silent.out")
	[[ -n $ms ]] && (( ms >= 5000 && ms < 30000 * ${TIME_FACTOR:-1} )) ||
	    fail "silent: $(cat "$BATS_TEST_TMPDIR/silent.out")"
}

# full_of_stalled_handshakes: two half ClientHellos, the two places of
# the one worker, until the server closes them.
full_of_stalled_handshakes() {
	local i
	for i in 1 2; do
		tlsc half --timeout 40 > "$BATS_TEST_TMPDIR/half$i.out" 3>&- &
		CLIENTS+=($!)
	done
	wait_until 5 established 2
}

@test "header_timeout_busy: a full worker gives a stalled handshake's place to a waiting client" {
	WORKERS=1 tls_start "$(tls_default)" 'worker_connections 2' \
	    'header_timeout_busy 300ms' 'tls_handshake_timeout 30s'
	full_of_stalled_handshakes
	local code
	code=$(https /hello.txt -o /dev/null -m $((3 * ${TIME_FACTOR:-1})) \
	    -w '%{http_code} %{time_total}') || true
	[[ $code =~ ^200\ [01]\. ]] || fail "got: $code"
	# One of the two was closed for it.
	evicted() { grep -q '^closed after' "$BATS_TEST_TMPDIR/half1.out" ||
	    grep -q '^closed after' "$BATS_TEST_TMPDIR/half2.out"; }
	wait_until 2 evicted
}

@test "header_timeout_busy control: off, the stalled handshakes keep their places" {
	WORKERS=1 tls_start "$(tls_default)" 'worker_connections 2' \
	    'header_timeout_busy 0' 'tls_handshake_timeout 30s'
	full_of_stalled_handshakes
	local code
	code=$(https /hello.txt -o /dev/null -m 2 -w '%{http_code}' 2>/dev/null) || true
	[[ $code == 000 ]] || fail "got: $code"
}

@test "PROXY protocol on a tls listener: the header, then the handshake; the source is logged" {
	tls_start 'listen 127.0.0.1:0 tls proxy_protocol' \
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key" \
	    'proxy_trusted 127.0.0.1' "access_log $ALOG"
	run tlsc --ca "$CERTS/ca.pem" --proxy-v1 192.0.2.7:4000 get /hello.txt \
	    "$BATS_TEST_TMPDIR/body" --close --timeout 10
	assert_output $'status 200\neof close_notify'
	[[ $(cat "$BATS_TEST_TMPDIR/body") == hello ]]
	wait_until 5 logged 1
	[[ $(cut -d' ' -f1 "$ALOG") == 192.0.2.7 ]] || fail "$(cat "$ALOG")"
}

# --- redirect_https and hsts ---------------------------------------------------

@test "redirect_https: 301 to https://HOST:TLSPORT/path?query; health_path answered; followed by curl" {
	local p1 p2
	p1=$(pick_port)
	p2=$(pick_port)
	tls_start "listen 127.0.0.1:$p1 redirect_https" "listen 127.0.0.1:$p2 tls" \
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key" \
	    'health_path /healthz'
	run curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' \
	    -H "Host: example.org:$p1" "http://127.0.0.1:$p1/dir/x.txt?a=1&b=%20"
	assert_output "301 https://example.org:$p2/dir/x.txt?a=1&b=%20"
	run curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' \
	    -H 'Host: example.org' "http://127.0.0.1:$p1/"
	assert_output "301 https://example.org:$p2/"
	# HEAD is redirected too (and files that exist).
	run curl -s -m 5 -I -o /dev/null -w '%{http_code} %{redirect_url}' \
	    -H 'Host: example.org' "http://127.0.0.1:$p1/hello.txt"
	assert_output "301 https://example.org:$p2/hello.txt"
	run curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$p1/healthz"
	assert_output $'ok\n 200'
	# Followed: curl lands on the TLS port and gets the file.
	run curl -sS -m 10 -L --cacert "$CERTS/ca.pem" \
	    --resolve "localhost:$p1:127.0.0.1" --resolve "localhost:$p2:127.0.0.1" \
	    "http://localhost:$p1/hello.txt"
	assert_output hello
	# The TLS port itself is not redirected.
	PORT=$p2
	run https /hello.txt -o /dev/null -w '%{http_code}'
	assert_output 200
}

@test "redirect_https to a tls listener on 443: the port is left out" {
	[[ $(id -u) -eq 0 ]] || skip "needs root to bind port 443"
	port_refuses 443 || skip "something listens on 127.0.0.1:443"
	local p1
	p1=$(pick_port)
	tls_start "listen 127.0.0.1:$p1 redirect_https" 'listen 127.0.0.1:443 tls' \
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key"
	run curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' \
	    -H "Host: example.org:$p1" "http://127.0.0.1:$p1/a/b?c"
	assert_output '301 https://example.org/a/b?c'
}

@test "hsts: Strict-Transport-Security over TLS only, on every response; off by default" {
	local p1 p2 p3
	p1=$(pick_port)
	p2=$(pick_port)
	p3=$(pick_port)
	local base=("listen 127.0.0.1:$p1" "listen 127.0.0.1:$p2 tls"
	    "listen 127.0.0.1:$p3 redirect_https"
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key")
	tls_start "${base[@]}" 'hsts 24h includeSubDomains preload'
	PORT=$p2
	local hdr=$BATS_TEST_TMPDIR/hdr
	https /hello.txt -o /dev/null -D "$hdr"
	tr -d '\r' < "$hdr" | grep -qx 'Strict-Transport-Security: max-age=86400; includeSubDomains; preload' ||
	    fail "$(cat "$hdr")"
	https /nothing -o /dev/null -D "$hdr"
	grep -q '^HTTP/1.1 404' "$hdr"
	tr -d '\r' < "$hdr" | grep -qx 'Strict-Transport-Security: max-age=86400; includeSubDomains; preload'
	# Never over plain HTTP.
	curl -s -m 5 -o /dev/null -D "$hdr" "http://127.0.0.1:$p1/hello.txt"
	grep -q '^HTTP/1.1 200' "$hdr"
	run ! grep -qi '^Strict-Transport-Security' "$hdr"
	# Nor on the redirect to https (RFC 6797 7.2).
	curl -s -m 5 -o /dev/null -D "$hdr" "http://127.0.0.1:$p3/hello.txt"
	grep -q '^HTTP/1.1 301' "$hdr"
	run ! grep -qi '^Strict-Transport-Security' "$hdr"
	# The duration alone; then none at all (the default).
	local old
	old=$(pids_now)
	tls_conf "${base[@]}" 'hsts 1h'
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 2
	wait_until 5 none_of "$old"
	https /hello.txt -o /dev/null -D "$hdr"
	tr -d '\r' < "$hdr" | grep -qx 'Strict-Transport-Security: max-age=3600' ||
	    fail "$(cat "$hdr")"
	old=$(pids_now)
	tls_conf "${base[@]}"
	kill -HUP "$SERVER_PID"
	wait_until 5 reloaded 3
	wait_until 5 none_of "$old"
	https /hello.txt -o /dev/null -D "$hdr"
	grep -q '^HTTP/1.1 200' "$hdr"
	run ! grep -qi '^Strict-Transport-Security' "$hdr"
}

@test "redirect_https: an IPv6 literal Host keeps its brackets, loses its port" {
	local p1 p2
	p1=$(pick_port)
	p2=$(pick_port)
	tls_start "listen 127.0.0.1:$p1 redirect_https" "listen 127.0.0.1:$p2 tls" \
	    "tls_certificate $CERTS/localhost.chain.pem" "tls_key $CERTS/localhost.key"
	run curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' \
	    -H "Host: [2001:db8::1]:$p1" "http://127.0.0.1:$p1/x"
	assert_output "301 https://[2001:db8::1]:$p2/x"
	run curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' \
	    -H 'Host: [2001:db8::1]' "http://127.0.0.1:$p1/x"
	assert_output "301 https://[2001:db8::1]:$p2/x"
}

# --- memory and slow clients ----------------------------------------------------

@test "a slow reader of a huge file over TLS: the worker's memory stays bounded, the bytes exact" {
	buffer_proof_file "$DOCROOT/endless.bin"
	WORKERS=1 tls_start "$(tls_default)"
	local w out=$BATS_TEST_TMPDIR/part
	w=$(worker_pids)
	# 64 MiB of it at 16 MB/s, through a 4 s bound: at most its first
	# 64 MiB, all zeros.
	curl -s --cacert "$CERTS/ca.pem" -r 0-67108863 --limit-rate 16M -o "$out" \
	    "https://127.0.0.1:$PORT/endless.bin" 3>&- &
	local dl=$!
	CLIENTS+=("$dl")
	big_enough() { [[ $(stat -c %s "$out" 2>/dev/null || echo 0) -ge 8388608 ]]; }
	wait_until 10 rss_watch "$w" big_enough
	rss_sample "$w"
	rss_bounded
	wait "$dl"
	cmp "$out" <(head -c 67108864 /dev/zero)
}

# --- WebSocket over TLS --------------------------------------------------------

@test "wss: a session over TLS, a round trip, a client close 1000, then 1001 on stop" {
	[[ -n ${WS_PYTHON:-} ]] ||
	    fail "no python3 with the websockets module (package python3-websockets)"
	tls_start "$(tls_default)" 'websocket /echo /bin/cat' 'shutdown_timeout 5s'
	local url="wss://127.0.0.1:$PORT/echo" wsc=("$WS_PYTHON" "$TOP_SRCDIR/t/wsclient.py")
	# Python's default context trusts what SSL_CERT_FILE names.
	run env SSL_CERT_FILE="$CERTS/ca.pem" "${wsc[@]}" "$url" \
	    --send hello --send 'über alles' --expect 2
	assert_success
	assert_output $'hello\nüber alles\nclose 1000'
	# Plain ws on the TLS port is not a WebSocket.
	run "${wsc[@]}" --timeout 5 "ws://127.0.0.1:$PORT/echo" --send x --expect 1
	assert_failure
	assert_output 'status 400'
	# A session held open: the stop closes it with 1001.
	local out=$BATS_TEST_TMPDIR/held.out
	env SSL_CERT_FILE="$CERTS/ca.pem" "${wsc[@]}" "$url" --send one --expect 1 \
	    --hold > "$out" 2>&1 3>&- &
	local c=$!
	CLIENTS+=("$c")
	wait_until 5 grep -qx ready "$out"
	kill -TERM "$SERVER_PID"
	wait "$c"
	grep -qx 'close 1001 going away' "$out" || fail "$(cat "$out")"
	[[ $(server_exit_status) == 0 ]]
}

@test "wss: 300 KB of binary messages through /bin/cat come back byte-exact" {
	[[ -n ${WS_PYTHON:-} ]] ||
	    fail "no python3 with the websockets module (package python3-websockets)"
	tls_start "$(tls_default)" 'websocket_binary on' 'websocket /cat /bin/cat'
	local in=$BATS_TEST_TMPDIR/in.bin got=$BATS_TEST_TMPDIR/got.bin
	head -c 300000 /dev/urandom > "$in"
	run env SSL_CERT_FILE="$CERTS/ca.pem" "$WS_PYTHON" "$TOP_SRCDIR/t/wsclient.py" \
	    "wss://127.0.0.1:$PORT/cat" --send-file "$in" --chunk 7000 --out "$got" \
	    --expect-bytes "$(stat -c %s "$in")"
	assert_success
	assert_output 'close 1000'
	cmp "$in" "$got"
}

@test "wss: a fast program and a slow reader: blocked sends resume, the session lives" {
	# Each send that blocks leaves a record in OpenSSL, which only the
	# same frame's bytes may complete (a header alone would be a fatal
	# "bad length" and end the session without a Close).
	local line
	line=$(head -c 1000 /dev/zero | tr '\0' x)
	tls_start "$(tls_default)" "websocket /big /usr/bin/yes $line"
	run python3 "$TOP_SRCDIR/t/wsslow.py" "$PORT" /big --tls "$CERTS/ca.pem" \
	    --cycles 8 --pause 0.2
	assert_success
	[[ $output =~ eof\ 0$ ]] || fail "the server ended the session: $output"
	[[ $output =~ ^bytes\ ([0-9]+) ]] && (( BASH_REMATCH[1] > 1000000 )) ||
	    fail "too little came: $output"
}

@test "keepalive_timeout ends an idle TLS connection with a close_notify" {
	tls_start "$(tls_default)" 'keepalive_timeout 1s'
	local t0 ms
	t0=$(date +%s%N)
	run tlsc --ca "$CERTS/ca.pem" hold /hello.txt --timeout 10
	assert_output $'status 200\nready\neof close_notify'
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	(( ms >= 900 && ms < 1000 + 3000 * ${TIME_FACTOR:-1} )) || fail "after $ms ms"
}

# --- the status page --------------------------------------------------------------

@test "status page: TLS handshakes, resumed, per version, failed (text and ?json)" {
	WORKERS=2 tls_start "$(tls_default)" 'status_path /server-status'
	local out i
	# The page's own handshake, done before it is written, is counted.
	json '.tls.handshakes == 1 and .tls.resumed == 0 and .tls.failed == 0' ||
	    fail "$(https '/server-status?json' | jq .tls)"
	out=$(sc_get /hello.txt -tls1_3 -sess_out "$BATS_TEST_TMPDIR/s.sess")
	[[ $(handshake_of "$out") == New,* ]]
	for i in 1 2 3; do
		out=$(sc_get /hello.txt -tls1_3 -sess_in "$BATS_TEST_TMPDIR/s.sess")
		[[ $(handshake_of "$out") == Reused,* ]]
	done
	out=$(sc_get /hello.txt -tls1_2)
	[[ $(handshake_of "$out") == 'New, TLSv1.2, '* ]]
	run tlsc record 512 --timeout 5
	run tlsc garbage 100 --timeout 5
	# Handshakes: the first page's, 1 + 3 resumed + 1 (TLS 1.2), and
	# this page's: 7, 3 resumed, 1 with TLS 1.2, 6 with TLS 1.3; the
	# two bad ones failed.
	json '.tls | .handshakes == 7 and .resumed == 3 and .tlsv1_2 == 1
	    and .tlsv1_3 == 6 and .failed == 2' ||
	    fail "$(https '/server-status?json' | jq .tls)"
	run https /server-status
	assert_success
	assert_line --regexp '^TLS handshakes: 8 \(resumed 3, 37%; TLSv1.2 1, TLSv1.3 7; failed 2\)$'
	assert_line --regexp '^TLS connections open: 1$'
}

# --- under load -------------------------------------------------------------------

@test "under wrk load over https, 3 reloads lose no request" {
	command -v wrk >/dev/null || skip "wrk not installed"
	WORKERS=2 tls_start "$(tls_default)"
	local out=$BATS_TEST_TMPDIR/wrk.out i
	wrk -t2 -c8 -d3s "https://127.0.0.1:$PORT/hello.txt" > "$out" 2>&1 &
	local w=$!
	CLIENTS+=("$w")
	wait_until 5 established 1
	for i in 2 3 4; do
		kill -HUP "$SERVER_PID"
		wait_until 5 reloaded "$i"
	done
	wait "$w"
	cat "$out" >&3
	run ! grep -q 'Socket errors' "$out"
	run ! grep -q 'Non-2xx' "$out"
	local n
	n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")
	[[ -n $n ]] && (( n > 100 )) || fail "$(cat "$out")"
	wait_until 5 worker_count_is 2
	tls_serves
}

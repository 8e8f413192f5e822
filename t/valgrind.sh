#!/bin/sh
# Memcheck a worker serving the parser table of t/hardening.bats (and the
# smuggling and slow-client shapes), then TLS (full and resumed
# handshakes, a file, plain HTTP and garbage on the TLS port): run
# preforkd with one worker under
# valgrind --trace-children=yes, send every request, stop it, and fail if
# valgrind reported an error in any process.  Not part of "make check"
# (slow); run by hand: t/valgrind.sh [path/to/preforkd]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/preforkd}
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/www/dir"
printf 'hello\n' > "$tmp/www/hello.txt"
printf 'body{}\n' > "$tmp/www/style.css"
printf '<h1>dir</h1>\n' > "$tmp/www/dir/index.html"
head -c 300000 /dev/urandom > "$tmp/www/big.bin"
OPENSSL_CONF=/dev/null openssl req -x509 -newkey ec \
    -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
    -out "$tmp/cert.pem" -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost >/dev/null 2>&1
valgrind -q --trace-children=yes --error-exitcode=99 --leak-check=no \
    --log-file="$tmp/vg.%p" \
    "$bin" -f -n 1 -l 127.0.0.1:0 -l '127.0.0.1:0 tls' -r "$tmp/www" \
    -o header_timeout=2s -o tls_certificate="$tmp/cert.pem" \
    -o tls_key="$tmp/key.pem" -o error_log=stderr > "$tmp/log" 2>&1 &
pid=$!
i=0
until port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/log" | head -n 1) &&
    [ -n "$port" ] && grep -q 'started with' "$tmp/log"; do
	i=$((i + 1)); [ $i -lt 300 ] || { cat "$tmp/log"; exit 1; }
	sleep 0.1
done
# The worker starts under valgrind too: wait until it answers.
i=0
until curl -s -o /dev/null -m 5 "http://127.0.0.1:$port/hello.txt"; do
	i=$((i + 1)); [ $i -lt 60 ] || { cat "$tmp/log"; exit 1; }
	sleep 0.2
done
n=0
# The table: the lines between TABLE=' and the closing quote.
sed -n "/^TABLE='/,/'\$/p" "$top/t/hardening.bats" |
    sed -e "s/^TABLE='//" -e "s/'\$//" | cut -f2- > "$tmp/table"
extra='GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 43\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n
GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n
GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-3\r\n\r\nHEAD /dir HTTP/1.1\r\nHost: x\r\n\r\n
GET /hello.txt HTTP/1.1\r\nHost: x\r\n'
printf '%s\n' "$extra" >> "$tmp/table"
while IFS= read -r req; do
	printf '%b' "$req" > "$tmp/req"
	# Connection: close after the request, so that each one ends.
	printf 'GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >> "$tmp/req"
	timeout 10 curl -s --max-time 8 "telnet://127.0.0.1:$port" \
	    < "$tmp/req" >> "$tmp/out" || true
	n=$((n + 1))
done < "$tmp/table"
# A head that never completes: 408 from the timeout path.
printf 'GET / HTTP/1.1\r\nHost: x\r\n' | timeout 6 curl -s -o /dev/null \
    "telnet://127.0.0.1:$port" || true
# TLS: a file, a full handshake saving its session, a resumed one, plain
# HTTP and garbage sent to the TLS port.
tport=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/log" | sed -n 2p)
curl -s -m 20 --cacert "$tmp/cert.pem" -o "$tmp/big.out" \
    --resolve "localhost:$tport:127.0.0.1" "https://localhost:$tport/big.bin" || true
cmp -s "$tmp/big.out" "$tmp/www/big.bin" || echo "TLS: big.bin differs"
printf 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' > "$tmp/treq"
for s in -sess_out -sess_in; do
	timeout 20 openssl s_client -connect "127.0.0.1:$tport" -ign_eof \
	    "$s" "$tmp/sess" < "$tmp/treq" > "$tmp/tls$s" 2>&1 || true
	n=$((n + 1))
done
grep -q '^Reused' "$tmp/tls-sess_in" || echo "TLS: the session did not resume"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | timeout 10 curl -s \
    "telnet://127.0.0.1:$tport" >> "$tmp/out" || true
head -c 600 /dev/urandom | timeout 10 curl -s -o /dev/null \
    "telnet://127.0.0.1:$tport" || true
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
echo "$n requests; preforkd under valgrind exited with $rc"
echo "responses: $(grep -ac '^HTTP/1.1 ' "$tmp/out")" \
    "($(grep -a '^HTTP/1.1 ' "$tmp/out" | cut -d' ' -f2 | sort | uniq -c | tr -s ' ' | tr '\n' ','))"
echo "valgrind logs: $(find "$tmp" -name 'vg.*' | wc -l) processes"
errors=$(cat "$tmp"/vg.* 2>/dev/null | grep -c 'ERROR SUMMARY: [1-9]\|Invalid\|uninitialised' || true)
grep -hv 'syscall: 437\|write your own handler\|README_MISSING_SYSCALL\|consider this a bug\|valgrind.org/support' "$tmp"/vg.* | head -50
[ "$rc" -ne 99 ] && [ "$errors" -eq 0 ]

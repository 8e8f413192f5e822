# TLS helpers for t/tls.bats and the https cases of t/shutdown.bats,
# loaded after helpers.bash.  The certificates come from t/tls-ca.sh
# (a throw-away CA); clients are curl, openssl s_client and
# t/tlsclient.py (raw sockets and Python's ssl, which tells a
# close_notify from a TCP close).

# shellcheck disable=SC2034 # CONF, CERTS: read by the suites

# tls_certs DIR: the CA and its certificates in DIR (t/tls-ca.sh); CERTS.
tls_certs() {
	CERTS=$1
	[[ -s $CERTS/ca.pem ]] || sh "$TOP_SRCDIR/t/tls-ca.sh" "$CERTS" ||
	    fail "t/tls-ca.sh failed"
}

# tls_default: the configuration lines of a TLS listener on a port of the
# kernel's choice with the localhost certificate.
tls_default() {
	printf '%s\n' 'listen 127.0.0.1:0 tls' \
	    "tls_certificate $CERTS/localhost.chain.pem" \
	    "tls_key $CERTS/localhost.key"
}

# tls_conf LINE...: $CONF with the document root, WORKERS workers and
# LINEs (nothing else: the caller names its listeners).
tls_conf() {
	CONF=${CONF:-$BATS_TEST_TMPDIR/preforkd.conf}
	printf '%s\n' "root $DOCROOT" "workers ${WORKERS:-2}" "$@" > "$CONF"
}

# listen_ports: the ports the log says the server listens on, in order.
listen_ports() {
	sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
	    "$SERVER_LOG"
}

# tls_start LINE...: the server on tls_conf LINE... alone (CONF_ONLY: a
# reload reads the very same file); PORT is the first listener's port.
tls_start() {
	tls_conf "$@"
	CONF_ONLY=1 start_server -c "$CONF"
	PORT=$(listen_ports | head -n 1)
	[[ -n $PORT ]] || fail "no port in the log: $(cat "$SERVER_LOG")"
}

# https PATH [curl args...]: curl over TLS to 127.0.0.1:PORT (the CA
# trusted), at most 10 s.
https() {
	local path=$1; shift
	curl -sS -m 10 --cacert "$CERTS/ca.pem" "$@" \
	    "https://127.0.0.1:$PORT$path"
}

# sc [s_client args...]: openssl s_client to 127.0.0.1:PORT, nothing on
# stdin (it ends once the handshake is done), stdout and stderr both.
sc() {
	timeout 10 openssl s_client -connect "127.0.0.1:$PORT" \
	    -CAfile "$CERTS/ca.pem" "$@" </dev/null 2>&1
}

# sc_get PATH [s_client args...]: GET PATH (Connection: close) through
# s_client, read to the end; prints s_client's report and the response.
# Reading to the end also takes in the TLS 1.3 session tickets, which
# come after the handshake (for -sess_out).
sc_get() {
	local path=$1 req=$BATS_TEST_TMPDIR/sc_get.req; shift
	printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
	    "$path" > "$req"
	timeout 10 openssl s_client -connect "127.0.0.1:$PORT" \
	    -CAfile "$CERTS/ca.pem" -ign_eof "$@" < "$req" 2>&1
}

# handshake_of OUTPUT: s_client's first "New, ..." or "Reused, ..." line
# (TLS 1.3 reports again for each session ticket).
handshake_of() { grep -m 1 -E '^(New|Reused), ' <<<"$1"; }

# subject_for NAME: the subject of the certificate served for SNI NAME
# ("-": no SNI at all).
subject_for() {
	local sni=(-servername "$1")
	[[ $1 != - ]] || sni=(-noservername)
	timeout 10 openssl s_client -connect "127.0.0.1:$PORT" "${sni[@]}" \
	    </dev/null 2>/dev/null | openssl x509 -noout -subject
}

# serial_for NAME: the same, its serial number (hex).
serial_for() {
	timeout 10 openssl s_client -connect "127.0.0.1:$PORT" \
	    -servername "$1" </dev/null 2>/dev/null |
	    openssl x509 -noout -serial
}

# tlsc ARGS...: t/tlsclient.py to PORT.
tlsc() { python3 "$TOP_SRCDIR/t/tlsclient.py" "$PORT" "$@"; }

# tls_serves: a GET of hello.txt over TLS answers hello.
tls_serves() { [[ $(https /hello.txt 2>/dev/null) == hello ]]; }

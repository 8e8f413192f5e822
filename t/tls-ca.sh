#!/bin/sh
# tls-ca.sh DIR: a throw-away certificate authority and the certificates
# t/tls.bats needs, made with openssl into DIR (created if missing).
# ECDSA P-256 throughout (fast), one RSA 2048 leaf.  Every leaf is
# signed by the CA; FILE.pem is the leaf alone, FILE.chain.pem the leaf
# then the CA (a full chain, leaf first), FILE.key its key.
#
#   ca.pem ca.key            the CA (self-signed, CA:TRUE)
#   localhost                CN localhost, SAN DNS:localhost IP:127.0.0.1
#   localhost2               the same names, another key and serial, CN
#                            "localhost renewed" (a renewal)
#   a.test b.test            CN and SAN DNS:a.test / DNS:b.test
#   wild                     SAN DNS:*.w.test (CN wild.w.test)
#   rsa                      RSA 2048, CN rsa.test, SAN DNS:rsa.test
#                            DNS:localhost IP:127.0.0.1
#   soon                     localhost's names, expires in 3 days
#   other.key                a P-256 key that matches no certificate
#   localhost.combined.pem   localhost's chain followed by its key
#
# Serial numbers are fixed per leaf (listed below), so a test can tell
# which certificate it was served.  Every leaf names a CRL distribution
# point, as a real one does (t/testssl.bats: testssl.sh rates a leaf
# without CRL or OCSP HIGH); nothing is served there.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
cd "$dir"

# No site configuration: every extension is named here.
OPENSSL_CONF=/dev/null
export OPENSSL_CONF

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1" 2>/dev/null; }

eckey ca.key
openssl req -new -x509 -key ca.key -subj '/CN=preforkd test CA' \
    -days 3650 -set_serial 1 -extensions v3 \
    -config /dev/stdin -out ca.pem <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

# leaf NAME SERIAL DAYS SUBJECT SAN [KEYALG]: NAME.key, NAME.pem and
# NAME.chain.pem.
leaf() {
	name=$1 serial=$2 days=$3 subj=$4 san=$5
	if [ "${6:-ec}" = rsa ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		    -out "$name.key" 2>/dev/null
	else
		eckey "$name.key"
	fi
	cat > "$name.ext" <<-EOF
	basicConstraints = critical, CA:FALSE
	keyUsage = critical, digitalSignature, keyEncipherment
	extendedKeyUsage = serverAuth
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid
	subjectAltName = $san
	crlDistributionPoints = URI:http://127.0.0.1/ca.crl
	EOF
	openssl req -new -key "$name.key" -subj "$subj" -config /dev/stdin \
	    -out "$name.csr" <<-'EOF'
	[req]
	distinguished_name = dn
	[dn]
	EOF
	openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
	    -set_serial "$serial" -days "$days" -extfile "$name.ext" \
	    -out "$name.pem" 2>/dev/null
	cat "$name.pem" ca.pem > "$name.chain.pem"
	rm -f "$name.csr" "$name.ext"
}

leaf localhost 4097 365 /CN=localhost 'DNS:localhost, IP:127.0.0.1'
leaf localhost2 4098 365 '/CN=localhost renewed' 'DNS:localhost, IP:127.0.0.1'
leaf a.test 4099 365 /CN=a.test DNS:a.test
leaf b.test 4100 365 /CN=b.test DNS:b.test
leaf wild 4101 365 /CN=wild.w.test 'DNS:*.w.test'
leaf rsa 4102 365 /CN=rsa.test 'DNS:rsa.test, DNS:localhost, IP:127.0.0.1' rsa
leaf soon 4103 3 /CN=soon.test 'DNS:localhost, IP:127.0.0.1'
eckey other.key
cat localhost.chain.pem localhost.key > localhost.combined.pem
# Keys are secret even here: the server may insist.
chmod 600 ./*.key localhost.combined.pem

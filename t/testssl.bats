#!/usr/bin/env bats
# testssl.sh (Debian's testssl.sh package) audits a tls listener with
# the default settings: no finding may be rated HIGH or CRITICAL.  The
# certificate is the throw-away CA's (t/tls-ca.sh), trusted with
# --add-ca; its leaf names a CRL distribution point, as a real one does.
# The run takes about a minute; its counts by severity are printed as a
# TAP comment.

load helpers
load tls
bats_require_minimum_version 1.5.0

setup() {
	make_docroot
	tls_certs "$BATS_TEST_TMPDIR/certs"
}

@test "testssl.sh rates nothing HIGH or CRITICAL on a tls listener with the defaults" {
	command -v testssl >/dev/null ||
	    skip "testssl.sh is not installed (apt-get install testssl.sh)"
	command -v jq >/dev/null || skip "jq is not installed"
	local json=$BATS_TEST_TMPDIR/testssl.json bad
	tls_start "$(tls_default)" 'hsts 1y'
	run timeout 300 testssl --quiet --color 0 --warnings off \
	    --add-ca "$CERTS/ca.pem" --jsonfile-pretty "$json" \
	    "127.0.0.1:$PORT"
	[[ -s $json ]] || fail "testssl.sh wrote no report: $output"
	bad=$(jq -r '.scanResult[0] | to_entries[] | select(.value | type ==
	    "array") | .value[] | select(.severity == "HIGH" or
	    .severity == "CRITICAL") | "\(.severity) \(.id): \(.finding)"' \
	    "$json")
	# The counts by severity, in the TAP output for the record.
	echo "# testssl.sh: $(jq -r '[.scanResult[0] | to_entries[] |
	    select(.value | type == "array") | .value[] | .severity] |
	    group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$json")" >&3
	jq -r '.scanResult[0] | to_entries[] | select(.value | type ==
	    "array") | .value[] | select(.severity == "LOW" or
	    .severity == "MEDIUM") | "# testssl.sh \(.severity) \(.id): \(.finding)"' \
	    "$json" >&3
	[[ -z $bad ]] || fail "testssl.sh found:"$'\n'"$bad"
	# It did look: the protocols and the vulnerabilities were tested.
	jq -e '.scanResult[0].protocols | length > 0' "$json" >/dev/null
	jq -e '.scanResult[0].vulnerabilities | length > 5' "$json" >/dev/null
	tls_serves
}

#!/usr/bin/env bats
# Static files: mapping, methods, validators, ranges, escapes.

load helpers

# One daemon for the whole file: every test only reads the docroot, and
# the few files a test adds have names no other test uses.
setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	make_docroot
	printf 'spaced\n' > "$DOCROOT/a b.txt"
	printf 'blob\n' > "$DOCROOT/data.zzqx"
	printf 'outside secret\n' > "$BATS_FILE_TMPDIR/secret.txt"
	ln -s "$BATS_FILE_TMPDIR/secret.txt" "$DOCROOT/out.txt"
	ln -s "$BATS_FILE_TMPDIR" "$DOCROOT/outdir"
	ln -s hello.txt "$DOCROOT/in.txt"
	ln -s dir "$DOCROOT/indir"
	mkdir "$DOCROOT/sp ace" "$DOCROOT/\q"
	mkfifo "$DOCROOT/fifo.txt"
	# A fixed mtime, so If-Modified-Since has something to be before.
	touch -d '2020-01-02 03:04:05 UTC' "$DOCROOT/hello.txt"
	# fd 3 is bats' own: a daemon holding it would hang the run.
	start_server 3>&-
	export DOCROOT PORT SERVER_PID SERVER_LOG LAUNCH_PID
}

teardown_file() { stop_server; }

# The per-test teardown from helpers must not stop the shared daemon.
teardown() { :; }

URL() { echo "http://127.0.0.1:$PORT$1"; }

# get PATH [curl args]: body in $BATS_TEST_TMPDIR/body, headers in
# $BATS_TEST_TMPDIR/hdr (CRs removed), status in $status_code.
get() {
	local path=$1; shift
	: > "$BATS_TEST_TMPDIR/body"
	status_code=$(curl -s --path-as-is -o "$BATS_TEST_TMPDIR/body" \
	    -D "$BATS_TEST_TMPDIR/hdr.raw" -w '%{http_code}' "$@" "$(URL "$path")")
	tr -d '\r' < "$BATS_TEST_TMPDIR/hdr.raw" > "$BATS_TEST_TMPDIR/hdr"
}

# header NAME: the value of NAME in the last response's headers.
header() {
	sed -n "s/^$1: //Ip" "$BATS_TEST_TMPDIR/hdr" | head -n 1
}
header_count() { grep -ci "^$1:" "$BATS_TEST_TMPDIR/hdr" || true; }
body_size() { stat -c %s "$BATS_TEST_TMPDIR/body"; }
body_is() { [[ $(cat "$BATS_TEST_TMPDIR/body") == "$1" ]]; }

# IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7).
IMF='^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT$'

# The headers every response must carry; $1 is the expected length.
assert_common_headers() {
	[[ $(header Date) =~ $IMF ]] || { cat "$BATS_TEST_TMPDIR/hdr"; false; }
	[[ -n $(header Server) ]]
	[[ $(header_count Content-Length) -eq 1 ]]
	[[ $(header Content-Length) == "$1" ]]
}

@test "GET a file: 200, exact body, type, length, common headers" {
	get /hello.txt
	[[ $status_code == 200 ]]
	body_is hello
	[[ $(header Content-Type) == text/plain ]]
	assert_common_headers 6
	[[ $(head -n 1 "$BATS_TEST_TMPDIR/hdr") == "HTTP/1.1 200 OK" ]]
	[[ $(header Accept-Ranges) == bytes ]]
}

@test "HEAD: same headers as GET, Content-Length, no body" {
	local reply
	get /big.bin -I
	[[ $status_code == 200 ]]
	assert_common_headers 1048576
	[[ $(header Content-Type) == application/octet-stream ]]
	[[ -n $(header ETag) ]]
	# curl -I would not notice a body: read the raw bytes.
	reply=$(http_raw "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	[[ $(status_of "$reply") == 200 ]]
	grep -q $'^Content-Length: 6\r$' <<<"$reply"
	# $(...) dropped the final LF: the reply ends at the empty line.
	[[ ${reply: -3} == $'\r\n\r' ]]
	if grep -q '^hello' <<<"$reply"; then
		return 1
	fi
}

@test "HEAD of an error has no body either" {
	local reply
	reply=$(http_raw "HEAD /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	[[ $(status_of "$reply") == 404 ]]
	grep -q $'^Content-Length: [1-9][0-9]*\r$' <<<"$reply"
	if grep -q '<html' <<<"$reply"; then
		return 1
	fi
}

@test "a 1 MiB binary file is byte-exact" {
	get /big.bin
	[[ $status_code == 200 ]]
	cmp "$DOCROOT/big.bin" "$BATS_TEST_TMPDIR/body"
	[[ $(header Content-Type) == application/octet-stream ]]
	assert_common_headers 1048576
}

@test "an empty file: 200, Content-Length 0, no body" {
	get /empty.txt
	[[ $status_code == 200 ]]
	assert_common_headers 0
	[[ $(body_size) -eq 0 ]]
}

@test "a directory with a slash serves its index.html" {
	get /
	[[ $status_code == 200 ]]
	body_is '<h1>root</h1>'
	[[ $(header Content-Type) == text/html ]]
	get /dir/
	[[ $status_code == 200 ]]
	body_is '<h1>dir</h1>'
	[[ $(header Content-Type) == text/html ]]
	assert_common_headers 13
}

@test "a directory without a slash: 301 to the slash, query kept" {
	get /dir
	[[ $status_code == 301 ]]
	[[ $(header Location) == /dir/ ]]
	assert_common_headers "$(body_size)"
	grep -q '301' "$BATS_TEST_TMPDIR/body"
	get '/dir?a=1&b=%20x'
	[[ $status_code == 301 ]]
	[[ $(header Location) == '/dir/?a=1&b=%20x' ]]
	# The Location comes from the normalised path, never "//host".
	get //dir
	[[ $status_code == 301 ]]
	[[ $(header Location) == /dir/ ]]
	get '//dir/..//dir?x'
	[[ $(header Location) == '/dir/?x' ]]
	get '/sp%20ace'
	[[ $status_code == 301 ]]
	[[ $(header Location) == /sp%20ace/ ]]
	get '/%5Cq'
	[[ $status_code == 301 ]]
	[[ $(header Location) == /%5Cq/ ]]
	# curl follows to the index.
	[[ $(curl -sL "$(URL /dir)") == '<h1>dir</h1>' ]]
}

@test "a redirect with a long query still gets a complete answer" {
	local q
	q=$(printf 'q%.0s' {1..3000})
	get "/dir?$q"
	[[ $status_code == 301 ]]
	[[ $(header Location) == "/dir/?$q" ]]
	assert_common_headers "$(body_size)"
}

@test "a directory without an index: 403" {
	get /noindex/
	[[ $status_code == 403 ]]
	assert_common_headers "$(body_size)"
	grep -q '403 Forbidden' "$BATS_TEST_TMPDIR/body"
	[[ $(header Content-Type) == 'text/html; charset=utf-8' ]]
}

@test "a missing file: 404 with a small HTML body" {
	get /nope.txt
	[[ $status_code == 404 ]]
	assert_common_headers "$(body_size)"
	grep -q '<h1>404 Not Found</h1>' "$BATS_TEST_TMPDIR/body"
	get /dir/nope/deeper
	[[ $status_code == 404 ]]
}

@test "a file named with a slash after it is not that file" {
	get /hello.txt/
	[[ $status_code == 404 ]]
	if body_is hello; then
		return 1
	fi
}

@test "a FIFO in the root is not served (and does not block)" {
	get /fifo.txt --max-time 5
	[[ $status_code == 403 ]]
	assert_common_headers "$(body_size)"
}

@test "percent-decoding: %20 names a file with a space" {
	get /a%20b.txt
	[[ $status_code == 200 ]]
	body_is spaced
	get /%68ello.%74xt
	[[ $status_code == 200 ]]
	body_is hello
}

@test "bad percent escapes: 400" {
	for p in /%zz /hello%2 /%; do
		get "$p"
		[[ $status_code == 400 ]] || { echo "$p -> $status_code"; false; }
	done
}

@test "dot segments inside the root resolve" {
	get /dir/../hello.txt
	[[ $status_code == 200 ]]
	body_is hello
	get /./dir/./index.html
	[[ $status_code == 200 ]]
	body_is '<h1>dir</h1>'
}

@test "climbing out of the root: 403, never file content" {
	local p
	for p in /../secret.txt /../www/hello.txt /dir/../../secret.txt \
	    /%2e%2e/secret.txt /%2E%2E/secret.txt /.%2e/secret.txt \
	    /%2e%2e%2fsecret.txt /dir/%2e%2e%2f%2e%2e%2fsecret.txt \
	    /..%2f..%2fetc/passwd /%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd; do
		get "$p"
		[[ $status_code == 403 ]] || { echo "$p -> $status_code"; false; }
		! grep -q 'secret\|hello\|root:' "$BATS_TEST_TMPDIR/body"
		assert_common_headers "$(body_size)"
	done
	# Raw too, in case a client normalises the path.
	reply=$(http_raw "GET /../secret.txt HTTP/1.0\r\n\r\n")
	[[ $(status_of "$reply") == 403 ]]
	if grep -q secret <<<"$reply"; then
		return 1
	fi
}

@test "a symlink pointing outside the root is refused" {
	local p
	for p in /out.txt /outdir/secret.txt; do
		get "$p"
		[[ $status_code == 403 || $status_code == 404 ]] ||
		    { echo "$p -> $status_code"; false; }
		! grep -q secret "$BATS_TEST_TMPDIR/body"
	done
}

@test "a symlink pointing inside the root works" {
	get /in.txt
	[[ $status_code == 200 ]]
	body_is hello
	get /indir/index.html
	[[ $status_code == 200 ]]
	body_is '<h1>dir</h1>'
}

@test "NUL and encoded control bytes: 400" {
	local p
	for p in /hello.txt%00 /%00 /a%0ab /a%0d%0aX-Evil:%201 /a%01 /a%1f /a%7f; do
		get "$p"
		[[ $status_code == 400 ]] || { echo "$p -> $status_code"; false; }
		assert_common_headers "$(body_size)"
		[[ $(header Connection) == close ]]
		[[ $(header_count X-Evil) -eq 0 ]]
	done
}

@test "Content-Type comes from /etc/mime.types" {
	get /style.css
	[[ $(header Content-Type) == text/css ]]
	get /index.html
	[[ $(header Content-Type) == text/html ]]
	get /hello.txt
	[[ $(header Content-Type) == text/plain ]]
	get /data.zzqx
	[[ $status_code == 200 ]]
	[[ $(header Content-Type) == application/octet-stream ]]
	get /big.bin
	[[ $(header Content-Type) == application/octet-stream ]]
}

@test "Last-Modified is the mtime; ETag is strong" {
	get /hello.txt
	[[ $(header Last-Modified) == 'Thu, 02 Jan 2020 03:04:05 GMT' ]]
	[[ $(header ETag) =~ ^\"[^\"]+\"$ ]]
	local etag; etag=$(header ETag)
	get /hello.txt
	[[ $(header ETag) == "$etag" ]]
	get /style.css
	[[ $(header ETag) != "$etag" ]]
}

@test "If-None-Match with the ETag: 304, no body" {
	local etag reply
	get /hello.txt
	etag=$(header ETag)
	get /hello.txt -H "If-None-Match: $etag"
	[[ $status_code == 304 ]]
	[[ $(body_size) -eq 0 ]]
	[[ $(header ETag) == "$etag" ]]
	[[ $(header Date) =~ $IMF ]]
	[[ -n $(header Server) ]]
	get /hello.txt -H "If-None-Match: \"zzz\", $etag"
	[[ $status_code == 304 ]]
	get /hello.txt -H "If-None-Match: W/$etag"
	[[ $status_code == 304 ]]
	get /hello.txt -H 'If-None-Match: *'
	[[ $status_code == 304 ]]
	# Raw: a 304 ends at its head even on a kept-alive connection.
	reply=$(http_raw "GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: $etag\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	[[ $(grep -c '^HTTP/1.1 ' <<<"$reply") -eq 2 ]]
	[[ $(head -n 1 <<<"$reply") == $'HTTP/1.1 304 Not Modified\r' ]]
	[[ $(tail -n 1 <<<"$reply") == hello ]]
}

@test "If-Modified-Since at or after the mtime: 304" {
	get /hello.txt -H 'If-Modified-Since: Thu, 02 Jan 2020 03:04:05 GMT'
	[[ $status_code == 304 ]]
	[[ $(body_size) -eq 0 ]]
	get /hello.txt -H 'If-Modified-Since: Fri, 01 Jan 2021 00:00:00 GMT'
	[[ $status_code == 304 ]]
	# The obsolete formats too (RFC 9110 5.6.7).
	get /hello.txt -H 'If-Modified-Since: Thursday, 02-Jan-20 03:04:05 GMT'
	[[ $status_code == 304 ]]
	get /hello.txt -H 'If-Modified-Since: Thu Jan  2 03:04:05 2020'
	[[ $status_code == 304 ]]
}

@test "stale or bad validators: 200 with the whole body" {
	get /hello.txt -H 'If-None-Match: "stale"'
	[[ $status_code == 200 ]]
	body_is hello
	get /hello.txt -H 'If-Modified-Since: Thu, 02 Jan 2020 03:04:04 GMT'
	[[ $status_code == 200 ]]
	body_is hello
	get /hello.txt -H 'If-Modified-Since: yesterday'
	[[ $status_code == 200 ]]
	body_is hello
	# If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
	get /hello.txt -H 'If-None-Match: "stale"' \
	    -H 'If-Modified-Since: Fri, 01 Jan 2021 00:00:00 GMT'
	[[ $status_code == 200 ]]
	body_is hello
}

@test "Range: one range gives 206, Content-Range and the exact bytes" {
	get /big.bin -r 100-1099
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 100-1099/1048576' ]]
	assert_common_headers 1000
	cmp "$BATS_TEST_TMPDIR/body" \
	    <(dd if="$DOCROOT/big.bin" bs=1 skip=100 count=1000 2>/dev/null)
	get /big.bin -r 0-0
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 0-0/1048576' ]]
	cmp "$BATS_TEST_TMPDIR/body" <(head -c 1 "$DOCROOT/big.bin")
	# A last byte past the end is clipped.
	get /hello.txt -r 2-100
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 2-5/6' ]]
	body_is llo
}

@test "Range: suffix and open-ended ranges" {
	get /big.bin -r -500
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 1048076-1048575/1048576' ]]
	assert_common_headers 500
	cmp "$BATS_TEST_TMPDIR/body" <(tail -c 500 "$DOCROOT/big.bin")
	get /big.bin -r 1048000-
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 1048000-1048575/1048576' ]]
	cmp "$BATS_TEST_TMPDIR/body" <(tail -c 576 "$DOCROOT/big.bin")
	# A suffix longer than the file is the whole file, as a 206.
	get /hello.txt -r -100
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 0-5/6' ]]
	body_is hello
}

@test "Range: unsatisfiable gives 416 with bytes */size" {
	get /big.bin -r 1048576-
	[[ $status_code == 416 ]]
	[[ $(header Content-Range) == 'bytes */1048576' ]]
	assert_common_headers "$(body_size)"
	get /hello.txt -r 6-10
	[[ $status_code == 416 ]]
	[[ $(header Content-Range) == 'bytes */6' ]]
	get /empty.txt -r 0-
	[[ $status_code == 416 ]]
	[[ $(header Content-Range) == 'bytes */0' ]]
}

@test "Range: positions too large for off_t are clamped, never ignored" {
	# 10 MiB: 10485759 is its last byte.  RFC 9110 14.1.2: a last-pos
	# at or past the end means "to the end", a first-pos past it is
	# unsatisfiable, a suffix longer than the file is the whole file;
	# any number of digits is a position (14.1.1).
	head -c 10485760 /dev/urandom > "$DOCROOT/ten.bin"
	get /ten.bin -H 'Range: bytes=10485759-9223372036854775807'
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 10485759-10485759/10485760' ]]
	assert_common_headers 1
	cmp "$BATS_TEST_TMPDIR/body" <(tail -c 1 "$DOCROOT/ten.bin")
	get /ten.bin -H 'Range: bytes=10485750-99999999999999999999999'
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 10485750-10485759/10485760' ]]
	cmp "$BATS_TEST_TMPDIR/body" <(tail -c 10 "$DOCROOT/ten.bin")
	get /ten.bin -H 'Range: bytes=9223372036854775806-'
	[[ $status_code == 416 ]]
	[[ $(header Content-Range) == 'bytes */10485760' ]]
	get /ten.bin -H 'Range: bytes=99999999999999999999999-'
	[[ $status_code == 416 ]]
	[[ $(header Content-Range) == 'bytes */10485760' ]]
	get /ten.bin -H 'Range: bytes=-9223372036854775807'
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 0-10485759/10485760' ]]
	cmp "$BATS_TEST_TMPDIR/body" "$DOCROOT/ten.bin"
	get /hello.txt -H 'Range: bytes=-99999999999999999999999'
	[[ $status_code == 206 ]]
	[[ $(header Content-Range) == 'bytes 0-5/6' ]]
	body_is hello
}

@test "Range: several ranges or a malformed one give the whole file" {
	get /big.bin -r 0-10,20-30
	[[ $status_code == 200 ]]
	[[ $(header_count Content-Range) -eq 0 ]]
	cmp "$DOCROOT/big.bin" "$BATS_TEST_TMPDIR/body"
	get /hello.txt -H 'Range: bytes=3-1'
	[[ $status_code == 200 ]]
	body_is hello
	get /hello.txt -H 'Range: items=0-1'
	[[ $status_code == 200 ]]
	body_is hello
}

@test "If-Range: a match gives the range, a mismatch the whole file" {
	local etag lm
	get /hello.txt
	etag=$(header ETag)
	lm=$(header Last-Modified)
	get /hello.txt -r 0-1 -H "If-Range: $etag"
	[[ $status_code == 206 ]]
	body_is he
	get /hello.txt -r 0-1 -H "If-Range: $lm"
	[[ $status_code == 206 ]]
	body_is he
	get /hello.txt -r 0-1 -H 'If-Range: "other"'
	[[ $status_code == 200 ]]
	body_is hello
	get /hello.txt -r 0-1 -H 'If-Range: Fri, 01 Jan 2021 00:00:00 GMT'
	[[ $status_code == 200 ]]
	body_is hello
}

@test "HEAD ignores Range" {
	get /hello.txt -I -r 0-1
	[[ $status_code == 200 ]]
	[[ $(header Content-Length) == 6 ]]
}

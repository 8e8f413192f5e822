#!/usr/bin/env bats
# Files that change while they are served: a strong ETag and the
# Content-Length always describe the bytes that go out, whatever the
# open-file cache holds, and a file that shrinks under a response ends
# the connection instead of leaving it out of step.

load helpers

# fetch PATH: GET PATH on a new connection.  Sets ETAG, LEN (the
# Content-Length), SIZE and SUM (of the body received) and RC (curl's).
fetch() {
	local b=$BATS_TEST_TMPDIR/body h=$BATS_TEST_TMPDIR/hdr
	RC=0
	curl -s -o "$b" -D "$h" "http://127.0.0.1:$PORT$1" || RC=$?
	ETAG=$(sed -n 's/^ETag: //Ip' "$h" | tr -d '\r')
	LEN=$(sed -n 's/^Content-Length: //Ip' "$h" | tr -d '\r')
	SIZE=$(stat -c %s "$b")
	SUM=$(sha256sum < "$b" | cut -d' ' -f1)
}

sum_of() { sha256sum < "$1" | cut -d' ' -f1; }

# settled FILE: its last change is over 50 ms old, so that a rewrite now
# gets another mtime even where file times come from a coarse clock.
settled() {
	local m
	m=$(stat -c %.9Y "$1")
	(( $(date +%s%N) - 10#${m/./} > 50000000 ))
}

# check_fetch PATH WANT: the response for PATH is whole, carries the
# bytes whose sum is WANT, and its ETag was never seen with other bytes
# (NAMED maps every ETag seen to the sum of its bytes).
check_fetch() {
	fetch "$1"
	(( RC == 0 )) || fail "curl exit $RC: $SIZE of $LEN bytes"
	[[ -n $ETAG && $SIZE == "$LEN" ]] || fail "ETag '$ETAG', $SIZE of $LEN bytes"
	if [[ -n ${NAMED[$ETAG]:-} ]]; then
		[[ ${NAMED[$ETAG]} == "$SUM" ]] ||
		    fail "ETag $ETAG came with other bytes than before"
	fi
	NAMED[$ETAG]=$SUM
	[[ $SUM == "$2" ]] || fail "ETag $ETAG: not the file's bytes ($LEN bytes)"
}

# rewrite NAME SIZE: give the file in the docroot SIZE new random bytes,
# in place (same inode, as "cat new > file" does).
rewrite() {
	local f=$DOCROOT/$1 ino
	head -c "$2" /dev/urandom > "$BATS_TEST_TMPDIR/new"
	wait_until 5 settled "$f"
	ino=$(stat -c %i "$f")
	cat "$BATS_TEST_TMPDIR/new" > "$f"
	[[ $(stat -c %i "$f") == "$ino" ]]
}

# changes NAME SIZE...: serve NAME, then rewrite it in place with each
# SIZE in turn and serve it again right away, within FILE_CACHE_MS.
changes() {
	local name=$1 size etag0
	shift
	declare -gA NAMED=()
	check_fetch "/$name" "$(sum_of "$DOCROOT/$name")"
	etag0=$ETAG
	for size in "$@"; do
		rewrite "$name" "$size"
		check_fetch "/$name" "$(sum_of "$DOCROOT/$name")"
		[[ $ETAG != "$etag0" ]]
		etag0=$ETAG
	done
}

@test "a 64 KiB file rewritten in place: new bytes, new ETag, right length" {
	make_docroot
	head -c 65536 /dev/urandom > "$DOCROOT/f.bin"
	# One worker: the one that cached the file answers again.
	WORKERS=1 start_server
	changes f.bin 65536 98304 32768 65536
	# The old ETag is no longer current: no 304 for it.
	local old=$ETAG
	rewrite f.bin 65536
	[[ $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $old" \
	    "http://127.0.0.1:$PORT/f.bin") == 200 ]]
}

@test "new bytes with the old size and the old mtime (cp -p) get a new ETag" {
	make_docroot
	head -c 65536 /dev/urandom > "$DOCROOT/p.bin"
	WORKERS=1 start_server
	declare -gA NAMED=()
	check_fetch /p.bin "$(sum_of "$DOCROOT/p.bin")"
	local old=$ETAG mtime
	mtime=$(stat -c %.9Y "$DOCROOT/p.bin")
	rewrite p.bin 65536
	touch -d "@$mtime" "$DOCROOT/p.bin"
	[[ $(stat -c %.9Y "$DOCROOT/p.bin") == "$mtime" ]]
	check_fetch /p.bin "$(sum_of "$DOCROOT/p.bin")"
	[[ $ETAG != "$old" ]]
	[[ $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $old" \
	    "http://127.0.0.1:$PORT/p.bin") == 200 ]]
}

@test "a small file whose bytes the cache holds: the bytes the ETag names" {
	make_docroot
	head -c 4096 /dev/urandom > "$DOCROOT/s.bin"
	WORKERS=1 start_server
	changes s.bin 4096 8192 100 4096
}

@test "a file renamed over or removed shows at once, not after FILE_CACHE_MS" {
	make_docroot
	head -c 65536 /dev/urandom > "$DOCROOT/m.bin"
	WORKERS=1 start_server
	declare -gA NAMED=()
	check_fetch /m.bin "$(sum_of "$DOCROOT/m.bin")"
	# The old inode loses its name: its ctime moves, the cache sees it.
	head -c 65536 /dev/urandom > "$DOCROOT/m.new"
	wait_until 5 settled "$DOCROOT/m.bin"
	mv "$DOCROOT/m.new" "$DOCROOT/m.bin"
	check_fetch /m.bin "$(sum_of "$DOCROOT/m.bin")"
	wait_until 5 settled "$DOCROOT/m.bin"
	rm "$DOCROOT/m.bin"
	[[ $(curl -s -o /dev/null -w '%{http_code}' \
	    "http://127.0.0.1:$PORT/m.bin") == 404 ]]
}

@test "a range of a file rewritten in place comes from the new file" {
	make_docroot
	head -c 65536 /dev/urandom > "$DOCROOT/r.bin"
	WORKERS=1 start_server
	fetch /r.bin
	rewrite r.bin 32768
	curl -s -o "$BATS_TEST_TMPDIR/part" -D "$BATS_TEST_TMPDIR/hdr" \
	    -r 30000- "http://127.0.0.1:$PORT/r.bin"
	grep -qi '^Content-Range: bytes 30000-32767/32768' "$BATS_TEST_TMPDIR/hdr"
	cmp "$BATS_TEST_TMPDIR/part" <(tail -c +30001 "$DOCROOT/r.bin")
}

# client_queued FD: bytes waiting unread in our end of the connection.
client_queued() {
	ss -Htn state established "( dport = :$PORT )" | awk '{ print $1 }' |
	    sort -n | tail -n 1
}
client_has_bytes() { [[ $(client_queued) -gt 0 ]]; }

@test "a file that shrinks while it is sent: the connection ends, nothing follows" {
	make_docroot
	# Far more than the loopback socket buffers hold: the worker is
	# still in sendfile when the file shrinks.
	head -c 33554432 /dev/zero > "$DOCROOT/shrink.bin"
	WORKERS=1 start_server
	local fd out=$BATS_TEST_TMPDIR/out rc=0
	printf 'GET /shrink.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
	    > "$BATS_TEST_TMPDIR/req"
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$BATS_TEST_TMPDIR/req" >&"$fd"
	wait_until 10 client_has_bytes
	truncate -s 1048576 "$DOCROOT/shrink.bin"
	timeout 10 cat <&"$fd" > "$out" || rc=$?
	exec {fd}>&-
	# Closed by the server (end of file, or a reset), not timed out.
	(( rc != 124 )) || fail "the connection stayed open"
	[[ $(grep -ac '^HTTP/1.1 ' "$out") -eq 1 ]] ||
	    fail "a response followed the short body"
	grep -aq '^Content-Length: 33554432' "$out"
	(( $(stat -c %s "$out") < 33554432 ))
}

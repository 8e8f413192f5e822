#!/usr/bin/env bats
# Pub/sub channels (issue 13, design.md section 13): subscribe with
# Server-Sent Events, publish with POST; every subscriber on any worker
# gets every message exactly once, in order; resume with Last-Event-ID;
# the limits and their status codes; bad configuration; graceful stop
# and reload; the status page.  Clients: curl, t/chanclient.py (python3
# stdlib: many subscribers, a publisher, a subscriber that never reads)
# and bash's /dev/tcp.

# Each @test runs in a subshell of its own, on purpose: what it sets does
# not leak into the next (SC2030/SC2031 say exactly that).  The jq
# filters in single quotes name jq's variables ($b, $n: --argjson), not
# the shell's (SC2016).
# shellcheck disable=SC2030,SC2031,SC2016

load helpers
bats_require_minimum_version 1.5.0

SP=/server-status

setup() {
	make_docroot
	TDIR=$(cd "$TOP_SRCDIR/t" && pwd)
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	PY=${PYTHON3:-/usr/bin/python3}
	CLIENTS=()
}

# Clients first (a subscriber holds a stopping worker), by pid; a stopped
# one is continued so that it can die.
teardown() {
	local p
	for p in "${CLIENTS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		kill -CONT "$p" 2>/dev/null || true
	done
	stop_server
}

# ch_start LINE...: a configuration file with the document root, the
# listener, WORKERS, the status page, the channel prefix /chat and LINEs;
# the server runs on it alone (CONF_ONLY: a reload reads the same file).
ch_start() {
	printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' \
	    "workers ${WORKERS:-2}" "status_path $SP" 'channel /chat' \
	    "$@" > "$CONF"
	CONF_ONLY=1 start_server -c "$CONF"
}

url() { echo "http://127.0.0.1:$PORT$1"; }

# json_check FILE FILTER: FILE parses and FILTER (jq) holds of it.  No jq
# is a failure, never a check left out.
json_check() {
	command -v jq >/dev/null || fail "jq is not installed (package jq)"
	jq -e "$2" "$1" >/dev/null || fail "not true of $1: $2"$'\n'"$(cat "$1")"
}

# req METHOD PATH [curl args...]: the body in $BODY, the head in $HDR
# (CRs removed), the status in $code.  No Expect: 100-continue.
req() {
	local method=$1 path=$2; shift 2
	BODY=$BATS_TEST_TMPDIR/body HDR=$BATS_TEST_TMPDIR/hdr
	code=$(curl -s --max-time 10 -X "$method" -H 'Expect:' -o "$BODY" \
	    -D "$HDR.raw" -w '%{http_code}' "$@" "$(url "$path")") || true
	tr -d '\r' < "$HDR.raw" > "$HDR" 2>/dev/null || : > "$HDR"
}

# post PATH BODY [curl args...]: publish BODY (bytes as given).
post() {
	local path=$1 body=$2; shift 2
	req POST "$path" --data-binary "$body" -H 'Content-Type: text/plain' "$@"
}

# publish PATH BODY SUBS: published (202) for SUBS subscribers; its id in
# ID.  (A channel's ids go up by one; where they start has a test of its
# own, so the others count from the first id they are given.)
publish() {
	post "$1" "$2"
	[[ $code == 202 ]] || fail "POST $1: $code, expected 202: $(cat "$BODY")"
	json_check "$BODY" "(.id | type) == \"number\" and .subscribers == $3"
	ID=$(jq -r .id "$BODY")
}

# header_is NAME VALUE: $HDR has exactly that header line.
header_is() {
	grep -qix -- "$1: $2" "$HDR" || fail "no '$1: $2' in: $(cat "$HDR")"
}

# info PATH: the channel's JSON (a GET without Accept: text/event-stream).
info() { req GET "$1"; }

# subscribers_are PATH N: the channel's info says N subscribers.
subscribers_are() {
	info "$1"
	[[ $code == 200 ]] && jq -e ".subscribers == $2" "$BODY" >/dev/null 2>&1
}

# sse_bg NAME PATH [curl args...]: curl subscribing to PATH in the
# background: the stream in NAME.out, its head in NAME.hdr; the pid in
# CLIENT_PID (killed in teardown).
sse_bg() {
	local name=$1 path=$2; shift 2
	curl -sN --max-time $((30 * ${TIME_FACTOR:-1})) \
	    -H 'Accept: text/event-stream' -D "$BATS_TEST_TMPDIR/$name.hdr" \
	    "$@" "$(url "$path")" > "$BATS_TEST_TMPDIR/$name.out" \
	    2> "$BATS_TEST_TMPDIR/$name.err" 3>&- &
	CLIENT_PID=$!
	CLIENTS+=("$CLIENT_PID")
}

# stream_of NAME: what curl NAME received, CRs, comment lines and retry:
# lines (and so a block of a retry: alone) removed.
stream_of() {
	tr -d '\r' < "$BATS_TEST_TMPDIR/$1.out" | grep -v -e '^:' -e '^retry:' |
	    cat -s | sed '/./,$!d'
}
# stream_has NAME LINE
stream_has() { stream_of "$1" | grep -qxF -- "$2"; }

# cc ARGS...: t/chanclient.py in the foreground, its JSON lines in $OUT
# (NAME.out for the NAME given in CC_NAME, default "fg").
cc() {
	OUT=$BATS_TEST_TMPDIR/${CC_NAME:-fg}.out
	"$PY" "$TDIR/chanclient.py" "$@" > "$OUT" 3>&-
}

# cc_bg NAME ARGS...: t/chanclient.py in the background, its JSON lines
# in NAME.out; the pid in CLIENT_PID (killed in teardown).
cc_bg() {
	local name=$1; shift
	"$PY" "$TDIR/chanclient.py" "$@" > "$BATS_TEST_TMPDIR/$name.out" \
	    2> "$BATS_TEST_TMPDIR/$name.err" 3>&- &
	CLIENT_PID=$!
	CLIENTS+=("$CLIENT_PID")
}

out_file() { echo "$BATS_TEST_TMPDIR/$1.out"; }
# ready NAME: chanclient NAME has every subscriber's response head.
ready() { grep -q '"ev": "ready"' "$(out_file "$1")"; }
# events_at_least NAME N: chanclient NAME has printed N events in all.
events_at_least() {
	(( $(grep -c '"ev": "event"' "$(out_file "$1")" || true) >= $2 ))
}
# pubs_at_least NAME N: chanclient pub NAME has answers for N messages.
pubs_at_least() {
	(( $(grep -c '"ev": "pub"' "$(out_file "$1")" || true) >= $2 ))
}
# cc_check NAME FILTER [JQ ARGS...]: FILTER (jq, on all of NAME's lines
# as an array, with JQ ARGS such as --argjson b 5) holds.
cc_check() {
	local name=$1 filter=$2; shift 2
	command -v jq >/dev/null || fail "jq is not installed (package jq)"
	jq -e -s "$@" "$filter" "$(out_file "$name")" >/dev/null ||
	    fail "not true of $name ($*): $filter"$'\n'"$(cat "$(out_file "$name")")"
}
# finished PID: the client ended by itself, with success.
finished() { wait "$1"; }

# subs_of NAME: jq: chanclient NAME's subscriber summaries.
SUBS='[.[] | select(.ev == "sub")]'
# in_order N: jq: a summary has ids $b to $b + N - 1 and data m1 to mN.
in_order() {
	echo ".ids == [range(\$b; \$b + $1)] and
	    .data == [range(1; $(($1 + 1))) | \"m\\(.)\"]"
}

# pub_ids NAME: the ids the publisher NAME was given, in order.
pub_ids() { jq -c -s '[.[] | select(.ev == "pub") | .id]' "$(out_file "$1")"; }
# first_pub NAME: the first of them.
first_pub() { jq -s '[.[] | select(.ev == "pub")][0].id' "$(out_file "$1")"; }
# pubs_from NAME B N: the publisher NAME was given ids B to B+N-1, in
# order, every message accepted.
pubs_from() {
	cc_check "$1" '[.[] | select(.ev == "pub")] |
	    all(.status == 202) and map(.id) == [range($b; $b + $n)]' \
	    --argjson b "$2" --argjson n "$3"
}

# holders: the pid of the process holding each established connection on
# the server's side, one a line.
holders() {
	ss -Htnp state established "( sport = :$PORT )" |
	    grep -o 'pid=[0-9]*' | cut -d= -f2
}
# every_worker_holds N: each worker holds N connections or more.
every_worker_holds() {
	local w h
	h=$(holders)
	for w in $(worker_pids); do
		(( $(grep -cx "$w" <<<"$h" || true) >= $1 )) || return 1
	done
}

# on_both_workers N: each worker holds N connections or more, or fail.
on_both_workers() {
	every_worker_holds "$1" ||
	    fail "subscribers not on both workers: $(holders | sort | uniq -c)"
}

# publish_n PATH N SUBS: N messages m1..mN POSTed, each accepted for SUBS
# subscribers, with ids B to B + N - 1.
publish_n() {
	CC_NAME=p cc pub "$(url "$1")" --count "$2"
	B=$(first_pub p)
	pubs_from p "$B" "$2"
	cc_check p '[.[] | select(.ev == "pub")] | all(.subscribers == $s)' \
	    --argjson s "$3"
}

# status_json FILTER: the JSON status page, and FILTER holds of it.
status_json() {
	req GET "$SP?json"
	[[ $code == 200 ]] && jq -e "$1" "$BODY" >/dev/null
}
# subscribed N: the status page counts N subscribers in all (how many
# subscribers a channel's info shows has a test of its own).
subscribed() { status_json ".channels.subscribers == $1"; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
before() { (( $(now_ms) - $2 < $1 + 200 * ${TIME_FACTOR:-1} )); }

# --- subscribe and publish --------------------------------------------------

@test "one worker: POST is 202 for 1 subscriber; the stream has id: and data:; several lines, several data:" {
	WORKERS=1 ch_start
	sse_bg a /chat/room1
	wait_until 5 subscribed 1
	publish /chat/room1 hello 1
	local b=$ID
	wait_until 5 stream_has a 'data: hello'
	publish /chat/room1 $'line one\nline two\nline three' 1
	(( ID == b + 1 )) || fail "ids $b then $ID"
	wait_until 5 stream_has a 'data: line three'
	# The head: 200, an event stream.
	local hdr=$BATS_TEST_TMPDIR/a.hdr
	head -n 1 "$hdr" | grep -q '^HTTP/1.1 200 ' || fail "head: $(cat "$hdr")"
	tr -d '\r' < "$hdr" | grep -Eiqx 'Content-Type: text/event-stream(;.*)?' ||
	    fail "head: $(cat "$hdr")"
	local want
	want=$(printf '%s\n' "id: $b" 'data: hello' '' "id: $((b + 1))" \
	    'data: line one' 'data: line two' 'data: line three')
	[[ $(stream_of a) == "$want" ]] ||
	    fail "stream: $(cat -A "$BATS_TEST_TMPDIR/a.out")"
	# The subscriber is still there.
	alive "$CLIENT_PID"
	info /chat/room1
	[[ $code == 200 ]]
	json_check "$BODY" ".channel == \"/chat/room1\" and .last_id == $((b + 1))"
}

@test "a new channel's ids go up by one from a time-based first id, for 1 subscriber" {
	WORKERS=1 ch_start
	local first now
	sse_bg a /chat/fresh
	wait_until 5 subscribed 1
	post /chat/fresh one
	[[ $code == 202 ]] || fail "POST: $code"
	json_check "$BODY" '.subscribers == 1'
	first=$(jq -r .id "$BODY")
	# The first id is the creation time in ms x 1000 (and one): never
	# an id a client kept from before a restart (preforkd.conf(5)).
	now=$(( $(date +%s%3N) * 1000 ))
	(( first > now - 60000000 && first <= now + 1 )) ||
	    fail "first id $first, not near $now"
	post /chat/fresh two
	json_check "$BODY" ".id == $((first + 1)) and .subscribers == 1"
	wait_until 5 stream_has a 'data: two'
	[[ $(stream_of a) == "$(printf '%s\n' "id: $first" 'data: one' '' \
	    "id: $((first + 1))" 'data: two')" ]] || fail "stream: $(stream_of a)"
}

@test "a GET without Accept: text/event-stream is the channel's JSON: channel, last_id, subscribers" {
	WORKERS=2 ch_start
	publish /chat/room1 one 0
	publish /chat/room1 two 0
	local last=$ID
	info /chat/room1
	[[ $code == 200 ]]
	grep -Eiqx 'Content-Type: application/json(;.*)?' "$HDR" ||
	    fail "head: $(cat "$HDR")"
	json_check "$BODY" ".channel == \"/chat/room1\" and .last_id == $last and
	    .subscribers == 0"
	# Accept: text/html is no subscription either.
	req GET /chat/room1 -H 'Accept: text/html'
	[[ $code == 200 ]]
	json_check "$BODY" ".last_id == $last"
	sse_bg a /chat/room1
	sse_bg b /chat/room1
	wait_until 5 subscribed 2
	info /chat/room1
	json_check "$BODY" ".channel == \"/chat/room1\" and .last_id == $last and
	    .subscribers == 2"
}

@test "the prefix itself is 404; deeper paths are channels of their own; a trailing slash on the prefix is dropped; other paths are files" {
	WORKERS=1 ch_start 'channel /news/'
	local p
	for p in /chat /chat/ /news /news/; do
		req GET "$p" -H 'Accept: text/event-stream'
		[[ $code == 404 ]] || fail "GET $p (event-stream): $code"
		req GET "$p"
		[[ $code == 404 ]] || fail "GET $p: $code"
		post "$p" x
		[[ $code == 404 ]] || fail "POST $p: $code"
	done
	# The full path is the name: /chat/a/b is a channel of its own.
	publish /chat/a/b deep 0
	local deep=$ID
	info /chat/a/b
	json_check "$BODY" ".channel == \"/chat/a/b\" and .last_id == $deep"
	publish /chat/a other 0
	info /chat/a/b
	json_check "$BODY" ".last_id == $deep"
	publish /news/today x 0
	info /news/today
	json_check "$BODY" '.channel == "/news/today"'
	# Not under a prefix: an ordinary path (no file there).
	post /chatroom/x x
	[[ $code != 202 ]] || fail "POST /chatroom/x published"
	req GET /chatroom/x
	[[ $code == 404 ]]
	run curl -s "$(url /hello.txt)"
	assert_output hello
}

@test "across workers: 10 subscribers on both workers, 100 messages; each gets all 100 exactly once, in order" {
	# 8 places a worker: each of the 2 holds at least 2 subscribers.
	WORKERS=2 ch_start 'worker_connections 8'
	cc_bg s sub "$(url /chat/many)" --count 10 --expect 100 \
	    --timeout $((60 * ${TIME_FACTOR:-1}))
	local s=$CLIENT_PID
	wait_until 20 ready s
	wait_until 5 subscribed 10
	on_both_workers 2
	publish_n /chat/many 100 10
	local b=$B
	finished "$s"
	cc_check s "$SUBS"' | length == 10 and
	    all(.ids == [range($b; $b + 100)] and
	        .data == [range(1; 101) | "m\(.)"] and
	        .ends == ["expect"] and .connections == 1)' --argjson b "$b"
	cc_check s '[.[] | select(.ev == "open")] | all(.status == 200)'
}

# --- resume ---------------------------------------------------------------

@test "resume: live only without Last-Event-ID; Last-Event-ID and ?last_id= give exactly the missed messages, then live ones" {
	WORKERS=2 ch_start
	publish /chat/r early 0
	local b=$ID
	cc_bg a sub "$(url /chat/r)" --expect 3
	local a=$CLIENT_PID
	wait_until 10 ready a
	wait_until 5 subscribed 1
	CC_NAME=p1 cc pub "$(url /chat/r)" --count 3
	pubs_from p1 $((b + 1)) 3
	# a had 3 (not the early one) and went.
	finished "$a"
	cc_check a "$SUBS"' | length == 1 and .[0].ids == [$b + 1, $b + 2, $b + 3]
	    and .[0].data == ["m1", "m2", "m3"]' --argjson b "$b"
	wait_until 5 subscribed 0
	# Published while nobody listens.
	CC_NAME=p2 cc pub "$(url /chat/r)" --start 4 --count 3
	pubs_from p2 $((b + 4)) 3
	# c resumes by the header, d by the query, e from the last id itself.
	cc_bg c sub "$(url /chat/r)" --last-id $((b + 3)) --expect 5
	local c=$CLIENT_PID
	cc_bg d sub "$(url /chat/r)" --query-last-id $((b + 3)) --expect 5
	local d=$CLIENT_PID
	cc_bg e sub "$(url /chat/r)" --last-id $((b + 6)) --expect 2
	local e=$CLIENT_PID
	wait_until 10 ready c
	wait_until 10 ready d
	wait_until 10 ready e
	wait_until 5 events_at_least c 3
	wait_until 5 events_at_least d 3
	wait_until 5 subscribed 3
	# e has nothing yet: its last id was the channel's last.
	run ! events_at_least e 1
	CC_NAME=p3 cc pub "$(url /chat/r)" --start 7 --count 2
	pubs_from p3 $((b + 7)) 2
	cc_check p3 '[.[] | select(.ev == "pub")] | all(.subscribers == 3)'
	finished "$c"
	finished "$d"
	finished "$e"
	local n
	for n in c d; do
		cc_check "$n" "$SUBS"' | .[0].ids == [range($b + 4; $b + 9)] and
		    .[0].data == ["m4", "m5", "m6", "m7", "m8"] and
		    .[0].connections == 1' --argjson b "$b"
	done
	cc_check e "$SUBS"' | .[0].ids == [$b + 7, $b + 8] and
	    .[0].data == ["m7", "m8"]' --argjson b "$b"
	# curl with the header: the same.
	sse_bg f /chat/r -H "Last-Event-ID: $((b + 6))"
	wait_until 5 stream_has f 'data: m8'
	[[ $(stream_of f) == "$(printf '%s\n' "id: $((b + 7))" 'data: m7' '' \
	    "id: $((b + 8))" 'data: m8')" ]] || fail "stream: $(stream_of f)"
}

@test "resume: a Last-Event-ID older than the buffer (channel_buffer 5) starts at the oldest kept" {
	WORKERS=2 ch_start 'channel_buffer 5'
	CC_NAME=p cc pub "$(url /chat/old)" --count 10
	local b
	b=$(first_pub p)
	pubs_from p "$b" 10
	info /chat/old
	json_check "$BODY" ".last_id == $((b + 9))"
	# Kept: the last 5, b+5 to b+9 (m6 to m10).
	local kept='.[0].ids == [range($b + 5; $b + 10)] and
	    .[0].data == ["m6", "m7", "m8", "m9", "m10"]'
	CC_NAME=a cc sub "$(url /chat/old)" --last-id "$b" --expect 5 --timeout 10
	cc_check a "$SUBS | $kept" --argjson b "$b"
	CC_NAME=z cc sub "$(url /chat/old)" --last-id 0 --expect 5 --timeout 10
	cc_check z "$SUBS | $kept" --argjson b "$b"
	CC_NAME=q cc sub "$(url /chat/old)" --query-last-id $((b + 2)) --expect 5 \
	    --timeout 10
	cc_check q "$SUBS | $kept" --argjson b "$b"
	# Within the buffer: exactly the rest, then a live one.
	cc_bg d sub "$(url /chat/old)" --last-id $((b + 7)) --expect 3
	local d=$CLIENT_PID
	wait_until 10 events_at_least d 2
	publish /chat/old m11 1
	(( ID == b + 10 )) || fail "id $ID"
	finished "$d"
	cc_check d "$SUBS"' | .[0].ids == [$b + 8, $b + 9, $b + 10] and
	    .[0].data == ["m9", "m10", "m11"]' --argjson b "$b"
}

# --- limits -----------------------------------------------------------------

@test "limits: a body over channel_max_message is 413; at the size it is 202" {
	WORKERS=1 ch_start 'channel_max_message 1k'
	local f=$BATS_TEST_TMPDIR/msg
	head -c 1024 /dev/zero | tr '\0' x > "$f"
	publish /chat/big "@$f" 0
	local b=$ID
	head -c 1025 /dev/zero | tr '\0' x > "$f"
	post /chat/big "@$f"
	[[ $code == 413 ]] || fail "1025 bytes: $code"
	info /chat/big
	json_check "$BODY" ".last_id == $b"
	publish /chat/big small 0
	(( ID == b + 1 )) || fail "id $ID after $b"
}

@test "limits: channel_buffer 3 and a subscriber that reads nothing: 429 with Retry-After: 1; other channels go on; when it goes, 202 again" {
	WORKERS=1 ch_start 'channel_buffer 3' 'channel_max_message 1m' \
	    'channel_memory 64m' 'send_timeout 60s'
	cc_bg slow nosub "$(url /chat/slow)" --timeout $((60 * ${TIME_FACTOR:-1}))
	local slow=$CLIENT_PID
	wait_until 10 ready slow
	cc_check slow '.[0].status == 200'
	wait_until 5 subscribed 1
	local f=$BATS_TEST_TMPDIR/msg n=0 accepted=0 first=
	head -c 262144 /dev/zero | tr '\0' x > "$f"
	# The socket buffers take some; then 3 wait in the channel; then 429.
	# At most 200 (50 MB), 30 s.
	local deadline=$(( $(date +%s) + 30 * ${TIME_FACTOR:-1} ))
	while (( n < 200 && $(date +%s) < deadline )); do
		n=$((n + 1))
		post /chat/slow "@$f"
		[[ $code == 202 ]] || break
		[[ -n $first ]] || first=$(jq .id "$BODY")
		accepted=$((accepted + 1))
	done
	[[ $code == 429 ]] || fail "after $accepted accepted: $code, expected 429"
	header_is Retry-After 1
	(( accepted >= 3 )) || fail "only $accepted accepted before the 429"
	# Again, while it still reads nothing.
	post /chat/slow small
	[[ $code == 429 ]] || fail "again: $code"
	# Another channel is not full.
	publish /chat/other fine 0
	info /chat/slow
	json_check "$BODY" ".last_id == $((first + accepted - 1))"
	# It goes: its messages are pending no more.
	kill -KILL "$slow"
	wait "$slow" || true
	wait_until 5 subscribed 0
	publish /chat/slow after 0
	(( ID == first + accepted )) || fail "id $ID"
}

# fill_until_429 PATH: POST 256 KiB messages to PATH until one is
# refused (a subscriber that reads nothing holds them); FIRST, ACCEPTED.
fill_until_429() {
	local f=$BATS_TEST_TMPDIR/msg n=0
	head -c 262144 /dev/zero | tr '\0' x > "$f"
	FIRST='' ACCEPTED=0
	local deadline=$(( $(date +%s) + 30 * ${TIME_FACTOR:-1} ))
	while (( n < 200 && $(date +%s) < deadline )); do
		n=$((n + 1))
		post "$1" "@$f"
		[[ $code == 202 ]] || break
		[[ -n $FIRST ]] || FIRST=$(jq .id "$BODY")
		ACCEPTED=$((ACCEPTED + 1))
	done
	[[ $code == 429 ]] || fail "after $ACCEPTED accepted: $code, expected 429"
}

# slow_sub PATH SETTINGS...: one worker, a subscriber of PATH that reads
# nothing (its pid in SLOW), and PATH filled with what it holds.
slow_sub() {
	local path=$1; shift
	WORKERS=1 ch_start 'channel_buffer 3' 'channel_max_message 1m' \
	    'channel_memory 64m' "$@"
	cc_bg slow nosub "$(url "$path")" --timeout $((90 * ${TIME_FACTOR:-1}))
	SLOW=$CLIENT_PID
	wait_until 10 ready slow
	wait_until 5 subscribed 1
	fill_until_429 "$path"
}

@test "send_timeout: a subscriber that takes nothing for that long is closed; what it held no longer stops publishers" {
	slow_sub /chat/gone 'send_timeout 2s'
	# Still connected (it never closes its side), yet closed by us.
	wait_until $((10 * ${TIME_FACTOR:-1})) subscribed 0
	kill -0 "$SLOW" || fail "the client ended by itself"
	publish /chat/gone after 0
	(( ID == FIRST + ACCEPTED )) || fail "id $ID"
}

@test "fast stop: a second SIGTERM ends subscribers a graceful stop waits for, at once" {
	slow_sub /chat/hold 'send_timeout 60s' 'shutdown_timeout 60s'
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	# The subscriber cannot be given what it holds: the stop waits.
	sleep 1
	kill -0 "$SERVER_PID" || fail "the stop did not wait for the subscriber"
	local t0
	t0=$(now_ms)
	kill -TERM "$SERVER_PID"
	wait_until 5 gone "$SERVER_PID"
	before 3000 "$t0"
	run ! log_has 'shutdown_timeout reached'
}

@test "limits: channel_memory full of messages a subscriber has not had: 507 on every channel; when it goes, 202 again" {
	# 64k of memory, 16k messages: 4 pending ones fill it, long before
	# channel_buffer 100 does.
	WORKERS=1 ch_start 'channel_memory 64k' 'channel_max_message 16k' \
	    'channel_buffer 100' 'send_timeout 60s'
	cc_bg slow nosub "$(url /chat/slow)" --timeout $((60 * ${TIME_FACTOR:-1}))
	local slow=$CLIENT_PID
	wait_until 10 ready slow
	wait_until 5 subscribed 1
	local f=$BATS_TEST_TMPDIR/msg n=0 accepted=0
	head -c 16384 /dev/zero | tr '\0' x > "$f"
	# The socket buffers take some MB first: at most 2000 (32 MB), 30 s.
	local deadline=$(( $(date +%s) + 30 * ${TIME_FACTOR:-1} ))
	while (( n < 2000 && $(date +%s) < deadline )); do
		n=$((n + 1))
		post /chat/slow "@$f"
		[[ $code == 202 ]] || break
		accepted=$((accepted + 1))
	done
	[[ $code == 507 ]] || fail "after $accepted accepted: $code, expected 507"
	# The memory is for all channels.
	post /chat/other "@$f"
	[[ $code == 507 ]] || fail "another channel: $code, expected 507"
	kill -KILL "$slow"
	wait "$slow" || true
	wait_until 5 subscribed 0
	publish /chat/slow "@$f" 0
	publish /chat/other "@$f" 0
}

@test "channel_message_timeout 1s: expired messages are not resumed from" {
	WORKERS=1 ch_start 'channel_message_timeout 1s'
	CC_NAME=p cc pub "$(url /chat/exp)" --count 3
	local b t0
	b=$(first_pub p)
	t0=$(now_ms)
	pubs_from p "$b" 3
	# Kept for now.
	CC_NAME=a cc sub "$(url /chat/exp)" --last-id 0 --expect 3 --timeout 10
	cc_check a "$SUBS"' | .[0].ids == [$b, $b + 1, $b + 2]' --argjson b "$b"
	# A second and a half later, they are gone: a resume from 0 starts
	# with the next one.
	later() { (( $(now_ms) - t0 > 1500 )); }
	wait_until 5 later
	cc_bg z sub "$(url /chat/exp)" --last-id 0 --expect 1
	local z=$CLIENT_PID
	wait_until 10 ready z
	wait_until 5 subscribed 1
	publish /chat/exp fresh 1
	local id=$ID
	finished "$z"
	cc_check z "$SUBS"' | .[0].ids == [$id] and .[0].data == ["fresh"]' \
	    --argjson id "$id"
	info /chat/exp
	json_check "$BODY" ".last_id == $id"
}

@test "limits: a chunked POST is 411 (Content-Length required), nothing published" {
	WORKERS=1 ch_start
	publish /chat/c first 0
	local b=$ID
	post /chat/c hi -H 'Transfer-Encoding: chunked'
	[[ $code == 411 ]] || fail "chunked: $code"
	info /chat/c
	[[ $code == 200 ]]
	json_check "$BODY" ".last_id == $b"
	publish /chat/c hi 0
	(( ID == b + 1 )) || fail "id $ID"
}

@test "limits: channel_publish_from 10.0.0.0/8 refuses 127.0.0.1 with 403; subscribing and the info still work" {
	WORKERS=1 ch_start 'channel_publish_from 10.0.0.0/8'
	sse_bg a /chat/p
	wait_until 5 subscribed 1
	post /chat/p nope
	[[ $code == 403 ]] || fail "POST from 127.0.0.1: $code"
	info /chat/p
	[[ $code == 200 ]]
	json_check "$BODY" '.channel == "/chat/p"'
	# Nothing came on the stream.
	[[ -z $(stream_of a) ]] || fail "stream: $(stream_of a)"
}

@test "limits: channel_publish_from naming 127.0.0.0/8 lets it publish" {
	WORKERS=1 ch_start 'channel_publish_from 10.0.0.0/8 127.0.0.0/8'
	publish /chat/p yes 0
}

@test "limits: channel_max 2: a third channel's POST is 507; the two go on" {
	WORKERS=2 ch_start 'channel_max 2'
	publish /chat/a one 0
	publish /chat/b one 0
	post /chat/c one
	[[ $code == 507 ]] || fail "third channel: $code"
	publish /chat/a two 0
	publish /chat/b two 0
	post /chat/d one
	[[ $code == 507 ]] || fail "fourth channel: $code"
}

# --- configuration errors -------------------------------------------------

# rejected LINE MESSAGE: the file is refused, by -t and by a start, with
# one line "$CONF:LINE: MESSAGE..." (MESSAGE a prefix of what follows the
# line number) and exit 1.
rejected() {
	local how
	for how in -t -f; do
		run timeout 10 "$PREFORKD" "$how" -c "$CONF"
		assert_failure 1
		[[ ${#lines[@]} -eq 1 ]] || fail "$how: not one line: $output"
		[[ $output == "$CONF:$1: $2"* ]] ||
		    fail "$how: expected '$CONF:$1: $2...', got: $output"
	done
}

# conf LINE...: the file, with a document root and a listener first.
conf() { printf '%s\n' "root $DOCROOT" 'listen 127.0.0.1:0' "$@" > "$CONF"; }

@test "bad configuration: channel without a path, a relative path, a duplicate prefix, channel_buffer 0, a 17th channel: FILE:LINE: message, exit 1" {
	conf 'channel'
	rejected 3 'channel: missing value'
	conf 'channel chat'
	rejected 3 'channel: '
	[[ $output == *chat* ]] || fail "the path is not named: $output"
	conf 'channel /chat' 'workers 2' 'channel /chat'
	rejected 5 'channel: '
	[[ $output == */chat* ]] || fail "the prefix is not named: $output"
	# The trailing slash is dropped: the same prefix.
	conf 'channel /chat' 'channel /chat/'
	rejected 4 'channel: '
	conf 'channel /chat' 'channel_buffer 0'
	rejected 4 "channel_buffer: invalid value '0' (expected 1 to 65536)"
	conf 'channel /chat' 'channel_buffer 65537'
	rejected 4 "channel_buffer: invalid value '65537' (expected 1 to 65536)"
	local i chans=()
	for i in $(seq 1 17); do chans+=("channel /c$i"); done
	conf "${chans[@]}"
	rejected 19 'channel: '
	# 16 are fine.
	conf "${chans[@]:0:16}"
	run "$PREFORKD" -t -c "$CONF"
	assert_success
}

# --- graceful stop and reload -------------------------------------------------

@test "graceful stop: every subscriber gets every accepted message, then event: close with last_id; requests during the stop get 503 with Retry-After; exit 0" {
	WORKERS=1 ch_start 'shutdown_timeout 10s'
	cc_bg s sub "$(url /chat/stop)" --count 3 --timeout $((30 * ${TIME_FACTOR:-1}))
	local s=$CLIENT_PID
	wait_until 10 ready s
	wait_until 5 subscribed 3
	CC_NAME=p cc pub "$(url /chat/stop)" --count 20
	local b
	b=$(first_pub p)
	pubs_from p "$b" 20
	# Two requests on their way when the stop comes: a head half sent.
	local pf gf
	exec {pf}<>"/dev/tcp/127.0.0.1/$PORT"
	exec {gf}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'POST /chat/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n' >&"$pf"
	printf 'GET /chat/stop HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n' >&"$gf"
	# Both accepted by the worker (3 subscribers and these 2).
	accepted_all() {
		[[ $(accept_queue) == 0 ]] && (( $(holders | wc -l) >= 5 ))
	}
	wait_until 5 accepted_all
	local t0
	t0=$(now_ms)
	# Not waiting for the 20 to arrive: the stop must deliver them.
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	printf '\r\nlate' >&"$pf"
	printf '\r\n' >&"$gf"
	local pr gr
	pr=$(timeout 5 cat <&"$pf" | tr -d '\r') || true
	gr=$(timeout 5 cat <&"$gf" | tr -d '\r') || true
	exec {pf}>&- {gf}>&-
	[[ $(head -n 1 <<<"$pr") == 'HTTP/1.1 503 '* ]] || fail "POST: $pr"
	grep -Eqi '^Retry-After: [0-9]+$' <<<"$pr" || fail "POST: $pr"
	[[ $(head -n 1 <<<"$gr") == 'HTTP/1.1 503 '* ]] || fail "GET: $gr"
	grep -Eqi '^Retry-After: [0-9]+$' <<<"$gr" || fail "GET: $gr"
	finished "$s"
	cc_check s "$SUBS"' | length == 3 and
	    all(.ids == [range($b; $b + 20)] and
	        .data == [range(1; 21) | "m\(.)"] and
	        .ends == ["close"] and (.control | length) == 1 and
	        .control[0].event == "close" and .control[0].after == $b + 19 and
	        (.control[0].data | fromjson | .last_id) == $b + 19)' \
	    --argjson b "$b"
	[[ $(server_exit_status) == 0 ]]
	before 10000 "$t0"
	run ! log_has 'shutdown_timeout reached'
}

# six_subs PATH: 6 subscribers of PATH that reconnect, expect 60 messages
# (chanclient s, its pid in S), all in.
six_subs() {
	cc_bg s sub "$(url "$1")" --count 6 --reconnect --expect 60 \
	    --timeout $((60 * ${TIME_FACTOR:-1}))
	S=$CLIENT_PID
	wait_until 10 ready s
	wait_until 5 subscribed 6
}

# publish_across_reload PATH: 20 messages, then 40 more, one every 20 ms,
# with a reload (HUP) after the first 5 of them; every one accepted, at
# once or after a retry, with ids B to B + 59.
publish_across_reload() {
	CC_NAME=p1 cc pub "$(url "$1")" --count 20
	B=$(first_pub p1)
	pubs_from p1 "$B" 20
	cc_bg p2 pub "$(url "$1")" --start 21 --count 40 --interval 20 \
	    --retry 10
	local p2=$CLIENT_PID
	wait_until 10 pubs_at_least p2 5
	kill -HUP "$SERVER_PID"
	finished "$p2"
	wait_until 10 log_has 'reloaded: generation 2'
	pubs_from p2 $((B + 20)) 40
}

@test "reload: the subscribers' sockets pass to the new generation: one connection, no event, every message once, in order; the old workers go" {
	WORKERS=2 ch_start 'shutdown_timeout 10s'
	local old
	old=$(worker_pids)
	six_subs /chat/pass
	local s=$S
	CC_NAME=p1 cc pub "$(url /chat/pass)" --count 20
	local b
	b=$(first_pub p1)
	pubs_from p1 "$b" 20
	# 40 more, one every 20 ms; two reloads while they go.
	cc_bg p2 pub "$(url /chat/pass)" --start 21 --count 40 --interval 20 \
	    --retry 10
	local p2=$CLIENT_PID
	wait_until 10 pubs_at_least p2 5
	kill -HUP "$SERVER_PID"
	wait_until 10 log_has 'reloaded: generation 2'
	wait_until 10 pubs_at_least p2 15
	kill -HUP "$SERVER_PID"
	wait_until 10 log_has 'reloaded: generation 3'
	# Counted once each in the store throughout: neither left nor joined.
	subscribers_are /chat/pass 6
	finished "$p2"
	pubs_from p2 $((b + 20)) 40
	finished "$s"
	wait_until 5 subscribers_are /chat/pass 0
	cc_check s "$SUBS"' | length == 6 and
	    all(.ids == [range($b; $b + 60)] and
	        .data == [range(1; 61) | "m\(.)"] and
	        .connections == 1 and .ends == ["expect"] and
	        (.control | length) == 0)' --argjson b "$b"
	olds_gone() { local p; for p in $old; do gone "$p" || return 1; done; }
	wait_until 10 olds_gone
	# Still counted once each, by the store, for the new generation.
	run ! log_has 'could not be passed on'
}

@test "channel_handover off: a reload sends event: reconnect with last_id and retry: 0; resuming, each gets every message published across the reload exactly once, in order" {
	WORKERS=2 ch_start 'shutdown_timeout 10s' 'channel_handover off'
	local old
	old=$(worker_pids)
	six_subs /chat/hup
	local s=$S
	publish_across_reload /chat/hup
	local b=$B
	finished "$s"
	cc_check s "$SUBS"' | length == 6 and all('"$(in_order 60)"' and
	        .connections >= 2 and .ends[0] == "reconnect" and
	        .ends[-1] == "expect" and
	        (.control | length) >= 1 and
	        all(.control[]; .event == "reconnect" and .retry == "0" and
	            (.data | fromjson | .last_id) == .after))' --argjson b "$b"
	old_gone() { local p; for p in $old; do gone "$p" || return 1; done; }
	wait_until 10 old_gone
	# The store survived: the new generation knows the channel.
	info /chat/hup
	json_check "$BODY" ".last_id == $((b + 59))"
}

@test "binary upgrade (SIGUSR2): the store goes to the new master, the subscribers' sockets to its workers; nothing missed, no duplicate, no reconnect" {
	local pidf=$BATS_TEST_TMPDIR/preforkd.pid
	WORKERS=2 ch_start 'shutdown_timeout 10s' "pidfile $pidf"
	local old=$SERVER_PID
	cc_bg s sub "$(url /chat/up)" --count 4 --reconnect --expect 30 \
	    --timeout $((60 * ${TIME_FACTOR:-1}))
	local s=$CLIENT_PID
	wait_until 10 ready s
	wait_until 5 subscribed 4
	CC_NAME=p1 cc pub "$(url /chat/up)" --count 10
	local b
	b=$(first_pub p1)
	pubs_from p1 "$b" 10
	kill -USR2 "$old"
	wait_until 10 log_has 'upgrade: new master [0-9]* is serving'
	# Published to either master while the old one stops.
	CC_NAME=p2 cc pub "$(url /chat/up)" --start 11 --count 20 --interval 10 \
	    --retry 10
	pubs_from p2 $((b + 10)) 20
	wait_until 15 gone "$old"
	SERVER_PID=$(cat "$pidf")
	[[ $SERVER_PID != "$old" ]]
	finished "$s"
	cc_check s "$SUBS"' | length == 4 and
	    all(.ids == [range($b; $b + 30)] and
	        .data == [range(1; 31) | "m\(.)"] and
	        .connections == 1 and .ends == ["expect"] and
	        (.control | length) == 0)' --argjson b "$b"
	info /chat/up
	json_check "$BODY" ".last_id == $((b + 29))"
	wait_until 5 subscribers_are /chat/up 0
	run ! log_has 'could not be passed on'
}

@test "reload: a POST on a keep-alive connection an old worker holds is published, not refused" {
	WORKERS=1 ch_start
	local fifo=$BATS_TEST_TMPDIR/go out=$BATS_TEST_TMPDIR/ka.out
	mkfifo "$fifo"
	# One connection: a POST, then (once told) another on it.
	"$PY" - "$PORT" "$fifo" > "$out" 2>&1 <<'PY' &
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for body in (b"before", b"after"):
    if body == b"after":
        open(sys.argv[2]).read()
    c.request("POST", "/chat/ka", body=body)
    r = c.getresponse()
    print(r.status, r.read().decode().strip(), flush=True)
PY
	local py=$!
	CLIENTS+=("$py")
	wait_until 5 grep -q '^202' "$out"
	kill -HUP "$SERVER_PID"
	wait_until 10 log_has 'reloaded: generation 2'
	echo go > "$fifo"
	wait "$py"
	[[ $(grep -c '^202 ' "$out") == 2 ]] || fail "$(cat "$out")"
}

# --- the promise ---------------------------------------------------------------

# accepted_at_least NAME N: the publisher NAME has had N 202s.
accepted_at_least() {
	(( $(grep -c '"status": 202' "$(out_file "$1")" || true) >= $2 ))
}

# batch K PATH START N TAKEN T: publisher pK of N messages numbered from
# START, one every 2 ms, in the background (its pid in CLIENT_PID);
# back once TAKEN are accepted (within T s), while it still goes on.
batch() {
	cc_bg "p$1" pub "$(url "$2")" --start "$3" --count "$4" --interval 2
	wait_until "$6" accepted_at_least "p$1" "$5"
	! grep -q '"ev": "pubdone"' "$(out_file "p$1")" ||
	    fail "batch $1 was over before its signal"
}

# promise_accepted K N: the publishers p1..pK sent N messages in all; every
# answer was a 202, or a 503 during the stop, or none at all once the
# port was closed; the stop came before the last message.  The ids given,
# in order, go to accepted.json (a file: thousands of ids are more than
# one argument may hold).
promise_accepted() {
	local b
	for b in $(seq 1 "$1"); do
		cat "$(out_file "p$b")"
	done > "$(out_file p)"
	cc_check p '[.[] | select(.ev == "pub")] | length == $n and
	    all(.status == 202 or .status == 503 or (.status | type) == "string")
	    and ([.[] | select(.status != 202)] | length) > 0' --argjson n "$2"
	jq -s '[.[] | select(.ev == "pub" and .status == 202) | .id]' \
	    "$(out_file p)" > "$BATS_TEST_TMPDIR/accepted.json"
}

@test "the promise: 200 subscribers on 2 workers, 10,000 messages through 5 HUPs, a USR2, a SIGTERM: every 202 reaches every subscriber once, in order; the rest got 503" {
	local pidf=$BATS_TEST_TMPDIR/preforkd.pid t=$((120 * ${TIME_FACTOR:-1}))
	WORKERS=2 ch_start 'shutdown_timeout 20s' "pidfile $pidf" \
	    'channel_buffer 20000' 'channel_memory 64m' 'worker_connections 512'
	local old=$SERVER_PID i
	# The subscribers outlast every batch and signal (each bounded by t).
	cc_bg s sub "$(url /chat/promise)" --count 200 --reconnect \
	    --max-connections 40 --timeout $((4 * t))
	local s=$CLIENT_PID
	wait_until 60 ready s
	wait_until 10 subscribed 200
	# The messages in seven batches, numbered on from one to the next;
	# each signal comes once its batch has 300 taken, while it goes on:
	# five reloads, an upgrade, then the stop in the last batch.
	local b start=1 n pb
	for b in 1 2 3 4 5 6 7; do
		n=$(( b < 7 ? 1200 : 10000 - 6 * 1200 ))
		batch "$b" /chat/promise "$start" "$n" 300 "$t"
		pb=$CLIENT_PID
		if (( b <= 5 )); then
			kill -HUP "$old"
			wait_until 20 log_has "reloaded: generation $((b + 1)) "
		elif (( b == 6 )); then
			kill -USR2 "$old"
			wait_until 20 log_has 'upgrade: new master [0-9]* is serving'
			wait_until 30 gone "$old"
			SERVER_PID=$(cat "$pidf")
			[[ $SERVER_PID != "$old" ]]
		else
			kill -TERM "$SERVER_PID"
			wait_until 30 gone "$SERVER_PID"
			log_has "master\[$SERVER_PID\]: stopped: "
		fi
		wait "$pb"
		start=$((start + n))
	done
	finished "$s"
	promise_accepted 7 10000
	# The ids the publisher was given, in order: exactly what each
	# subscriber received, in that order, once, then the last event.
	cc_check s "$SUBS"' | length == 200 and
	    all(.ids == $acc[0] and .ends == ["close"] and
	        .connections == 1)' --slurpfile acc "$BATS_TEST_TMPDIR/accepted.json"
	run ! log_has 'could not be passed on'
}

# --- the status page ----------------------------------------------------------

@test "status page: channels counts channels, subscribers, messages, published, delivered" {
	WORKERS=2 ch_start
	status_json '.channels.channels == 0 and .channels.subscribers == 0 and
	    .channels.published == 0' || fail "fresh: $(cat "$BODY")"
	cc_bg a sub "$(url /chat/s1)" --count 2 --timeout $((30 * ${TIME_FACTOR:-1}))
	local a=$CLIENT_PID
	cc_bg b sub "$(url /chat/s2)" --timeout $((30 * ${TIME_FACTOR:-1}))
	local b=$CLIENT_PID
	wait_until 10 ready a
	wait_until 10 ready b
	wait_until 5 subscribed 3
	CC_NAME=p1 cc pub "$(url /chat/s1)" --count 3
	CC_NAME=p2 cc pub "$(url /chat/s2)" --count 2
	wait_until 5 events_at_least a 6
	wait_until 5 events_at_least b 2
	# 2 subscribers had 3, 1 had 2; m1 m2 m3 m1 m2 are 10 bytes.
	local f='.channels.channels == 2 and .channels.subscribers == 3 and
	    .channels.published == 5 and .channels.messages == 5 and
	    .channels.delivered == 8 and .channels.bytes >= 10 and
	    (.channels.refused | type) == "number"'
	wait_until 5 status_json "$f" || fail "got: $(cat "$BODY")"
	req GET "$SP"
	[[ $code == 200 ]]
	grep -q '^channels: ' "$BODY" || fail "text page: $(cat "$BODY")"
	kill -KILL "$a" "$b"
	wait "$a" "$b" || true
	wait_until 5 subscribed 0 || fail "after they left: $(cat "$BODY")"
	status_json '.channels.channels == 2 and .channels.published == 5'
}

# --- WebSocket subscribers -----------------------------------------------------

# wc_bg NAME ARGS...: t/wschanclient.py (python3-websockets) in the
# background, its JSON lines in NAME.out; the pid in CLIENT_PID.
wc_bg() {
	local name=$1; shift
	ws_python || fail "no python3 with the websockets module"
	"$WS_PYTHON" "$TDIR/wschanclient.py" "$@" \
	    > "$BATS_TEST_TMPDIR/$name.out" 2> "$BATS_TEST_TMPDIR/$name.err" 3>&- &
	CLIENT_PID=$!
	CLIENTS+=("$CLIENT_PID")
}
wsurl() { echo "ws://127.0.0.1:$PORT$1"; }
# ws_subs NAME PATH N ARGS...: N WebSocket subscribers of PATH (wc_bg),
# all of them connected and counted (the only subscribers there are);
# the client's pid in CLIENT_PID.
ws_subs() {
	local name=$1 path=$2 n=$3; shift 3
	wc_bg "$name" "$(wsurl "$path")" --count "$n" "$@"
	wait_until 60 ready "$name"
	wait_until 10 subscribed "$n"
}
# ws_opened NAME N COUNT: COUNT subscribers of NAME have had N upgrades.
ws_opened() {
	jq -e -s --argjson n "$2" --argjson k "$3" '[.[] | select(.ev ==
	    "open" and .status == 101)] | group_by(.sub) |
	    map(select(length >= $n)) | length >= $k' "$(out_file "$1")" \
	    >/dev/null 2>&1
}
# upgrade PATH KEY VERSION CONNECTION [curl args...]: a WebSocket
# handshake by curl (its status in $code, the head in $HDR).
KEY=dGhlIHNhbXBsZSBub25jZQ==
upgrade() {
	local path=$1 key=$2 version=$3 connection=$4; shift 4
	req GET "$path" -H 'Upgrade: websocket' -H "Connection: $connection" \
	    -H "Sec-WebSocket-Version: $version" \
	    -H "Sec-WebSocket-Key: $key" "$@" --max-time 2
}

@test "WebSocket: an upgrade on a channel URL subscribes; each message one text frame {id, data}, in order; JSON escapes; U+FFFD for bytes not UTF-8; the status page counts it" {
	WORKERS=1 ch_start
	ws_subs w /chat/ws1 1 --expect 4
	local w=$CLIENT_PID
	publish /chat/ws1 hello 1
	local b=$ID
	publish /chat/ws1 $'two\nlines, "quoted" \\ \t\x01' 1
	publish /chat/ws1 $'bad \xff\xfe end' 1
	publish /chat/ws1 'é ☃' 1
	finished "$w"
	cc_check w "$SUBS"' | length == 1 and .[0].ids == [range($b; $b + 4)]
	    and .[0].data == ["hello", "two\nlines, \"quoted\" \\ \t\u0001",
	        "bad \ufffd\ufffd end", "é ☃"] and .[0].ends == ["expect"]' \
	    --argjson b "$b"
	# Its Close was answered with its own code.
	cc_check w '[.[] | select(.ev == "end")] | .[0].reason == "1000"'
	cc_check w '[.[] | select(.ev == "open")] | all(.status == 101)'
	wait_until 5 subscribed 0
}

@test "bad configuration: channel_publish takes post and/or websocket; anything else is FILE:LINE: message, exit 1" {
	conf 'channel /chat' 'channel_publish post sse'
	rejected 4 "channel_publish: 'sse' (expected post and/or websocket)"
	conf 'channel /chat' 'channel_publish websocket post'
	run "$PREFORKD" -t -c "$CONF"
	assert_success
}

@test "WebSocket: a bad upgrade on a channel URL gets its status: 400, 426 with Sec-WebSocket-Version, 403 by websocket_origin; a plain GET is still the info" {
	WORKERS=1 ch_start
	upgrade /chat/bad short 13 Upgrade
	[[ $code == 400 ]] || fail "bad key: $code"
	upgrade /chat/bad "$KEY" 8 Upgrade
	[[ $code == 426 ]] || fail "version 8: $code"
	header_is Sec-WebSocket-Version 13
	upgrade /chat/bad "$KEY" 13 Upgrade -H 'Origin: http://elsewhere.example'
	[[ $code == 403 ]] || fail "origin: $code"
	upgrade /chat/bad "$KEY" 13 keep-alive
	[[ $code == 400 ]] || fail "no Connection: upgrade: $code"
	upgrade /chat/bad "$KEY" 13 Upgrade -X POST -d x
	[[ $code == 400 ]] || fail "POST: $code"
	upgrade /chat "$KEY" 13 Upgrade
	[[ $code == 404 ]] || fail "the prefix: $code"
	# A right one: 101 (curl gives up after its head).
	upgrade /chat/bad "$KEY" 13 Upgrade
	[[ $code == 101 ]] || fail "good: $code"
	header_is Sec-WebSocket-Accept 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
	info /chat/bad
	[[ $code == 200 ]]
}

@test "WebSocket: resume with ?last_id= gives every buffered message after it, then the live ones, no gap, no duplicate" {
	WORKERS=2 ch_start
	CC_NAME=p1 cc pub "$(url /chat/wr)" --count 5
	local b
	b=$(first_pub p1)
	pubs_from p1 "$b" 5
	ws_subs w /chat/wr 1 --query-last-id $((b + 1)) --expect 6
	local w=$CLIENT_PID
	CC_NAME=p2 cc pub "$(url /chat/wr)" --start 6 --count 3
	pubs_from p2 $((b + 5)) 3
	finished "$w"
	cc_check w "$SUBS"' | .[0].ids == [range($b + 2; $b + 8)] and
	    .[0].data == ["m3", "m4", "m5", "m6", "m7", "m8"]' --argjson b "$b"
}

@test "WebSocket: a message POSTed reaches SSE and WebSocket subscribers alike, on both workers, exactly once, in order" {
	WORKERS=2 ch_start 'worker_connections 8'
	wc_bg w "$(wsurl /chat/mix)" --count 6 --expect 50 \
	    --timeout $((60 * ${TIME_FACTOR:-1}))
	local w=$CLIENT_PID
	cc_bg s sub "$(url /chat/mix)" --count 6 --expect 50 \
	    --timeout $((60 * ${TIME_FACTOR:-1}))
	local s=$CLIENT_PID
	wait_until 20 ready w
	wait_until 20 ready s
	wait_until 5 subscribed 12
	on_both_workers 3
	publish_n /chat/mix 50 12
	local b=$B
	finished "$w"
	finished "$s"
	local f
	f="$SUBS"' | length == 6 and all('"$(in_order 50)"' and
	    .ends == ["expect"])'
	cc_check w "$f" --argjson b "$b"
	cc_check s "$f" --argjson b "$b"
}

@test "WebSocket: publishing from a subscriber (channel_publish post websocket): each text message published and answered {published, subscribers}; binary is {error: 415}; POST still works" {
	WORKERS=2 ch_start 'channel_publish post websocket'
	cc_bg s sub "$(url /chat/talk)" --expect 3
	local s=$CLIENT_PID
	wait_until 10 ready s
	wait_until 5 subscribed 1
	wc_bg w "$(wsurl /chat/talk)" --send one --send $'two "2"' \
	    --send-binary 00ff --expect 3
	local w=$CLIENT_PID
	wait_until 10 ready w
	wait_until 5 subscribed 2
	publish /chat/talk three 2
	finished "$w"
	finished "$s"
	local b
	b=$(jq -s '[.[] | select(.ev == "sub")][0].replies[0].published' \
	    "$(out_file w)")
	cc_check w "$SUBS"' | .[0].replies == [
	    {"published": $b, "subscribers": 2},
	    {"published": ($b + 1), "subscribers": 2},
	    {"error": 415, "reason": "binary messages are not published"}] and
	    .[0].ids == [range($b; $b + 3)] and
	    .[0].data == ["one", "two \"2\"", "three"]' --argjson b "$b"
	# The SSE subscriber on the other worker or this one had them too.
	cc_check s "$SUBS"' | .[0].ids == [range($b; $b + 3)] and
	    .[0].data == ["one", "two \"2\"", "three"]' --argjson b "$b"
}

@test "WebSocket: publishing refused: 403 by default (channel_publish post) and by channel_publish_from; POST 403 under channel_publish websocket; 413 over channel_max_message; 429 with channel_buffer full" {
	WORKERS=1 ch_start
	wc_bg a "$(wsurl /chat/no)" --send nope --expect 1
	local a=$CLIENT_PID
	wait_until 10 ready a
	wait_until 5 subscribed 1
	wait_until 5 grep -q '"reply"' "$(out_file a)"
	publish /chat/no fine 1
	finished "$a"
	cc_check a "$SUBS"' | .[0].replies == [{"error": 403,
	    "reason": "publishing is not allowed here"}] and
	    .[0].data == ["fine"]'
	stop_server

	WORKERS=1 ch_start 'channel_publish websocket' \
	    'channel_publish_from 10.0.0.0/8'
	post /chat/no x
	[[ $code == 403 ]] || fail "POST under channel_publish websocket: $code"
	wc_bg b "$(wsurl /chat/no)" --send nope
	wait_until 10 grep -q '"reply"' "$(out_file b)"
	grep -q '"reply": {"error": 403' "$(out_file b)" ||
	    fail "$(cat "$(out_file b)")"
	stop_server

	# channel_buffer 2 and an SSE subscriber that reads nothing: the
	# socket buffers take some, 2 wait, then 429.
	WORKERS=1 ch_start 'channel_publish websocket' 'channel_max_message 64k' \
	    'channel_buffer 2' 'channel_memory 64m' 'send_timeout 60s'
	cc_bg slow nosub "$(url /chat/lim)" --timeout $((60 * ${TIME_FACTOR:-1}))
	wait_until 10 ready slow
	# One of 64k + 1 bytes, then 100 of 64k.
	wc_bg c "$(wsurl /chat/lim)" --send-many 1:65537 --send-many 100:65536
	local c=$CLIENT_PID
	wait_until 20 grep -q '"error": 429' "$(out_file c)"
	kill -KILL "$c"
	wait "$c" || true
	grep -q '"reply": {"error": 413, "reason": "larger than channel_max_message"}' \
	    "$(out_file c)" || fail "no 413: $(head -c 2000 "$(out_file c)")"
	(( $(grep -c '"published"' "$(out_file c)") >= 2 )) ||
	    fail "none published before the 429"
}

@test "WebSocket: pings every websocket_ping_interval; a client that answers none is closed with 1001 ping timeout; one that reads nothing for send_timeout is closed" {
	WORKERS=1 ch_start 'websocket_ping_interval 1s' 'send_timeout 2s' \
	    'websocket_close_timeout 1s' 'channel_memory 64m' \
	    'channel_buffer 1000'
	ws_python || fail "no python3 with the websockets module"
	"$WS_PYTHON" "$TDIR/wsclient.py" --raw --show-pings "$(url /chat/pp)" \
	    > "$BATS_TEST_TMPDIR/mute.out" 2>&1 3>&- &
	CLIENTS+=("$!")
	wait_until 5 grep -qx ready "$BATS_TEST_TMPDIR/mute.out"
	wait_until 6 grep -qx 'close 1001 ping timeout' "$BATS_TEST_TMPDIR/mute.out"
	grep -qx ping "$BATS_TEST_TMPDIR/mute.out"
	wait_until 5 subscribed 0
	# A reader of nothing: its socket fills, then send_timeout.
	"$WS_PYTHON" "$TDIR/wsclient.py" --raw --no-read --pong \
	    "$(url /chat/slow)" > "$BATS_TEST_TMPDIR/slow.out" 2>&1 3>&- &
	CLIENTS+=("$!")
	wait_until 5 grep -qx ready "$BATS_TEST_TMPDIR/slow.out"
	wait_until 5 subscribed 1
	local f=$BATS_TEST_TMPDIR/msg n=0
	head -c 60000 /dev/zero | tr '\0' x > "$f"
	while (( n < 300 )) && subscribed 1; do
		post /chat/slow "@$f"
		[[ $code == 202 ]] || break
		n=$((n + 1))
	done
	wait_until 10 subscribed 0
	(( n > 2 )) || fail "closed after $n messages"
}

@test "WebSocket: graceful stop: every accepted message, then Close 1001 with reason last_id=ID; an upgrade during the stop gets 503; exit 0" {
	WORKERS=1 ch_start 'shutdown_timeout 10s'
	ws_subs w /chat/wstop 3 --timeout $((30 * ${TIME_FACTOR:-1}))
	local w=$CLIENT_PID
	CC_NAME=p cc pub "$(url /chat/wstop)" --count 20
	local b
	b=$(first_pub p)
	pubs_from p "$b" 20
	# An upgrade on its way when the stop comes: its head half sent.
	local gf
	exec {gf}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /chat/wstop HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' >&"$gf"
	all_four_in() {
		[[ $(accept_queue) == 0 ]] && (( $(holders | wc -l) >= 4 ))
	}
	wait_until 5 all_four_in
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	printf 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' >&"$gf"
	local gr
	gr=$(timeout 5 cat <&"$gf" | tr -d '\r') || true
	exec {gf}>&-
	[[ $(head -n 1 <<<"$gr") == 'HTTP/1.1 503 '* ]] || fail "upgrade: $gr"
	finished "$w"
	cc_check w "$SUBS"' | length == 3 and
	    all(.ids == [range($b; $b + 20)] and .ends == [1001] and
	        .control[0].reason == "last_id=\($b + 19)")' --argjson b "$b"
	wait_until 10 gone "$SERVER_PID"
	[[ $(server_exit_status) == 0 ]]
}

@test "WebSocket: reload (HUP): Close 1012 with last_id=ID; resuming with ?last_id= on the new generation, each gets every message exactly once, in order" {
	WORKERS=2 ch_start 'shutdown_timeout 10s'
	ws_subs w /chat/whup 6 --reconnect --expect 60 \
	    --timeout $((60 * ${TIME_FACTOR:-1}))
	local w=$CLIENT_PID
	publish_across_reload /chat/whup
	local b=$B
	finished "$w"
	cc_check w "$SUBS"' | length == 6 and all('"$(in_order 60)"' and
	        .connections >= 2 and .ends[0] == 1012 and
	        .ends[-1] == "expect" and
	        all(.control[]; .code == 1012 and
	            .reason == "last_id=\(.after)"))' --argjson b "$b"
}

@test "WebSocket: recycling (max_requests): Close 1012 with last_id=ID; resumed on the new worker, nothing lost, nothing twice" {
	WORKERS=1 ch_start 'max_requests 8'
	ws_subs w /chat/rec 1 --reconnect --expect 3 \
	    --timeout $((30 * ${TIME_FACTOR:-1}))
	local w=$CLIENT_PID
	post /chat/rec one
	[[ $code == 202 ]] || fail "POST: $code"
	local b
	b=$(jq .id "$BODY")
	post /chat/rec two
	[[ $code == 202 ]] || fail "POST: $code"
	# More requests (the upgrade and the status page's count too) until
	# the worker has served its 8 and goes.
	asked_recycled() {
		info /chat/rec
		log_has 'recycled after [0-9]* requests'
	}
	wait_until 10 asked_recycled
	wait_until 10 ws_opened w 2 1
	post /chat/rec three
	[[ $code == 202 ]] || fail "POST: $code"
	finished "$w"
	cc_check w "$SUBS"' | .[0].ids == [range($b; $b + 3)] and
	    .[0].data == ["one", "two", "three"] and .[0].ends[0] == 1012 and
	    .[0].control[0].reason == "last_id=\(.[0].control[0].after)"' \
	    --argjson b "$b"
}

@test "WebSocket: a second SIGTERM (fast stop) ends a subscriber that holds the stop at once" {
	WORKERS=1 ch_start 'shutdown_timeout 20s' 'send_timeout 30s' \
	    'channel_memory 64m'
	ws_python || fail "no python3 with the websockets module"
	# It reads nothing: its socket full, it holds the graceful stop.
	"$WS_PYTHON" "$TDIR/wsclient.py" --raw --no-read --pong --timeout 60 \
	    "$(url /chat/fast)" > "$BATS_TEST_TMPDIR/slow.out" 2>&1 3>&- &
	CLIENTS+=("$!")
	wait_until 5 grep -qx ready "$BATS_TEST_TMPDIR/slow.out"
	wait_until 5 subscribed 1
	local f=$BATS_TEST_TMPDIR/msg i
	head -c 262144 /dev/zero | tr '\0' x > "$f"
	for i in $(seq 1 40); do post /chat/fast "@$f"; done
	kill -TERM "$SERVER_PID"
	wait_until 5 log_has 'stopping gracefully'
	# Still there: the graceful stop waits for it.
	alive "$SERVER_PID"
	kill -TERM "$SERVER_PID"
	local t0
	t0=$(now_ms)
	[[ $(server_exit_status) == 0 ]]
	before 2000 "$t0"
}

@test "the promise, by WebSocket: 50 subscribers on 2 workers, 2000 messages through 2 HUPs and a SIGTERM: every 202 reaches every subscriber once, in order; the last Close is 1001 with the last id" {
	local t=$((120 * ${TIME_FACTOR:-1}))
	# 32 places a worker: each of the 2 holds at least 18 subscribers.
	WORKERS=2 ch_start 'shutdown_timeout 20s' 'channel_buffer 4000' \
	    'channel_memory 64m' 'worker_connections 32'
	ws_subs s /chat/wpromise 50 --reconnect --max-connections 10 \
	    --timeout $((4 * t))
	local s=$CLIENT_PID
	on_both_workers 18
	# Three batches, numbered on; each signal once its batch has 150
	# taken, while it goes on: two reloads, then the stop.
	local b start=1 pb
	for b in 1 2; do
		batch "$b" /chat/wpromise "$start" 600 150 "$t"
		pb=$CLIENT_PID
		kill -HUP "$SERVER_PID"
		wait_until 20 log_has "reloaded: generation $((b + 1)) "
		# Every subscriber back before the next signal.
		wait_until "$t" ws_opened s $((b + 1)) 50
		wait "$pb"
		start=$((start + 600))
	done
	batch 3 /chat/wpromise "$start" 800 150 "$t"
	pb=$CLIENT_PID
	kill -TERM "$SERVER_PID"
	wait_until 30 gone "$SERVER_PID"
	wait "$pb"
	finished "$s"
	promise_accepted 3 2000
	cc_check s "$SUBS"' | length == 50 and
	    all(.ids == $acc[0] and .ends[-1] == 1001 and
	        .control[-1].reason == "last_id=\(.ids[-1])" and
	        ([.ends[] | select(. == 1012)] | length) >= 2 and
	        all(.control[]; .code == 1001 or
	            .reason == "last_id=\(.after)"))' \
	    --slurpfile acc "$BATS_TEST_TMPDIR/accepted.json"
}

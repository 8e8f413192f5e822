#!/usr/bin/env bats
# The status page (status_path, status_allow): what each worker is doing,
# as text or JSON, for allowed clients only.

load helpers

SP=/server-status

# The download first: a stopping worker finishes the response in flight,
# and stop_server would wait for it until its deadline.
teardown() {
	if [[ -n ${DL_PID:-} ]]; then
		kill "$DL_PID" 2>/dev/null || true
		wait "$DL_PID" 2>/dev/null || true
	fi
	stop_server
}

# get PATH [curl args]: body in $BODY, headers in $HDR (CRs removed),
# the status in $code.
get() {
	local path=$1; shift
	BODY=$BATS_TEST_TMPDIR/body HDR=$BATS_TEST_TMPDIR/hdr
	code=$(curl -s -o "$BODY" -D "$HDR.raw" -w '%{http_code}' "$@" \
	    "http://127.0.0.1:$PORT$path")
	tr -d '\r' < "$HDR.raw" > "$HDR"
}

# json_check FILE FILTER: FILE parses and FILTER (jq) holds of it.
# No jq is a failure, never a check left out (./quickstart test installs
# it).
json_check() {
	command -v jq >/dev/null || fail "jq is not installed (package jq)"
	jq -e "$2" "$1" >/dev/null || fail "not true of $1: $2"$'\n'"$(cat "$1")"
}

# text_field NAME: the value of "NAME: value" in the text page $BODY.
text_field() { sed -n "s/^$1: //p" "$BODY"; }

# served: the "requests served" total of a fresh text page.
served() { get "$SP" >/dev/null; text_field 'requests served'; }
served_at_least() { [[ $(served) -ge $1 ]]; }

# slow_seen: a fresh text page has exactly one line for a worker writing
# slow"\.bin; its age (ms) from that same page in $SLOW_AGE.  Age and
# line are never read from two pages, between which the slot may change.
slow_seen() {
	local lines
	get "$SP" >/dev/null
	lines=$(awk '$3 == "writing" && $9 == "/slow\"\\.bin"' "$BODY")
	[[ -n $lines && $lines != *$'\n'* ]] || return 1
	SLOW_AGE=$(awk '{ print $7 }' <<<"$lines")
	[[ $SLOW_AGE =~ ^[0-9]+$ ]]
}
# slow_age_above MS: slow_seen, with an age above MS.
slow_age_above() { slow_seen && (( SLOW_AGE > $1 )); }

@test "off by default: the path is an ordinary, missing file" {
	start_server
	get "$SP"
	[[ $code == 404 ]]
	get "$SP?json"
	[[ $code == 404 ]]
}

@test "text: every worker with its pid, state and generation; uptime; no-store" {
	WORKERS=3 start_server -o status_path=$SP
	get "$SP"
	[[ $code == 200 ]]
	grep -qx 'Content-Type: text/plain; charset=utf-8' "$HDR"
	grep -qx 'Cache-Control: no-store' "$HDR"
	text_field uptime | grep -Eqx '[0-9]+ s'
	text_field generation | grep -Eqx '[0-9]+'
	text_field 'workers wanted' | grep -Eqx '[0-9]+'
	text_field 'accept queue' | grep -Eqx '[0-9]+'
	text_field 'retire deadline' | grep -qx none
	text_field workers | grep -q '^3 ('
	local pid idle=0
	for pid in $(worker_pids); do
		# pid, generation, state: idle, or writing for this very page.
		grep -Eq "^$pid +[0-9]+ +(idle|writing) +no +[0-9]+ " "$BODY" ||
		    fail "worker $pid missing from: $(cat "$BODY")"
		grep -Eq "^$pid +[0-9]+ +idle " "$BODY" && idle=$((idle + 1))
	done
	[[ $idle -ge 2 ]]
	# The worker answering shows this request, with an age, and this
	# connection as its one open connection.
	grep -Eq ' writing +no +[0-9]+ +1 +[0-9]+ +GET /server-status HTTP/1.1$' \
	    "$BODY"
	text_field 'open connections' | grep -qx 1
}

@test "the exact path only, any query string; HEAD has no body" {
	start_server -o status_path=$SP
	get "$SP?foo=bar"
	[[ $code == 200 ]]
	grep -q '^requests served: ' "$BODY"
	get "$SP/"
	[[ $code == 404 ]]
	get "${SP}x"
	[[ $code == 404 ]]
	# curl -I writes the head where the body would go.
	get "$SP" -I
	[[ $code == 200 ]]
	grep -q '^Content-Length: [1-9]' "$HDR"
	[[ $(grep -c 'requests served' "$BODY") == 0 ]]
}

@test "JSON, by query or Accept: parses, one entry per worker" {
	WORKERS=3 start_server -o status_path=$SP
	get "$SP?json"
	[[ $code == 200 ]]
	grep -qx 'Content-Type: application/json' "$HDR"
	grep -qx 'Cache-Control: no-store' "$HDR"
	json_check "$BODY" '.workers | length == 3'
	json_check "$BODY" '.totals.workers == 3 and .generation >= 1 and
	    .workers_wanted == 3 and (.uptime | type) == "number" and
	    .retire_deadline_ms == null and .retiring == 0 and
	    (.accept_queue | type) == "number" and
	    (.totals.requests | type) == "number"'
	json_check "$BODY" '[.workers[] | select(.state == "idle")] | length >= 2'
	local pid
	for pid in $(worker_pids); do
		grep -Eq "\"pid\": $pid," "$BODY" || fail "no pid $pid"
	done
	[[ $(jq -r '.workers[].pid' "$BODY" | sort) == \
	    "$(worker_pids | sort)" ]]
	get "$SP" -H 'Accept: text/html, application/json;q=0.9'
	grep -qx 'Content-Type: application/json' "$HDR"
	json_check "$BODY" '.workers | length == 3'
}

@test "a slow download shows as writing, with its request line and a growing age" {
	make_docroot
	# The worker must still be sending while the pages are read: the file
	# is far larger than what the socket buffers can take (they grow up
	# to tcp_rmem's and tcp_wmem's maximum, and curl reads in bursts), so
	# the response stays in flight for as long as the test runs.  Sparse:
	# it costs no disk.
	buffer_proof_file "$DOCROOT/slow\"\\.bin"
	start_server -o status_path=$SP
	# curl sends the quote and the backslash as they are.
	curl -s -o /dev/null --limit-rate 200k \
	    "http://127.0.0.1:$PORT/slow\"\\.bin" 3>&- &
	DL_PID=$!
	wait_until 10 slow_seen || fail "no worker writing it: $(cat "$BODY")"
	local age=$SLOW_AGE
	wait_until 10 slow_age_above $((age + 200)) ||
	    fail "its age did not grow past $((age + 200)) ms: $(cat "$BODY")"
	# JSON escapes the quote and the backslash of the request line.
	get "$SP?json"
	grep -Fq '"state": "writing", "retiring": false' "$BODY"
	grep -Fq '"request": "GET /slow\"\\.bin HTTP/1.1"' "$BODY"
	json_check "$BODY" '[.workers[] | select(.request ==
	    "GET /slow\"\\.bin HTTP/1.1" and .state == "writing" and
	    .request_age_ms > 0)] | length == 1'
	json_check "$BODY" '.totals.writing >= 1'
}

@test "requests served go up" {
	start_server -o status_path=$SP
	local before _
	before=$(served)
	[[ $before =~ ^[0-9]+$ ]]
	for _ in 1 2 3 4 5; do
		curl -sf -o /dev/null "http://127.0.0.1:$PORT/hello.txt"
	done
	# +1 for the page that read $before.
	wait_until 5 served_at_least $((before + 6))
	get "$SP?json"
	json_check "$BODY" ".totals.requests >= $((before + 6)) and
	    ([.workers[].requests] | add) == .totals.requests"
}

@test "a client outside status_allow gets 403; files are still served" {
	start_server -o status_path=$SP -o status_allow=10.0.0.0/8
	get "$SP"
	[[ $code == 403 ]]
	get "$SP?json"
	[[ $code == 403 ]]
	get /hello.txt
	[[ $code == 200 ]]
}

@test "IPv6: ::1 is allowed by default, refused when not listed" {
	ip -6 addr show lo 2>/dev/null | grep -q '::1/128' ||
	    skip "no IPv6 loopback"
	local p6
	LISTEN='[::1]:0' start_server -o status_path=$SP
	p6=$(sed -n 's/.*listening on \[::1\]:\([0-9]*\)$/\1/p' "$SERVER_LOG")
	[[ $(curl -s -o /dev/null -w '%{http_code}' \
	    "http://[::1]:$p6$SP") == 200 ]]
	stop_server
	LISTEN='[::1]:0' start_server -o status_path=$SP \
	    -o status_allow=127.0.0.0/8
	p6=$(sed -n 's/.*listening on \[::1\]:\([0-9]*\)$/\1/p' "$SERVER_LOG")
	[[ $(curl -s -o /dev/null -w '%{http_code}' \
	    "http://[::1]:$p6$SP") == 403 ]]
}

@test "a bad status_allow is a -t error naming the token, with FILE:LINE" {
	make_docroot
	run "$PREFORKD" -t -r "$DOCROOT" \
	    -o 'status_allow=127.0.0.1 10.0.0.0/33 ::1'
	assert_failure 1
	assert_output --partial "status_allow: invalid address or prefix '10.0.0.0/33'"
	local conf=$BATS_TEST_TMPDIR/p.conf
	printf 'root %s\n# a comment\nstatus_allow "::1 fe80::/10 nope"\n' \
	    "$DOCROOT" > "$conf"
	run "$PREFORKD" -t -c "$conf"
	assert_failure 1
	assert_output "$conf:3: status_allow: invalid address or prefix 'nope'"
	run "$PREFORKD" -t -r "$DOCROOT" \
	    -o 'status_allow=10.0.0.0/8 127.0.0.1 ::1 fe80::/10 ::ffff:10.0.0.0/104'
	assert_success
}

# retire_deadline: the text page's "retire deadline" value.
retire_deadline() { get "$SP" >/dev/null; text_field 'retire deadline'; }
deadline_pending() { [[ $(retire_deadline) =~ ^[0-9]+\ ms$ ]]; }
deadline_none() {
	[[ $(retire_deadline) == none ]] &&
	    [[ $(text_field 'workers retiring') == 0 ]]
}

@test "the retire deadline shows while a worker retires, and goes once it is gone" {
	make_docroot
	buffer_proof_file "$DOCROOT/slow\"\\.bin"
	start_server -o status_path=$SP
	get "$SP"
	[[ $(text_field 'retire deadline') == none ]]
	curl -s -o /dev/null --limit-rate 200k \
	    "http://127.0.0.1:$PORT/slow\"\\.bin" 3>&- &
	DL_PID=$!
	wait_until 10 slow_seen
	# A reload retires the old generation; the downloading worker stays.
	kill -HUP "$SERVER_PID"
	wait_until 10 deadline_pending
	# The client leaves: its worker's send fails and the worker exits.
	kill "$DL_PID"
	wait "$DL_PID" 2>/dev/null || true
	DL_PID=
	wait_until 15 deadline_none
}

@test "a request refused with 413 is not left running (request_timeout kills no one)" {
	start_server -o status_path=$SP -o max_body_size=10 -o request_timeout=1s
	local r
	r=$(http_raw 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n')
	[[ $(status_of "$r") == 413 ]]
	# Only the status request itself may show as running.
	get "$SP?json"
	json_check "$BODY" '[.workers[] | select(.request_age_ms != null and
	    (.request | startswith("GET /hello")))] | length == 0'
	if grep -q '"request": "GET /hello' "$BODY" || log_has 'still running'
	then
		return 1
	fi
}

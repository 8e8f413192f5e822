#!/usr/bin/env bats
# WebSocket conformance: t/wsconform.py, a raw-socket client that replays
# the server cases of Autobahn|Testsuite groups 1-7 and 9, against the real
# preforkd bridging /echo to /bin/cat, in text mode and in binary mode.
# The control runs the same script against t/wsecho.py, an echo server
# written with python3-websockets: it shows that the script is right.
# Everything runs on loopback; what a test starts it stops by pid.

load helpers

WSCONFORM=$TOP_SRCDIR/t/wsconform.py

# conformance ARGS...: run wsconform.py with ARGS and a deadline per case
# scaled by TIME_FACTOR; on failure show the failed cases and the summary.
conformance() {
	run python3 "$WSCONFORM" --timeout $((10 * ${TIME_FACTOR:-1})) "$@"
	if [[ $status -ne 0 ]]; then
		fail "wsconform.py $* exited $status:
$(grep -v '^PASS ' <<<"$output")"
	fi
	assert_line --regexp '^conformance: [0-9]+ passed, 0 failed$'
}

# ws_server LINE...: preforkd with the configuration LINEs.
ws_server() {
	local conf=$BATS_TEST_TMPDIR/ws.conf
	printf '%s\n' "$@" > "$conf"
	start_server -c "$conf"
}

extra_teardown() {
	if [[ -n ${ECHO_PID:-} ]]; then
		kill "$ECHO_PID" 2>/dev/null || true
		wait "$ECHO_PID" 2>/dev/null || true
		ECHO_PID=
	fi
}

@test "control: wsconform.py passes against the python3-websockets echo server" {
	local out=$BATS_TEST_TMPDIR/wsecho.out
	ws_python ||
	    skip "python3 websockets is missing (apt-get install python3-websockets)"
	"$WS_PYTHON" "$TOP_SRCDIR/t/wsecho.py" > "$out" 2>&1 3>&- &
	ECHO_PID=$!
	wait_until 10 grep -q '^[0-9][0-9]*$' "$out" ||
	    fail "wsecho.py did not start: $(cat "$out")"
	conformance "ws://127.0.0.1:$(head -n 1 "$out")/echo" --mode text
}

@test "preforkd, text mode: websocket /echo /bin/cat passes groups 1-7 and 9 (1009 above websocket_max_message 1m)" {
	ws_server 'websocket /echo /bin/cat'
	conformance "ws://127.0.0.1:$PORT/echo" --mode text --max-message 1m
}

@test "preforkd, binary mode: websocket_binary on, websocket_max_message 16m passes groups 1-7 and 9" {
	ws_server 'websocket /echo /bin/cat' 'websocket_binary on' \
	    'websocket_max_message 16m'
	conformance "ws://127.0.0.1:$PORT/echo" --mode binary --max-message 16m
}

#!/usr/bin/env bats
# The sample site's chat page (www/chat.html) in a real browser: headless
# Chromium, two pages on the real daemon with "channel /chat", driven
# through the DevTools protocol by t/cdp.py (python3-websockets).  One
# page sends, both must show the message, once, as text; then the same
# across a reload (the server's "reconnect" event, the browser's own
# Last-Event-ID) and on a stop (its "close" event).

load helpers
bats_require_minimum_version 1.5.0

# CHROMIUM: the browser (empty: the browser tests skip).
CHROMIUM=${CHROMIUM-$(command -v chromium || true)}

# WS_PYTHON: a python3 with websockets (ws_python), if there is one.
setup_file() { ws_python || true; }

setup() {
	# The document root: the sample site as it is in the tree.
	DOCROOT=$BATS_TEST_TMPDIR/www
	mkdir -p "$DOCROOT"
	cp "$TOP_SRCDIR"/www/index.html "$TOP_SRCDIR"/www/style.css \
	    "$TOP_SRCDIR"/www/chat.html "$DOCROOT"/
	CHROME_PID=
}

# The browser first (its streams would hold a stopping server), by its
# process group: the browser, its zygotes and renderers.
teardown() {
	stop_chromium
	stop_server
}

stop_chromium() {
	[[ -n ${CHROME_PID:-} ]] || return 0
	kill -TERM -- "-$CHROME_PID" 2>/dev/null || true
	wait_until 5 gone_group "$CHROME_PID" 2>/dev/null ||
	    kill -KILL -- "-$CHROME_PID" 2>/dev/null || true
	wait "$CHROME_PID" 2>/dev/null || true
	CHROME_PID=
}

# gone_group PGID: no process is left in the group.
gone_group() { ! pgrep -g "$1" >/dev/null 2>&1; }

devtools_port_known() {
	[[ -s $BATS_TEST_TMPDIR/profile/DevToolsActivePort ]] &&
	    DEVTOOLS_PORT=$(head -n 1 "$BATS_TEST_TMPDIR/profile/DevToolsActivePort") &&
	    [[ $DEVTOOLS_PORT =~ ^[0-9]+$ ]]
}

# start_chromium: headless, in a session of its own (CHROME_PID leads its
# process group), DevTools on a port of its choosing (DEVTOOLS_PORT, read
# from the profile).  It must reach nothing but this machine: no
# background requests, and no name resolves but to refusal.
start_chromium() {
	local profile=$BATS_TEST_TMPDIR/profile
	[[ -n $CHROMIUM ]] ||
	    skip "chromium is not installed (Debian package chromium)"
	[[ -n ${WS_PYTHON:-} ]] ||
	    fail "no python3 with the websockets module (package python3-websockets)"
	mkdir -p "$profile"
	setsid "$CHROMIUM" --headless=new --no-sandbox --disable-gpu \
	    --remote-debugging-port=0 --user-data-dir="$profile" \
	    --no-first-run --no-default-browser-check \
	    --disable-background-networking --disable-component-update \
	    --disable-sync --disable-extensions --disable-default-apps \
	    --disable-domain-reliability --dns-prefetch-disable \
	    --host-resolver-rules='MAP * ~NOTFOUND, EXCLUDE 127.0.0.1' \
	    about:blank >"$BATS_TEST_TMPDIR/chromium.log" 2>&1 3>&- &
	CHROME_PID=$!
	wait_until 30 devtools_port_known || {
		tail -n 20 "$BATS_TEST_TMPDIR/chromium.log" >&2
		return 1
	}
}

# cdp ARGS...: t/cdp.py on the page, bounded in time on its own too.
cdp() {
	timeout $(( 120 * ${TIME_FACTOR:-1} )) "$WS_PYTHON" \
	    "$TOP_SRCDIR/t/cdp.py" "$DEVTOOLS_PORT" \
	    "http://127.0.0.1:$PORT/chat.html" "$@"
}

@test "chat: the index page links to the chat page, which the server serves" {
	start_server -o channel=/chat
	run curl -sS "http://127.0.0.1:$PORT/"
	assert_success
	assert_output --partial 'href="/chat.html"'
	run curl -sS -o /dev/null -w '%{http_code} %{content_type}' \
	    "http://127.0.0.1:$PORT/chat.html"
	assert_output --regexp '^200 text/html'
	# The page writes messages as text only.
	run grep -c innerHTML "$DOCROOT/chat.html"
	assert_output 0
}

@test "chat: a message sent in one page shows in both, once, as text" {
	start_server -o channel=/chat
	start_chromium
	run cdp --shot "$BATS_TEST_TMPDIR/chat.png"
	echo "$output"
	assert_success
	assert_line "page A: connected"
	assert_line "page B: connected"
	assert_line --regexp "^page B: got 'hello <b>bold</b> & "
	assert_line --regexp "^page A: got 'hello <b>bold</b> & "
	[[ -s $BATS_TEST_TMPDIR/chat.png ]]
}

@test "chat: across a reload both pages stay connected (handed over), no message lost or doubled" {
	start_server -o channel=/chat
	start_chromium
	run cdp --hup "$SERVER_PID"
	echo "$output"
	assert_success
	assert_line "server: the old workers are gone"
	assert_line "page A: still connected"
	assert_line "page B: still connected"
	assert_line --regexp "^page A: got 'after the reload "
	assert_line --regexp "^page B: got 'after the reload "
}

@test "chat: a stopping server's last event shows in both pages" {
	start_server -o channel=/chat
	start_chromium
	run cdp --term "$SERVER_PID"
	echo "$output"
	assert_success
	assert_line --regexp "^page A: note 'The server stopped \(last message [0-9]+\)\."
	assert_line --regexp "^page B: note 'The server stopped"
	[[ $(server_exit_status) == 0 ]]
}

#!/usr/bin/env bats
# The configuration file: format, precedence, and one test per class of
# error.  Every error is one line FILE:LINE: message and exit 1, with
# nothing bound and no pidfile written.

load helpers

setup() {
	make_docroot
	CONF=$BATS_TEST_TMPDIR/preforkd.conf
	PIDF=$BATS_TEST_TMPDIR/preforkd.pid
}

# conf LINE...: write the configuration file.
conf() { printf '%s\n' "$@" > "$CONF"; }

# The configuration is rejected with exactly MESSAGE, and nothing is left
# behind: no pidfile, nothing listening on the port it named.
rejected() {
	run "$PREFORKD" -c "$CONF" -f
	assert_failure 1
	assert_output "$1"
	[[ ! -e $PIDF ]]
	run "$PREFORKD" -t -c "$CONF"
	assert_failure 1
	assert_output "$1"
}

@test "a good file: -t says configuration OK, and the server uses it" {
	conf '# a comment' '' \
	    "root $DOCROOT   # trailing comment" \
	    'listen 127.0.0.1:0' \
	    'workers 3' \
	    'keepalive_timeout 2500ms' \
	    'max_header_size 16k' \
	    'server_tokens off'
	run "$PREFORKD" -t -c "$CONF"
	assert_success
	assert_output 'configuration OK'
	WORKERS=3 start_server -c "$CONF"
	run curl -s -D - "http://127.0.0.1:$PORT/hello.txt"
	assert_line --partial 'Server: preforkd'
	refute_line --partial 'Server: preforkd/'
}

@test "quoted values may contain spaces, quotes and backslashes" {
	mkdir -p "$BATS_TEST_TMPDIR/a dir"
	printf 'spaced\n' > "$BATS_TEST_TMPDIR/a dir/s.txt"
	conf "root \"$BATS_TEST_TMPDIR/a dir\"" 'listen 127.0.0.1:0'
	run "$PREFORKD" -t -c "$CONF"
	assert_success
	DOCROOT="$BATS_TEST_TMPDIR/a dir" start_server -c "$CONF"
	run curl -s "http://127.0.0.1:$PORT/s.txt"
	assert_output spaced
}

@test "command-line flags override the file; -l replaces its listen lines" {
	local port
	port=$(pick_port)
	conf "root /nonexistent" 'workers 7' "listen 127.0.0.1:$port"
	# -r and -n win over the file; -l 127.0.0.1:0 replaces its listen.
	WORKERS=2 start_server -c "$CONF"
	worker_count_is 2
	[[ $PORT != "$port" ]]
	port_refuses "$port"
}

@test "error: unknown keyword" {
	conf "root $DOCROOT" 'listen 127.0.0.1:0' 'nosuch 1'
	rejected "$CONF:3: unknown keyword 'nosuch'"
}

@test "error: bad values name the keyword, the value and what is expected" {
	conf "root $DOCROOT" 'workers many'
	rejected "$CONF:2: workers: invalid value 'many' (expected 1 to 4096)"
	conf "root $DOCROOT" 'keepalive_timeout 5 seconds'
	rejected "$CONF:2: keepalive_timeout: unexpected 'seconds' after the value (quote values that contain spaces)"
	conf "root $DOCROOT" 'header_timeout 5x'
	rejected "$CONF:2: header_timeout: invalid time '5x' (expected a number with an optional unit ms, s, m or h)"
	conf "root $DOCROOT" 'max_header_size 1t'
	rejected "$CONF:2: max_header_size: invalid size '1t' (expected a number with an optional unit k, m or g)"
	conf "root $DOCROOT" 'server_tokens maybe'
	rejected "$CONF:2: server_tokens: invalid value 'maybe' (expected on or off)"
	conf "root $DOCROOT" 'log_level chatty'
	rejected "$CONF:2: log_level: invalid value 'chatty' (expected error, warn, info or debug)"
	conf "root $DOCROOT" 'max_request_line 10'
	rejected "$CONF:2: max_request_line: invalid value '10' (expected 64 to 1048576)"
}

@test "error: missing document root names the line that set it" {
	conf 'listen 127.0.0.1:0' "root $BATS_TEST_TMPDIR/missing"
	rejected "$CONF:2: root: $BATS_TEST_TMPDIR/missing: No such file or directory"
}

@test "error: unreadable or missing configuration file" {
	run "$PREFORKD" -t -c "$BATS_TEST_TMPDIR/none.conf"
	assert_failure 1
	assert_output "$BATS_TEST_TMPDIR/none.conf: No such file or directory"
	if [[ $(id -u) -ne 0 ]]; then
		conf "root $DOCROOT"
		chmod 000 "$CONF"
		run "$PREFORKD" -t -c "$CONF"
		assert_failure 1
		assert_output "$CONF: Permission denied"
	fi
	run "$PREFORKD" -t -c "$BATS_TEST_TMPDIR"
	assert_failure 1
}

@test "error: duplicate listen address" {
	conf "root $DOCROOT" 'listen 127.0.0.1:8080' '' 'listen 127.0.0.1:8080'
	rejected "$CONF:4: listen: duplicate address '127.0.0.1:8080'"
}

@test "error: a keyword set twice names the first line" {
	conf "root $DOCROOT" 'workers 2' 'workers 3'
	rejected "$CONF:3: workers: already set on line 2"
}

@test "error: syntax (missing value, unterminated quote, bad keyword)" {
	conf "root $DOCROOT" 'workers'
	rejected "$CONF:2: workers: missing value"
	conf "root $DOCROOT" 'index "index.html'
	rejected "$CONF:2: index: unterminated quoted value"
	conf "root $DOCROOT" 'Workers 2'
	rejected "$CONF:2: expected a keyword (lower case, '_') at the start of the line"
	conf "root $DOCROOT" 'workers=2'
	rejected "$CONF:2: expected a keyword (lower case, '_') at the start of the line"
}

@test "error: unknown user or group" {
	conf "root $DOCROOT" 'user no-such-user-xyz'
	rejected "$CONF:2: user: no such user 'no-such-user-xyz'"
	conf "root $DOCROOT" 'user root' 'group no-such-group-xyz'
	rejected "$CONF:3: group: no such group 'no-such-group-xyz'"
	conf "root $DOCROOT" 'group root'
	rejected "$CONF:2: group: needs a user as well"
}

@test "errors leave nothing bound: the port stays free, no pidfile" {
	local port
	port=$(pick_port)
	conf "root $DOCROOT" "listen 127.0.0.1:$port" "pidfile $PIDF" 'workers 0'
	rejected "$CONF:4: workers: invalid value '0' (expected 1 to 4096)"
	port_refuses "$port"
}

@test "a port in use names the listen line that asked for it" {
	start_server
	conf "root $DOCROOT" "listen 127.0.0.1:$PORT"
	run "$PREFORKD" -f -c "$CONF"
	assert_failure 1
	assert_output "$CONF:2: listen 127.0.0.1:$PORT: Address already in use"
}

@test "the sample configuration parses" {
	local sample=$TOP_SRCDIR/etc/preforkd.conf
	[[ -f $sample ]] || skip "no etc/preforkd.conf"
	run "$PREFORKD" -t -c "$sample" -r "$DOCROOT" -u "$(id -un)" -o group="$(id -gn)"
	assert_success
	assert_output 'configuration OK'
}

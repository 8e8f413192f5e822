#!/usr/bin/env bats
# Command line: flags, usage errors, -t, -V, -h.  Bad input exits 1 with
# one line naming the problem, before anything is bound.

load helpers

@test "-V prints the version and exits 0" {
	run "$PREFORKD" -V
	assert_success
	assert_output --regexp '^preforkd [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "-h prints usage on stdout and exits 0" {
	run "$PREFORKD" -h
	assert_success
	assert_output --partial 'usage: preforkd'
}

@test "an unknown flag is an error naming it, with usage, exit 1" {
	run "$PREFORKD" -Z
	assert_failure 1
	assert_line --index 0 'preforkd: -Z: unknown flag'
	assert_line --index 1 --partial 'usage: preforkd'
}

@test "a missing flag argument is an error" {
	run "$PREFORKD" -n
	assert_failure 1
	assert_line --index 0 'preforkd: -n: missing argument'
}

@test "a bad worker count names the accepted range" {
	run "$PREFORKD" -t -n 0
	assert_failure 1
	assert_line --index 0 "preforkd: -n: workers: invalid value '0' (expected 1 to 4096)"
	run "$PREFORKD" -t -n abc
	assert_failure 1
	assert_line --index 0 --partial "invalid value 'abc'"
}

@test "a bad listen address is an error" {
	run "$PREFORKD" -t -l 127.0.0.1
	assert_failure 1
	assert_line --index 0 --partial "listen: invalid address '127.0.0.1'"
	run "$PREFORKD" -t -l 127.0.0.1:70000
	assert_failure 1
	run "$PREFORKD" -t -l '[::1:80'
	assert_failure 1
}

@test "a duplicate listen address is an error" {
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -l 127.0.0.1:8080 -l 127.0.0.1:8080
	assert_failure 1
	assert_line --index 0 --partial "duplicate address '127.0.0.1:8080'"
}

@test "a missing document root is an error" {
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR/nope"
	assert_failure 1
	assert_output "preforkd: root: $BATS_TEST_TMPDIR/nope: No such file or directory"
}

@test "a document root that is a file is an error" {
	touch "$BATS_TEST_TMPDIR/file"
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR/file"
	assert_failure 1
	assert_output --partial 'not a directory'
}

@test "-t with a good configuration prints configuration OK" {
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -l 127.0.0.1:0 -n 3
	assert_success
	assert_output 'configuration OK'
}

@test "-o sets any keyword; bad keywords and values are named" {
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -o keepalive_timeout=2s -o max_header_size=16k
	assert_success
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -o nosuch=1
	assert_failure 1
	assert_line --index 0 "preforkd: -o: unknown keyword 'nosuch'"
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -o keepalive_timeout=soon
	assert_failure 1
	assert_line --index 0 --partial "keepalive_timeout: invalid time 'soon'"
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -o max_header_size=12q
	assert_failure 1
	assert_line --index 0 --partial "invalid size '12q'"
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -o backlog
	assert_failure 1
	assert_line --index 0 --partial 'expected keyword=value'
}

@test "-T sets the shutdown timeout and rejects nonsense" {
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -T 500ms
	assert_success
	run "$PREFORKD" -t -r "$BATS_TEST_TMPDIR" -T -1
	assert_failure 1
}

@test "a port already in use: one-line error, exit 1, no worker forked" {
	start_server
	run "$PREFORKD" -f -l "127.0.0.1:$PORT" -r "$DOCROOT" -n 2
	assert_failure 1
	assert_output "preforkd: listen 127.0.0.1:$PORT: Address already in use"
}

@test "an invalid flag leaves nothing listening" {
	start_server
	local port=$PORT
	stop_server
	run "$PREFORKD" -f -l "127.0.0.1:$port" -r "$DOCROOT" -n 0
	assert_failure 1
	port_refuses "$port"
}

@test "a stray argument is an error" {
	run "$PREFORKD" -t extra
	assert_failure 1
	assert_line --index 0 "preforkd: unexpected argument 'extra'"
}

@test "IPv6 listeners work alongside IPv4" {
	if ! (exec 3<>/dev/tcp/::1/1) 2>&1 | grep -q refused; then
		[[ -e /proc/net/if_inet6 ]] || skip "no IPv6 on this machine"
	fi
	make_docroot
	LISTEN='[::1]:0' start_server -l 127.0.0.1:0 || true
	local p6
	p6=$(sed -n 's/.*listening on \[::1\]:\([0-9]*\)$/\1/p' "$SERVER_LOG")
	[[ -n $p6 ]] || skip "could not bind ::1"
	run curl -s -g "http://[::1]:$p6/hello.txt"
	assert_output 'hello'
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output 'hello'
}

#!/usr/bin/env bats
# The benchmark harness works (a tiny run against preforkd alone).  Speed
# targets are never asserted here: they live in bench/RESULTS.md.

load helpers

@test "bench/run --quick runs and reports preforkd's row, the probe, memory" {
	command -v wrk >/dev/null || skip "wrk not installed"
	command -v cc >/dev/null || skip "no C compiler for the probe"
	run env PREFORKD_BIN="$PREFORKD" "$TOP_SRCDIR/bench/run" --quick \
	    --duration 1 --probe-duration 1 --probe-conns 20 \
	    --servers preforkd --no-stop-time --no-tls --no-chan --no-install
	assert_success
	assert_line --regexp '^a: 612 B keep-alive -c50 +preforkd +[0-9]+ '
	assert_line --regexp '^e: 1 MiB keep-alive -c8 +preforkd +[0-9]+ '
	# The WebSocket rows, and the floor under session opening.
	assert_line --regexp '^ws-b: echo 32 B -c50 +preforkd +[0-9]+ '
	assert_line --regexp '^ws-a: .* no server: /bin/cat started and reaped \([0-9]+ loops\) +[0-9]+ '
	# Every probe connection was answered.
	assert_line --regexp '^preforkd +[0-9]+ +0 +'
	# No server of this run is left behind (a check only: bench/run
	# stops by pid).  Its processes run from its temporary directory;
	# another bench/run on the machine has one of its own.
	local tmp
	tmp=$(sed -n 's|.* tmp=\(/tmp/preforkd-bench\.[A-Za-z0-9]*\)$|\1|p' \
	    <<<"$output")
	[[ -n $tmp ]] || fail "no tmp= in bench/run's output"
	run bash -c 'ps -eo args= | grep -c "^$1/"' _ "$tmp"
	assert_output 0
}

@test "bench/run --tls-only runs and reports preforkd's TLS rows" {
	command -v wrk >/dev/null || skip "wrk not installed"
	command -v openssl >/dev/null || skip "openssl not installed"
	[[ -e /usr/include/openssl/ssl.h ]] ||
	    skip "no OpenSSL headers (libssl-dev) for bench/tlsload.c"
	run env PREFORKD_BIN="$PREFORKD" "$TOP_SRCDIR/bench/run" --tls-only \
	    --duration 1 --servers preforkd --no-install
	[[ $output != *"no TLS rows for preforkd"* ]] ||
	    skip "this preforkd has no TLS"
	assert_success
	assert_line --regexp '^tls-a: full handshakes -c50 +ECDSA P-256 +preforkd +[0-9]+ '
	# Every session offered was resumed, whichever worker took it.
	assert_line --regexp '^tls-b: resumed handshakes -c50 +ECDSA P-256 +preforkd +[0-9]+ +100\.0 '
	assert_line --regexp '^tls-b: resumed handshakes -c50 +RSA 2048 +preforkd +[0-9]+ +100\.0 '
	assert_line --regexp '^tls-c: 612 B keep-alive -c50 +ECDSA P-256 +preforkd +[0-9]+ '
	assert_line --regexp '^tls-d: 1 MiB keep-alive -c8 +RSA 2048 +preforkd +[0-9]+ '
}

@test "bench/run --chan-only runs preforkd's channel rows: nothing lost, doubled or out of order" {
	command -v cc >/dev/null || skip "no C compiler for bench/chanload.c"
	run env PREFORKD_BIN="$PREFORKD" "$TOP_SRCDIR/bench/run" --chan-only \
	    --chan-duration 1 --servers preforkd --no-install
	assert_success
	# lost, dup and out of order: 0 0 0, through a reload too.
	local r
	for r in 'chan-a: 1000 subs, 1 channel' 'chan-e: as chan-a, one reload'; do
		assert_line --regexp "^$r.* preforkd +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+ +0 +0 +0 "
	done
}

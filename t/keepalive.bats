#!/usr/bin/env bats
# Parked keep-alive connections: a worker holds many idle connections in
# its epoll set between requests (worker_connections), answers whichever
# speaks, still accepts new ones, and closes them cleanly on a stop.

load helpers

export LC_ALL=C

# ka_open: open a connection; its descriptor is left in KA_FD.
ka_open() { exec {KA_FD}<>"/dev/tcp/127.0.0.1/$PORT"; }

# ka_send FD PATH: one keep-alive GET, in one write.
ka_send() {
	printf 'GET %s HTTP/1.1\r\nHost: t\r\n\r\n' "$2" > "$BATS_TEST_TMPDIR/ka.req"
	cat "$BATS_TEST_TMPDIR/ka.req" >&"$1"
}

# ka_read FD SECS: read one response; sets RESP_STATUS, RESP_CONN (the
# Connection header, lower case, empty if none) and RESP_BODY.
ka_read() {
	local fd=$1 secs=$2 line len=0
	RESP_STATUS='' RESP_CONN='' RESP_BODY=''
	IFS= read -r -t "$secs" -u "$fd" line || return 1
	line=${line%$'\r'}
	RESP_STATUS=$(cut -d' ' -f2 <<<"$line")
	while IFS= read -r -t "$secs" -u "$fd" line; do
		line=${line%$'\r'}
		[[ -n $line ]] || break
		case ${line,,} in
		content-length:*) len=${line#*: } ;;
		connection:*) RESP_CONN=${line#*: }; RESP_CONN=${RESP_CONN,,} ;;
		esac
	done
	(( len == 0 )) || IFS= read -r -N "$len" -t "$secs" -u "$fd" RESP_BODY
}

# ka_get FD PATH: request and read the answer (5 s at most).
ka_get() { ka_send "$1" "$2" && ka_read "$1" 5; }

accept_queue_is() { [[ $(accept_queue) == "$1" ]]; }

# The status page's count of open connections.
open_connections_is() {
	[[ $(curl -s "http://127.0.0.1:$PORT/status" |
	    sed -n 's/^open connections: //p') == "$1" ]]
}

# at_eof FD: the server closed FD cleanly (EOF, no reset, no bytes).
at_eof() {
	local out
	out=$(timeout 5 cat <&"$1") && [[ -z $out ]]
}

@test "one worker holds 20 keep-alive connections and answers each, in any order" {
	WORKERS=1 start_server -o keepalive_timeout=60s -o status_path=/status
	local fds=() i
	for i in $(seq 1 20); do
		# One connection per worker would leave this one waiting 60 s
		# behind the first, idle, connection.
		ka_open
		fds+=("$KA_FD")
		ka_get "$KA_FD" /hello.txt
		[[ $RESP_STATUS == 200 && $RESP_BODY == $'hello\n' ]]
		[[ -z $RESP_CONN ]]
	done
	for (( i = ${#fds[@]} - 1; i >= 0; i-- )); do
		ka_get "${fds[i]}" /style.css
		[[ $RESP_STATUS == 200 && $RESP_BODY == $'body{}\n' ]]
	done
	# The 20 and the status request itself.
	open_connections_is 21
	for i in "${fds[@]}"; do exec {i}>&-; done
	wait_until 10 open_connections_is 1
	alive "$SERVER_PID"
}

@test "worker_connections caps one worker; a queued client gets the longest-idle one's place" {
	WORKERS=1 start_server -o keepalive_timeout=60s -o worker_connections=2
	local a b c
	ka_open; a=$KA_FD
	ka_get "$a" /hello.txt
	ka_open; b=$KA_FD
	ka_get "$b" /hello.txt
	[[ $RESP_STATUS == 200 ]]
	# Both places are taken by idle connections: the third client is not
	# left in the accept queue for keepalive_timeout; the longest-idle
	# connection (a) is closed for it.
	ka_open; c=$KA_FD
	ka_send "$c" /hello.txt
	ka_read "$c" 5
	[[ $RESP_STATUS == 200 && $RESP_BODY == $'hello\n' ]]
	at_eof "$a"
	wait_until 10 accept_queue_is 0
	ka_get "$b" /style.css
	[[ $RESP_STATUS == 200 ]]
}

@test "worker_connections 1: one connection per worker, as in a classic prefork server" {
	WORKERS=1 start_server -o keepalive_timeout=60s -o worker_connections=1
	local a b
	ka_open; a=$KA_FD
	ka_get "$a" /hello.txt
	ka_open; b=$KA_FD
	# The idle connection gives its place to the client that asks.
	ka_send "$b" /hello.txt
	ka_read "$b" 5
	[[ $RESP_STATUS == 200 ]]
	at_eof "$a"
}

@test "a client that trickles a head on a parked connection does not hold up one that asks" {
	WORKERS=1 start_server -o keepalive_timeout=60s -o header_timeout=30s \
	    -o header_timeout_busy=1s
	local slow fast
	ka_open; slow=$KA_FD
	ka_get "$slow" /hello.txt
	ka_open; fast=$KA_FD
	ka_get "$fast" /hello.txt
	# Half a head, then nothing: the worker does not wait for the rest...
	printf 'GET /hello.txt HTTP/1.1\r\n' >&"$slow"
	ka_send "$fast" /style.css
	ka_read "$fast" 5
	[[ $RESP_STATUS == 200 && $RESP_BODY == $'body{}\n' ]]
	# ...and the slow head, within header_timeout, is still answered:
	# with room to spare, nobody loses a place.
	printf 'Host: t\r\n\r\n' >&"$slow"
	ka_read "$slow" 5
	[[ $RESP_STATUS == 200 && $RESP_BODY == $'hello\n' ]]
}

@test "a stop answers requests already sent on parked connections, then closes every one cleanly" {
	WORKERS=1 start_server -o keepalive_timeout=60s
	local fds=() fd i
	for i in $(seq 1 10); do
		ka_open
		fds+=("$KA_FD")
		ka_get "$KA_FD" /hello.txt
	done
	# Half of them ask again just before the stop: every one is answered.
	for i in 0 2 4 6 8; do ka_send "${fds[i]}" /style.css; done
	kill -INT "$SERVER_PID"
	for i in 0 2 4 6 8; do
		ka_read "${fds[i]}" 10
		[[ $RESP_STATUS == 200 && $RESP_BODY == $'body{}\n' ]]
	done
	for fd in "${fds[@]}"; do at_eof "$fd"; done
	# Far sooner than the 60 s keep-alive timeout.
	[[ $(server_exit_status) == 0 ]]
}

@test "wrk: 64 keep-alive connections on 2 workers, no errors, every response 200" {
	command -v wrk >/dev/null || skip "wrk not installed"
	start_server -o status_path=/status
	run wrk -t2 -c64 -d2s "http://127.0.0.1:$PORT/hello.txt"
	assert_success
	refute_output --partial 'Socket errors'
	refute_output --partial 'Non-2xx'
	[[ $(awk '/requests in/ { print $1 }' <<<"$output") -gt 64 ]]
	alive "$SERVER_PID"
	wait_until 10 open_connections_is 1
}

@test "a client that reads nothing holds up no parked connection, and is cut at send_timeout" {
	make_docroot
	head -c $((32 * 1024 * 1024)) /dev/zero > "$DOCROOT/huge.bin"
	WORKERS=1 start_server -o keepalive_timeout=60s -o send_timeout=2s \
	    -o status_path=/status
	local a s
	ka_open; a=$KA_FD
	ka_get "$a" /hello.txt
	# A client that asks for 32 MiB and reads none of it...
	ka_open; s=$KA_FD
	ka_send "$s" /huge.bin
	# ...does not keep the parked connection waiting.
	ka_send "$a" /style.css
	ka_read "$a" 2
	[[ $RESP_STATUS == 200 && $RESP_BODY == $'body{}\n' ]]
	# It is cut at send_timeout: a, and the status request, remain.
	wait_until 15 open_connections_is 2
	[[ $(timeout 10 cat <&"$s" | wc -c) -lt $((32 * 1024 * 1024)) ]]
}

@test "max_requests: the worker recycles without waiting for a new connection" {
	WORKERS=1 start_server -o max_requests=3 -o keepalive_timeout=60s
	local a b
	ka_open; a=$KA_FD
	ka_get "$a" /hello.txt
	ka_open; b=$KA_FD
	ka_get "$b" /hello.txt
	[[ -z $RESP_CONN ]]
	ka_get "$a" /hello.txt
	[[ $RESP_STATUS == 200 && $RESP_CONN == close ]]
	wait_until 10 log_has 'recycled after 3 requests'
	at_eof "$a"
	at_eof "$b"
	wait_until 10 worker_count_is 1
	ka_open
	ka_get "$KA_FD" /hello.txt
	[[ $RESP_STATUS == 200 ]]
}

# size_of FILE: its size in bytes (0 while it does not exist).
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
grown_to() { (( $(size_of "$1") >= $2 )); }

@test "a slow but steady reader is never cut, others are served meanwhile; one that stops reading is cut at send_timeout" {
	make_docroot
	head -c $((64 * 1024 * 1024)) /dev/zero > "$DOCROOT/huge.bin"
	WORKERS=1 start_server -o header_timeout_busy=1s -o send_timeout=3s \
	    -o status_path=/status -o keepalive_timeout=60s
	local out=$BATS_TEST_TMPDIR/dl d rpid base q
	# A reader taking 64 KiB every 50 ms, about 1 MB/s: far below what
	# the socket buffers hold.
	exec {d}<>"/dev/tcp/127.0.0.1/$PORT"
	ka_send "$d" /huge.bin
	: > "$out"
	( while dd bs=65536 count=1 iflag=fullblock status=none <&"$d" >> "$out"
	  do sleep 0.05; done ) &
	rpid=$!
	wait_until 10 grown_to "$out" $((1024 * 1024))
	# Another client is answered meanwhile, by the same (only) worker.
	ka_open; q=$KA_FD
	ka_get "$q" /hello.txt
	[[ $RESP_STATUS == 200 && $RESP_BODY == $'hello\n' ]]
	# The download goes on for well over send_timeout: slow, not stalled.
	base=$(size_of "$out")
	wait_until 20 grown_to "$out" $((base + 5 * 1024 * 1024))
	# A reader that stops (it holds the connection and reads no more) is
	# cut after send_timeout: q and the status request remain.
	kill -STOP "$rpid"
	wait_until 15 open_connections_is 2
	ka_get "$q" /hello.txt
	[[ $RESP_STATUS == 200 ]]
	kill -KILL "$rpid"
	exec {d}>&-
	wait "$rpid" 2>/dev/null || true
}

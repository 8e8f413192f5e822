#!/usr/bin/env bats
# Supervision: the master replaces workers that die, backs off when they
# die in a loop, and workers never outlive their master.

load helpers

@test "a worker killed with SIGSEGV is replaced, and the log says so" {
	WORKERS=3 start_server
	local victim
	victim=$(worker_pids | head -n 1)
	kill -SEGV "$victim"
	wait_until 5 gone "$victim"
	wait_until 5 worker_count_is 3
	wait_until 5 log_has "worker $victim killed by signal 11 (Segmentation fault).*; respawning"
	# The replacement serves.
	for i in 1 2 3 4 5 6; do
		run curl -s "http://127.0.0.1:$PORT/hello.txt"
		assert_output hello
	done
	! worker_pids | grep -qx "$victim"
}

@test "a worker killed with SIGKILL is replaced" {
	start_server
	local victim
	victim=$(worker_pids | head -n 1)
	kill -KILL "$victim"
	wait_until 5 log_has "worker $victim killed by signal 9"
	wait_until 5 worker_count_is 2
}

@test "workers dying in a loop are respawned with exponential backoff" {
	WORKERS=1 start_server
	local i w
	for i in 1 2 3 4; do
		wait_until 10 worker_count_is 1
		w=$(worker_pids)
		kill -SEGV "$w"
		wait_until 5 gone "$w"
	done
	wait_until 5 log_has 'workers are dying in a loop (2 in a row); next respawn in 100 ms'
	wait_until 5 log_has 'workers are dying in a loop (3 in a row); next respawn in 200 ms'
	wait_until 5 log_has 'workers are dying in a loop (4 in a row); next respawn in 400 ms'
	# ... and the pool comes back.
	wait_until 10 worker_count_is 1
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
}

@test "the master killed with SIGKILL: its workers exit and the port frees" {
	WORKERS=3 start_server
	local ws
	ws=$(worker_pids)
	kill -KILL "$SERVER_PID"
	for w in $ws; do wait_until 2 dead "$w"; done
	wait_until 2 port_refuses "$PORT"
	SERVER_PID=
}

@test "the master killed mid-download: the download still completes" {
	make_docroot
	head -c 8388608 /dev/urandom > "$DOCROOT/eight.bin"
	start_server
	curl -s -o "$BATS_TEST_TMPDIR/out" --limit-rate 4M \
	    "http://127.0.0.1:$PORT/eight.bin" &
	local dl=$!
	wait_until 5 test -s "$BATS_TEST_TMPDIR/out"
	local ws
	ws=$(worker_pids)
	kill -KILL "$SERVER_PID"
	wait "$dl"
	cmp "$DOCROOT/eight.bin" "$BATS_TEST_TMPDIR/out"
	for w in $ws; do wait_until 5 dead "$w"; done
	SERVER_PID=
}

@test "SIGUSR1 reopens the log and is forwarded to the workers, which keep serving" {
	start_server
	local ws
	ws=$(worker_pids)
	kill -USR1 "$SERVER_PID"
	run curl -s "http://127.0.0.1:$PORT/hello.txt"
	assert_output hello
	for w in $ws; do alive "$w"; done
	alive "$SERVER_PID"
}

@test "the master and workers are one process group; workers are the master's children" {
	WORKERS=4 start_server
	local pg
	for w in $(worker_pids); do
		pg=$(ps -o pgid= -p "$w" | tr -d ' ')
		[[ $pg == "$SERVER_PID" ]]
	done
	worker_count_is 4
}

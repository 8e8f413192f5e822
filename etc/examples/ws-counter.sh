#!/bin/sh
# ws-counter.sh: an example program for preforkd's websocket keyword
# (see the WEBSOCKET SESSIONS section of preforkd(8)).
#
# Each line this program writes to its standard output is one message to
# the client; each message from the client is one line on its standard
# input.  It greets the client with what preforkd put in its environment,
# sends a counter line every second, and echoes back every line it
# reads.  Its standard error goes to the error log.
#
# How it ends shows the contract:
#   - end of input (the client closed, or went away): it stops and exits
#     0, and preforkd sends the client a Close 1000;
#   - SIGTERM (preforkd stops, reloads, upgrades or recycles the worker):
#     it says "bye", which the client receives, and exits 0; the client
#     then gets a Close 1001 (stop) or 1012 (restart).
#
# Install it where the workers can run it (inside the root with chroot
# on), for instance:
#   install -m 755 ws-counter.sh /usr/local/libexec/preforkd/ws-counter.sh

pid=

# The counter runs in the background, in preforkd's process group for
# this session: SIGTERM and SIGKILL reach it too.
counter() {
	trap - TERM
	n=0
	while :; do
		n=$((n + 1))
		printf 'counter %d\n' "$n" || exit 0
		sleep 1
	done
}

stop() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	[ -n "$pid" ] && wait "$pid" 2>/dev/null
}

# On SIGTERM: finish, say what is left to say, exit.
trap 'stop; printf "bye\n"; exit 0' TERM

printf 'hello %s, this is %s (path info "%s")\n' "${REMOTE_ADDR:-?}" \
    "${SCRIPT_NAME:-?}" "${PATH_INFO:-}"
printf 'ws-counter: session from %s:%s\n' "${REMOTE_ADDR:-?}" \
    "${REMOTE_PORT:-?}" >&2

counter &
pid=$!

while IFS= read -r line; do
	printf 'echo: %s\n' "$line"
done

# End of input: the client is gone or closing.
stop
exit 0

#!/bin/sh
# ws-cat.sh PIDFILE [tree]: an echo program for t/websocket.bats that
# appends its pid to PIDFILE (with "tree": its pid and that of a
# grandchild that sleeps in its process group, holding stdout too), says
# so on stderr, then becomes cat.
if [ "${2:-}" = tree ]; then
	sleep 300 &
	echo "$$ $!" >> "$1"
else
	echo "$$" >> "$1"
fi
echo "ws-cat $$ started" >&2
exec cat

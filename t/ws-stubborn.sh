#!/bin/sh
# ws-stubborn.sh PIDFILE: a program that ignores SIGTERM (and its stdin
# closing): appends its pid to PIDFILE, says "started", sleeps.
trap '' TERM
echo "$$" >> "$1"
echo started
exec sleep 300

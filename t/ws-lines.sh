#!/bin/sh
# ws-lines.sh N HOW: prints the numbers 1 to N, one a line, then ends as
# HOW says: a number is its exit status, "kill" kills itself with SIGKILL.
seq 1 "$1"
case $2 in
kill)	kill -KILL $$ ;;
*)	exit "$2" ;;
esac

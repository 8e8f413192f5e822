#!/bin/sh
# ws-lines.sh N HOW [PIDFILE]: prints the numbers 1 to N, one a line, then
# ends as HOW says: a number is its exit status, "kill" kills itself with
# SIGKILL, "orphan" leaves a child sleeping in its process group (holding
# stdout) and exits 0, its pid and the child's appended to PIDFILE.
seq 1 "$1"
case $2 in
kill)	kill -KILL $$ ;;
orphan)	sleep 300 &
	echo "$$ $!" >> "$3"
	exit 0 ;;
*)	exit "$2" ;;
esac

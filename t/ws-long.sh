#!/bin/sh
# ws-long.sh: two lines longer than websocket_max_message 1k, then exit 0:
# the numbers 1 to 1000 joined by commas (3892 bytes of ASCII), and "a"
# followed by 600 "é" (1201 bytes: cut at 1024, a character would split).
seq -s , 1 1000
printf 'a'
i=0
while [ "$i" -lt 600 ]; do
	printf '\303\251'
	i=$((i + 1))
done
printf '\n'

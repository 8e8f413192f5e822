#!/bin/sh
# ws-flood.sh PIDFILE: appends its pid to PIDFILE, then writes lines as
# fast as it can, forever (back-pressure must stop it, not memory).
echo "$$" >> "$1"
exec yes 'flood flood flood flood flood flood flood flood flood flood flood'

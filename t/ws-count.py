#!/usr/bin/python3
"""ws-count.py PIDFILE: appends its pid to PIDFILE, then prints numbered
lines (1, 2, ...) without end, in bursts; on SIGTERM it finishes the line
it is on, prints "bye" and exits 0."""
import os
import signal
import sys
import time

term = []
signal.signal(signal.SIGTERM, lambda *_: term.append(1))
with open(sys.argv[1], "a") as f:
    f.write("%d\n" % os.getpid())
i = 0
while not term:
    i += 1
    # One write a line: every line is whole, even when a signal
    # interrupts a write to a full pipe (Python retries it, PEP 475).
    sys.stdout.write("%d\n" % i)
    sys.stdout.flush()
    if i % 50 == 0:
        time.sleep(0.005)
sys.stdout.write("bye\n")
sys.stdout.flush()

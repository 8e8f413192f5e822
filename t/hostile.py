#!/usr/bin/env python3
"""Hostile clients for t/attack.bats, bounded in count and time.

    hostile.py PORT MODE COUNT SECONDS [PATH]

Opens COUNT connections to 127.0.0.1:PORT and keeps them doing MODE for
SECONDS at most, then closes them and exits.  It prints "ready answered=N"
(and flushes) once every connection is doing its thing, so the test can
probe the server while the attack runs, and at the end one line of
counts: "MODE open=N answered=N closed=N".

Modes:
  slowread   GET PATH, then read 4 KB a second
  noread     GET PATH, then read nothing
  reject     send a request the server rejects (GET /%zz), then silence
  trickle    send a head one byte a second, never finishing it
  idle       one keep-alive request, answer read, then idle
"""
import select
import socket
import sys
import time


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    return s


def read_some(s, n):
    try:
        b = s.recv(n)
    except BlockingIOError:
        return 0
    except OSError:
        return -1
    return len(b) if b else -1


def main():
    port, mode, count, secs = (int(sys.argv[1]), sys.argv[2],
                               int(sys.argv[3]), float(sys.argv[4]))
    path = sys.argv[5] if len(sys.argv) > 5 else "/hello.txt"
    deadline = time.monotonic() + secs
    conns, answered, closed = [], 0, 0
    head = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    for _ in range(count):
        s = connect(port)
        if mode in ("slowread", "noread", "idle"):
            s.sendall(head)
        elif mode == "reject":
            s.sendall(b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n")
        conns.append(s)
    if mode == "idle":
        # Each answer in full, so that the connection is idle after it.
        for s in conns:
            got = b""
            while b"\r\n\r\n" not in got and time.monotonic() < deadline:
                r, _, _ = select.select([s], [], [], 1)
                if r:
                    got += s.recv(4096)
            answered += got.startswith(b"HTTP/1.1 200")
    print("ready answered=%d" % answered, flush=True)
    trickle = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 4096
    step = 0
    while time.monotonic() < deadline and conns:
        tick = time.monotonic()
        for s in list(conns):
            if mode == "slowread" and read_some(s, 4096) < 0:
                closed += 1
                conns.remove(s)
            elif mode == "trickle":
                try:
                    s.send(trickle[step:step + 1])
                except OSError:
                    closed += 1
                    conns.remove(s)
            elif mode in ("reject", "idle", "noread"):
                r, _, _ = select.select([s], [], [], 0)
                if r and mode != "noread" and read_some(s, 65536) < 0:
                    closed += 1
                    conns.remove(s)
        step = min(step + 1, len(trickle) - 1)
        time.sleep(max(0, 1 - (time.monotonic() - tick)))
    print("%s open=%d answered=%d closed=%d" % (mode, len(conns), answered,
                                               closed), flush=True)
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""wsslow.py PORT PATH [--tls CAFILE] [--cycles N] [--pause S]: a raw
WebSocket client that reads slowly (a 64 KiB receive buffer, reading in
bursts of one second after pauses), so that the server's sends block
again and again.  Prints "bytes B frames F eof E": E is 1 when the
server closed the connection before the client was done."""
import argparse
import base64
import os
import socket
import ssl
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("path")
ap.add_argument("--tls")
ap.add_argument("--cycles", type=int, default=4)
ap.add_argument("--pause", type=float, default=0.5)
a = ap.parse_args()
s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
if a.tls:
    ctx = ssl.create_default_context(cafile=a.tls)
    s = ctx.wrap_socket(s, server_hostname="localhost")
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % (a.path, key)).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        raise SystemExit("no 101")
    buf += d
head, data = buf.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    raise SystemExit("not a 101: %r" % head[:80])
eof = 0
for _ in range(a.cycles):
    time.sleep(a.pause)
    end = time.time() + 1
    s.settimeout(0.5)
    try:
        while time.time() < end and not eof:
            d = s.recv(65536)
            if not d:
                eof = 1
            data += d
    except socket.timeout:
        pass
    except OSError:
        eof = 1
    if eof:
        break
i = n = 0
while i + 2 <= len(data):
    ln, j = data[i + 1] & 0x7F, i + 2
    if ln == 126:
        ln, j = int.from_bytes(data[j:j + 2], "big"), j + 2
    elif ln == 127:
        ln, j = int.from_bytes(data[j:j + 8], "big"), j + 8
    if j + ln > len(data):
        break
    n += 1
    i = j + ln
print("bytes %d frames %d eof %d" % (len(data), n, eof))

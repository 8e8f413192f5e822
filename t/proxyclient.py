#!/usr/bin/python3
"""A balancer's side of a connection, for t/proxy.bats.

    proxyclient.py [options] PORT

Connects to 127.0.0.1:PORT, sends a PROXY protocol header, then an HTTP
request, and prints what the server sends until it closes the
connection (CRs removed); exits 3 when the server closed it without a byte, 4 on a
timeout (--timeout, default 10 s).

  --v1 ADDR:PORT      a v1 header with that source (TCP4, or TCP6 for an
                      IPv6 address in brackets: [2001:db8::1]:80)
  --v2 ADDR:PORT      the same as a v2 header (with a TLV after the
                      addresses, which the server must skip)
  --v1-unknown        "PROXY UNKNOWN"
  --v2-local          a v2 LOCAL header (a balancer's health check)
  --raw BYTES         these bytes instead (Python escapes: \\r\\n, \\x00)
  --header LINE       a header line for the request (repeatable)
  --path PATH         the request's path (default /hello.txt)
  --requests N        N requests on the connection, keep-alive, the
                      headers on the first only (default 1)
  --no-request        nothing after the header
  --slow              the header one byte at a time, 10 ms apart
  --hold FILE         after the header's first half, print "held" and
                      wait until FILE exists, then send the rest (exit 3
                      if the server closes the connection meanwhile)
  --same-write        header and request in one write (the default
                      sends them in two)
  --ws PATH           a WebSocket session on PATH after the header
                      (python3-websockets): print every message received
                      until the server closes, then "close CODE"
"""
import argparse
import asyncio
import ipaddress
import os
import select
import socket
import struct
import sys
import time


def split_addr(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    return ipaddress.ip_address(host), int(port)


def header(args):
    if args.raw is not None:
        return args.raw.encode("latin-1").decode("unicode_escape").encode(
            "latin-1")
    if args.v1_unknown:
        return b"PROXY UNKNOWN\r\n"
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if args.v2_local:
        return sig + b"\x20\x00\x00\x00"
    src, sport = split_addr(args.v1 or args.v2)
    six = src.version == 6
    dst = ipaddress.ip_address("2001:db8::80" if six else "198.51.100.80")
    if args.v1:
        return ("PROXY %s %s %s %d 80\r\n" % ("TCP6" if six else "TCP4",
                src, dst, sport)).encode()
    block = src.packed + dst.packed + struct.pack("!HH", sport, 80)
    tlv = b"\x04\x00\x03abc"        # PP2_TYPE_NOOP
    fam = b"\x21" if six else b"\x11"
    return sig + b"\x21" + fam + struct.pack("!H", len(block) + len(tlv)) \
        + block + tlv


def request(args, first, last):
    lines = ["GET %s HTTP/1.1" % args.path, "Host: 127.0.0.1"]
    if first:
        lines += args.header
    if last:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Closed(Exception):
    """The server closed the connection before the header was all sent."""


def send_header(sock, args, hdr):
    if args.hold:
        half = max(1, len(hdr) // 2)
        sock.sendall(hdr[:half])
        hdr = hdr[half:]
        print("held", flush=True)
        while not os.path.exists(args.hold):
            ready, _, _ = select.select([sock], [], [], 0.01)
            if ready and not sock.recv(1, socket.MSG_PEEK):
                raise Closed()
    if args.slow:
        for i in range(len(hdr)):
            sock.sendall(hdr[i:i + 1])
            time.sleep(0.01)
    elif hdr:
        sock.sendall(hdr)


def http(args, sock, hdr):
    reqs = b"".join(request(args, i == 0, i == args.requests - 1)
                    for i in range(args.requests))
    if args.no_request:
        reqs = b""
    if args.same_write and not (args.slow or args.hold):
        sock.sendall(hdr + reqs)
    else:
        send_header(sock, args, hdr)
        if reqs:
            sock.sendall(reqs)
    got = 0
    out = sys.stdout.buffer
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        got += len(data)
        out.write(data.replace(b"\r", b""))
        out.flush()
    return 0 if got else 3


async def ws_session(args, sock, hdr):
    import websockets
    send_header(sock, args, hdr)
    sock.setblocking(False)
    extra = [tuple(h.split(": ", 1)) for h in args.header]
    async with websockets.connect("ws://127.0.0.1%s" % args.ws, sock=sock,
                                  extra_headers=extra) as ws:
        try:
            async for msg in ws:
                print(msg, flush=True)
        except websockets.ConnectionClosed:
            pass
        print("close %s" % ws.close_code, flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--v1")
    ap.add_argument("--v2")
    ap.add_argument("--v1-unknown", action="store_true")
    ap.add_argument("--v2-local", action="store_true")
    ap.add_argument("--raw")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--path", default="/hello.txt")
    ap.add_argument("--requests", type=int, default=1)
    ap.add_argument("--no-request", action="store_true")
    ap.add_argument("--slow", action="store_true")
    ap.add_argument("--hold")
    ap.add_argument("--same-write", action="store_true")
    ap.add_argument("--ws")
    ap.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    hdr = b"" if not (args.raw is not None or args.v1 or args.v2 or
                      args.v1_unknown or args.v2_local) else header(args)
    sock = socket.create_connection(("127.0.0.1", args.port))
    sock.settimeout(args.timeout)
    try:
        if args.ws:
            return asyncio.run(asyncio.wait_for(ws_session(args, sock, hdr),
                                                args.timeout))
        return http(args, sock, hdr)
    except (socket.timeout, asyncio.TimeoutError):
        print("timeout", flush=True)
        return 4
    except (Closed, ConnectionResetError, BrokenPipeError):
        return 3


if __name__ == "__main__":
    sys.exit(main())

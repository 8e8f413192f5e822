#!/usr/bin/python3
"""TLS clients for t/tls.bats and t/shutdown.bats, each bounded by a deadline.

    tlsclient.py [options] PORT MODE [ARG...]

Connects to 127.0.0.1:PORT.  TLS modes verify the server with --ca FILE
(the name checked is --sni, else 127.0.0.1), send --sni as SNI, and tell
how the server ended the connection, on a last line:

  eof close_notify   a TLS close_notify, then the end of the stream
  eof ragged         TCP closed without a close_notify
  eof reset          a TCP reset
  timeout            still open after --timeout seconds (exit 3)

TLS modes:
  get PATH OUT      GET PATH (keep-alive), print "status CODE", write the
                    body (framed by Content-Length) to OUT, then wait for
                    the server to close: its eof line.  --rate B/s reads
                    slowly; --started FILE is created once the first body
                    bytes are in.
  hold PATH         GET PATH (keep-alive), read the whole response, print
                    "ready", then wait for the server to close: eof line.
  --close           the request says "Connection: close"

Raw modes (no TLS), for what the server must refuse:
  plain             a plain "GET /hello.txt HTTP/1.1" request; prints what
                    comes back (CRs removed), then "closed after MS ms"
  garbage N         N random bytes that are no ClientHello (the first is
                    0x00) in one write
  record N          a TLS handshake record header announcing 512 bytes,
                    then N random bytes: a ClientHello that makes no sense
  half              the first half of a real ClientHello, then nothing
  silent            nothing at all
Each raw mode prints "received N bytes" (what the server sent) and
"closed after MS ms" (since the connection was made), or "timeout".

  --proxy-v1 ADDR:PORT  first a PROXY protocol v1 header from that source
"""
import argparse
import os
import socket
import ssl
import sys
import time


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("mode")
    p.add_argument("args", nargs="*")
    p.add_argument("--ca")
    p.add_argument("--sni")
    p.add_argument("--tls12", action="store_true")
    p.add_argument("--tls13", action="store_true")
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--started")
    p.add_argument("--proxy-v1")
    p.add_argument("--close", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    return p.parse_args()


def proxy_header(src, port):
    host, _, sport = src.rpartition(":")
    return ("PROXY TCP4 %s 127.0.0.1 %s %d\r\n" % (host, sport, port)).encode()


def context(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    if args.tls12:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if args.tls13:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def eof_line(s):
    """Read until the server ends the stream; say how it did."""
    try:
        while True:
            if not s.recv(65536):
                return "eof close_notify"
    except ssl.SSLEOFError:
        return "eof ragged"
    except (ConnectionResetError, BrokenPipeError):
        return "eof reset"
    except ssl.SSLError as e:
        return "eof ssl-error %s" % e.reason
    except socket.timeout:
        return "timeout"


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before the end of the head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, rest


def tls_mode(args):
    raw = socket.create_connection(("127.0.0.1", args.port),
                                   timeout=args.timeout)
    if args.proxy_v1:
        raw.sendall(proxy_header(args.proxy_v1, args.port))
    # suppress_ragged_eofs off: a TCP close without close_notify raises
    # SSLEOFError instead of looking like a clean end.
    s = context(args).wrap_socket(raw, server_hostname=args.sni or
                                  "127.0.0.1", suppress_ragged_eofs=False)
    path = args.args[0]
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" %
               (path, args.sni or "127.0.0.1",
                "Connection: close\r\n" if args.close else "")).encode())
    status, hdrs, body = read_head(s)
    out("status %s" % status.split(" ")[1])
    want = int(hdrs.get("content-length", "0"))
    sink = open(args.args[1], "wb") if args.mode == "get" else None
    got = 0
    t0 = time.monotonic()
    while True:
        if body:
            if sink:
                sink.write(body)
            got += len(body)
            if args.started and got > 0 and not os.path.exists(args.started):
                open(args.started, "w").close()
        if got >= want:
            break
        if args.rate:
            ahead = got / args.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        body = s.recv(min(65536, want - got))
        if not body:
            out("short body: %d of %d" % (got, want))
            break
    if sink:
        sink.close()
    if args.mode == "hold":
        out("ready")
    line = eof_line(s)
    out(line)
    return 3 if line == "timeout" else 0


def client_hello():
    ctx = ssl.create_default_context()
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outg.read()


def raw_mode(args):
    s = socket.create_connection(("127.0.0.1", args.port),
                                 timeout=args.timeout)
    t0 = time.monotonic()
    if args.proxy_v1:
        s.sendall(proxy_header(args.proxy_v1, args.port))
    if args.mode == "plain":
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    elif args.mode == "garbage":
        s.sendall(b"\x00" + os.urandom(int(args.args[0]) - 1))
    elif args.mode == "record":
        s.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(int(args.args[0])))
    elif args.mode == "half":
        hello = client_hello()
        s.sendall(hello[:len(hello) // 2])
    elif args.mode != "silent":
        out("unknown mode %s" % args.mode)
        return 2
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except ConnectionResetError:
        pass
    except socket.timeout:
        out("received %d bytes" % len(got))
        out("timeout")
        return 3
    ms = int((time.monotonic() - t0) * 1000)
    if args.mode == "plain":
        sys.stdout.write(got.decode("latin-1").replace("\r", ""))
        if got and not got.endswith(b"\n"):
            sys.stdout.write("\n")
    out("received %d bytes" % len(got))
    out("closed after %d ms" % ms)
    return 0


def main():
    args = parse_args()
    if args.mode in ("get", "hold"):
        return tls_mode(args)
    return raw_mode(args)


if __name__ == "__main__":
    sys.exit(main())

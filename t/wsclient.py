#!/usr/bin/python3
"""WebSocket clients for t/websocket.bats, each bounded by a deadline.

    wsclient.py [options] URL

Well-behaved (the default): Debian's python3-websockets, which answers
pings and the server's Close.  It connects, sends every --send message in
order, then prints each message it receives, one per line (binary ones
as hex, or appended to --out FILE), and ends with "close CODE REASON"
(the Close the server sent; 1006 when there was none).

  (no --expect, no --hold)  read until the server closes
  --expect N     after N messages (or --expect-bytes N bytes), send a
                 Close (--close-code, default 1000) and read until closed
  --hold         once connected and sent (and --expect met), print
                 "ready"; keep reading until the server closes; SIGUSR1
                 makes the client close (--close-code)
  --count N      N sessions at once, each sending "I:MSG" for every
                 --send MSG and waiting for its echo; "ready" once all
                 are echoed, then each holds until the server closes it
                 (or SIGUSR1); ends with one "session I close CODE
                 echoed K/M" line per session

Raw (--raw): a socket of our own that misbehaves on request.  It prints
"ready" after the handshake and its sends, then received text messages,
"close CODE REASON" for a Close, and "eof" when the server closes TCP.
It answers nothing unless told: no pong (--pong to answer pings), no
Close reply (--close-reply to answer one).  --no-read: never reads the
socket after the handshake.  --send-file: binary frames of --chunk bytes,
sent (blocking) after "ready", then "sent".  SIGUSR1, at any point: vanish
with a TCP reset (SO_LINGER 0, then close) and print "vanished".
--time-eof: before "eof", a line "eof after close MS" with the time from
the server's Close to its end of TCP, as this client saw them.

Every mode ends by --timeout (default 20 s) with "timeout" and exit 3.
"""
import argparse
import asyncio
import base64
import os
import signal
import socket
import struct
import sys
import time
from urllib.parse import urlsplit


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def close_line(code, reason):
    return ("close %s %s" % (code, reason or "")).rstrip()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--send", action="append", default=[], metavar="MSG")
    p.add_argument("--send-file", metavar="FILE",
                   help="send FILE's bytes as binary messages of --chunk")
    p.add_argument("--chunk", type=int, default=4000)
    p.add_argument("--binary", action="store_true",
                   help="--send messages are sent as binary")
    p.add_argument("--out", metavar="FILE",
                   help="append received binary messages to FILE")
    p.add_argument("--expect", type=int, default=0, metavar="N")
    p.add_argument("--expect-bytes", type=int, default=0, metavar="N")
    p.add_argument("--hold", action="store_true")
    p.add_argument("--count", type=int, default=0, metavar="N")
    p.add_argument("--close-code", type=int, default=1000)
    p.add_argument("--close-reason", default="")
    p.add_argument("--origin")
    p.add_argument("--protocol", action="append", default=[])
    p.add_argument("-H", "--header", action="append", default=[],
                   metavar="'NAME: VALUE'")
    p.add_argument("--print-protocol", action="store_true",
                   help='print "subprotocol NAME" (or "-") first')
    p.add_argument("--print-local", action="store_true",
                   help='print "local ADDR:PORT" before anything else')
    p.add_argument("--raw", action="store_true")
    p.add_argument("--pong", action="store_true")
    p.add_argument("--close-reply", action="store_true")
    p.add_argument("--no-read", action="store_true")
    p.add_argument("--show-pings", action="store_true")
    p.add_argument("--time-eof", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    return p.parse_args()


def headers_of(args):
    hs = []
    for h in args.header:
        name, _, value = h.partition(":")
        hs.append((name.strip(), value.strip()))
    return hs


# --- well-behaved: python3-websockets ------------------------------------

def connect(args):
    import websockets
    return websockets.connect(
        args.url, origin=args.origin,
        subprotocols=args.protocol or None,
        extra_headers=headers_of(args),
        open_timeout=args.timeout, close_timeout=args.timeout,
        # The server's pings are answered; we send none of our own, so a
        # session stays open only because of the server's pings.
        ping_interval=None, max_size=None, max_queue=None)


async def one(args, stop):
    import websockets
    try:
        ws = await connect(args)
    except websockets.InvalidStatusCode as e:
        out("status %d" % e.status_code)
        return 1
    if args.print_local:
        out("local %s:%d" % ws.local_address[:2])
    if args.print_protocol:
        out("subprotocol %s" % (ws.subprotocol or "-"))
    got = {"n": 0, "bytes": 0}
    expected = asyncio.Event()
    sink = open(args.out, "ab") if args.out else None

    def count(nbytes):
        got["n"] += 1
        got["bytes"] += nbytes
        if (args.expect and got["n"] >= args.expect) or \
                (args.expect_bytes and got["bytes"] >= args.expect_bytes):
            expected.set()

    async def reader():
        while True:
            try:
                msg = await ws.recv()
            except websockets.ConnectionClosed:
                return
            if isinstance(msg, str):
                out(msg)
                count(len(msg.encode()))
            elif sink:
                sink.write(msg)
                sink.flush()
                count(len(msg))
            else:
                out(msg.hex())
                count(len(msg))

    # Reading from the start: what the server sends while we send (a
    # program's first words, a Close) is printed as it comes.
    rd = asyncio.ensure_future(reader())
    try:
        for m in args.send:
            await ws.send(m.encode() if args.binary else m)
        if args.send_file:
            with open(args.send_file, "rb") as f:
                while True:
                    data = f.read(args.chunk)
                    if not data:
                        break
                    await ws.send(data)
    except websockets.ConnectionClosed:
        pass    # the close line says how

    async def until(*events):
        tasks = [asyncio.ensure_future(e.wait()) for e in events]
        await asyncio.wait(tasks + [rd], return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()

    if args.expect or args.expect_bytes:
        await until(expected)
    if args.hold and not rd.done():
        out("ready")
        await until(stop)
    if not rd.done() and (args.expect or args.expect_bytes or args.hold):
        try:
            await ws.close(args.close_code, args.close_reason)
        except websockets.ConnectionClosed:
            pass
    await rd
    await ws.wait_closed()
    out(close_line(ws.close_code, ws.close_reason))
    return 0


async def many(args, stop):
    import websockets
    n = args.count
    ready = [asyncio.Event() for _ in range(n)]
    results = [None] * n

    async def session(i):
        try:
            ws = await connect(args)
        except (OSError, asyncio.TimeoutError,
                websockets.InvalidHandshake) as e:
            ready[i].set()
            results[i] = "session %d failed %s" % (i, e)
            return
        echoed = 0
        try:
            for m in args.send:
                await ws.send("%d:%s" % (i, m))
            for m in args.send:
                if await ws.recv() == "%d:%s" % (i, m):
                    echoed += 1
            ready[i].set()
            rd = asyncio.ensure_future(ws.wait_closed())
            st = asyncio.ensure_future(stop.wait())
            await asyncio.wait([rd, st], return_when=asyncio.FIRST_COMPLETED)
            st.cancel()
            if not rd.done():
                await ws.close(args.close_code)
        except websockets.ConnectionClosed:
            pass
        finally:
            ready[i].set()
        await ws.wait_closed()
        results[i] = "session %d close %s echoed %d/%d" % (
            i, ws.close_code, echoed, len(args.send))

    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(session(i)))
        # Not all 200 handshakes in one burst: the accept queue is not
        # what is being tested.
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    for e in ready:
        await e.wait()
    out("ready")
    await asyncio.gather(*tasks)
    for r in results:
        out(r)
    return 0


async def websockets_main(args):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, stop.set)
    try:
        return await asyncio.wait_for(many(args, stop) if args.count else
                                      one(args, stop), args.timeout)
    except asyncio.TimeoutError:
        out("timeout")
        return 3


# --- raw: a client of our own --------------------------------------------

class Deadline(Exception):
    pass


class Vanish(Exception):
    pass


def raise_vanish(*_):
    raise Vanish()


def xor_mask(payload, mask):
    n = len(payload)
    if n == 0:
        return b""
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^
            int.from_bytes(m, "big")).to_bytes(n, "big")


def frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + xor_mask(payload, mask)


def parse_frame(buf):
    """(fin, opcode, payload, rest) or None if buf holds no whole frame."""
    if len(buf) < 2:
        return None
    fin, opcode = buf[0] & 0x80, buf[0] & 0x0f
    masked, n = buf[1] & 0x80, buf[1] & 0x7f
    off = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = struct.unpack("!Q", buf[2:10])[0], 10
    mask = b""
    if masked:
        mask, off = buf[off:off + 4], off + 4
    if len(buf) < off + n:
        return None
    payload = buf[off:off + n]
    if masked:
        payload = xor_mask(payload, mask)
    return fin, opcode, payload, buf[off + n:]


def raw_main(args):
    deadline = time.monotonic() + args.timeout

    def left():
        t = deadline - time.monotonic()
        if t <= 0:
            raise Deadline()
        return t

    u = urlsplit(args.url)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    s = socket.create_connection((u.hostname, u.port or 80), timeout=left())
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n" % (path, u.hostname, u.port, key))
    if args.origin:
        req += "Origin: %s\r\n" % args.origin
    for name, value in headers_of(args):
        req += "%s: %s\r\n" % (name, value)
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(left())
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) < 2 or status[1] != b"101":
        out("status %s" % (status[1].decode() if len(status) > 1 else "-"))
        sys.exit(1)
    if args.print_local:
        out("local %s:%d" % s.getsockname()[:2])
    # From here on, SIGUSR1 interrupts whatever the client does.
    signal.signal(signal.SIGUSR1, raise_vanish)
    try:
        raw_session(args, s, buf, left)
    except Vanish:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()
        out("vanished")


def raw_session(args, s, buf, left):
    for m in args.send:
        s.sendall(frame(2 if args.binary else 1, m.encode()))
    out("ready")
    if args.send_file:
        # Blocking sends, each bounded by the deadline: a server that
        # stops reading makes the client wait here.
        with open(args.send_file, "rb") as f:
            while True:
                data = f.read(args.chunk)
                if not data:
                    break
                s.settimeout(left())
                s.sendall(frame(2, data))
        out("sent")
    s.settimeout(0.05)
    msg, msg_op, closed, closed_at = b"", 1, False, None
    while True:
        left()
        if args.no_read:
            time.sleep(0.05)
            continue
        f = parse_frame(buf)
        if f is None:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                out("reset")
                return
            if not d:
                if args.time_eof and closed_at is not None:
                    out("eof after close %d" %
                        ((time.monotonic() - closed_at) * 1000))
                out("eof")
                return
            buf += d
            continue
        fin, opcode, payload, buf = f
        if opcode in (0, 1, 2):
            if opcode:
                msg_op = opcode
            msg += payload
            if fin:
                out(msg.hex() if msg_op == 2 else
                    msg.decode(errors="replace"))
                msg = b""
        elif opcode == 9:
            if args.show_pings:
                out("ping")
            if args.pong and not closed:
                s.sendall(frame(10, payload))
        elif opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if payload else 1005
            out(close_line(code, payload[2:].decode(errors="replace")))
            if args.close_reply and not closed:
                s.sendall(frame(8, payload[:2]))
            if not closed:
                closed_at = time.monotonic()
            closed = True


def main():
    args = parse_args()
    # A last resort, should the deadlines above ever fail to fire.
    signal.alarm(int(args.timeout) + 10)
    if args.raw:
        try:
            raw_main(args)
        except (Deadline, socket.timeout):
            out("timeout")
            sys.exit(3)
    else:
        sys.exit(asyncio.run(websockets_main(args)))


if __name__ == "__main__":
    main()

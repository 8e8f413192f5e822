#!/usr/bin/env python3
"""WebSocket conformance of an echoing server, on a raw socket.

    wsconform.py URL [--mode text|binary] [--max-message N] [--cases LIST]
                     [--timeout SECS] [-v]

A client that re-implements the server cases of Autobahn|Testsuite, groups
1 to 7 and 9 (framing, ping/pong, reserved bits, opcodes, fragmentation,
UTF-8, close handling, limits), against a server at URL (ws://HOST:PORT/PATH)
that echoes every message.  Case numbers are Autobahn's where it has the
case; 1.3.x (unmasked client frames -> 1002) is an addition, and 7.9.x
lists the invalid close codes in an order of its own.  One line per case:

    PASS 1.1.1 DESCRIPTION [(note)]
    FAIL 6.3.1 expected close 1007, got ... [DESCRIPTION]

then "conformance: N passed, N failed"; the exit status is 0 only when
every selected case passed (2 for a bad command line).

"(non-strict: ...)" after a PASS says that the server took a path the RFC
allows and Autobahn marks NON-STRICT: it did not echo a message that came
just before the frame that failed the connection, or before the client's
close (7.1.1); it failed invalid UTF-8 at the end of a frame or message
rather than at once (6.4.x); it answered only the latest of pings it had
not answered yet (2.10, RFC 6455 5.5.3).  7.1.6 is informational.  Where
Autobahn accepts more, this script follows doc/design.md: a valid close
code the client sends is echoed (not just answered with 1000); the reason
need not be echoed.  1012-1014 (registered after RFC 6455) are not tried.
Every close from the server must carry the expected code: a protocol error
answered with an empty close fails.

Each case opens a connection of its own and has a deadline (--timeout, plus
as much again per MiB sent): every wait polls the socket until the awaited
event or the deadline.  "Nothing more came" is proven by the order of the
stream (the answer to a later frame, or the close handshake), never by a
sleep; the only pauses space out chops and frame-by-frame sends, and in
6.4.3/6.4.4 tell a fail-fast server from one that is not (a note only).
After every close handshake the server must close TCP.  What the server
sends must be valid itself: unmasked, no reserved bits or opcodes, text in
UTF-8, nothing after its close.

The echo under test may be a program bridged by the server (preforkd's
`websocket PATH /bin/cat`), which changes what an echo can be:

  --mode text (default): every message is echoed as one message of the same
      payload.  A bridge in text mode passes each message as one line, so
      no payload the script sends in a message it expects back contains
      '\\n' (nor '\\r'): text payloads are printable ASCII or the UTF-8
      sequences of group 6, and binary payloads are printable ASCII too.
      The echo of a binary message may come back as text or binary (a text
      bridge answers in text).
  --mode binary: bytes are echoed but message boundaries are not kept (the
      bridge sends what each read of the program's output gave): the
      script compares the concatenation of the binary payloads that came
      back with what it sent, waiting until all bytes came back.  Binary
      payloads are random bytes.  An empty message has no echo.

  --max-message N (k, m, g suffixes): the server's largest message; a
      message above it must be answered with close 1009.  Default: none.

--cases takes a comma-separated list of groups or case-number prefixes
(e.g. 1,2,6.4,9.1.3).  -v prints the frames sent and received on stderr.

Python 3 standard library only (socket, select, struct, os, base64,
hashlib, argparse, time, sys).
"""
import argparse
import base64
import hashlib
import os
import select
import socket
import struct
import sys
import time

OP_CONT, OP_TEXT, OP_BINARY = 0, 1, 2
OP_CLOSE, OP_PING, OP_PONG = 8, 9, 10
OPNAME = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping",
          10: "pong"}
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

KIB, MIB = 1 << 10, 1 << 20

CFG = None           # the parsed command line


class CaseFail(Exception):
    pass


def show(b, limit=40):
    """A short printable form of payload b."""
    b = bytes(b)
    s = repr(b[:limit])
    return s + ("...(%d bytes)" % len(b) if len(b) > limit else "")


def closestr(close):
    """The server's close (code, reason) in words."""
    code, reason = close
    if code is None:
        return "an empty close"
    return "close %d" % code + (" %s" % show(reason) if reason else "")


def vlog(msg):
    if CFG.verbose:
        sys.stderr.write("  " + msg + "\n")


# --- frames -------------------------------------------------------------------

def xor_mask(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^
            int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    """One encoded client frame (masked unless mask=False)."""
    payload = bytes(payload)
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def describe(f):
    """An encoded client frame in words, for -v."""
    b0, b1 = f[0], f[1]
    n, hl = b1 & 0x7F, 2
    if n == 126:
        n, hl = struct.unpack_from("!H", f, 2)[0], 4
    elif n == 127:
        n, hl = struct.unpack_from("!Q", f, 2)[0], 10
    if b1 & 0x80:
        payload = xor_mask(f[hl + 4:hl + 4 + min(n, 40)], f[hl:hl + 4])
    else:
        payload = f[hl:hl + min(n, 40)]
    op = b0 & 0xF
    return "%s%s%s%s %r%s" % (OPNAME.get(op, "opcode %d" % op),
                              "" if b0 & 0x80 else " (fin=0)",
                              " rsv=%d" % (b0 >> 4 & 7) if b0 & 0x70 else "",
                              "" if b1 & 0x80 else " unmasked", bytes(payload),
                              "...(%d bytes)" % n if n > 40 else "")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def close_frame(code=None, reason=b""):
    return frame(OP_CLOSE, close_payload(code, reason))


def fragments(opcode, payload, size):
    """payload as a fragmented message of fragments of size bytes."""
    parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, p in enumerate(parts):
        out.append(frame(opcode if i == 0 else OP_CONT, p,
                         fin=(i == len(parts) - 1)))
    return out


# --- payloads -----------------------------------------------------------------

PRINTABLE = bytes(0x21 + i % 94 for i in range(256))


def text_payload(n):
    """n bytes of printable ASCII (no newline), not periodic."""
    return os.urandom(n).translate(PRINTABLE)


def binary_payload(n):
    """Random bytes in binary mode; printable ASCII in text mode."""
    return os.urandom(n) if CFG.mode == "binary" else text_payload(n)


# --- a connection -------------------------------------------------------------

class Conn:
    def __init__(self, deadline):
        self.deadline = deadline
        self.rx = bytearray()
        self.rpos = 0
        self.msgs = []          # text mode: (opcode, payload) received
        self.mi = 0             # ... consumed so far
        self.stream = bytearray()   # binary mode: data received
        self.si = 0
        self.pongs = []
        self.pi = 0
        self.close = None       # (code or None, reason) of the server's close
        self.eof = False        # the server closed TCP (FIN or reset)
        self.wbroken = False    # a write failed (the server is gone)
        self.close_sent = False
        self.bad = []           # protocol violations by the server
        self.frag_op = None
        self.frag = []
        self.pending_pongs = []
        self.sock = None
        self.handshaking = True
        self.connect()

    # -- transport --
    def remaining(self):
        rem = self.deadline - time.monotonic()
        if rem <= 0:
            raise CaseFail("timed out (case deadline); " + self.got())
        return rem

    def connect(self):
        host, port, path = CFG.host, CFG.port, CFG.path
        try:
            self.sock = socket.create_connection((host, port),
                                                 timeout=self.remaining())
        except OSError as e:
            raise CaseFail("cannot connect to %s:%d: %s" % (host, port, e))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        hostport = host if port == 80 else "%s:%d" % (host, port)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n"
               % (path, hostport, key.decode())).encode()
        self.sock.setblocking(False)
        self.write(req)
        while b"\r\n\r\n" not in self.rx:
            if self.eof:
                raise CaseFail("handshake: connection closed after %s"
                               % show(self.rx))
            self.fill(min(self.remaining(), 1.0), parse=False)
        end = self.rx.index(b"\r\n\r\n")
        head = bytes(self.rx[:end]).decode("latin-1").split("\r\n")
        del self.rx[:end + 4]
        self.handshaking = False
        status = head[0]
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if status.split(" ")[1:2] != ["101"]:
            raise CaseFail("handshake: %s" % status)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if hdrs.get("upgrade", "").lower() != "websocket":
            raise CaseFail("handshake: Upgrade: %r" % hdrs.get("upgrade"))
        conn = [t.strip().lower() for t in hdrs.get("connection", "").split(",")]
        if "upgrade" not in conn:
            raise CaseFail("handshake: Connection: %r" % hdrs.get("connection"))
        if hdrs.get("sec-websocket-accept") != accept:
            raise CaseFail("handshake: Sec-WebSocket-Accept %r, expected %r"
                           % (hdrs.get("sec-websocket-accept"), accept))
        self.parse()

    def read(self, parse=True):
        try:
            b = self.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            vlog("<- %s" % e)
            self.eof = True
            return
        if not b:
            vlog("<- EOF")
            self.eof = True
            return
        self.rx += b
        if parse and not self.handshaking:
            self.parse()

    def fill(self, timeout, parse=True):
        """Wait up to timeout for bytes from the server and take them."""
        if self.eof:
            time.sleep(min(timeout, 0.01))
            return
        r, _, _ = select.select([self.sock], [], [], timeout)
        if r:
            self.read(parse)

    def write(self, data):
        """Write all of data, reading what comes meanwhile (a server that
        echoes while we send must not deadlock with us).  False when the
        connection broke."""
        mv = memoryview(data)
        off = 0
        while off < len(mv):
            if self.wbroken:
                return False
            rl = [] if self.eof else [self.sock]
            r, w, _ = select.select(rl, [self.sock], [],
                                    min(self.remaining(), 1.0))
            if r:
                self.read()
            if w:
                try:
                    off += self.sock.send(mv[off:off + (1 << 18)])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    vlog("-> write failed: %s" % e)
                    self.wbroken = True
                    return False
        return True

    def pause(self, secs):
        """Let secs pass, taking what the server sends meanwhile."""
        end = time.monotonic() + secs
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.fill(min(left, self.remaining()))

    # -- sending --
    def send(self, frames, chop=None, delay=None):
        """Send encoded frames: all in one write; or, with chop, the bytes
        in writes of chop octets; or, with delay, one frame per write with
        delay seconds between.  Once the server's close has come, frames
        not begun yet are not sent (False is returned)."""
        self.flush_pongs()
        if CFG.verbose:
            for f in frames[:8]:
                vlog("-> " + describe(f))
            if len(frames) > 8:
                vlog("-> ... %d frames in all" % len(frames))
            if chop or delay:
                vlog("   (%s)" % ("in chops of %d" % chop if chop else
                                 "%g s apart" % delay))
        if delay is not None:
            for i, f in enumerate(frames):
                if i:
                    self.pause(delay)
                if self.close is not None or not self.write(f):
                    return False
            return True
        data = b"".join(frames)
        if chop is not None:
            nchops = (len(data) + chop - 1) // chop
            for i in range(0, len(data), chop):
                # A little time between a few chops, so that they arrive
                # apart; many chops are their own proof.
                if i and nchops <= 300:
                    self.pause(0.001)
                if not self.write(data[i:i + chop]):
                    return False
            return True
        batch, size = [], 0
        for f in frames:
            batch.append(f)
            size += len(f)
            if size >= 256 * KIB:
                if self.close is not None or not self.write(b"".join(batch)):
                    return False
                batch, size = [], 0
        if batch and (self.close is not None or not self.write(b"".join(batch))):
            return False
        return True

    def send_close(self, code=None, reason=b""):
        if self.close_sent:
            return
        self.close_sent = True
        f = close_frame(code, reason)
        vlog("-> " + describe(f))
        self.write(f)

    def flush_pongs(self):
        while self.pending_pongs and not self.close_sent:
            self.write(frame(OP_PONG, self.pending_pongs.pop(0)))

    # -- receiving --
    def violation(self, msg):
        vlog("<- VIOLATION: " + msg)
        self.bad.append(msg)

    def parse(self):
        buf = self.rx
        while True:
            p = self.rpos
            avail = len(buf) - p
            if avail < 2:
                break
            b0, b1 = buf[p], buf[p + 1]
            n, hl = b1 & 0x7F, 2
            if n == 126:
                if avail < 4:
                    break
                n, hl = struct.unpack_from("!H", buf, p + 2)[0], 4
            elif n == 127:
                if avail < 10:
                    break
                n, hl = struct.unpack_from("!Q", buf, p + 2)[0], 10
            if b1 & 0x80:
                hl += 4
            if avail < hl + n:
                break
            payload = bytes(buf[p + hl:p + hl + n])
            if b1 & 0x80:
                self.violation("the server sent a masked frame")
                payload = xor_mask(payload, buf[p + hl - 4:p + hl])
            self.rpos = p + hl + n
            self.on_frame(b0 >> 7, (b0 >> 4) & 7, b0 & 0xF, payload)
        if self.rpos == len(buf):
            buf.clear()
            self.rpos = 0
        elif self.rpos > MIB:
            del buf[:self.rpos]
            self.rpos = 0

    def on_frame(self, fin, rsv, op, payload):
        vlog("<- %s%s%s %s" % (OPNAME.get(op, "opcode %d" % op),
                               "" if fin else " (fin=0)",
                               " rsv=%d" % rsv if rsv else "", show(payload)))
        if self.close is not None:
            self.violation("a %s frame after the server's close"
                           % OPNAME.get(op, "opcode %d" % op))
            return
        if rsv:
            self.violation("the server set reserved bits %d" % rsv)
        if op >= 8:
            if not fin or len(payload) > 125:
                self.violation("the server sent a fragmented or long control frame")
            if op == OP_CLOSE:
                if len(payload) == 1:
                    self.violation("the server's close has a 1-byte payload")
                    self.close = (None, b"")
                elif not payload:
                    self.close = (None, b"")
                else:
                    code = struct.unpack("!H", payload[:2])[0]
                    try:
                        payload[2:].decode("utf-8")
                    except UnicodeDecodeError:
                        self.violation("the server's close reason is not UTF-8")
                    self.close = (code, payload[2:])
            elif op == OP_PING:
                self.pending_pongs.append(payload)
            elif op == OP_PONG:
                self.pongs.append(payload)
            else:
                self.violation("the server sent reserved opcode %d" % op)
        elif op in (OP_TEXT, OP_BINARY):
            if self.frag_op is not None:
                self.violation("the server began a message inside another")
            if fin:
                self.on_message(op, payload)
            else:
                self.frag_op, self.frag = op, [payload]
        elif op == OP_CONT:
            if self.frag_op is None:
                self.violation("the server sent a continuation with nothing to continue")
            else:
                self.frag.append(payload)
                if fin:
                    self.on_message(self.frag_op, b"".join(self.frag))
                    self.frag_op, self.frag = None, []
        else:
            self.violation("the server sent reserved opcode %d" % op)

    def on_message(self, op, payload):
        if op == OP_TEXT:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self.violation("the server sent a text message that is not UTF-8")
        if CFG.mode == "binary":
            if op != OP_BINARY:
                self.violation("a text message in binary mode")
            self.stream += payload
        else:
            self.msgs.append((op, payload))

    # -- expectations --
    def got(self):
        """What came that nobody consumed yet, for a failure message."""
        parts = []
        if CFG.mode == "binary":
            if len(self.stream) > self.si:
                parts.append("%d bytes of data %s" % (
                    len(self.stream) - self.si, show(self.stream[self.si:], 20)))
        else:
            for op, p in self.msgs[self.mi:self.mi + 3]:
                parts.append("%s message %s" % (OPNAME[op], show(p, 20)))
        for p in self.pongs[self.pi:self.pi + 3]:
            parts.append("pong %s" % show(p, 20))
        if self.close is not None:
            parts.append(closestr(self.close))
        if self.eof:
            parts.append("TCP closed")
        return "got " + (", ".join(parts) if parts else "nothing")

    def check(self):
        if self.bad:
            raise CaseFail(self.bad[0])

    def wait(self, pred, what):
        """Poll until pred() holds (True) or the server closed (False)."""
        while True:
            self.check()
            if pred():
                return True
            if self.close is not None or self.eof:
                return False
            rem = self.deadline - time.monotonic()
            if rem <= 0:
                raise CaseFail("timed out waiting for %s; %s" % (what, self.got()))
            self.flush_pongs()
            self.fill(min(rem, 1.0))

    def expect_echo(self, op, payload):
        payload = bytes(payload)
        if CFG.mode == "binary":
            need = self.si + len(payload)
            checked = [self.si]

            def enough():
                # Compare what is new as it comes: wrong already, say so now.
                top = min(len(self.stream), need)
                if self.stream[checked[0]:top] != \
                        payload[checked[0] - self.si:top - self.si]:
                    return True
                checked[0] = top
                return top >= need
            if not self.wait(enough, "the echo of %d bytes" % len(payload)):
                raise CaseFail("expected the echo of %d bytes, %s"
                               % (len(payload), self.got()))
            got = bytes(self.stream[self.si:need])
            self.si = need
            if got != payload:
                raise CaseFail("echo differs " + diff(payload, got))
            return
        if not self.wait(lambda: len(self.msgs) > self.mi,
                         "the echo of a %d-byte %s message"
                         % (len(payload), OPNAME[op])):
            raise CaseFail("expected the echo of a %d-byte %s message, %s"
                           % (len(payload), OPNAME[op], self.got()))
        gop, got = self.msgs[self.mi]
        self.mi += 1
        if op == OP_TEXT and gop != OP_TEXT:
            raise CaseFail("a text message was echoed as %s" % OPNAME[gop])
        if got != payload:
            raise CaseFail("echo differs " + diff(payload, got))

    def expect_pong(self, payload):
        if not self.wait(lambda: len(self.pongs) > self.pi,
                         "a pong %s" % show(payload, 20)):
            raise CaseFail("expected pong %s, %s" % (show(payload, 20), self.got()))
        got = self.pongs[self.pi]
        self.pi += 1
        if got != payload:
            raise CaseFail("pong %s, expected %s" % (show(got, 20), show(payload, 20)))

    def unexpected(self):
        """Fail on anything received and not consumed."""
        self.check()
        if CFG.mode == "binary":
            if len(self.stream) > self.si:
                raise CaseFail("unexpected data: %s"
                               % show(self.stream[self.si:], 30))
        elif len(self.msgs) > self.mi:
            op, p = self.msgs[self.mi]
            raise CaseFail("unexpected %s message %s" % (OPNAME[op], show(p, 30)))
        if len(self.pongs) > self.pi:
            raise CaseFail("unexpected pong %s" % show(self.pongs[self.pi], 30))

    def wait_close(self):
        self.wait(lambda: self.close is not None, "the server's close")
        if self.close is None:
            raise CaseFail("TCP closed without a close frame; " + self.got())

    def wait_tcp_close(self):
        while not self.eof:
            self.check()
            rem = self.deadline - time.monotonic()
            if rem <= 0:
                raise CaseFail("the server did not close TCP after the close "
                               "handshake")
            self.fill(min(rem, 1.0))
        self.check()

    def close_normal(self, code=1000, reason=b"", accept=None):
        """The client's close handshake: nothing else may come first, the
        code must be echoed (or be one of accept), then TCP closes."""
        self.unexpected()
        if self.close is not None:
            raise CaseFail("unexpected " + closestr(self.close))
        self.send_close(code, reason)
        self.wait_close()
        self.unexpected()
        want = accept if accept is not None else [code]
        if self.close[0] not in want:
            raise CaseFail("expected close %s, got %s"
                           % ("/".join(str(w) for w in want), closestr(self.close)))
        self.wait_tcp_close()

    def expect_fail(self, codes, echoes=(), pongs=(), strict=False):
        """The server must fail the connection with a close in codes.
        echoes: messages (opcode, payload) it may echo first, pongs the
        pongs it may send first; unless strict, it may send fewer (only a
        beginning of them).  Returns a note for non-strict outcomes."""
        if isinstance(codes, int):
            codes = [codes]
        names = "/".join(str(c) for c in codes)
        notes = []

        def surplus():
            """Why what came before the close is not a beginning of what
            was allowed (None: it is; notes say what was left out)."""
            del notes[:]
            if CFG.mode == "binary":
                want = b"".join(p for _, p in echoes)
                got = bytes(self.stream[self.si:])
                if not want.startswith(got):
                    return "got data %s first" % show(got, 30)
                if len(got) < len(want):
                    notes.append("%d of %d echoed bytes before the close"
                                 % (len(got), len(want)))
            else:
                got = self.msgs[self.mi:]
                for i, (op, p) in enumerate(got):
                    if i >= len(echoes) or p != echoes[i][1] or (
                            echoes[i][0] == OP_TEXT and op != OP_TEXT):
                        return "got %s message %s first" % (OPNAME[op], show(p, 30))
                if len(got) < len(echoes):
                    notes.append("%d of %d echoes before the close"
                                 % (len(got), len(echoes)))
            gotp = self.pongs[self.pi:]
            if list(gotp) != list(pongs[:len(gotp)]):
                return "got pong %s first" % show(gotp[-1], 30)
            if len(gotp) < len(pongs):
                notes.append("%d of %d pongs before the close"
                             % (len(gotp), len(pongs)))
            return None

        self.wait(lambda: self.close is not None or surplus() is not None,
                  "close " + names)
        self.check()
        why = surplus()
        if why is not None:
            raise CaseFail("expected close %s, %s" % (names, why))
        if self.close is None:
            raise CaseFail("expected close %s, %s (no close frame)"
                           % (names, self.got()))
        if self.close[0] not in codes:
            raise CaseFail("expected close %s, got %s"
                           % (names, closestr(self.close)))
        if notes and strict:
            raise CaseFail("; ".join(notes))
        # Answer the close, echoing its code (RFC 6455 5.5.1).
        self.send_close(self.close[0])
        self.wait_tcp_close()
        return "non-strict: " + "; ".join(notes) if notes else None

    def finish(self):
        try:
            self.sock.close()
        except OSError:
            pass


def diff(want, got):
    n = min(len(want), len(got))
    i = 0
    while i < n and want[i] == got[i]:
        i += 1
    return ("(sent %d bytes, got %d; first difference at offset %d: "
            "sent %s, got %s)" % (len(want), len(got), i,
                                  show(want[i:i + 12]), show(got[i:i + 12])))


# --- the cases ----------------------------------------------------------------

CASES = []   # (id, description, function, bytes sent)


def add(cid, desc, fn, size=0):
    CASES.append((cid, desc, fn, size))


def too_big(n):
    return CFG.max_message is not None and n > CFG.max_message


def echo_case(op, payload, chop=None, frag=None, delay=None):
    """Send a message (one frame, or fragments of frag bytes), expect its
    echo and close normally; close 1009 when it is above --max-message."""
    def run(c):
        frames = fragments(op, payload, frag) if frag else [frame(op, payload)]
        c.send(frames, chop=chop, delay=delay)
        if too_big(len(payload)):
            return c.expect_fail(1009)
        c.expect_echo(op, payload)
        c.close_normal()
    return run


def fail_case(frames, codes=1002, echoes=(), pongs=(), chop=None, delay=None):
    def run(c):
        c.send(frames, chop=chop, delay=delay)
        return c.expect_fail(codes, echoes, pongs)
    return run


def group1():
    lengths = [0, 125, 126, 127, 128, 65535, 65536]
    for g, op, mk in ((1, OP_TEXT, text_payload), (2, OP_BINARY, binary_payload)):
        name = OPNAME[op]
        for i, n in enumerate(lengths, 1):
            add("1.%d.%d" % (g, i), "%s message, %d bytes" % (name, n),
                echo_case(op, mk(n)), n)
        add("1.%d.8" % g, "%s message, 65536 bytes, sent in chops of 997 octets"
            % name, echo_case(op, mk(65536), chop=997), 65536)
    add("1.3.1", "unmasked text frame -> 1002",
        fail_case([frame(OP_TEXT, b"Hello, world!", mask=False)]))
    add("1.3.2", "unmasked ping -> 1002",
        fail_case([frame(OP_PING, b"Hello, world!", mask=False)]))
    add("1.3.3", "text message, then an unmasked text frame -> 1002",
        fail_case([frame(OP_TEXT, b"Hello, world!"),
                   frame(OP_TEXT, b"Hello, world!", mask=False)],
                  echoes=[(OP_TEXT, b"Hello, world!")]))


def ping_case(payloads, chop=None, pong_first=()):
    def run(c):
        c.send([frame(OP_PONG, p) for p in pong_first] +
               [frame(OP_PING, p) for p in payloads], chop=chop)
        for p in payloads:
            c.expect_pong(p)
        c.close_normal()
    return run


def ten_pings(chop=None):
    """10 pings: 10 pongs in order; RFC 6455 5.5.3 lets a server answer
    only the latest of pings it had not answered yet (non-strict)."""
    pl = [("payload-%d" % i).encode() for i in range(10)]

    def run(c):
        c.send([frame(OP_PING, p) for p in pl], chop=chop)
        c.wait(lambda: pl[-1] in c.pongs[c.pi:], "the pong of the last ping")
        got = c.pongs[c.pi:]
        if pl[-1] not in got:
            raise CaseFail("expected the pong of the 10th ping, " + c.got())
        got = got[:got.index(pl[-1]) + 1]
        it = iter(pl)
        if not all(p in it for p in got):
            raise CaseFail("pongs out of order or not matching: %s" % got)
        c.pi += len(got)
        c.close_normal()
        if len(got) < 10:
            return "non-strict: %d pongs for 10 pings" % len(got)
    return run


def group2():
    add("2.1", "ping without payload", ping_case([b""]))
    add("2.2", "ping with a small text payload", ping_case([b"Hello, world!"]))
    add("2.3", "ping with a small binary payload",
        ping_case([b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"]))
    add("2.4", "ping with a 125-byte payload", ping_case([b"\xfe" * 125]))
    add("2.5", "ping with a 126-byte payload -> 1002",
        fail_case([frame(OP_PING, b"\xfe" * 126)]))
    add("2.6", "ping with a 125-byte payload, sent in 1-octet chops",
        ping_case([b"\xfe" * 125], chop=1))
    add("2.7", "unsolicited pong without payload: ignored", ping_case([], pong_first=[b""]))
    add("2.8", "unsolicited pong with payload: ignored",
        ping_case([], pong_first=[b"unsolicited pong payload"]))
    add("2.9", "unsolicited pong, then ping: one pong, the ping's",
        ping_case([b"ping payload"], pong_first=[b"unsolicited pong payload"]))
    add("2.10", "10 pings in a row", ten_pings())
    add("2.11", "10 pings in a row, sent in 1-octet chops", ten_pings(chop=1))


HELLO = b"Hello, world!"


def group3():
    add("3.1", "text frame with RSV=1 -> 1002",
        fail_case([frame(OP_TEXT, HELLO, rsv=1)]))
    for cid, rsv, kw in (("3.2", 2, {}), ("3.3", 3, {"delay": 0.05}),
                         ("3.4", 4, {"chop": 1})):
        how = {"3.2": "", "3.3": ", frame by frame", "3.4": ", in 1-octet chops"}[cid]
        add(cid, "text, text with RSV=%d, ping -> echo, 1002%s" % (rsv, how),
            fail_case([frame(OP_TEXT, HELLO), frame(OP_TEXT, HELLO, rsv=rsv),
                       frame(OP_PING, HELLO)],
                      echoes=[(OP_TEXT, HELLO)], **kw))
    add("3.5", "binary frame with RSV=5 -> 1002",
        fail_case([frame(OP_BINARY, bytes(range(0x20, 0x7f)), rsv=5)]))
    add("3.6", "ping with RSV=6 -> 1002", fail_case([frame(OP_PING, HELLO, rsv=6)]))
    add("3.7", "close with RSV=7 -> 1002",
        fail_case([frame(OP_CLOSE, close_payload(1000), rsv=7)]))


def group4():
    for sub, ops in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
        kind = "non-control" if sub == 1 else "control"
        for i, op in enumerate(ops, 1):
            pl = b"reserved opcode payload" if i in (2, 4, 5) else b""
            cid = "4.%d.%d" % (sub, i)
            if i <= 2:
                add(cid, "reserved %s opcode %d%s -> 1002"
                    % (kind, op, " with payload" if pl else ""),
                    fail_case([frame(op, pl)]))
            else:
                add(cid, "text, reserved %s opcode %d%s, ping -> echo, 1002"
                    % (kind, op, " with payload" if pl else ""),
                    fail_case([frame(OP_TEXT, HELLO), frame(op, pl),
                               frame(OP_PING, HELLO)],
                              echoes=[(OP_TEXT, HELLO)]))


def group5():
    F1, F2 = b"fragment1", b"fragment2"
    add("5.1", "ping in 2 fragments -> 1002",
        fail_case([frame(OP_PING, F1, fin=False), frame(OP_CONT, F2)]))
    add("5.2", "pong in 2 fragments -> 1002",
        fail_case([frame(OP_PONG, F1, fin=False), frame(OP_CONT, F2)]))
    how = {None: "", "chop": ", in 1-octet chops", "delay": ", frame by frame"}
    for cid, mode in (("5.3", None), ("5.4", "chop"), ("5.5", "delay")):
        kw = {"chop": {"chop": 1}, "delay": {"delay": 0.05}}.get(mode, {})
        add(cid, "text message in 2 fragments" + how[mode],
            echo_frames([frame(OP_TEXT, F1, fin=False), frame(OP_CONT, F2)],
                        [], F1 + F2, **kw))
    for cid, mode in (("5.6", None), ("5.7", "chop"), ("5.8", "delay")):
        kw = {"chop": {"chop": 1}, "delay": {"delay": 0.05}}.get(mode, {})
        add(cid, "text message in 2 fragments, a ping between them" + how[mode],
            echo_frames([frame(OP_TEXT, F1, fin=False),
                         frame(OP_PING, b"ping payload"), frame(OP_CONT, F2)],
                        [b"ping payload"], F1 + F2, **kw))
    np = b"non-continuation payload"
    for base, fin in ((9, True), (12, False)):
        for k, mode in enumerate((None, "chop", "delay")):
            kw = {"chop": {"chop": 1}, "delay": {"delay": 0.05}}.get(mode, {})
            add("5.%d" % (base + k), "continuation (fin=%d) with nothing to "
                "continue, then text -> 1002%s" % (fin, how[mode]),
                fail_case([frame(OP_CONT, np, fin=fin), frame(OP_TEXT, HELLO)],
                          **kw))
    add("5.15", "2 fragments, then a continuation fin=0 and a text -> echo, 1002",
        fail_case([frame(OP_TEXT, F1, fin=False), frame(OP_CONT, F2),
                   frame(OP_CONT, b"fragment3", fin=False),
                   frame(OP_TEXT, b"fragment4")],
                  echoes=[(OP_TEXT, F1 + F2)]))
    for cid, fin in (("5.16", False), ("5.17", True)):
        seq = [frame(OP_CONT, F1, fin=fin), frame(OP_TEXT, F2, fin=False),
               frame(OP_CONT, b"fragment3")]
        add(cid, "twice: continuation fin=%d, text fin=0, continuation fin=1 "
            "-> 1002" % fin, fail_case(seq + seq))
    add("5.18", "text fin=0, then text (not continuation) -> 1002",
        fail_case([frame(OP_TEXT, F1, fin=False), frame(OP_TEXT, F2)]))
    p1, p2 = b"pongme 1!", b"pongme 2!"
    seq = [frame(OP_TEXT, F1, fin=False), frame(OP_CONT, F2, fin=False),
           frame(OP_PING, p1), frame(OP_CONT, b"fragment3", fin=False),
           frame(OP_CONT, b"fragment4", fin=False), frame(OP_PING, p2),
           frame(OP_CONT, b"fragment5")]
    whole = b"fragment1fragment2fragment3fragment4fragment5"
    add("5.19", "text in 5 fragments, 2 pings between them, frame by frame",
        echo_frames(seq, [p1, p2], whole, delay=0.05))
    add("5.20", "text in 5 fragments, 2 pings between them, in 1-octet chops",
        echo_frames(seq, [p1, p2], whole, chop=1))


def echo_frames(frames, pongs, message, op=OP_TEXT, chop=None, delay=None):
    def run(c):
        c.send(frames, chop=chop, delay=delay)
        for p in pongs:
            c.expect_pong(p)
        c.expect_echo(op, message)
        c.close_normal()
    return run


def utf8_valid(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def utf8_case(payload, frag=None, chop=None, delay=None):
    """A text message: echoed when valid UTF-8, else close 1007."""
    def run(c):
        if frag:
            frames = fragments(OP_TEXT, payload, frag)
        else:
            frames = [frame(OP_TEXT, payload)]
        c.send(frames, chop=chop, delay=delay)
        if not utf8_valid(payload):
            return c.expect_fail(1007)
        c.expect_echo(OP_TEXT, payload)
        c.close_normal()
    return run


def fail_fast_frames(p1, p2, p3):
    """Invalid UTF-8 in 3 fragments, the 2nd making it invalid: the
    server may fail at once (strict) or at the end of the message.  A ping
    after each fragment tells which it did, without waiting."""
    def run(c):
        c.send([frame(OP_TEXT, p1, fin=False), frame(OP_PING, b"A")])
        c.wait(lambda: len(c.pongs) > c.pi, "the pong after the 1st fragment")
        if c.close is not None:
            raise CaseFail("failed on a valid 1st fragment: " + c.got())
        c.expect_pong(b"A")
        c.send([frame(OP_CONT, p2, fin=False), frame(OP_PING, b"B")])
        c.wait(lambda: len(c.pongs) > c.pi, "close 1007 or the pong after the 2nd fragment")
        if c.close is not None:
            return c.expect_fail(1007)
        c.expect_pong(b"B")
        c.send([frame(OP_CONT, p3)])
        note = c.expect_fail(1007)
        return "non-strict: failed at the end of the message, not at once" + (
            "; " + note if note else "")
    return run


def fail_fast_chops(p1, p2, p3):
    """The same in one frame sent in 3 writes: whether the server failed
    before the 3rd only makes the note (a short look, no assertion)."""
    def run(c):
        data = frame(OP_TEXT, p1 + p2 + p3)
        cut1 = len(data) - len(p2) - len(p3)
        cut2 = len(data) - len(p3)
        c.send([data[:cut1]])
        c.pause(0.05)
        c.send([data[cut1:cut2]])
        c.pause(0.2)
        fast = c.close is not None
        if not fast:
            c.send([data[cut2:]])
        note = c.expect_fail(1007)
        if not fast:
            note = "non-strict: failed at the end of the frame" + (
                "; " + note if note else "")
        return note
    return run


KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

UTF8_SEQUENCES = [
    ("Some valid UTF-8 sequences",
     [b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
      b"hello\xf0\xa4\xad\xa2world", KOSME]),
    ("All prefixes of a valid UTF-8 string with multi-byte code points",
     [KOSME[:i] for i in range(1, len(KOSME) + 1)]),
    ("First possible sequence of a certain length",
     [b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"]),
    ("First possible sequence length 5/6 (invalid codepoints)",
     [b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"]),
    ("Last possible sequence of a certain length",
     [b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"]),
    ("Last possible sequence length 4/5/6 (invalid codepoints)",
     [b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"]),
    ("Other boundary conditions",
     [b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf",
      b"\xf4\x90\x80\x80"]),
    ("Unexpected continuation bytes",
     [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf",
      b"\x80\xbf\x80\xbf\x80", b"\x80\xbf\x80\xbf\x80\xbf",
      bytes(range(0x80, 0xc0))]),
    ("Lonely start characters",
     [b"".join(bytes([i, 0x20]) for i in range(a, b + 1))
      for a, b in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb),
                   (0xfc, 0xfd))]),
    ("Sequences with last continuation byte missing", None),   # below
    ("Concatenation of incomplete sequences", None),
    ("Impossible bytes", [b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"]),
    ("Examples of an overlong ASCII character",
     [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
      b"\xf8\x80\x80\x80\xaf", b"\xfc\x80\x80\x80\x80\xaf"]),
    ("Maximum overlong sequences",
     [b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
      b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf"]),
    ("Overlong representation of the NUL character",
     [b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
      b"\xf8\x80\x80\x80\x80", b"\xfc\x80\x80\x80\x80\x80"]),
    ("Single UTF-16 surrogates",
     [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
      b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"]),
    ("Paired UTF-16 surrogates",
     [a + b for a in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80",
                      b"\xed\xaf\xbf")
      for b in (b"\xed\xb0\x80", b"\xed\xbf\xbf")]),
    ("Non-character code points (valid UTF-8)",
     [b"\xef\xbf\xbe", b"\xef\xbf\xbf"] +
     [chr(plane << 16 | low).encode("utf-8")
      for plane in range(1, 17) for low in (0xFFFE, 0xFFFF)]),
    ("Unicode specials (i.e. replacement char)",
     [bytes([0xef, 0xbf, b]) for b in range(0xb9, 0xc0)]),
]
MISSING = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
           b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
           b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
UTF8_SEQUENCES[9] = (UTF8_SEQUENCES[9][0], MISSING)
UTF8_SEQUENCES[10] = (UTF8_SEQUENCES[10][0], [b"".join(MISSING)])


def group6():
    add("6.1.1", "empty text message", utf8_case(b""))
    add("6.1.2", "text message of 3 empty fragments",
        echo_frames([frame(OP_TEXT, b"", fin=False), frame(OP_CONT, b"", fin=False),
                     frame(OP_CONT, b"")], [], b""))
    add("6.1.3", "text fragments: empty, non-empty, empty",
        echo_frames([frame(OP_TEXT, b"", fin=False),
                     frame(OP_CONT, b"middle frame payload", fin=False),
                     frame(OP_CONT, b"")], [], b"middle frame payload"))
    hello = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()
    add("6.2.1", "valid UTF-8 with multi-byte code points, one frame",
        utf8_case(hello))
    a, b = "Hello-\u00b5@\u00df\u00f6\u00e4".encode(), "\u00fc\u00e0\u00e1-UTF-8!!".encode()
    add("6.2.2", "the same in 2 fragments split at a code point",
        echo_frames([frame(OP_TEXT, a, fin=False), frame(OP_CONT, b)], [], a + b))
    add("6.2.3", "the same in 1-octet fragments", utf8_case(hello, frag=1))
    add("6.2.4", "\u03ba\u1f79\u03c3\u03bc\u03b5 in 1-octet fragments",
        utf8_case(KOSME, frag=1))
    bad = KOSME + b"\xed\xa0\x80edited"
    add("6.3.1", "invalid UTF-8 (a surrogate), one frame -> 1007", utf8_case(bad))
    add("6.3.2", "invalid UTF-8 in 1-octet fragments -> 1007",
        utf8_case(bad, frag=1))
    add("6.4.1", "fail fast: 3 fragments, the 2nd out of range (U+110000) -> 1007",
        fail_fast_frames(KOSME, b"\xf4\x90\x80\x80", b"edited"))
    add("6.4.2", "fail fast: 3 fragments, the 2nd (\\x90 after \\xf4) -> 1007",
        fail_fast_frames(KOSME + b"\xf4", b"\x90", b"\x80\x80edited"))
    add("6.4.3", "fail fast: one frame in 3 chops, out of range (U+110000) -> 1007",
        fail_fast_chops(KOSME, b"\xf4\x90\x80\x80", b"edited"))
    add("6.4.4", "fail fast: one frame in 3 chops, \\xf4\\x90 -> 1007",
        fail_fast_chops(KOSME, b"\xf4\x90", b"\x80\x80edited"))
    for gi, (title, seqs) in enumerate(UTF8_SEQUENCES):
        group = 5 + gi
        for si, s in enumerate(seqs, 1):
            valid = utf8_valid(s)
            add("6.%d.%d" % (group, si), "%s: %s %s" % (
                title, show(s, 16), "valid, echoed" if valid else "-> 1007"),
                utf8_case(s))


def client_close_case(after=(), before=(), code=1000):
    """The client sends before + close + after in one write: the server
    answers the close (code echoed), ignores what follows it, closes TCP."""
    def run(c):
        c.send(list(before) + [close_frame(code)] + list(after))
        c.close_sent = True
        c.wait_close()
        c.unexpected()
        if c.close[0] != code:
            raise CaseFail("expected close %d, got %s"
                           % (code, closestr(c.close)))
        c.wait_tcp_close()
    return run


def case_7_1_1(c):
    """Text then close back to back (Autobahn 7.1.1).  A bridge may drop
    the echo that its program had not written yet when the close came:
    no echo is non-strict, a wrong one fails."""
    p = b"Hello World!"
    c.send([frame(OP_TEXT, p), close_frame(1000)])
    c.close_sent = True
    c.wait_close()
    return after_close_with_echo(c, p, 1000)


def after_close_with_echo(c, p, code):
    note = None
    if CFG.mode == "binary":
        got = bytes(c.stream[c.si:])
        if not p.startswith(got):
            raise CaseFail("unexpected data before the close: %s" % show(got, 30))
        c.si = len(c.stream)
        if len(got) < len(p):
            note = "non-strict: %d of %d bytes echoed before the close" % (
                len(got), len(p))
    else:
        got = c.msgs[c.mi:]
        if got and got[0] == (OP_TEXT, p):
            c.mi += 1
        elif got:
            raise CaseFail("unexpected %s message %s before the close"
                           % (OPNAME[got[0][0]], show(got[0][1], 30)))
        else:
            note = "non-strict: no echo before the close"
    c.unexpected()
    if c.close[0] != code:
        raise CaseFail("expected close %d, got %s" % (code, closestr(c.close)))
    c.wait_tcp_close()
    return note


def case_7_1_6(c):
    """256 KiB text, close, ping back to back (Autobahn: informational):
    the echo may come in full, in part (binary) or not at all; no pong."""
    p = text_payload(256 * KIB)
    c.send([frame(OP_TEXT, p), close_frame(1000), frame(OP_PING, HELLO)])
    c.close_sent = True
    c.wait_close()
    note = after_close_with_echo(c, p, 1000)
    return "info: " + (note[len("non-strict: "):] if note else "echo in full")


def case_7_3_1(c):
    """An empty close: answered with an empty close or 1000."""
    c.send([close_frame(None)])
    c.close_sent = True
    c.wait_close()
    c.unexpected()
    if c.close[0] not in (None, 1000):
        raise CaseFail("expected an empty close or 1000, got "
                       + closestr(c.close))
    c.wait_tcp_close()
    return None if c.close[0] is None else "answered with 1000"


def client_close_fail(payload, codes):
    """The client's close is invalid: the server answers with close codes."""
    def run(c):
        c.send([frame(OP_CLOSE, payload)])
        c.close_sent = True
        return c.expect_fail(codes)
    return run


def group7():
    add("7.1.1", "text then close, back to back: echo, close 1000", case_7_1_1)
    add("7.1.2", "close twice: one close back", client_close_case([close_frame(1000)]))
    add("7.1.3", "ping after close: no pong",
        client_close_case([frame(OP_PING, HELLO)]))
    add("7.1.4", "text after close: no echo",
        client_close_case([frame(OP_TEXT, HELLO)]))
    add("7.1.5", "fragment 1, close, fragment 2: no echo",
        client_close_case([frame(OP_CONT, b"fragment2")],
                          before=[frame(OP_TEXT, b"fragment1", fin=False)]))
    add("7.1.6", "256 KiB text, close, ping, back to back (informational)",
        case_7_1_6, 256 * KIB)
    add("7.3.1", "close without payload", case_7_3_1)
    add("7.3.2", "close with a 1-byte payload -> 1002",
        client_close_fail(b"\x03", 1002))
    add("7.3.3", "close 1000 without reason", client_close_case())
    add("7.3.4", "close 1000 with reason", close_reason(b"Hello World!"))
    add("7.3.5", "close 1000 with a 123-byte reason", close_reason(b"*" * 123))
    add("7.3.6", "close 1000 with a 124-byte reason (payload 126) -> 1002",
        client_close_fail(close_payload(1000, b"*" * 124), 1002))
    add("7.5.1", "close 1000 with a reason not UTF-8 -> 1007",
        client_close_fail(close_payload(1000, KOSME + b"\xed\xa0\x80edited"), 1007))
    for i, code in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                              1011, 3000, 3999, 4000, 4999), 1):
        add("7.7.%d" % i, "close with valid code %d: echoed" % code,
            client_close_case(code=code))
    for i, code in enumerate((0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000,
                              2999), 1):
        add("7.9.%d" % i, "close with invalid code %d -> 1002" % code,
            client_close_fail(close_payload(code), 1002))
    add("7.13.1", "close with invalid code 5000 -> 1002",
        client_close_fail(close_payload(5000), 1002))
    add("7.13.2", "close with invalid code 65535 -> 1002",
        client_close_fail(close_payload(65535), 1002))


def close_reason(reason):
    def run(c):
        c.send([close_frame(1000, reason)])
        c.close_sent = True
        c.wait_close()
        c.unexpected()
        if c.close[0] != 1000:
            raise CaseFail("expected close 1000, got %s" % closestr(c.close))
        c.wait_tcp_close()
    return run


def lazy_echo(op, mk, n, **kw):
    """echo_case with a payload made only when the case runs."""
    def run(c):
        return echo_case(op, mk(n), **kw)(c)
    return run


def many_messages(op, mk, n, count=1000):
    def run(c):
        for _ in range(count):
            p = mk(n)
            c.send([frame(op, p)])
            if too_big(n):
                return c.expect_fail(1009)
            c.expect_echo(op, p)
        c.close_normal()
    return run


def sizestr(n):
    return "%d MiB" % (n // MIB) if n >= MIB else "%d KiB" % (n // KIB) \
        if n >= KIB else "%d bytes" % n


def group9():
    sizes = [64 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB, 16 * MIB]
    frags = [64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB]
    chops = [64, 128, 256, 512, 1024, 2048]
    for g, op, mk in ((0, OP_TEXT, text_payload), (1, OP_BINARY, binary_payload)):
        name = OPNAME[op]
        for i, n in enumerate(sizes, 1):
            add("9.%d.%d" % (1 + g, i), "%s message of %s, one frame"
                % (name, sizestr(n)), lazy_echo(op, mk, n), n)
        for i, f in enumerate(frags, 1):
            add("9.%d.%d" % (3 + g, i), "%s message of 4 MiB in fragments of %s"
                % (name, sizestr(f)), lazy_echo(op, mk, 4 * MIB, frag=f), 4 * MIB)
        for i, ch in enumerate(chops, 1):
            add("9.%d.%d" % (5 + g, i), "%s message of 1 MiB, sent in chops of %d"
                % (name, ch), lazy_echo(op, mk, MIB, chop=ch), MIB)
        for i, n in enumerate([0, 16, 64, 256, KIB, 4 * KIB], 1):
            add("9.%d.%d" % (7 + g, i), "1000 %s messages of %s, one after another"
                % (name, sizestr(n)), many_messages(op, mk, n), 1000 * n)


# --- running ------------------------------------------------------------------

def die(msg):
    sys.stderr.write("wsconform.py: %s\n" % msg)
    sys.exit(2)


def parse_size(s):
    s = s.strip().lower()
    mult = {"k": KIB, "m": MIB, "g": 1 << 30}.get(s[-1:], 1)
    return int(s[:-1] if mult > 1 else s) * mult


def parse_url(url):
    if not url.startswith("ws://"):
        die("only ws:// URLs: %s" % url)
    rest = url[5:]
    hostport, slash, path = rest.partition("/")
    path = "/" + path
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
    return host, int(port or 80), path


def selected(cid, wanted):
    if not wanted:
        return True
    return any(cid == w or cid.startswith(w + ".") for w in wanted)


def main():
    global CFG
    ap = argparse.ArgumentParser(description="WebSocket conformance "
                                 "(Autobahn|Testsuite server cases 1-7, 9)")
    ap.add_argument("url")
    ap.add_argument("--mode", choices=("text", "binary"), default="text")
    ap.add_argument("--max-message", type=parse_size, default=None)
    ap.add_argument("--cases", default="")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds per case, and as many again per MiB")
    ap.add_argument("-v", "--verbose", action="store_true")
    CFG = ap.parse_args()
    CFG.host, CFG.port, CFG.path = parse_url(CFG.url)
    wanted = [w.strip() for w in CFG.cases.split(",") if w.strip()]
    for g in (group1, group2, group3, group4, group5, group6, group7, group9):
        g()
    CASES.sort(key=lambda c: [int(x) for x in c[0].split(".")])
    todo = [c for c in CASES if selected(c[0], wanted)]
    if not todo:
        die("no case matches --cases %s" % CFG.cases)
    passed = failed = 0
    for cid, desc, fn, size in todo:
        if CFG.verbose:
            sys.stderr.write("case %s: %s\n" % (cid, desc))
        t0 = time.monotonic()
        deadline = t0 + CFG.timeout * (1 + size / MIB)
        c = None
        try:
            c = Conn(deadline)
            note = fn(c)
            passed += 1
            print("PASS %s %s%s" % (cid, desc, " (%s)" % note if note else ""),
                  flush=True)
        except CaseFail as e:
            failed += 1
            print("FAIL %s %s [%s]" % (cid, e, desc), flush=True)
        finally:
            if c is not None:
                c.finish()
    print("conformance: %d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

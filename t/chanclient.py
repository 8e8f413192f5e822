#!/usr/bin/python3
"""Channel clients for t/channel.bats (python3 stdlib only).

    chanclient.py sub URL [options]    N subscribers (Server-Sent Events)
    chanclient.py pub URL [options]    numbered messages POSTed one by one
    chanclient.py nosub URL [options]  a subscriber that never reads

Everything printed is JSON, one object a line, flushed as it happens:

sub:
  {"ev": "open", "sub": I, "conn": K, "status": S, "content_type": T,
   "body": B (only when S is not 200)}
  {"ev": "ready", "count": N}   every subscriber's first response head
                                arrived (whatever its status)
  {"ev": "event", "sub": I, "conn": K, "id": ID, "event": E, "data": D,
   "retry": R}                  every event dispatched (E null for a
                                message; ID null when it had no id:;
                                R the last retry: of the connection)
  {"ev": "end", "sub": I, "conn": K, "reason": WHY}
      WHY: "eof" (the server ended the stream), "close" / "reconnect"
      (it ended it after that event), "expect" (we had --expect
      messages), "timeout", "error: ..."
  {"ev": "sub", "sub": I, "ids": [...], "data": [...], "ends": [...],
   "connections": K, "control": [{"event": E, "data": D, "after": ID,
   "retry": R}, ...]}           a subscriber's summary, at its end: the
                                messages (events without event:) of all
                                its connections, in the order received
  {"ev": "exit", "timeout": bool}

  --count N          subscribers (default 1), connected one after another
  --last-id N        Last-Event-ID: N on the first connection
  --query-last-id N  ?last_id=N (or &last_id=N) on the first connection
  --expect N         a subscriber stops after N messages in all
  --reconnect        after a stream ends (but for "close", or "expect"),
                     connect again with Last-Event-ID: the last id seen
                     (503 and refused connections are retried too)
  --max-connections K  at most K connections per subscriber (default 20)
  --timeout S        give up after S seconds (default 30): exit 4

pub:
  {"ev": "pub", "n": N, "status": S, "id": ID, "subscribers": M,
   "retry_after": RA, "tries": T}
  {"ev": "pubdone", "accepted": K}
  --count N   messages (default 1); --start N  the first number (1)
  --prefix P  each body is P followed by its number (default "m")
  --retry S   retry a 503 / 429 / refused connection for up to S seconds
  --interval MS  pause between two messages (default 0)
  Each POST is a connection of its own (Connection: close).

nosub:
  {"ev": "ready", "status": S}  the response head arrived; then nothing
  is ever read again (the receive buffer is made small) until --timeout
  (default 60) or a signal.
"""
import argparse
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()


def emit(obj):
    with LOCK:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Timeout(Exception):
    pass


class Conn:
    """One HTTP/1.1 request on a raw socket, the response read as it
    comes: the head, then the body (chunked, sized or to EOF)."""

    def __init__(self, host, port, deadline, rcvbuf=None):
        self.deadline = deadline
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def fill(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(min(left, 0.5))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if self.eof or not self.fill():
                if b"\r\n\r\n" not in self.buf:
                    raise ConnectionError("closed before the response head")
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get(
            "transfer-encoding", "").lower()
        cl = self.headers.get("content-length")
        self.left = int(cl) if cl is not None and not self.chunked else None
        self.chunk_left = 0
        self.body_done = False
        self.pending = b""

    def _need(self, n):
        while len(self.buf) < n:
            if self.eof or not self.fill():
                if self.eof:
                    return False
        return True

    def body(self):
        """The next body bytes (b"" at the end), waiting for some."""
        while True:
            if self.body_done:
                return b""
            if self.chunked:
                if self.chunk_left == 0:
                    while b"\r\n" not in self.buf:
                        if self.eof or not self.fill():
                            if self.eof:
                                self.body_done = True
                                return b""
                    line, _, self.buf = self.buf.partition(b"\r\n")
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.body_done = True
                        return b""
                    self.chunk_left = size
                if not self.buf:
                    if self.eof or not self.fill():
                        if self.eof:
                            self.body_done = True
                            return b""
                    continue
                take = self.buf[:self.chunk_left]
                self.buf = self.buf[len(take):]
                self.chunk_left -= len(take)
                if self.chunk_left == 0:
                    if not self._need(2):
                        self.body_done = True
                        return take
                    self.buf = self.buf[2:]
                return take
            if self.left is not None:
                if self.left == 0:
                    self.body_done = True
                    return b""
                if not self.buf:
                    if self.eof or not self.fill():
                        if self.eof:
                            self.body_done = True
                            return b""
                    continue
                take = self.buf[:self.left]
                self.buf = self.buf[len(take):]
                self.left -= len(take)
                return take
            if self.buf:
                take, self.buf = self.buf, b""
                return take
            if self.eof or not self.fill():
                if self.eof:
                    self.body_done = True
                    return b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(conn, host, port, method, target, headers, body=b""):
    lines = ["%s %s HTTP/1.1" % (method, target),
             "Host: %s:%d" % (host, port)]
    lines += headers
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    conn.sock.sendall(data)


class Sub(threading.Thread):
    def __init__(self, idx, args, url, deadline, ready):
        super().__init__(daemon=True)
        self.idx, self.args, self.url = idx, args, url
        self.deadline, self.ready = deadline, ready
        self.ids, self.data, self.ends, self.control = [], [], [], []
        self.connections = 0
        self.last = None
        self.timed_out = False

    def target(self, first):
        path = self.url.path or "/"
        query = self.url.query
        if first and self.args.query_last_id is not None:
            q = "last_id=%d" % self.args.query_last_id
            query = query + "&" + q if query else q
        return path + ("?" + query if query else "")

    def run(self):
        first = True
        while True:
            if self.connections >= self.args.max_connections:
                self.ends.append("too many connections")
                break
            why = self.one(first)
            first = False
            if why in ("close", "expect", "timeout"):
                break
            if not self.args.reconnect:
                break
            if why.startswith("status"):
                time.sleep(0.05)
        self.ready.set_done(self.idx)
        emit({"ev": "sub", "sub": self.idx, "ids": self.ids,
              "data": self.data, "ends": self.ends,
              "connections": self.connections, "control": self.control})

    def one(self, first):
        host, port = self.url.hostname, self.url.port or 80
        k = self.connections
        self.connections += 1
        hdrs = ["Accept: text/event-stream"]
        if self.last is not None:
            hdrs.append("Last-Event-ID: %s" % self.last)
        elif first and self.args.last_id is not None:
            hdrs.append("Last-Event-ID: %d" % self.args.last_id)
        conn = None
        try:
            try:
                conn = Conn(host, port, self.deadline)
                request(conn, host, port, "GET", self.target(first), hdrs)
                conn.head()
            except (ConnectionError, OSError) as e:
                if isinstance(e, socket.timeout) or \
                        time.monotonic() >= self.deadline:
                    raise Timeout()
                why = "error: %s" % e
                self.ends.append(why)
                emit({"ev": "end", "sub": self.idx, "conn": k,
                      "reason": why})
                self.ready.opened(self.idx)
                time.sleep(0.05)
                return why
            ev = {"ev": "open", "sub": self.idx, "conn": k,
                  "status": conn.status,
                  "content_type": conn.headers.get("content-type")}
            if conn.status != 200:
                body = b""
                while True:
                    b = conn.body()
                    if not b:
                        break
                    body += b
                ev["body"] = body.decode("utf-8", "replace")
                ev["retry_after"] = conn.headers.get("retry-after")
                emit(ev)
                self.ready.opened(self.idx)
                why = "status %d" % conn.status
                self.ends.append(why)
                emit({"ev": "end", "sub": self.idx, "conn": k,
                      "reason": why})
                return why
            emit(ev)
            self.ready.opened(self.idx)
            why = self.stream(conn, k)
        except Timeout:
            why = "timeout"
            self.timed_out = True
        finally:
            if conn:
                conn.close()
        self.ends.append(why)
        emit({"ev": "end", "sub": self.idx, "conn": k, "reason": why})
        return why

    def stream(self, conn, k):
        pending = b""
        fields = {}
        data = []
        last_named = None
        retry = None
        while True:
            chunk = conn.body()
            if not chunk:
                return last_named or "eof"
            pending += chunk
            while b"\n" in pending:
                raw, _, pending = pending.partition(b"\n")
                line = raw.decode("utf-8", "replace")
                if line.endswith("\r"):
                    line = line[:-1]
                if line == "":
                    if "id" in fields:
                        self.last = fields["id"]
                    if "retry" in fields:
                        retry = fields["retry"]
                    if not data and "event" not in fields:
                        # Nothing to dispatch (an id: or retry: alone).
                        fields = {}
                        continue
                    ev = {"ev": "event", "sub": self.idx, "conn": k,
                          "id": fields.get("id"),
                          "event": fields.get("event"),
                          "data": "\n".join(data) if data else None,
                          "retry": retry}
                    fields, data = {}, []
                    emit(ev)
                    name = ev["event"]
                    if name in (None, "message"):
                        try:
                            self.ids.append(int(ev["id"]))
                        except (TypeError, ValueError):
                            self.ids.append(ev["id"])
                        self.data.append(ev["data"])
                        if self.args.expect is not None and \
                                len(self.ids) >= self.args.expect:
                            return "expect"
                    else:
                        self.control.append({
                            "event": name, "data": ev["data"],
                            "after": self.ids[-1] if self.ids else None,
                            "retry": ev["retry"]})
                        last_named = name
                    continue
                if line.startswith(":"):
                    continue
                name, sep, value = line.partition(":")
                if sep and value.startswith(" "):
                    value = value[1:]
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value


class Ready:
    def __init__(self, n):
        self.n = n
        self.seen = set()
        self.done = set()
        self.lock = threading.Lock()
        self.event = threading.Event()

    def opened(self, idx):
        with self.lock:
            if idx in self.seen:
                return
            self.seen.add(idx)
            if len(self.seen) == self.n:
                emit({"ev": "ready", "count": self.n})
            self.event.set()

    def set_done(self, idx):
        self.opened(idx)
        with self.lock:
            self.done.add(idx)


def cmd_sub(args):
    url = urllib.parse.urlsplit(args.url)
    deadline = time.monotonic() + args.timeout
    ready = Ready(args.count)
    subs = []
    for i in range(args.count):
        s = Sub(i, args, url, deadline, ready)
        subs.append(s)
        ready.event.clear()
        s.start()
        # One after another: each has its head before the next connects
        # (a bounded wait: a refused one still counts as opened).
        while i not in ready.seen and time.monotonic() < deadline:
            ready.event.wait(0.1)
    for s in subs:
        s.join(max(0.0, deadline - time.monotonic()) + 2)
    timed_out = any(s.timed_out or s.is_alive() for s in subs)
    emit({"ev": "exit", "timeout": timed_out})
    return 4 if timed_out else 0


def cmd_pub(args):
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    target = (url.path or "/") + ("?" + url.query if url.query else "")
    accepted = 0
    for n in range(args.start, args.start + args.count):
        body = ("%s%d" % (args.prefix, n)).encode()
        until = time.monotonic() + args.retry
        tries = 0
        while True:
            tries += 1
            res = {"ev": "pub", "n": n, "status": None, "id": None,
                   "subscribers": None, "retry_after": None,
                   "tries": tries}
            try:
                c = http.client.HTTPConnection(host, port, timeout=10)
                c.request("POST", target, body=body,
                          headers={"Connection": "close",
                                   "Content-Type": "text/plain"})
                r = c.getresponse()
                text = r.read()
                c.close()
                res["status"] = r.status
                res["retry_after"] = r.getheader("Retry-After")
                if r.status == 202:
                    j = json.loads(text)
                    res["id"] = j.get("id")
                    res["subscribers"] = j.get("subscribers")
            except (OSError, http.client.HTTPException, ValueError) as e:
                res["status"] = "error: %s" % e
            retriable = res["status"] in (503, 429) or \
                not isinstance(res["status"], int)
            if retriable and time.monotonic() < until:
                time.sleep(0.05)
                continue
            break
        emit(res)
        if res["status"] == 202:
            accepted += 1
        if args.interval:
            time.sleep(args.interval / 1000.0)
    emit({"ev": "pubdone", "accepted": accepted})
    return 0


def cmd_nosub(args):
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    deadline = time.monotonic() + args.timeout
    conn = Conn(host, port, deadline, rcvbuf=4096)
    target = (url.path or "/") + ("?" + url.query if url.query else "")
    request(conn, host, port, "GET", target, ["Accept: text/event-stream"])
    # The head, a few bytes at a time; then never a read again.
    while b"\r\n\r\n" not in conn.buf:
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        b = conn.sock.recv(1)
        if not b:
            break
        conn.buf += b
    status = None
    if b"\r\n\r\n" in conn.buf:
        status = int(conn.buf.split(b" ")[1])
    emit({"ev": "ready", "status": status})
    while time.monotonic() < deadline:
        time.sleep(0.2)
    return 0


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("sub")
    s.add_argument("url")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--last-id", type=int)
    s.add_argument("--query-last-id", type=int)
    s.add_argument("--expect", type=int)
    s.add_argument("--reconnect", action="store_true")
    s.add_argument("--max-connections", type=int, default=20)
    s.add_argument("--timeout", type=float, default=30)
    s = sp.add_parser("pub")
    s.add_argument("url")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--start", type=int, default=1)
    s.add_argument("--prefix", default="m")
    s.add_argument("--retry", type=float, default=0)
    s.add_argument("--interval", type=float, default=0)
    s = sp.add_parser("nosub")
    s.add_argument("url")
    s.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    return {"sub": cmd_sub, "pub": cmd_pub, "nosub": cmd_nosub}[args.cmd](
        args)


if __name__ == "__main__":
    sys.exit(main())

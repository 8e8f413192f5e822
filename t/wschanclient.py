#!/usr/bin/python3
"""WebSocket channel subscribers for t/channel.bats (python3-websockets).

    wschanclient.py URL [options]    N subscribers on a channel's URL

Everything printed is JSON, one object a line, flushed as it happens:

  {"ev": "open", "sub": I, "conn": K, "status": S}
                                S: 101, the HTTP status of a refused
                                upgrade, or "refused" (no connection)
  {"ev": "ready", "count": N}   every subscriber's first connection is
                                open (or refused)
  {"ev": "msg", "sub": I, "conn": K, "id": ID, "data": D}
                                a message of the channel
  {"ev": "reply", "sub": I, "conn": K, "reply": {...}}
                                an answer to a message it sent
  {"ev": "end", "sub": I, "conn": K, "code": C, "reason": R}
                                the server's Close (1006: none); after
                                --expect, C is "expect" and R the code
                                the server answered our Close with
  {"ev": "sub", "sub": I, "ids": [...], "data": [...], "replies": [...],
   "ends": [C, ...], "connections": K,
   "control": [{"code": C, "reason": R, "after": ID}, ...]}
                                a subscriber's summary, at its end: the
                                messages of all its connections, in the
                                order received; "after" is the last id
                                it had when that Close came
  {"ev": "exit", "timeout": bool}

  --count N          subscribers (default 1), connected one after another
  --query-last-id N  ?last_id=N on the first connection
  --send MSG         a text message sent once connected (repeatable, in
                     order, before anything is read)
  --send-many N:SIZE  then N text messages of SIZE bytes ("x"), in order
                     (repeatable)
  --send-binary HEX  a binary message sent after the text ones
  --expect N         a subscriber closes (1000) after N messages in all
  --reconnect        after a Close 1012, connect again with ?last_id=
                     from its reason (last_id=ID); a refused connection
                     or upgrade (503) is retried with the last id seen
  --max-connections K  at most K connections per subscriber (default 20)
  --timeout S        give up after S seconds (default 30): exit 4
"""
import argparse
import asyncio
import json
import sys
import time

import websockets


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def with_last_id(url, last):
    if last is None:
        return url
    return url + ("&" if "?" in url else "?") + "last_id=%d" % last


class Sub:
    def __init__(self, i, args):
        self.i = i
        self.args = args
        self.ids, self.data, self.replies = [], [], []
        self.ends, self.control = [], []
        self.conns = 0
        self.opened = asyncio.Event()

    def summary(self):
        return {"ev": "sub", "sub": self.i, "ids": self.ids,
                "data": self.data, "replies": self.replies,
                "ends": self.ends, "connections": self.conns,
                "control": self.control}

    async def session(self, ws, k, first):
        """One connection; its Close code (1006: none), its reason."""
        if first:
            for m in self.args.send:
                await ws.send(m)
            for many in self.args.send_many:
                n, size = (int(v) for v in many.split(":"))
                for _ in range(n):
                    await ws.send("x" * size)
            if self.args.send_binary is not None:
                await ws.send(bytes.fromhex(self.args.send_binary))
        try:
            async for m in ws:
                v = json.loads(m)
                if "id" in v:
                    self.ids.append(v["id"])
                    self.data.append(v["data"])
                    emit({"ev": "msg", "sub": self.i, "conn": k,
                          "id": v["id"], "data": v["data"]})
                    if self.args.expect and \
                            len(self.ids) >= self.args.expect:
                        await ws.close(1000)
                        # The server's answer to our Close (1006: none).
                        return "expect", str(ws.close_code)
                else:
                    self.replies.append(v)
                    emit({"ev": "reply", "sub": self.i, "conn": k,
                          "reply": v})
        except websockets.ConnectionClosed:
            pass
        return ws.close_code or 1006, ws.close_reason or ""

    async def run(self):
        last = self.args.query_last_id
        first = True
        while self.conns < self.args.max_connections:
            k = self.conns
            self.conns += 1
            try:
                ws = await websockets.connect(
                    with_last_id(self.args.url, last), ping_interval=None,
                    max_size=None, max_queue=None, open_timeout=10,
                    close_timeout=10)
            except websockets.InvalidStatusCode as e:
                emit({"ev": "open", "sub": self.i, "conn": k,
                      "status": e.status_code})
                self.opened.set()
                if self.args.reconnect and e.status_code == 503:
                    await asyncio.sleep(0.05)
                    continue
                self.ends.append(e.status_code)
                return
            except OSError:
                emit({"ev": "open", "sub": self.i, "conn": k,
                      "status": "refused"})
                self.opened.set()
                if self.args.reconnect:
                    await asyncio.sleep(0.05)
                    continue
                self.ends.append("refused")
                return
            emit({"ev": "open", "sub": self.i, "conn": k, "status": 101})
            self.opened.set()
            code, reason = await self.session(ws, k, first)
            first = False
            after = self.ids[-1] if self.ids else None
            emit({"ev": "end", "sub": self.i, "conn": k, "code": code,
                  "reason": reason})
            self.ends.append(code)
            if code == "expect":
                return
            self.control.append({"code": code, "reason": reason,
                                 "after": after})
            if not self.args.reconnect or code not in (1012, 1006):
                return
            if reason.startswith("last_id="):
                last = int(reason[8:])
            elif after is not None:
                last = after


async def main(args):
    subs = [Sub(i, args) for i in range(args.count)]
    tasks = []
    for s in subs:
        tasks.append(asyncio.ensure_future(s.run()))
        await s.opened.wait()
    emit({"ev": "ready", "count": args.count})
    done, pending = await asyncio.wait(tasks, timeout=args.deadline -
                                       time.monotonic())
    for t in pending:
        t.cancel()
    for s in subs:
        emit(s.summary())
    emit({"ev": "exit", "timeout": bool(pending)})
    return 4 if pending else 0


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--query-last-id", type=int)
    p.add_argument("--send", action="append", default=[])
    p.add_argument("--send-many", action="append", default=[])
    p.add_argument("--send-binary")
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--reconnect", action="store_true")
    p.add_argument("--max-connections", type=int, default=20)
    p.add_argument("--timeout", type=float, default=30)
    a = p.parse_args()
    a.deadline = time.monotonic() + a.timeout
    return a


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))

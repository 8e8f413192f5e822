#!/usr/bin/env python3
"""Drive www/chat.html in two pages of a headless Chromium through the
Chrome DevTools Protocol (one WebSocket to the browser, a flat session
per page), for t/chat.bats.

    cdp.py DEVTOOLS_PORT PAGE_URL [--hup PID | --term PID] [--shot FILE]

Opens PAGE_URL in pages A and B, waits until both say they are
connected, has A send a message (name and text typed into the form, Send
clicked) and waits until both logs show it, once.  The text carries
markup, which must stay text.  --hup PID: then reloads the server (SIGHUP
to PID) and waits until every worker that served the pages is gone: the
pages must still be connected, their streams handed over to the new
workers (no note, no reconnection); then a second message, which each
page must show once, after the first (no gap, no duplicate).  --term PID: stops the server instead and
waits for the note of its last event.  --shot FILE: a PNG of page B at
the end.  Prints what it saw; exits 1 on the first thing that went
wrong, naming it.  Every wait has a deadline (TIME_FACTOR scales them).
"""

import asyncio
import base64
import json
import os
import signal
import sys
import urllib.request

import websockets

SCALE = int(os.environ.get("TIME_FACTOR") or 1)
WAIT = 15 * SCALE  # seconds, for any one thing to happen


class Failed(Exception):
    pass


class Browser:
    """One DevTools connection: commands by id, replies as futures."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.waiting = {}
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self.waiting.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(Failed("DevTools connection closed"))

    async def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, WAIT)
        if "error" in reply:
            raise Failed("%s: %s" % (method, reply["error"]))
        return reply["result"]


class Page:
    def __init__(self, browser, name, session):
        self.browser = browser
        self.name = name
        self.session = session

    async def js(self, expr):
        """The value of a JavaScript expression in the page."""
        r = await self.browser.call("Runtime.evaluate", {
            "expression": expr, "returnByValue": True}, self.session)
        if "exceptionDetails" in r:
            raise Failed("page %s: %s: %s" % (
                self.name, expr, r["exceptionDetails"].get("exception", {})
                .get("description", r["exceptionDetails"].get("text"))))
        return r["result"].get("value")

    async def until(self, expr, what):
        """Poll expr until it is true; fail naming what after WAIT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            try:
                if await self.js(expr):
                    return
            except Failed:
                pass  # not loaded yet, say
            if loop.time() > deadline:
                raise Failed("page %s: timed out after %ds waiting for %s "
                             "(state: %r, note: %r, log: %r)" % (
                                 self.name, WAIT, what, *await self.looks()))
            await asyncio.sleep(0.05)

    async def looks(self):
        try:
            return await self.js(
                "[document.getElementById('state').textContent,"
                " document.getElementById('note').textContent,"
                " document.getElementById('log').textContent]")
        except Failed as e:
            try:
                where = await self.js("location.href + ' ' + document.title")
            except Failed:
                where = None
            return [str(e), where, None]


async def open_page(browser, name, url):
    target = await browser.call("Target.createTarget", {"url": url})
    r = await browser.call("Target.attachToTarget", {
        "targetId": target["targetId"], "flatten": True})
    return Page(browser, name, r["sessionId"])


CONNECTED = "document.getElementById('state').dataset.state === 'open'"


def workers(master):
    """The master's children now (its workers), by pid."""
    kids = set()
    for tid in os.listdir("/proc/%d/task" % master):
        with open("/proc/%d/task/%s/children" % (master, tid)) as f:
            kids.update(int(k) for k in f.read().split())
    return kids


async def old_gone(master, old):
    """Wait until none of the workers in old is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while workers(master) & old:
        if loop.time() > deadline:
            raise Failed("server: the old workers still there after %ds"
                         % WAIT)
        await asyncio.sleep(0.1)


def log_count(text):
    """JS: how many <li> of #log contain text."""
    return ("Array.from(document.querySelectorAll('#log li'))"
            ".filter(li => li.textContent.includes(%s)).length"
            % json.dumps(text))


async def send(page, name, text):
    await page.js("""(() => {
        const $ = id => document.getElementById(id);
        $('name').value = %s;
        $('text').value = %s;
        $('post').click();
        return true;
    })()""" % (json.dumps(name), json.dumps(text)))


async def seen_once(pages, name, text):
    for p in pages:
        await p.until("%s >= 1" % log_count(text),
                      "the message %r in #log" % text)
        n = await p.js(log_count(text))
        if n != 1:
            raise Failed("page %s: the message is in #log %d times" % (
                p.name, n))
        line = await p.js("Array.from(document.querySelectorAll('#log li'))"
                          ".map(li => li.textContent).join('\\n')")
        if "%s: %s" % (name, text) not in line:
            raise Failed("page %s: no '%s: %s' in #log: %r" % (
                p.name, name, text, line))
        print("page %s: got %r" % (p.name, text))


async def main(argv):
    port, url = argv[0], argv[1]
    hup = term = shot = None
    rest = argv[2:]
    while rest:
        opt, val, rest = rest[0], rest[1], rest[2:]
        if opt == "--hup":
            hup = int(val)
        elif opt == "--term":
            term = int(val)
        elif opt == "--shot":
            shot = val
        else:
            raise Failed("unknown option " + opt)

    with urllib.request.urlopen(
            "http://127.0.0.1:%s/json/version" % port, timeout=WAIT) as r:
        ws_url = json.load(r)["webSocketDebuggerUrl"]
    async with websockets.connect(ws_url, max_size=None,
                                  open_timeout=WAIT) as ws:
        browser = Browser(ws)
        a = await open_page(browser, "A", url)
        b = await open_page(browser, "B", url)
        for p in (a, b):
            await p.until(CONNECTED, "the state 'open'")
            print("page %s: connected" % p.name)

        # Markup in the text must be shown as text, never parsed.
        first = "hello <b>bold</b> & <img src=x onerror=alert(1)> %d" % (
            os.getpid())
        await send(a, "alice", first)
        await seen_once((b, a), "alice", first)
        for p in (a, b):
            if await p.js("document.querySelector('#log b, #log img') "
                          "!== null"):
                raise Failed("page %s: the message's markup became "
                             "elements" % p.name)

        if hup:
            old = workers(hup)
            os.kill(hup, signal.SIGHUP)
            print("server: SIGHUP")
            await old_gone(hup, old)
            print("server: the old workers are gone")
            for p in (a, b):
                note = await p.js("document.getElementById('note')"
                                  ".textContent")
                if not await p.js(CONNECTED) or "reloaded" in note:
                    raise Failed("page %s: not kept connected (note: %r)"
                                 % (p.name, note))
                print("page %s: still connected" % p.name)
            second = "after the reload %d" % os.getpid()
            await send(b, "bob", second)
            await seen_once((a, b), "bob", second)
            for p in (a, b):
                n = await p.js("document.querySelectorAll('#log li').length")
                if n != 2:
                    raise Failed("page %s: %d messages in #log, not 2" % (
                        p.name, n))
                last = await p.js("document.querySelector('#log li:last-child')"
                                  ".textContent")
                if second not in last:
                    raise Failed("page %s: the last message is %r" % (
                        p.name, last))
        if term:
            os.kill(term, signal.SIGTERM)
            print("server: SIGTERM")
            for p in (a, b):
                await p.until("document.getElementById('note').textContent"
                              ".includes('stopped')", "the stop note")
                print("page %s: note %r" % (p.name, await p.js(
                    "document.getElementById('note').textContent")))

        if shot:
            r = await browser.call("Page.captureScreenshot", {}, b.session)
            with open(shot, "wb") as f:
                f.write(base64.b64decode(r["data"]))
        browser.reader.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1:]), 6 * WAIT))
    except (Failed, OSError, asyncio.TimeoutError,
            websockets.exceptions.WebSocketException) as e:
        print("cdp.py: %s" % (e or type(e).__name__), file=sys.stderr)
        sys.exit(1)

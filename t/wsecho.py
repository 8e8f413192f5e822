#!/usr/bin/env python3
"""An echo server with python3-websockets: the control for wsconform.py.

    wsecho.py [--port N] [--max-size BYTES]

Listens on 127.0.0.1 (port 0 by default: the kernel picks one), prints the
port on a line of its own once it accepts, and echoes every message as it
came (text as text, binary as binary) until it is killed.  Messages up to
16 MiB (--max-size); no compression, no keepalive pings.  Written for
websockets 10.4 (Debian bookworm's python3-websockets).
"""
import argparse
import asyncio
import sys

import websockets


async def echo(ws, *_path):
    # (websockets 10 passes the path too; later versions do not.)
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def serve(port, max_size):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=max_size,
                                compression=None, ping_interval=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-size", type=int, default=16 << 20)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.port, args.max_size))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

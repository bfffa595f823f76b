"""One admin UI client for the benchmark: logs in to ``/admin`` and reads every frame.

``admin_watcher.py PORT``: moves itself off the cores of the server that started it
(it inherits the server's pinning), connects over WebSocket, logs in as bench/bench,
prints ``WATCHING`` once the login is accepted, then reads and drops every frame and
answers the pings, until the connection closes or it is terminated.
"""

from __future__ import annotations

import asyncio
import os
import sys

from websockets.asyncio.client import connect


async def main(port: int) -> None:
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    async with connect(url, max_size=None, ping_interval=None) as ws:
        await ws.recv()  # the open packet
        await ws.send('40/admin,{"username":"bench","password":"bench"}')
        reply = await ws.recv()
        if not str(reply).startswith("40/admin,"):
            raise SystemExit(f"login refused: {reply!r}")
        print("WATCHING", flush=True)
        async for frame in ws:
            if frame == "2":
                await ws.send("3")


if __name__ == "__main__":
    mine = os.sched_getaffinity(0)
    others = set(range(os.cpu_count() or 1)) - mine
    if others:
        os.sched_setaffinity(0, others)
    asyncio.run(main(int(sys.argv[1])))

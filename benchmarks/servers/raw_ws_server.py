"""The ceiling: plain ``websockets`` answering the same bytes, no Socket.IO library.

It does the Engine.IO open and the Socket.IO CONNECT reply by hand, echoes an
``echo`` event frame as it came, and hands a ``fan`` event frame to
``websockets.broadcast()``. Same settings as minisio: no compression, no
WebSocket-level ping, the same ``max_size`` and ``max_queue``.
"""

from __future__ import annotations

import asyncio
import secrets

import websockets
from common import MAX_SIZE, parse_args, ready, run
from websockets.asyncio.server import ServerConnection, serve

OPEN = '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":%d}'
CONNECTED: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    await ws.send(OPEN % (secrets.token_urlsafe(15), MAX_SIZE))
    try:
        async for frame in ws:
            if not isinstance(frame, str):
                continue
            if frame.startswith('42["echo"'):
                await ws.send(frame)
            elif frame.startswith('42["fan"'):
                websockets.broadcast(CONNECTED, frame)
            elif frame == "40":
                CONNECTED.add(ws)
                await ws.send(f'40{{"sid":"{secrets.token_urlsafe(15)}"}}')
    except websockets.ConnectionClosed:
        pass  # the load generator aborts its connections when it is done
    finally:
        CONNECTED.discard(ws)


def main() -> None:
    args = parse_args(__doc__ or "")

    async def main_() -> None:
        async with serve(
            handler,
            "127.0.0.1",
            args.port,
            compression=None,
            ping_interval=None,
            ping_timeout=None,
            max_size=MAX_SIZE,
            max_queue=8,
            server_header=None,
        ) as server:
            ready(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    run(args, main_)


if __name__ == "__main__":
    main()

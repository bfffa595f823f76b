"""python-socketio's AsyncServer on aiohttp, with the same two events as the others."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from aiohttp import web
from common import MAX_SIZE, parse_args, ready, run


def main() -> None:
    args = parse_args(__doc__ or "")
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        transports=["polling", "websocket"],  # the default, as minisio and Node
        max_http_buffer_size=MAX_SIZE,
        logger=False,
        engineio_logger=False,
    )

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echo", data, to=sid)

    @sio.on("fan")
    async def fan(sid: str, *data: Any) -> None:
        await sio.emit("fan", data)  # a tuple: several arguments

    async def serve() -> None:
        app = web.Application()
        sio.attach(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        ready(runner.addresses[0][1])
        try:
            await asyncio.Future()
        finally:
            await runner.cleanup()

    run(args, serve)


if __name__ == "__main__":
    main()

"""python-socketio's AsyncServer as its ASGIApp under uvicorn: the same two events."""

from __future__ import annotations

from typing import Any

import socketio
from asgi_common import serve_uvicorn
from common import MAX_SIZE, parse_args, run


def main() -> None:
    args = parse_args(__doc__ or "")
    sio = socketio.AsyncServer(
        async_mode="asgi",
        transports=["polling", "websocket"],
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

    run(args, lambda: serve_uvicorn(socketio.ASGIApp(sio), args.port))


if __name__ == "__main__":
    main()

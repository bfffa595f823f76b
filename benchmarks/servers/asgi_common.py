"""What the two ASGI bench servers share: uvicorn, on the loop ``common.run`` chose."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from common import MAX_SIZE, ready

#: The same uvicorn for minisio.ASGIApp and python-socketio's ASGIApp: its websockets-based
#: WebSocket implementation, h11, no keepalive pings of its own (Engine.IO pings), no
#: compression (as every other server here), and the frame limit of the others.
UVICORN: dict[str, Any] = {
    "ws": "websockets-sansio",
    "http": "h11",
    "lifespan": "on",
    "log_level": "warning",
    "access_log": False,
    "ws_ping_interval": None,
    "ws_per_message_deflate": False,
    "ws_max_size": MAX_SIZE,
}


async def serve_uvicorn(app: Any, port: int) -> None:
    """Serve ``app`` until cancelled; print the port once uvicorn listens."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # common.run owns SIGTERM

    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, **UVICORN))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    ready(server.servers[0].sockets[0].getsockname()[1])
    try:
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        await task

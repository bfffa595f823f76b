"""minisio hosted by uvicorn, in this process and on the running loop: the tests' ASGI host.

uvicorn runs with its websockets-based WebSocket implementation
(``ws="websockets-sansio"``, what ``ws="auto"`` picks when websockets is
installed), h11 for HTTP, and no WebSocket keepalive of its own: Engine.IO's
ping/pong is the one liveness clock, as on the standalone server. Its
``ws_max_size`` follows the server's ``max_payload`` (see the README's ASGI
section for what uvicorn decides instead of minisio).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import minisio

#: The uvicorn settings of every test host; a test adds its own on top.
UVICORN: dict[str, Any] = {
    "ws": "websockets-sansio",
    "http": "h11",
    "lifespan": "on",
    "log_level": "warning",
    "ws_ping_interval": None,
    "ws_per_message_deflate": False,
    # Only minisio's headers, so that its answers can be compared byte for byte.
    "date_header": False,
    "server_header": False,
}


def uvicorn_server(app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Any:
    """A ``uvicorn.Server`` for ``app`` that leaves the process's signal handlers alone."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the caller decides what SIGTERM does

        async def main_loop(self) -> None:
            while not self.should_exit:  # uvicorn looks every 0.1 s: a test's stop waits less
                await asyncio.sleep(0.01)

    return Server(uvicorn.Config(app, host=host, port=port, **{**UVICORN, **options}))


async def start(server: Any) -> tuple[asyncio.Task[None], int]:
    """Run ``server`` in a task; return it and the port once uvicorn listens."""
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()  # startup failed: say why
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.005)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return task, port


@asynccontextmanager
async def uvicorn_running(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve the ASGI ``app`` with uvicorn on an ephemeral port; yield ``host:port``."""
    server = uvicorn_server(app, **options)
    task, port = await start(server)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def asgi_running(io: minisio.Server, **options: Any) -> AsyncIterator[str]:
    """``conftest.running`` for the ASGI host: ``minisio.ASGIApp(io)`` under uvicorn."""
    options.setdefault("ws_max_size", io.max_payload)
    async with uvicorn_running(minisio.ASGIApp(io), **options) as address:
        yield address

"""What the Python fixture servers of the Node tests share: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

import minisio


def serve_until_signalled(io: minisio.Server, port: int) -> None:
    """Serve ``io`` on 127.0.0.1:``port``, printing ``listening <url>`` for helpers.mjs."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with io.serve("127.0.0.1", port) as server:
            bound = server.sockets[0].getsockname()[1]
            print(f"listening http://127.0.0.1:{bound}", flush=True)
            await stop.wait()

    asyncio.run(serve())

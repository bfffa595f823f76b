"""minisio under test: ``echo`` answers the sender, ``fan`` goes to every socket.

With ``--redis URL`` the server is one node of a cluster: ``minisio.redis``'s adapter on
that Redis, so ``fan`` reaches the sockets of every node (run.py's ``redis-fan`` scenarios).
With ``--admin MODE`` it is instrumented for the admin UI and one admin client
(``admin_watcher.py``, a process of its own off this core) logs in and reads everything.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import MAX_SIZE, parse_args, ready, run

import minisio


def main() -> None:
    args = parse_args(__doc__ or "")
    options: dict[str, Any] = {}
    if args.redis:
        from minisio.redis import redis_adapter

        options["adapter"] = redis_adapter(args.redis)
    io = minisio.Server(max_payload=MAX_SIZE, serve_client=False, **options)
    if args.admin:
        io.instrument(auth={"username": "bench", "password": "bench"}, mode=args.admin, ui=False)

    @io.on("connection")
    def connection(socket: minisio.Socket) -> None:
        @socket.on("echo")
        def echo(data: Any) -> None:
            socket.emit("echo", data)

        @socket.on("fan")
        def fan(*data: Any) -> None:
            io.emit("fan", *data)

    async def serve() -> None:
        async with io.serve("127.0.0.1", args.port) as server:
            port = server.sockets[0].getsockname()[1]
            watcher = None
            if args.admin:
                watcher = await _watch(port)
            ready(port)
            try:
                await asyncio.Future()
            finally:
                if watcher is not None:
                    watcher.terminate()

    run(args, serve)


async def _watch(port: int) -> subprocess.Popen[bytes]:
    """Start the admin client and wait until it is logged in (its first line)."""
    script = Path(__file__).with_name("admin_watcher.py")
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    if not line.startswith(b"WATCHING"):
        raise RuntimeError(f"the admin watcher did not log in: {line!r}")
    return proc


if __name__ == "__main__":
    main()

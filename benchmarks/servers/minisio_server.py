"""minisio under test: ``echo`` answers the sender, ``fan`` goes to every socket.

With ``--redis URL`` the server is one node of a cluster: ``minisio.redis``'s adapter on
that Redis, so ``fan`` reaches the sockets of every node (run.py's ``redis-fan`` scenarios).
"""

from __future__ import annotations

import asyncio
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
            ready(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    run(args, serve)


if __name__ == "__main__":
    main()

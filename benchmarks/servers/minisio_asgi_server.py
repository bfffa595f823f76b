"""minisio.ASGIApp under uvicorn: the same two events as minisio_server.py."""

from __future__ import annotations

from typing import Any

from asgi_common import serve_uvicorn
from common import MAX_SIZE, parse_args, run

import minisio


def main() -> None:
    args = parse_args(__doc__ or "")
    io = minisio.Server(max_payload=MAX_SIZE, serve_client=False)

    @io.on("connection")
    def connection(socket: minisio.Socket) -> None:
        @socket.on("echo")
        def echo(data: Any) -> None:
            socket.emit("echo", data)

        @socket.on("fan")
        def fan(*data: Any) -> None:
            io.emit("fan", *data)

    run(args, lambda: serve_uvicorn(minisio.ASGIApp(io), args.port))


if __name__ == "__main__":
    main()

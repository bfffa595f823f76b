"""A minisio app with connection state recovery on, for tests/js/recovery.test.mjs.

Run it as ``python tests/js/recovery_server.py [--port N] [--window SECONDS]``.
It binds 127.0.0.1, prints ``listening http://127.0.0.1:<port>`` once it
accepts connections, and stops cleanly on SIGTERM or SIGINT. ``--window``
is ``max_disconnection_duration``.

Events (client -> server), each acked:

``join(room)``            ``socket.join(room)``
``set(key, value)``       ``socket.data[key] = value``
``state()``               ``[socket.id, socket.recovered, socket.data, sorted rooms]``
``blast(n, gone)``        once the socket ``gone`` has left (its disconnect seen here),
                          ``io.emit("tick", i)`` and ``io.to("red").emit("red", i)`` for
                          ``i`` in ``range(n)``, then ``socket.emit("mine", n)`` on ``gone``'s
                          old socket object (kept and replayed, as in Node)
``cut()``                 the server drops this client's TCP connection (an abort, as a
                          broken network would: the reason here is "transport error")
``expired()``             the ids the ``session_expired`` handlers were told of
``reasons()``             the disconnect reasons seen, in order
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from serving import serve_until_signalled

import minisio


def create_app(window: float) -> minisio.Server:
    io = minisio.Server(connection_state_recovery={"max_disconnection_duration": window})
    expired: list[str] = []
    reasons: list[str] = []
    old: dict[str, minisio.Socket] = {}  # socket id -> the socket object it last had

    @io.on("session_expired")
    def gone(session: minisio.KeptSession) -> None:
        expired.append(session.id)

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        old[socket.id] = socket

        @socket.on("join")
        def join(room: str) -> bool:
            socket.join(room)
            return True

        @socket.on("set")
        def set_data(key: str, value: Any) -> bool:
            socket.data[key] = value
            return True

        @socket.on("state")
        def state() -> list[Any]:
            return [socket.id, socket.recovered, socket.data, sorted(socket.rooms)]

        @socket.on("blast")
        async def blast(n: int, sid: str) -> bool:
            for _ in range(500):
                if sid not in io.main.sockets:
                    break
                await asyncio.sleep(0.01)
            else:
                return False
            for i in range(n):
                io.emit("tick", i)
                io.to("red").emit("red", i)
            if sid in old:
                old[sid].emit("mine", n)
            return True

        @socket.on("cut")
        def cut() -> bool:
            # What a broken network does to the server's side: the connection
            # is aborted, no close frame, no close packet.
            socket._conn.close("transport error", abort=True)
            return True

        socket.on("expired", lambda: list(expired))
        socket.on("reasons", lambda: list(reasons))
        socket.on("disconnect", lambda reason: reasons.append(reason))

    return io


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--window", type=float, default=120)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="server: %(name)s %(message)s")
    io = create_app(args.window)
    serve_until_signalled(io, args.port)


if __name__ == "__main__":
    main()

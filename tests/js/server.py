"""A minisio app for the Node interop suite (tests/js/interop.test.mjs).

Run it as ``python tests/js/server.py [--port N] [--ping-interval S]
[--ping-timeout S] [--max-payload BYTES] [--compression]``; each option can
also come from the environment (MINISIO_PORT, MINISIO_PING_INTERVAL,
MINISIO_PING_TIMEOUT, MINISIO_MAX_PAYLOAD, MINISIO_COMPRESSION=1). With
``--host uvicorn`` (or MINISIO_HOST=uvicorn) the same app is served as
``minisio.ASGIApp`` by uvicorn (tests/asgi_host.py) instead. It binds
127.0.0.1 (port 0 by default) and prints ``listening http://127.0.0.1:<port>``
once it accepts connections. SIGTERM and SIGINT stop it cleanly ("server
shutting down" for every session).

Events of the main namespace ``/`` (client -> server, ack answers):

``whoami()``                 ``{"id", "nsp", "auth", "query"}``
``echo(*args)``              emits ``echo`` with the same args, acks them too
``sum(a, b)``                ``a + b``
``slow(ms, value)``          ``value`` after ``ms`` milliseconds
``once_slow(key, ms)``       how many calls ``key`` has had; the first one takes ``ms``
``describe(value)``          ``value`` with every ``bytes`` as ``{"bytes": hex}``
``make_binary()``            an object holding ``bytes`` at several depths
``size(value)``              ``len(value)``, for the payload limit tests
``join(room)/leave(room)``   the socket's rooms, sorted
``room(room, payload, mode)`` ``mode`` "io": ``io.to(room)``, "socket": ``socket.to(room)``
``route(route, payload, to)`` "all" | "me" | "broadcast" | "to_id": emits ``routed``
``ask(event, args, timeout)`` the server awaits the client's ack:
                              ``{"ok": true, "result"}`` or ``{"ok": false, "error"}``
``kick(close)``              ``socket.disconnect(close)`` after acking
``kick_session(sid)``        ``disconnect(True)`` of the sockets on the Engine.IO session ``sid``
                              (any client's): their ids
``stats()``                  ``{"websockets": sessions carried by a WebSocket}``
``transport()``              the transport of this socket's session, as the server sees it
``sid()``                    the Engine.IO session id this socket rides on (the client's
                              ``socket.io.engine.id``; one for all namespaces of a Manager)
``reason(id)``               why the socket ``id`` disconnected (server side), or None

On connection the server emits ``welcome(id)`` to the new socket.

``/admin`` needs ``auth: {"token": "secret"}``; without a token its middleware
refuses with "not authorized", with a wrong one it adds ``data``. Its sockets
answer ``whoami``, ``echo``, ``route``, ``stats``, ``transport``, ``sid`` and ``reason``,
and get ``welcome``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import minisio

TOKEN = "secret"


def describe(value: Any) -> Any:
    """``value`` as JSON, with each binary buffer spelled out in hex."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return value


def create_app(**options: Any) -> tuple[minisio.Server, dict[str, Any]]:
    io = minisio.Server(serve_client=False, **options)
    state: dict[str, Any] = {"ws": None}  # the websockets server, once listening
    reasons: dict[str, str] = {}  # socket id -> disconnect reason
    calls: dict[str, int] = {}  # once_slow key -> calls so far

    def common(socket: minisio.Socket) -> None:
        @socket.on("whoami")
        def whoami() -> dict[str, Any]:
            handshake = socket.handshake
            return {
                "id": socket.id,
                "nsp": socket.namespace.name,
                "auth": handshake.auth,
                "query": handshake.query,
            }

        @socket.on("echo")
        def echo(*args: Any) -> tuple[Any, ...]:
            socket.emit("echo", *args)
            return args

        @socket.on("stats")
        def stats() -> dict[str, int]:
            sessions = io._sessions.values()
            return {"websockets": sum(s.transport.name == "websocket" for s in sessions)}

        @socket.on("transport")
        def transport() -> str:
            return socket.transport

        @socket.on("sid")
        def sid() -> str:
            return socket._conn.sid

        @socket.on("reason")
        def reason(sid: str) -> str | None:
            return reasons.get(sid)

        @socket.on("disconnect")
        def disconnected(reason: str) -> None:
            reasons[socket.id] = reason

        socket.emit("welcome", socket.id)

        @socket.on("route")
        def route(name: str, payload: Any, to: str | None = None) -> bool:
            message = {"route": name, "from": socket.id, "payload": payload}
            nsp = socket.namespace
            if name == "all":
                nsp.emit("routed", message)
            elif name == "me":
                socket.emit("routed", message)
            elif name == "broadcast":
                socket.broadcast.emit("routed", message)
            elif name == "to_id" and isinstance(to, str):
                nsp.to(to).emit("routed", message)
            else:
                return False
            return True

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        common(socket)

        @socket.on("sum")
        def add(a: float, b: float) -> float:
            return a + b

        @socket.on("slow")
        async def slow(ms: float, value: Any) -> Any:
            await asyncio.sleep(ms / 1000)
            return value

        @socket.on("once_slow")
        async def once_slow(key: str, ms: float) -> int:
            calls[key] = count = calls.get(key, 0) + 1
            if count == 1:
                await asyncio.sleep(ms / 1000)
            return count

        @socket.on("describe")
        def describe_(value: Any) -> Any:
            return describe(value)

        @socket.on("make_binary")
        def make_binary() -> dict[str, Any]:
            return {
                "all": bytes(range(256)),
                "nested": [b"", {"deep": b"\x00\xff\x00"}],
                "text": "not binary",
            }

        @socket.on("size")
        def size(value: Any) -> int:
            return len(value)

        @socket.on("join")
        def join(room: str) -> list[str]:
            socket.join(room)
            return sorted(socket.rooms)

        @socket.on("leave")
        def leave(room: str) -> list[str]:
            socket.leave(room)
            return sorted(socket.rooms)

        @socket.on("room")
        def room(name: str, payload: Any, mode: str = "io") -> bool:
            target = io.to(name) if mode == "io" else socket.to(name)
            target.emit("room", {"room": name, "mode": mode, "payload": payload})
            return True

        @socket.on("ask")
        async def ask(event: str, args: list[Any], timeout: float) -> dict[str, Any]:
            try:
                result = await socket.emit_with_ack(event, *args, timeout=timeout)
            except minisio.AckTimeout:
                return {"ok": False, "error": "timeout"}
            return {
                "ok": True,
                "result": describe(list(result) if isinstance(result, tuple) else result),
            }

        @socket.on("kick")
        def kick(close: bool = False) -> None:
            # Ack first (the frames go out in order), then disconnect.
            asyncio.get_running_loop().call_soon(socket.disconnect, bool(close))

        @socket.on("kick_session")
        def kick_session(sid: str) -> list[str]:
            session = io._sessions.get(sid)
            if session is None:
                return []
            ids = [s.id for s in session.sockets.values()]
            session.kick()
            return ids

    admin = io.of("/admin")

    @admin.use
    def authorize(socket: minisio.Socket) -> None:
        token = socket.handshake.auth.get("token")
        if token is None:
            raise minisio.ConnectionRefused("not authorized")
        if token != TOKEN:
            raise minisio.ConnectionRefused("not authorized", {"reason": "bad token"})

    admin.on("connection", common)
    return io, state


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=int(env("MINISIO_PORT", "0")))
    parser.add_argument(
        "--ping-interval", type=float, default=float(env("MINISIO_PING_INTERVAL", "25"))
    )
    parser.add_argument(
        "--ping-timeout", type=float, default=float(env("MINISIO_PING_TIMEOUT", "20"))
    )
    parser.add_argument(
        "--max-payload", type=int, default=int(env("MINISIO_MAX_PAYLOAD", "1000000"))
    )
    parser.add_argument(
        "--compression", action="store_true", default=env("MINISIO_COMPRESSION") == "1"
    )
    parser.add_argument(
        "--host",
        choices=("minisio", "uvicorn"),
        default=env("MINISIO_HOST", "minisio"),
        help="minisio's own server, or minisio.ASGIApp under uvicorn (tests/asgi_host.py)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="server: %(name)s %(message)s")
    io, state = create_app(
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_payload=args.max_payload,
        compression=args.compression,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.host == "uvicorn":
            await serve_uvicorn(stop)
            return
        async with io.serve("127.0.0.1", args.port) as server:
            state["ws"] = server
            port = server.sockets[0].getsockname()[1]
            print(f"listening http://127.0.0.1:{port}", flush=True)
            await stop.wait()

    async def serve_uvicorn(stop: asyncio.Event) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests import asgi_host

        options = {"ws_max_size": args.max_payload, "ws_per_message_deflate": args.compression}
        server = asgi_host.uvicorn_server(minisio.ASGIApp(io), port=args.port, **options)
        task, port = await asgi_host.start(server)
        print(f"listening http://127.0.0.1:{port}", flush=True)
        await stop.wait()
        # Every session told at once, held polling GETs included: uvicorn alone
        # would wait for each of them to be answered by its next ping.
        await io.close()
        server.should_exit = True
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()

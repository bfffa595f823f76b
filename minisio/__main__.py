"""``python -m minisio``: the demo chat server from the classroom note.

Events (client -> server):
    connect with ``auth: {"name": "..."}``
    ``chat``  ``{"text": str, "route": "all"|"me"|"others"|"whisper", "to": sid}``
              acked with ``{"ok": true}`` or ``{"ok": false, "error": ...}``
Events (server -> client):
    ``welcome`` ``{"id", "name", "recovered"}`` to the new (or recovered) socket only
    ``users``   ``[{"id", "name"}, ...]`` to everyone, whenever it changes
    ``notice``  ``"X joined"`` / ``"X left"``
    ``chat``    ``{"from", "name", "text", "route", "to"?}``

Connection state recovery is on (``max_disconnection_duration`` 2 minutes,
as in Node): a tab whose connection drops comes back as the same socket,
with its name, and gets the messages sent meanwhile. Nobody is told it left
unless it does not come back in time: "X left" waits for the session to
expire (the ``session_expired`` handler). A tab that leaves on purpose (the
Leave button, or closing the tab: the page disconnects on ``pagehide``) is
announced at once. With ``--redis`` there is no recovery (the pub/sub
adapter keeps no packets, as in Node), and every drop is a leave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
from typing import Any

from . import __version__, files
from .errors import ClusterError
from .recovery import RECOVERABLE_REASONS, KeptSession
from .server import Server
from .socket import Socket

MAX_NAME = 32
MAX_TEXT = 2000


def create_app(**options: Any) -> Server:
    """The chat server: the four routes, whispers and join/leave notices.

    Names live in ``socket.data`` and the roster comes from ``fetch_sockets()``,
    so several nodes on one Redis (``--redis``) make one chat.
    """
    options.setdefault("connection_state_recovery", True)
    io = Server(**options)
    # Whether a dropped socket is kept for recovery (not with the Redis adapter).
    recovers = io.main.adapter.recovers

    async def send_roster(to: Socket | None = None) -> None:
        """The roster to everyone, or to ``to`` alone."""
        try:
            sockets = await io.fetch_sockets()
        except ClusterError as exc:  # a node did not answer: show who did
            sockets = exc.results
        roster = [{"id": s.id, "name": s.data.get("name", "?")} for s in sockets]
        (io if to is None else to).emit("users", roster)

    @io.on("session_expired")
    async def gone(session: KeptSession) -> None:
        # A dropped socket that did not come back in time: now it has left.
        name = (session.data or {}).get("name", "?")
        logging.getLogger("minisio").info("%s (%s) did not come back", session.id, name)
        io.emit("notice", f"{name} left")
        await send_roster()

    @io.on("connection")
    async def joined(socket: Socket) -> None:
        if socket.recovered:  # back after a drop: same id, same name, nothing missed
            name = socket.data.get("name", f"guest-{socket.id[:4]}")
        else:
            raw = socket.handshake.auth.get("name")
            name = raw.strip()[:MAX_NAME] if isinstance(raw, str) and raw.strip() else None
            name = name or f"guest-{socket.id[:4]}"
            socket.data["name"] = name
        how = "is back" if socket.recovered else "joined"
        logging.getLogger("minisio").info("%s %s as %r", socket.id, how, name)

        @socket.on("chat")
        async def chat(message: Any) -> dict[str, Any]:
            if not isinstance(message, dict):
                return {"ok": False, "error": "a chat message is an object"}
            text, route = message.get("text"), message.get("route", "all")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
                return {"ok": False, "error": f"text must be 1 to {MAX_TEXT} characters"}
            out: dict[str, Any] = {"from": socket.id, "name": name, "text": text, "route": route}
            if route == "all":
                io.emit("chat", out)  # everyone
            elif route == "me":
                socket.emit("chat", out)  # the sender only
            elif route == "others":
                socket.broadcast.emit("chat", out)  # everyone but the sender
            elif route == "whisper":
                to = message.get("to")
                # A socket id names a room of one, on whichever node it lives.
                if not isinstance(to, str) or not await _exists(io, to):
                    return {"ok": False, "error": "no such user"}
                out["to"] = to
                io.to(to).emit("chat", out)  # one socket, by its id
            else:
                return {"ok": False, "error": "unknown route"}
            return {"ok": True}

        @socket.on("disconnect")
        async def left(reason: str) -> None:
            if recovers and reason in RECOVERABLE_REASONS:
                # Kept: it may come back; "left" comes when its session expires.
                logging.getLogger("minisio").info("%s (%s) dropped: %s", socket.id, name, reason)
                return
            logging.getLogger("minisio").info("%s (%s) left: %s", socket.id, name, reason)
            io.emit("notice", f"{name} left")
            await send_roster()

        socket.emit("welcome", {"id": socket.id, "name": name, "recovered": socket.recovered})
        if socket.recovered:
            # The others never saw it go: no notice, their roster is unchanged.
            await send_roster(socket)
            return
        socket.broadcast.emit("notice", f"{name} joined")
        await send_roster()

    return io


async def _exists(io: Server, sid: str) -> bool:
    try:
        return bool(await io.in_(sid).fetch_sockets())
    except ClusterError as exc:
        return bool(exc.results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="minisio", description="The minisio demo chat server.")
    parser.add_argument("--version", action="version", version=f"minisio {__version__}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    static = files.default_static_dir()
    parser.add_argument(
        "--static",
        default=str(static) if static else None,
        help="folder served at / (default: the chat page installed with minisio)",
    )
    parser.add_argument(
        "--client-dir",
        metavar="DIR",
        help="a socket.io-client dist/ folder to serve the client bundle from "
        "(as $MINISIO_CLIENT_DIR; default: ./node_modules/socket.io-client/dist, else the CDN)",
    )
    parser.add_argument(
        "--admin",
        metavar="USER:PASSWORD",
        help="let the official admin UI watch the chat (namespace /admin, UI at /admin/)",
    )
    parser.add_argument("--trace", action="store_true", help="log every frame in and out")
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="join the nodes on this Redis as one chat (needs minisio[redis])",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.client_dir:
        os.environ["MINISIO_CLIENT_DIR"] = args.client_dir  # files.client_dirs() reads it
    admin_auth = None
    if args.admin:
        username, colon, password = args.admin.partition(":")
        if not colon or not username or not password:
            parser.error("--admin takes USER:PASSWORD")
        admin_auth = {"username": username, "password": password}
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        uvloop = importlib.import_module("uvloop")  # the optional "speed" extra
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    options: dict[str, Any] = {"static_dir": args.static, "trace": args.trace}
    if args.redis:
        from .redis import redis_adapter  # the optional extra, imported only when asked for

        options["adapter"] = redis_adapter(args.redis)
    io = create_app(**options)
    log = logging.getLogger("minisio")
    if admin_auth is not None:
        admin = io.instrument(auth=admin_auth)
        if admin.ui_dir is not None:
            log.info("admin UI served from %s", admin.ui_dir)
    log.info("chat page served from %s", args.static)
    log.info("%s", files.client_source())

    async def serve() -> None:
        async with io.serve(args.host, args.port) as server:
            port = server.sockets[0].getsockname()[1]  # the real one when --port 0
            print(f"minisio chat on http://{args.host}:{port}/", flush=True)
            if admin_auth is not None:
                print(f"admin UI on http://{args.host}:{port}/admin/", flush=True)
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

"""``python -m minisio``: the demo chat server from the classroom note.

Events (client -> server):
    connect with ``auth: {"name": "..."}``
    ``chat``  ``{"text": str, "route": "all"|"me"|"others"|"whisper", "to": sid}``
              acked with ``{"ok": true}`` or ``{"ok": false, "error": ...}``
Events (server -> client):
    ``welcome`` ``{"id", "name"}``      to the new socket only
    ``users``   ``[{"id", "name"}, ...]`` to everyone, whenever it changes
    ``notice``  ``"X joined"`` / ``"X left"``
    ``chat``    ``{"from", "name", "text", "route", "to"?}``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
from pathlib import Path
from typing import Any

from .server import Server
from .socket import Socket

_REPO_STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_NAME = 32
MAX_TEXT = 2000


def create_app(**options: Any) -> Server:
    """The chat server: the four routes, whispers and join/leave notices."""
    io = Server(**options)
    names: dict[str, str] = {}

    def roster() -> list[dict[str, str]]:
        return [{"id": sid, "name": name} for sid, name in names.items()]

    @io.on("connection")
    def joined(socket: Socket) -> None:
        raw = socket.handshake.auth.get("name")
        name = raw.strip()[:MAX_NAME] if isinstance(raw, str) and raw.strip() else None
        name = name or f"guest-{socket.id[:4]}"
        names[socket.id] = name
        logging.getLogger("minisio").info("%s joined as %r", socket.id, name)
        socket.emit("welcome", {"id": socket.id, "name": name})
        socket.broadcast.emit("notice", f"{name} joined")
        io.emit("users", roster())

        @socket.on("chat")
        def chat(message: Any) -> dict[str, Any]:
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
                if not isinstance(to, str) or to not in names:  # a list would not hash
                    return {"ok": False, "error": "no such user"}
                out["to"] = to
                io.to(to).emit("chat", out)  # one socket, by its id
            else:
                return {"ok": False, "error": "unknown route"}
            return {"ok": True}

        @socket.on("disconnect")
        def left(reason: str) -> None:
            names.pop(socket.id, None)
            logging.getLogger("minisio").info("%s (%s) left: %s", socket.id, name, reason)
            io.emit("notice", f"{name} left")
            io.emit("users", roster())

    return io


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="minisio", description="The minisio demo chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--static", default=str(_REPO_STATIC), help="folder served at /")
    parser.add_argument("--trace", action="store_true", help="log every frame in and out")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        uvloop = importlib.import_module("uvloop")  # the optional "speed" extra
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    io = create_app(static_dir=args.static, trace=args.trace)

    async def serve() -> None:
        async with io.serve(args.host, args.port) as server:
            port = server.sockets[0].getsockname()[1]  # the real one when --port 0
            print(f"minisio chat on http://{args.host}:{port}/", flush=True)
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

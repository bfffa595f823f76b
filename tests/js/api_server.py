"""A minisio app for the Node API suite (tests/js/api.test.mjs): issue 13's server API.

Run it as ``python tests/js/api_server.py [--port N]``. It binds 127.0.0.1
(port 0 by default), prints ``listening http://127.0.0.1:<port>`` once it
accepts connections, and stops cleanly on SIGTERM or SIGINT.

A socket of ``/`` whose ``auth`` has ``room`` joins that room. Its events
(client -> server):

``poll(room, seconds)``   ``await io.to(room).timeout(seconds).emit_with_ack("vote")``;
                          the outcome comes back as the event ``poll_result``
                          ``{"ok": bool, "results": [...]}`` (``ok`` false: AckTimeout)
``seen()``                what ``on_any`` saw from this client: ``[event, *args]`` each,
                          binaries as ``{"bytes": hex}``
``send_binary()``         ``io.to(socket.id).emit("bcast", ...)`` and ``socket.emit("direct", ...)``
                          with binaries; acks True
``seen_outgoing()``       what ``on_any_outgoing`` saw sent to this socket, as ``seen()``
``forbidden(*args)``      dropped by the packet middleware (``socket.use``); its handler,
                          if it ever ran, would emit ``forbidden_ran`` and ack "ran"
``shout(text)``           the middleware upper-cases ``text`` in place; acks it
``errors()``              what ``socket.on("error")`` got: ``str(exc)`` each
``ask(value)``            ``socket.emit("question", value, callback=fn)``; ``fn`` emits
                          ``answered`` with the ack's arguments
``volatile(n, first)``    ``socket.volatile.emit("v", first + i)`` for ``i`` in ``range(n)``,
                          then acks True
``teams()``               the names of the children whose parent's ``connection`` handler ran

Namespaces besides ``/``:

- ``io.of(re.compile(r"^/team-\\d+$"))``: a child's sockets get ``team(name)`` from
  the parent's connection handler; its parent middleware puts ``team`` in ``socket.data``.
- ``io.of(fn)``: names starting ``/fn-`` whose ``auth`` has ``ok: true``.
- ``/guarded``: a middleware returning ``False`` (python-socketio's refusal).
- ``/builtin``: a middleware raising the built-in ``ConnectionRefusedError("go away")``.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

from serving import serve_until_signalled

import minisio


def describe(value: Any) -> Any:
    """``value`` as JSON, with each binary buffer spelled out in hex."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return value


def create_app() -> minisio.Server:
    io = minisio.Server(serve_client=False)
    teams: list[str] = []  # children whose parent connection handler ran

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        room = socket.handshake.auth.get("room")
        if isinstance(room, str):
            socket.join(room)
        seen: list[Any] = []
        outgoing: list[Any] = []
        errors: list[str] = []

        @socket.on_any
        def any_in(event: str, *args: Any) -> None:
            seen.append(describe([event, *args]))

        @socket.on_any_outgoing
        def any_out(event: str, *args: Any) -> None:
            outgoing.append(describe([event, *args]))

        @socket.use
        def check(event: str, args: list[Any]) -> None:
            if event == "forbidden":
                raise PermissionError(f"forbidden: {args!r}")
            if event == "shout" and args and isinstance(args[0], str):
                args[0] = args[0].upper()

        @socket.on("error")
        def error(exc: Exception) -> None:
            errors.append(str(exc))

        @socket.on("poll")
        async def poll(room: str, seconds: float) -> None:
            try:
                results = await io.to(room).timeout(seconds).emit_with_ack("vote")
            except minisio.AckTimeout as exc:
                socket.emit("poll_result", {"ok": False, "results": exc.results})
            else:
                socket.emit("poll_result", {"ok": True, "results": results})

        @socket.on("seen")
        def seen_() -> list[Any]:
            return seen

        @socket.on("send_binary")
        def send_binary() -> bool:
            io.to(socket.id).emit("bcast", b"\x01\x02", {"deep": [b"\xff"]})
            socket.emit("direct", b"\x00")
            return True

        @socket.on("seen_outgoing")
        def seen_outgoing() -> list[Any]:
            return outgoing

        @socket.on("forbidden")
        def forbidden(*args: Any) -> str:
            socket.emit("forbidden_ran", list(args))
            return "ran"

        @socket.on("shout")
        def shout(text: str) -> str:
            return text

        @socket.on("errors")
        def errors_() -> list[str]:
            return errors

        @socket.on("ask")
        def ask(value: Any) -> None:
            socket.emit(
                "question", value, callback=lambda *args: socket.emit("answered", list(args))
            )

        @socket.on("volatile")
        def volatile(n: int, first: int = 0) -> bool:
            for i in range(n):
                socket.volatile.emit("v", first + i)
            return True

        @socket.on("teams")
        def teams_() -> list[str]:
            return teams

    parent = io.of(re.compile(r"^/team-\d+$"))

    @parent.use
    def tag(socket: minisio.Socket) -> None:
        socket.data["team"] = socket.namespace.name

    @parent.on("connection")
    def team_joined(socket: minisio.Socket) -> None:
        teams.append(socket.namespace.name)
        socket.emit("team", socket.data.get("team"))

    def check_fn(name: str, auth: dict[str, Any]) -> bool:
        return name.startswith("/fn-") and auth.get("ok") is True

    fn_parent = io.of(check_fn)

    @fn_parent.on("connection")
    def fn_joined(socket: minisio.Socket) -> None:
        socket.emit("fn", socket.namespace.name)

    @io.of("/guarded").use
    def refuse(socket: minisio.Socket) -> bool:
        return False

    @io.of("/builtin").use
    def refuse_builtin(socket: minisio.Socket) -> None:
        raise ConnectionRefusedError("go away")

    return io


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="server: %(name)s %(message)s")
    io = create_app()
    serve_until_signalled(io, args.port)


if __name__ == "__main__":
    main()

"""The server side of the official admin UI, ``@socket.io/admin-ui`` 0.5.

``io.instrument(auth=...)`` opens the admin namespace (``/admin``), where
the UI connects with ``auth: {username, password}`` and then gets:

- ``config`` ``{supportedFeatures}`` and, in development mode,
  ``all_sockets`` (every socket of every namespace, serialized as below);
- ``server_stats`` every ``server_stats_interval`` seconds: server id, hostname,
  pid, uptime, Engine.IO sessions (polling ones apart), each namespace's
  socket count, and the aggregated events the dashboard charts
  (``rawConnection``, ``rawDisconnection``, ``packetsIn/Out``, ``bytesIn/Out``);
- development mode only: ``socket_connected``, ``socket_updated`` (the
  transport after an upgrade), ``socket_disconnected``, ``room_joined``,
  ``room_left``, ``event_received`` and ``event_sent``.

and may send the actions the UI offers, unless ``read_only``: ``emit``,
``join``, ``leave`` and ``_disconnect``, each for a namespace and an
optional room (a socket id names a room of one).

The wire is the Node package's (its ``dist/index.js``); the Python shape of
the call and of ``auth`` is python-socketio's ``instrument()``. Nothing here
runs unless ``instrument()`` is called: the hooks it needs (a session tap,
catch-all listeners, a room hook) are installed by it and cost an
uninstrumented server one ``is None`` test per room join or leave, and
nothing per event.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import inspect
import logging
import os
import secrets
import socket as _socket
import time
from collections.abc import Callable, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConnectionRefused
from .handlers import Handler
from .trace import Tap

if TYPE_CHECKING:
    from .engine import Session
    from .server import Namespace, Server
    from .socket import Socket

__all__ = ["Instrumentation", "find_ui"]

logger = logging.getLogger("minisio")

#: Features the UI enables buttons and views for ("Feature" in the package's typed-events).
_ACTIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
#: Sessions (a login the UI keeps across page loads) remembered at most, and for how long.
MAX_SESSIONS = 1000
SESSION_SECONDS = 24 * 3600
_BCRYPT = ("$2a$", "$2b$", "$2y$")


def find_ui() -> Path | None:
    """``@socket.io/admin-ui``'s ``ui/dist`` under ``./node_modules``, then the checkout's."""
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), here):
        folder = base / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
        if (folder / "index.html").is_file():
            return folder
    return None


_last_stamp: tuple[int, str] = (0, "")


def _now() -> str:
    """A JavaScript ``Date`` as JSON carries it: ISO 8601, milliseconds, UTC.

    Made once per millisecond: in development mode every event is stamped.
    """
    global _last_stamp
    ms = int(time.time() * 1000)
    if ms != _last_stamp[0]:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
        _last_stamp = (ms, f"{seconds}.{ms % 1000:03d}Z")
    return _last_stamp[1]


def _check_auth(auth: Any) -> Callable[[dict[str, Any]], Any] | None:
    """``auth`` as a function of the client's ``auth`` payload; None when there is none."""
    if auth is False:
        logger.warning("admin UI: authentication is off (auth=False)")
        return None
    if callable(auth):
        return auth  # type: ignore[no-any-return]
    pairs = auth if isinstance(auth, list) else [auth]
    if not pairs or not all(isinstance(p, dict) for p in pairs):
        raise TypeError(
            "auth is {'username': ..., 'password': ...}, a list of them, "
            "fn(auth) -> bool, or False (no authentication)"
        )
    accepted: list[tuple[bytes, bytes]] = []
    for pair in pairs:
        username, password = pair.get("username"), pair.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not password:
            raise TypeError("auth needs a str 'username' and a non-empty str 'password'")
        if password.startswith(_BCRYPT):
            # Node's package takes a bcrypt hash; minisio has no bcrypt (no new dependency).
            raise ValueError(
                "auth 'password' looks like a bcrypt hash: give the password itself, "
                "or fn(auth) -> bool to check a hash with a library of your choice"
            )
        accepted.append((username.encode(), password.encode()))

    def check(client: dict[str, Any]) -> bool:
        username, password = client.get("username"), client.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        given = (username.encode(), password.encode())
        ok = False
        for user, secret in accepted:  # every pair compared, in constant time
            same = hmac.compare_digest(given[0], user) & hmac.compare_digest(given[1], secret)
            ok = ok or same
        return ok

    return check


class _Stats(Tap):
    """Counts what the dashboard charts, per session and frame: the admin UI's tap."""

    __slots__ = ("admin", "bytes_in", "bytes_out", "events", "packets_in", "packets_out")

    def __init__(self, admin: Instrumentation) -> None:
        self.admin = admin
        self.events: collections.Counter[tuple[str, str | None]] = collections.Counter()
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0

    def opened(self, session: Session) -> None:
        self.events["rawConnection", None] += 1
        self.admin._start_stats()

    def closed(self, session: Session) -> None:
        self.events["rawDisconnection", None] += 1

    def upgraded(self, session: Session) -> None:
        if self.admin.development:
            for socket in list(session.sockets.values()):
                self.admin._tell(
                    "socket_updated",
                    {"id": socket.id, "nsp": socket.namespace.name, "transport": "websocket"},
                )

    def frame_in(self, session: Session, frame: str | bytes) -> None:
        self.packets_in += 1
        self.bytes_in += len(frame)

    def frame_out(self, session: Session, text: bytes, attachments: list[bytes]) -> None:
        self.packets_out += 1 + len(attachments)
        self.bytes_out += len(text)
        for attachment in attachments:
            self.bytes_out += len(attachment)

    def take(self) -> list[dict[str, Any]]:
        """The aggregated events since the last call, stamped with this second."""
        stamp = int(time.time()) * 1000
        out = [
            {"timestamp": stamp, "type": kind, "subType": sub, "count": count}
            for (kind, sub), count in self.events.items()
        ]
        for kind, count in (
            ("packetsIn", self.packets_in),
            ("bytesIn", self.bytes_in),
            ("packetsOut", self.packets_out),
            ("bytesOut", self.bytes_out),
        ):
            if count:
                out.append({"timestamp": stamp, "type": kind, "count": count})
        self.events.clear()
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        for event in out:
            if event.get("subType", 0) is None:
                del event["subType"]
        return out


class Instrumentation:
    """What ``io.instrument()`` installs; see the module's docstring.

    Args:
        auth: ``{"username": u, "password": p}`` (the password itself, compared
            in constant time; Node's bcrypt hash is refused, there is no bcrypt
            here), a list of such dicts, ``fn(auth) -> bool`` (plain or async;
            gets the client's ``auth`` payload), or ``False``: no login at all.
        mode: ``"development"`` (every socket, room and event) or
            ``"production"`` (server stats only).
        namespace: the admin namespace.
        read_only: refuse the UI's actions (emit, join, leave, disconnect).
        server_id: the name the UI shows for this server (default: the hostname).
        server_stats_interval: seconds between ``server_stats``.
        ui: serve the UI's files at ``ui_path``: True finds the installed npm
            ``@socket.io/admin-ui`` (:func:`find_ui`), a path names its ``ui/dist``
            folder, False serves nothing (use https://admin.socket.io with CORS).
        ui_path: where the UI is served.
    """

    def __init__(
        self,
        server: Server,
        auth: Any,
        *,
        mode: str = "development",
        namespace: str = "/admin",
        read_only: bool = False,
        server_id: str | None = None,
        server_stats_interval: float = 2.0,
        ui: bool | str | os.PathLike[str] = True,
        ui_path: str = "/admin/",
    ) -> None:
        if mode not in ("development", "production"):
            raise ValueError('mode is "development" or "production"')
        if server_stats_interval <= 0:
            raise ValueError("server_stats_interval must be positive")
        if server._admin is not None:
            raise RuntimeError("this server is already instrumented")
        self.server = server
        self.development = mode == "development"
        self.read_only = read_only
        self.server_stats_interval = server_stats_interval
        self.server_id = server_id or _socket.gethostname()
        self._check = _check_auth(auth)
        self._sessions: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._started = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        features = [] if read_only else list(_ACTIONS)
        features.append("AGGREGATED_EVENTS")
        if self.development:
            features.append("ALL_EVENTS")
        self.features = features
        self.ui_dir = self._mount(ui, ui_path)
        self.stats = _Stats(self)
        self.nsp = server.of(namespace)
        self.nsp.use(self._login_async if inspect.iscoroutinefunction(auth) else self._login)
        self.nsp.on("connection", self._admin_connected)
        # From here on, the hooks: every session is watched, and (development)
        # every socket of every namespace, those already made and those to come.
        server._set_taps([*_taps_of(server), self.stats])
        for session in server._sessions.values():
            session.trace = server._tap
        self._on_socket = Handler(self._socket_connected)
        server._admin = self
        for nsp in list(server._namespaces.values()):
            self.watch_namespace(nsp)

    def __repr__(self) -> str:
        mode = "development" if self.development else "production"
        return f"<Instrumentation {self.nsp.name} {mode}>"

    def _mount(self, ui: bool | str | os.PathLike[str], path: str) -> Path | None:
        if ui is False:
            return None
        folder = find_ui() if ui is True else Path(ui).resolve()
        if folder is None or not (folder / "index.html").is_file():
            if ui is True:
                logger.warning(
                    "admin UI: @socket.io/admin-ui is not installed here (npm ci installs it); "
                    "https://admin.socket.io can still connect, given cors_allowed_origins"
                )
                return None
            raise FileNotFoundError(f"no index.html in {folder}")
        if not path.startswith("/") or not path.endswith("/") or path == "/":
            raise ValueError('ui_path is a folder of its own: "/admin/"')
        folder = folder.resolve()  # files are served only from under it, symlinks resolved
        self.server._mounts[path] = folder
        return folder

    # -- login -------------------------------------------------------------
    def _login(self, socket: Socket) -> None:
        auth = socket.handshake.auth
        if self._resumed(auth):
            return
        if self._check is not None and not self._check(auth):
            raise ConnectionRefused("invalid credentials")

    async def _login_async(self, socket: Socket) -> None:
        auth = socket.handshake.auth
        if self._resumed(auth):
            return
        assert self._check is not None
        if not await self._check(auth):
            raise ConnectionRefused("invalid credentials")

    def _resumed(self, auth: dict[str, Any]) -> bool:
        """A session id this server gave (the UI sends it after a page reload)."""
        sid = auth.get("sessionId")
        if not isinstance(sid, str) or not sid:
            return False
        born = self._sessions.get(sid)
        return born is not None and time.monotonic() - born < SESSION_SECONDS

    def _new_session(self, socket: Socket) -> None:
        """A login by name and password: the UI gets a session id to come back with."""
        sid = secrets.token_hex(8)
        self._sessions[sid] = time.monotonic()
        while len(self._sessions) > MAX_SESSIONS:  # the oldest logins go first
            self._sessions.popitem(last=False)
        socket.emit("session", sid)

    # -- the admin namespace ---------------------------------------------
    def _admin_connected(self, socket: Socket) -> None:
        if self._check is not None and not self._resumed(socket.handshake.auth):
            self._new_session(socket)
        if not self.read_only:
            socket.on("emit", self._emit)
            socket.on("join", self._join)
            socket.on("leave", self._leave)
            socket.on("_disconnect", self._disconnect)
        socket.emit("config", {"supportedFeatures": self.features})
        if self.development:
            socket.emit("all_sockets", self._all_sockets())
        self._start_stats()

    def _all_sockets(self) -> list[dict[str, Any]]:
        # This node's sockets (Node's fetchSockets() also asks a cluster's other nodes).
        return [
            _serialize(socket)
            for nsp in list(self.server._namespaces.values())
            for socket in list(nsp.sockets.values())
        ]

    def _target(self, name: Any, room: Any) -> Any:
        """The namespace ``name`` (never made here), narrowed to ``room`` when given."""
        nsp = self.server._namespaces.get(name) if isinstance(name, str) else None
        if nsp is None:
            logger.info("admin UI: no namespace %r", name)
            return None
        if room is None or room == "":
            return nsp
        if not isinstance(room, str):
            return None
        return nsp.in_(room)

    def _emit(self, nsp: Any, room: Any, event: Any, *args: Any) -> None:
        target = self._target(nsp, room)
        if target is not None and isinstance(event, str) and event:
            target.emit(event, *args)

    def _join(self, nsp: Any, room: Any, only: Any = None) -> None:
        target = self._target(nsp, only)
        if target is not None and isinstance(room, str):
            target.sockets_join(room)

    def _leave(self, nsp: Any, room: Any, only: Any = None) -> None:
        target = self._target(nsp, only)
        if target is not None and isinstance(room, str):
            target.sockets_leave(room)

    def _disconnect(self, nsp: Any, close: Any, only: Any = None) -> None:
        target = self._target(nsp, only)
        if target is not None:
            target.disconnect_sockets(close is True)

    def _tell(self, event: str, *args: Any) -> None:
        """Emit to the admin sockets, if any: no one watching, nothing encoded."""
        if self.nsp.sockets:
            self.nsp.emit(event, *args)

    # -- server stats ------------------------------------------------------
    def _start_stats(self) -> None:
        loop = self.server._loop
        if loop is not None and (self._timer is None or self._timer_loop is not loop):
            self._timer = loop.call_later(self.server_stats_interval, self._tick)
            self._timer_loop = loop

    def _tick(self) -> None:
        self._timer = None
        if self.server._loop is None:  # stopped serving: the next serve() starts it again
            return
        events = self.stats.take()  # taken even when no one watches: nothing piles up
        if self.nsp.sockets:
            self.nsp.emit("server_stats", self._server_stats(events))
        self._start_stats()

    def _server_stats(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        sessions = list(self.server._sessions.values())
        return {
            "serverId": self.server_id,
            "hostname": _socket.gethostname(),
            "pid": os.getpid(),
            "uptime": time.monotonic() - self._started,
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions if s.transport.name == "polling"),
            "aggregatedEvents": events,
            "namespaces": [
                {"name": nsp.name, "socketsCount": len(nsp.sockets)}
                for nsp in list(self.server._namespaces.values())
            ],
        }

    # -- development mode: sockets, rooms, events --------------------------
    def watch_namespace(self, nsp: Namespace) -> None:
        """Report ``nsp``'s sockets (called for each namespace, also those made later)."""
        if self.development and self._on_socket not in nsp._connection_handlers:
            nsp._connection_handlers.insert(0, self._on_socket)  # before the app's own

    def _socket_connected(self, socket: Socket) -> None:
        nsp = socket.namespace.name
        self._tell("socket_connected", _serialize(socket), _now())
        sid = socket.id

        @socket.on("disconnect")
        def gone(reason: str) -> None:
            self._tell("socket_disconnected", nsp, sid, reason, _now())

        if socket.namespace is self.nsp:
            return  # the UI's own events are not reported to itself

        def received(*data: Any) -> None:
            if self.nsp.sockets:
                self.nsp.emit("event_received", nsp, sid, list(data), _now())

        def sent(*data: Any) -> None:
            if self.nsp.sockets:
                self.nsp.emit("event_sent", nsp, sid, list(data), _now())

        socket.on_any(received)
        socket.on_any_outgoing(sent)

    def joining(self, socket: Socket, rooms: Set[str]) -> None:
        """``socket`` is about to join ``rooms``: the new ones are reported."""
        if self.development and self.nsp.sockets:
            mine = socket.namespace.adapter.socket_rooms(socket.id)
            for room in rooms:
                if room not in mine:
                    self.nsp.emit("room_joined", socket.namespace.name, room, socket.id, _now())

    def leaving(self, socket: Socket, room: str) -> None:
        """``socket`` is about to leave ``room``: reported if it is in it."""
        watched = self.development and self.nsp.sockets
        if watched and room in socket.namespace.adapter.socket_rooms(socket.id):
            self.nsp.emit("room_left", socket.namespace.name, room, socket.id, _now())


def _taps_of(server: Server) -> list[Tap]:
    from .server import _taps

    return _taps(server._tap)


def _serialize(socket: Socket) -> dict[str, Any]:
    """A socket as the UI reads it (``serialize()`` in the package's ``dist/index.js``)."""
    handshake = socket.handshake
    headers = handshake.headers
    address = headers.get("cf-connecting-ip") or headers.get("x-forwarded-for") or handshake.address
    return {
        "id": socket.id,
        "clientId": socket._conn.sid[:12],  # as Node: a prefix of the Engine.IO id, not all
        "transport": socket.transport,
        "nsp": socket.namespace.name,
        "data": _plain(socket._data) if socket._data else {},
        "handshake": {
            "address": address,
            "headers": headers,
            "query": handshake.query,
            "issued": handshake.issued,
            "secure": handshake.secure,
            "time": handshake.time,
            "url": handshake.url,
            "xdomain": handshake.xdomain,
            # not auth: it may hold the app's secrets (Node leaves it out too)
        },
        "rooms": sorted(socket.rooms),
    }


def _plain(data: dict[str, Any]) -> Any:
    """``socket.data`` as JSON can carry it (what cannot be is shown as its repr)."""
    return orjson.loads(orjson.dumps(data, default=repr))

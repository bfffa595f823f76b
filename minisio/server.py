"""Server and Namespace: the user API, and serve()/run()."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .adapter import Adapter, Flags, SessionAwareAdapter
from .broadcast import BroadcastOperator, RoomNames, _check_event, room_names
from .engine import Session
from .handlers import EMITTED, Emitted, Handler
from .http import HttpConnection
from .recovery import KeptSession, Recovery
from .request import HttpRequest
from .trace import LogTap, Tap, Taps
from .websocket import wait_closing

if TYPE_CHECKING:
    from .admin import Instrumentation
    from .classns import ClassNamespace
    from .dynamic import NamespaceCheck, ParentNamespace
    from .socket import Socket

__all__ = ["Namespace", "Server"]

logger = logging.getLogger("minisio")

F = TypeVar("F", bound=Callable[..., Any])

_TRANSPORTS = ("polling", "websocket")

#: ``allow_request``: true accepts; False, a message (str) or raising ConnectionRefused refuses.
AllowRequest = Callable[[HttpRequest], Any]
#: ``handshake_headers`` / ``response_headers``: the headers to add, as pairs or a dict.
HeaderHook = Callable[[HttpRequest], Any]
CorsOrigins = str | Sequence[str] | Callable[[str], bool] | None


def _cors_origins(allowed: CorsOrigins) -> str | list[str] | Callable[[str], bool] | None:
    """python-socketio's shapes: "*" or a list with "*" (any), a str, a list, a function, []."""
    if allowed is None or callable(allowed):
        return allowed
    if isinstance(allowed, str):
        return "*" if allowed == "*" else [allowed]
    origins = list(allowed)
    if not all(isinstance(o, str) for o in origins):
        raise TypeError("cors_allowed_origins is a str, a list of str or fn(origin) -> bool")
    return "*" if "*" in origins else origins


# A timeout longer than this, in seconds, was surely meant in milliseconds.
_MILLISECONDS_HABIT = 1000


def _warn_milliseconds(**timeouts: float) -> None:
    """Warn of ``Server(ping_interval=25000)``: Node's options are in milliseconds, these not."""
    for name, value in timeouts.items():
        if value > _MILLISECONDS_HABIT:
            warnings.warn(
                f"{name}={value!r} is in seconds here ({value / 3600:.1f} hours), not "
                f"milliseconds as in Node: did you mean {name}={value / 1000:g}?",
                stacklevel=3,
            )


class Namespace:
    """A namespace: its own connection handlers, middleware, sockets and rooms."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.name = name
        self.sockets: dict[str, Socket] = {}  # socket id -> socket
        self.adapter = self._new_adapter()
        # The parent namespace (io.of(regex or function)) that made this one, if any.
        self._parent: ParentNamespace | None = None
        # Sockets whose async middleware (or async namespace check) runs: a
        # child with none of these and no sockets is empty.
        self._joining = 0
        self._middlewares: list[Handler] = []
        self._async_middleware = False
        self._connection_handlers: list[Handler] = []
        # Told when a session kept for connection state recovery is gone for good.
        self._expired_handlers: list[Handler] = []
        # Handlers of events other nodes send with server_side_emit().
        self._server_handlers: dict[str, list[Handler]] = {}
        # Sockets with on_any_outgoing listeners: a broadcast tests this alone.
        self._outgoing: set[Socket] = set()
        # Ack ids are the namespace's, as in Node: one id serves every
        # recipient of a broadcast with acks.
        self._ack_ids = 0

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"

    def _new_adapter(self) -> Adapter:
        return self.server._adapter(self)

    # A namespace reads as the mapping of its sockets by id, so that
    # ``io.sockets`` (the main namespace, as in Node) still answers the dict
    # uses it had: ``io.sockets[sid]``, ``sid in io.sockets``, ``len()``, ...
    def __getitem__(self, sid: str) -> Socket:
        return self.sockets[sid]

    def __contains__(self, sid: object) -> bool:
        return sid in self.sockets

    def __iter__(self) -> Iterator[str]:
        return iter(self.sockets)

    def __len__(self) -> int:
        return len(self.sockets)

    def get(self, sid: str, default: Any = None) -> Any:
        """``self.sockets.get(sid, default)``."""
        return self.sockets.get(sid, default)

    def keys(self) -> Any:
        """The socket ids (``self.sockets.keys()``)."""
        return self.sockets.keys()

    def values(self) -> Any:
        """The sockets (``self.sockets.values()``)."""
        return self.sockets.values()

    def items(self) -> Any:
        """``self.sockets.items()``."""
        return self.sockets.items()

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> Any:
        """Register a handler; usable as a decorator.

        ``connection`` handlers get the new socket: ``fn(socket)``. Any other
        event is one that other nodes of a cluster send with
        :meth:`server_side_emit`: the handler gets its arguments, and its
        return value answers :meth:`server_side_emit_with_ack`. (Events from
        clients are ``socket.on()``'s.)

        ``session_expired`` handlers (minisio's; Node has none) get the
        :class:`~minisio.recovery.KeptSession` (``id``, ``rooms``, ``data``)
        of a socket kept for connection state recovery once it is gone for
        good: not back within ``max_disconnection_duration``, pushed out by
        the store's bounds, or come back with an offset that cannot be
        replayed. A socket that recovers is not expired.
        """

        def register(fn: F) -> F:
            if event in ("connection", "connect"):
                self._connection_handlers.append(_takes_the_socket(fn, "a connection handler"))
            elif event == "session_expired":
                self._expired_handlers.append(_takes_the_socket(fn, "a session_expired handler"))
            else:
                _check_event(event)
                self._server_handlers.setdefault(event, []).append(Handler(fn))
            return fn

        return register if handler is None else register(handler)

    def use(self, middleware: F) -> F:
        """Add connect middleware ``fn(socket)``, plain or coroutine, run in order.

        Raise :class:`~minisio.ConnectionRefused` to refuse the connection;
        the client gets ``connect_error`` with the message. Returning
        ``False`` or raising the built-in ``ConnectionRefusedError(message,
        data)`` refuse too, as in python-socketio.
        """
        handler = _takes_the_socket(middleware, "middleware")
        self._middlewares.append(handler)
        self._async_middleware = self._async_middleware or handler.is_async
        return middleware

    # Routing: every route is one BroadcastOperator.
    def to(self, *rooms: RoomNames) -> BroadcastOperator:
        """The sockets in ``rooms`` (a socket id is a room); names or lists of names."""
        return BroadcastOperator(self, room_names(rooms))

    in_ = to

    def except_(self, *rooms: RoomNames) -> BroadcastOperator:
        """Every socket but those in ``rooms``."""
        return BroadcastOperator(self, frozenset(), room_names(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Every socket, ``volatile`` (see :attr:`BroadcastOperator.volatile`)."""
        return BroadcastOperator(self, flags=Flags(volatile=True))

    def compress(self, compress: bool) -> BroadcastOperator:
        """Every socket, ``compress(False)`` (see :meth:`BroadcastOperator.compress`)."""
        return BroadcastOperator(self, flags=Flags(compress=bool(compress)))

    @property
    def local(self) -> BroadcastOperator:
        """Every socket of this node only (see :attr:`BroadcastOperator.local`)."""
        return BroadcastOperator(self, flags=Flags(local=True))

    def emit(self, event: str, *args: Any) -> Emitted:
        """Send an event to every socket in the namespace."""
        BroadcastOperator(self).emit(event, *args)
        return EMITTED

    def send(self, *args: Any) -> Emitted:
        """Emit the ``message`` event to every socket in the namespace (Node's ``send()``)."""
        return self.emit("message", *args)

    async def fetch_sockets(self) -> list[Socket]:
        """Every socket of the namespace (on every node, with a cluster adapter)."""
        return await BroadcastOperator(self).fetch_sockets()

    def sockets_join(self, *rooms: str) -> None:
        """Make every socket of the namespace join ``rooms``."""
        BroadcastOperator(self).sockets_join(*rooms)

    def sockets_leave(self, *rooms: str) -> None:
        """Make every socket of the namespace leave ``rooms``."""
        BroadcastOperator(self).sockets_leave(*rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace (``close=True``: their connections too)."""
        BroadcastOperator(self).disconnect_sockets(close)

    async def server_count(self) -> int:
        """How many nodes serve this namespace (1 without a cluster adapter)."""
        return await self.adapter.server_count()

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Send an event to the handlers (``on(event)``) of this namespace on the other nodes."""
        _check_event(event)
        server = self.server
        if server._loop_thread != threading.get_ident() and server._loop is not None:
            server._loop.call_soon_threadsafe(self.server_side_emit, event, *args)
            return
        self.adapter.server_side_emit([event, *args])

    async def server_side_emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """The same, and wait for each other node's answer: their list, in arrival order.

        Raises :class:`~minisio.ClusterError` when a node does not answer in
        time (its ``results`` has the answers that came).
        """
        _check_event(event)
        return await self.adapter.server_side_emit_with_ack([event, *args])

    def _on_server_side_emit(
        self, event: str, args: list[Any], reply: Callable[[Any], None] | None
    ) -> None:
        """An event from another node: run its handlers; the first one answers ``reply``."""
        for handler in self._server_handlers.get(event, ()):
            fitted = handler.fit(args)
            if handler.is_async:
                _spawn(_answer_async(handler, fitted, reply, event))
            else:
                try:
                    result = handler.fn(*fitted)
                except Exception:
                    logger.exception("server-side handler for %r failed", event)
                    result = None
                if reply is not None:
                    reply(result)
            reply = None

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Every socket of the namespace, for an ``emit_with_ack`` that waits ``seconds``."""
        return BroadcastOperator(self).timeout(seconds)

    def _next_ack_id(self) -> int:
        ack_id = self._ack_ids
        self._ack_ids += 1
        return ack_id

    # -- called by connections --------------------------------------------
    def _add(self, socket: Socket) -> None:
        self.sockets[socket.id] = socket
        rooms = (socket.id, *(socket._early_rooms or ()))
        socket._early_rooms = None
        self.adapter.add_all(socket.id, rooms)
        if socket._any_out is not None:  # listeners added in middleware
            self._outgoing.add(socket)

    def _remove(self, socket: Socket) -> None:
        self.sockets.pop(socket.id, None)
        self.adapter.delete_all(socket.id)
        if self._parent is not None and not self.sockets and not self._joining:
            self._parent._emptied(self)

    def _session_expired(self, session: KeptSession) -> None:
        for handler in self._expired_handlers:
            if handler.is_async:
                _spawn(_run_expired_handler(handler, session, self.name))
                continue
            try:
                handler.fn(session)
            except Exception:
                logger.exception("session_expired handler of %s failed", self.name)

    def _on_connection(self, socket: Socket) -> None:
        for handler in self._connection_handlers:
            if handler.is_async:
                socket._conn.spawn(_run_connection_handler(handler, socket))
                continue
            try:
                handler.fn(socket)
            except Exception:
                logger.exception("connection handler of %s failed", self.name)


def _taps(tap: Tap | None) -> list[Tap]:
    if tap is None:
        return []
    return list(tap.taps) if isinstance(tap, Taps) else [tap]


def _takes_the_socket(fn: Callable[..., Any], what: str) -> Handler:
    """Check, at registration, that ``fn`` can be called as ``fn(socket)``."""
    handler = Handler(fn)
    if handler.min_args > 1 or handler.max_args == 0:
        raise TypeError(
            f"{what} is called with the socket alone: fn(socket) "
            "(raise minisio.ConnectionRefused instead of calling next(err))"
        )
    return handler


_background: set[asyncio.Future[Any]] = set()


class _Nothing:
    """What ``close()`` returns when there is nothing to wait for: an awaitable no-op."""

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_NOTHING = _Nothing()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


def _background_done(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task failed", exc_info=task.exception())


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _answer_async(
    handler: Handler, args: list[Any], reply: Callable[[Any], None] | None, event: str
) -> None:
    try:
        result = await handler.fn(*args)
    except Exception:
        logger.exception("server-side handler for %r failed", event)
        result = None
    if reply is not None:
        reply(result)


async def _run_connection_handler(handler: Handler, socket: Socket) -> None:
    try:
        await handler.fn(socket)
    except Exception:
        logger.exception("connection handler of %s failed", socket.namespace.name)


async def _run_expired_handler(handler: Handler, session: KeptSession, name: str) -> None:
    try:
        await handler.fn(session)
    except Exception:
        logger.exception("session_expired handler of %s failed", name)


class Server:
    """A Socket.IO server: Engine.IO v4 over long-polling and WebSocket, Socket.IO v5 on top.

    The main namespace ``/`` is the server itself: ``on``, ``use``, ``emit``,
    ``to`` and ``except_`` act on it; :meth:`of` gives other namespaces.
    """

    def __init__(
        self,
        *,
        path: str = "/socket.io",
        static_dir: str | os.PathLike[str] | None = None,
        serve_client: bool = True,
        cors_allowed_origins: CorsOrigins = None,
        cors_credentials: bool = False,
        transports: Sequence[str] = _TRANSPORTS,
        allow_upgrades: bool = True,
        adapter: Callable[[Namespace], Adapter] = Adapter,
        trace: bool = False,
        compression: bool = False,
        # Timeouts, in seconds
        ping_interval: float = 25,
        ping_timeout: float = 20,
        connect_timeout: float = 45,
        handshake_timeout: float = 10,
        upgrade_timeout: float = 10,
        # Limits
        max_payload: int = 1_000_000,
        max_attachments: int = 10,
        max_depth: int = 32,
        max_namespaces: int = 16,
        max_connections: int = 10_000,
        max_buffer: int = 4_000_000,
        max_pending_handlers: int = 64,
        # Dynamic namespaces
        cleanup_empty_child_namespaces: bool = False,
        max_child_namespaces: int = 10_000,
        # The HTTP side (see minisio.http: once per request or handshake, never per frame)
        trust_proxy: bool = False,
        allow_request: AllowRequest | None = None,
        handshake_headers: HeaderHook | None = None,
        response_headers: HeaderHook | None = None,
        connection_error: Callable[[HttpRequest, int, str], Any] | None = None,
        generate_id: Callable[[HttpRequest], str] | None = None,
        # Connection state recovery (off by default, as in Node)
        connection_state_recovery: Recovery | dict[str, Any] | bool | None = None,
    ) -> None:
        """
        Args:
            path: where Engine.IO listens, as ``path`` in the Node server.
            static_dir: files served at ``/`` (``index.html`` for ``/``); none if None.
            serve_client: serve the official client bundle at
                ``<path>/socket.io.js`` from an installed npm ``socket.io-client``.
            cors_allowed_origins: ``"*"`` (or a list containing it), one
                ``Origin`` value or a list of them, or a plain function
                ``fn(origin) -> bool``; allowed origins get CORS headers and
                preflights. ``[]``: no CORS handling at all (every origin
                accepted, no CORS headers, as in python-socketio). The default,
                None, allows requests without ``Origin`` (not a browser) and
                same-origin ones (``Origin`` matches ``Host``), with no CORS headers.
            cors_credentials: send ``Access-Control-Allow-Credentials: true``
                to allowed origins (pages that poll with ``withCredentials``).
            transports: the Engine.IO transports offered, ``"polling"`` and
                ``"websocket"`` by default; ``["websocket"]`` refuses polling.
            allow_upgrades: let a polling session move to a WebSocket.
            adapter: makes each namespace's adapter, ``adapter(namespace)``:
                where its broadcasts and room operations go. The default keeps
                them on this node.
            trace: log every frame in and out on the ``minisio.trace`` logger.
            compression: permessage-deflate (off, as in the Node server; it
                costs memory per connection).
            ping_interval: seconds between the server's pings.
            ping_timeout: seconds to wait for the pong before closing.
            connect_timeout: seconds a new session has to join a namespace.
            handshake_timeout: seconds a client has to send a whole HTTP request,
                body included, on a new connection or a kept-alive one (slow or
                half-sent requests hold a socket at most this long).
            upgrade_timeout: seconds a probed WebSocket has to finish the
                upgrade; then it is closed and the session keeps polling.
            max_payload: largest frame accepted, in bytes (WebSocket ``max_size``).
            max_attachments: binary attachments per packet.
            max_depth: JSON nesting depth of a packet.
            max_namespaces: namespaces one connection may join.
            max_connections: sessions at once; more get HTTP 503.
            max_buffer: bytes waiting to be sent to one client (emits, and the
                pongs websockets sends by itself) before it is cut as a slow
                consumer; also the bytes of events one client may have
                waiting for a handler slot.
            max_pending_handlers: coroutine handlers running at once for one
                connection; further events wait (see max_buffer), and a
                client with more than 16 times as many waiting is cut.
            cleanup_empty_child_namespaces: forget a namespace made by
                ``of(regex or function)`` once its last socket leaves (Node's
                ``cleanupEmptyChildNamespaces``).
            max_child_namespaces: namespaces ``of(regex or function)`` may
                make, all parents together. Past it, a CONNECT that would make
                one more is refused as an unknown namespace ("Invalid
                namespace") and a warning logged: a pattern such as
                ``^/tenant-\\d+$`` must not let clients fill the memory with
                namespaces (Node has no such bound).
            trust_proxy: believe ``X-Forwarded-Host`` and ``X-Forwarded-Proto``
                (first values): the same-origin check uses them, and
                ``X-Forwarded-Proto: https`` makes ``request.secure`` True.
                Only behind a proxy that sets them: a client can send them too.
            allow_request: ``fn(request)``, plain or async, called with the
                :class:`~minisio.HttpRequest` of every handshake (a polling
                one, or a WebSocket before its 101), as Node's ``allowRequest``.
                A true result accepts; a false one refuses with 403 ``{"code":4,
                "message":"Forbidden"}``; a string, or raising
                :class:`~minisio.ConnectionRefused`, refuses with that message.
                The client gets ``connect_error``. Requests of an existing
                session (polls, the upgrade) are not asked again.
            handshake_headers: ``fn(request) -> [(name, value), ...]`` (or a
                dict), headers added to a handshake's response: the polling
                one carrying the open packet, or the WebSocket's 101 (Node's
                ``initial_headers`` event), e.g. a load balancer's cookie.
            response_headers: the same, for every Engine.IO response: each
                polling answer and every 101 (Node's ``headers`` event).
            connection_error: ``fn(request, code, message)``, told of every
                request refused with an Engine.IO error (Node's
                ``connection_error`` event); its exceptions are logged.
            generate_id: ``fn(request) -> str`` makes session ids (Node's
                ``generateId``); the default is 20 random URL-safe characters.
                An id that is not a URL-safe string, or one in use, refuses
                the handshake (400, code 3).
            connection_state_recovery: keep the sessions of clients that
                lose their connection, and the packets sent meanwhile, so
                that one back within ``max_disconnection_duration`` seconds
                (default 120) is the same socket again (``socket.recovered``)
                and gets what it missed. A dict of :class:`~minisio.Recovery`'s
                fields (``max_disconnection_duration``, ``skip_middlewares``
                and the bounds), a ``Recovery``, or True for the defaults.
                Needs an adapter that keeps sessions: the default one does
                when this is on; the Redis adapter does not (as in Node).
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        timeouts = (ping_interval, ping_timeout, connect_timeout, handshake_timeout)
        _warn_milliseconds(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            connect_timeout=connect_timeout,
            handshake_timeout=handshake_timeout,
            upgrade_timeout=upgrade_timeout,
        )
        if min(*timeouts, upgrade_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if isinstance(transports, str) or not set(transports) <= set(_TRANSPORTS) or not transports:
            raise ValueError('transports is a list of "polling" and "websocket"')
        limits = (
            max_payload,
            max_depth,
            max_namespaces,
            max_connections,
            max_buffer,
            max_child_namespaces,
        )
        if min(limits) < 1 or max_pending_handlers < 1 or max_attachments < 0:
            raise ValueError("limits must be positive")
        self.path = path.rstrip("/") + "/"
        self.static_dir = Path(static_dir).resolve() if static_dir is not None else None
        self.serve_client = serve_client
        self.cors_allowed_origins = _cors_origins(cors_allowed_origins)
        # CORS headers and preflights: not for the same-origin default, nor for [].
        self._cors_headers = self.cors_allowed_origins not in (None, [])
        self.trust_proxy = trust_proxy
        if generate_id is not None and inspect.iscoroutinefunction(generate_id):
            raise TypeError("generate_id is a plain function: fn(request) -> str")
        self.allow_request = allow_request
        self.handshake_headers = handshake_headers
        self.response_headers = response_headers
        self.connection_error = connection_error
        self.generate_id = generate_id
        self.cors_credentials = cors_credentials
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        # A polling session is told it may upgrade only when both are on.
        self._can_upgrade = allow_upgrades and set(self.transports) == set(_TRANSPORTS)
        # What watches every session: the wire trace and/or the admin UI (instrument()).
        self._tap: Tap | None = None
        self._admin: Instrumentation | None = None
        self.trace = trace
        # Folders served at a URL prefix of their own, as {"/admin/": folder}.
        self._mounts: dict[str, Path] = {}
        self.compression = compression
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.upgrade_timeout = upgrade_timeout
        # Bound on a closing handshake, drain included (see WebSocket.end).
        self.close_timeout = 5.0
        # "pingInterval" and "pingTimeout" are sent in milliseconds, never rounded to 0.
        self.ping_interval_ms = max(1, round(ping_interval * 1000))
        self.ping_timeout_ms = max(1, round(ping_timeout * 1000))
        self.max_payload = max_payload
        self.max_attachments = max_attachments
        self.max_depth = max_depth
        self.max_namespaces = max_namespaces
        self.max_connections = max_connections
        self.max_buffer = max_buffer
        self.max_pending_handlers = max_pending_handlers
        self._recovery = Recovery.of(connection_state_recovery)
        if self._recovery is not None and adapter is Adapter:
            adapter = SessionAwareAdapter  # socket.io does the same
        self._adapter = adapter
        self._serving = False
        self.cleanup_empty_child_namespaces = cleanup_empty_child_namespaces
        self.max_child_namespaces = max_child_namespaces
        # The loop serving, and its thread: an emit from another thread is handed to it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._listener: asyncio.Server | None = None
        self._stopped: asyncio.Future[None] | None = None  # set by close(): run() returns
        self._namespaces: dict[str, Namespace] = {}
        # Parent namespaces, made by of(regex or function), in the order made.
        self._parents: list[ParentNamespace] = []
        self._sessions: dict[str, Session] = {}  # sid -> session
        self._http: set[HttpConnection] = set()  # TCP connections still speaking HTTP
        self.main = self.of("/")

    # -- namespaces and the main namespace's API ---------------------------
    @overload
    def of(self, name: str) -> Namespace: ...
    @overload
    def of(self, name: re.Pattern[str] | NamespaceCheck) -> ParentNamespace: ...
    def of(self, name: str | re.Pattern[str] | NamespaceCheck) -> Namespace:
        """The namespace ``name``, created on first use (``"chat"`` means ``"/chat"``).

        Given a compiled regular expression or a function ``fn(name, auth) ->
        bool`` (plain or async), a parent namespace: a client connecting to
        an unknown namespace that one of them accepts makes a child
        namespace, with the parent's ``connection`` handlers and middleware
        (see :mod:`minisio.dynamic`).
        """
        if not isinstance(name, str):
            from .dynamic import ParentNamespace

            parent = ParentNamespace(self, name, len(self._parents))
            self._parents.append(parent)
            return parent
        if not name.startswith("/"):
            name = "/" + name
        if "," in name:
            raise ValueError("a namespace name has no ','")
        nsp = self._namespaces.get(name)
        if nsp is None:
            for parent in self._parents:  # as in Node: a name a regex matches is its child
                if parent.matches(name):
                    return parent._create_child(name)
            nsp = self._add_namespace(Namespace(self, name))
        return nsp

    def _add_namespace(self, nsp: Namespace) -> Namespace:
        self._namespaces[nsp.name] = nsp
        if self._admin is not None:
            self._admin.watch_namespace(nsp)
        if self._serving:  # made while serving: its adapter starts now, on the loop
            loop = self._loop
            if loop is not None and self._loop_thread != threading.get_ident():
                loop.call_soon_threadsafe(_spawn, nsp.adapter.init())
            else:
                _spawn(nsp.adapter.init())
        return nsp

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> Any:
        """A handler of the main namespace: ``connection``, or a server-side event."""
        if handler is None:
            return self.main.on(event)
        return self.main.on(event, handler)

    def use(self, middleware: F) -> F:
        """Connect middleware of the main namespace."""
        return self.main.use(middleware)

    def emit(self, event: str, *args: Any) -> Emitted:
        """Send to every socket of the main namespace."""
        return self.main.emit(event, *args)

    def send(self, *args: Any) -> Emitted:
        """Emit the ``message`` event to every socket of the main namespace."""
        return self.main.emit("message", *args)

    def register_namespace(self, handlers: ClassNamespace) -> Namespace:
        """Serve ``handlers.namespace`` with a class-based namespace's methods (python-socketio).

        See :class:`~minisio.ClassNamespace`; returns the :class:`Namespace`.
        """
        return handlers._register(self)

    def to(self, *rooms: RoomNames) -> BroadcastOperator:
        """The sockets of the main namespace in ``rooms`` (a socket id is a room)."""
        return self.main.to(*rooms)

    in_ = to

    def except_(self, *rooms: RoomNames) -> BroadcastOperator:
        """Every socket of the main namespace but those in ``rooms``."""
        return self.main.except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """The main namespace, ``volatile`` (see :attr:`BroadcastOperator.volatile`)."""
        return self.main.volatile

    def compress(self, compress: bool) -> BroadcastOperator:
        """The main namespace, ``compress(False)`` (see :meth:`BroadcastOperator.compress`)."""
        return self.main.compress(compress)

    @property
    def local(self) -> BroadcastOperator:
        """The main namespace on this node only (see :attr:`BroadcastOperator.local`)."""
        return self.main.local

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Every socket of the main namespace, for an ``emit_with_ack`` that waits ``seconds``."""
        return self.main.timeout(seconds)

    async def fetch_sockets(self) -> list[Socket]:
        """Every socket of the main namespace (on every node, with a cluster adapter)."""
        return await self.main.fetch_sockets()

    def sockets_join(self, *rooms: str) -> None:
        """Make every socket of the main namespace join ``rooms``."""
        self.main.sockets_join(*rooms)

    def sockets_leave(self, *rooms: str) -> None:
        """Make every socket of the main namespace leave ``rooms``."""
        self.main.sockets_leave(*rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the main namespace."""
        self.main.disconnect_sockets(close)

    async def server_count(self) -> int:
        """How many nodes serve the main namespace (1 without a cluster adapter)."""
        return await self.main.server_count()

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Send an event to the main namespace's ``on(event)`` handlers on the other nodes."""
        self.main.server_side_emit(event, *args)

    async def server_side_emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """The same, gathering each other node's answer."""
        return await self.main.server_side_emit_with_ack(event, *args)

    @property
    def trace(self) -> bool:
        """Log every frame in and out on the ``minisio.trace`` logger (sessions opened from now)."""
        return any(isinstance(t, LogTap) for t in _taps(self._tap))

    @trace.setter
    def trace(self, on: bool) -> None:
        others = [t for t in _taps(self._tap) if not isinstance(t, LogTap)]
        self._set_taps([LogTap(), *others] if on else others)

    def _set_taps(self, taps: list[Tap]) -> None:
        self._tap = None if not taps else taps[0] if len(taps) == 1 else Taps(*taps)

    def instrument(
        self,
        auth: Any,
        *,
        mode: str = "development",
        namespace: str = "/admin",
        read_only: bool = False,
        server_id: str | None = None,
        server_stats_interval: float = 2.0,
        ui: bool | str | os.PathLike[str] = True,
        ui_path: str = "/admin/",
    ) -> Instrumentation:
        """Be watched and driven by the official admin UI (``@socket.io/admin-ui`` 0.5).

        See :mod:`minisio.admin` for every argument. ``auth`` is required:
        ``{"username": ..., "password": ...}`` (the plain password; compared
        in constant time), a list of them, a function ``fn(auth) -> bool``
        (plain or async) or ``False`` for none. ``mode="production"`` sends
        only the server stats. ``ui``: serve the UI's files at ``ui_path``
        from an installed npm ``@socket.io/admin-ui`` (True: look for it), a
        folder, or False. Call it before serving.
        """
        from .admin import Instrumentation

        return Instrumentation(
            self,
            auth,
            mode=mode,
            namespace=namespace,
            read_only=read_only,
            server_id=server_id,
            server_stats_interval=server_stats_interval,
            ui=ui,
            ui_path=ui_path,
        )

    @property
    def clients_count(self) -> int:
        """Engine.IO sessions open now (Node's ``io.engine.clientsCount``).

        A session counts from its handshake until its connection is gone, as
        for ``max_connections``.
        """
        return len(self._sessions)

    @property
    def sockets(self) -> Namespace:
        """The main namespace, as in Node (``io.sockets.emit``, ``io.sockets.sockets``).

        It also reads as the mapping of its sockets by id, as ``io.sockets``
        did before: ``io.sockets[sid]``, ``sid in io.sockets``, ``len()``.
        """
        return self.main

    # -- other threads, and python-socketio's task helpers --------------------
    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop, from any thread, in call order.

        Emits and room operations (``emit``, ``sockets_join``, ...) already do
        this by themselves when called from another thread; this is for the
        rest. Raises RuntimeError when the server is not serving.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the server is not serving: no loop to hand the call to")
        if self._loop_thread == threading.get_ident():
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def run_coroutine_threadsafe(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop from another thread (``fetch_sockets()``,
        ``emit_with_ack()``, ...): a ``concurrent.futures.Future`` of its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the server is not serving: no loop to hand the call to")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def start_background_task(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` in the background (python-socketio's name): a coroutine
        function as a task on the loop, a plain one in a daemon thread of its own.

        Call it from the loop. The future it returns gets the result; an
        exception is logged. A plain function may loop forever (python-socketio's
        background thread): the thread is a daemon, so ``io.run()`` still returns
        after ``io.close()`` or Ctrl-C, and the thread ends with the process.
        """
        loop = asyncio.get_running_loop()
        if asyncio.iscoroutinefunction(fn):
            future: asyncio.Future[Any] = asyncio.ensure_future(fn(*args))
        else:
            future = loop.create_future()

            def work() -> None:
                try:
                    outcome: tuple[Any, BaseException | None] = (fn(*args), None)
                except BaseException as exc:
                    outcome = (None, exc)
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                    loop.call_soon_threadsafe(_settle, future, *outcome)

            name = f"minisio-{getattr(fn, '__name__', 'task')}"
            threading.Thread(target=work, name=name, daemon=True).start()
        _background.add(future)
        future.add_done_callback(_background_done)
        return future

    async def sleep(self, seconds: float) -> None:
        """``await io.sleep(s)``: ``asyncio.sleep`` (python-socketio's name)."""
        await asyncio.sleep(seconds)

    # -- running -----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 8000
    ) -> AsyncIterator[asyncio.Server]:
        """Listen on ``host:port`` while the ``async with`` block runs.

        Yields the ``asyncio.Server``; ``server.sockets[0].getsockname()``
        tells the port when ``port=0``. On the way out every session is
        closed ("server shutting down") and the closes are awaited, each
        bounded by a few seconds.
        """
        await self._start()
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: HttpConnection(self), host, port)
        self._listener = listener
        try:
            yield listener
        finally:
            await self._shut()
            await self._stop()

    async def _start(self) -> None:
        """Before serving, whatever the host: this loop is the server's, the adapters start."""
        loop = asyncio.get_running_loop()
        self._serving = True
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._stopped = loop.create_future()
        for nsp in list(self._namespaces.values()):
            await nsp.adapter.init()

    async def _stop(self) -> None:
        """After serving (the sessions closed by :meth:`_shut`): the adapters stop."""
        self._serving = False
        self._loop = self._loop_thread = self._listener = None
        for nsp in list(self._namespaces.values()):
            await nsp.adapter.close()

    def close(self) -> Awaitable[None]:
        """Stop listening and disconnect every session ("server shutting down").

        The sessions are told at once; ``await io.close()`` also waits for
        their connections to close (as ``io.close()`` in Node). ``run()``
        returns; a ``serve()`` block goes on until it ends. From another
        thread, the close is handed to the server's loop.
        """
        loop = self._loop
        if loop is not None and self._loop_thread != threading.get_ident():
            loop.call_soon_threadsafe(self.close)
            return _NOTHING
        self._disconnect_all()
        if self._listener is not None:
            self._listener.close()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        if loop is None:
            return _NOTHING  # not serving: nothing to wait for
        task = asyncio.ensure_future(self._shut())
        _background.add(task)
        task.add_done_callback(_background.discard)
        return task

    def _disconnect_all(self) -> None:
        for session in list(self._sessions.values()):
            session.close("server shutting down", code=1001)

    async def _shut(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._disconnect_all()
        for session in list(self._sessions.values()):
            # A probe kept for its "5" (Session.close): nothing will come of it now.
            session._drop_probe()
        for conn in list(self._http):
            conn.shut()
        await wait_closing(self.close_timeout)

    def run(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Serve until interrupted (blocking)."""

        async def main() -> None:
            async with self.serve(host, port):
                assert self._stopped is not None
                await self._stopped  # until close()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())

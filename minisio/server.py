"""Server and Namespace: the user API, and the HTTP side of the WebSocket server."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from websockets.asyncio.server import Server as WSServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .adapter import Adapter
from .broadcast import BroadcastOperator
from .connection import Connection, WebSocket
from .handlers import Handler

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["Namespace", "Server"]

logger = logging.getLogger("minisio")

F = TypeVar("F", bound=Callable[..., Any])

# Engine.IO's handshake errors (packages/engine.io/lib/server.ts, Server.errors).
_UNKNOWN_TRANSPORT = (0, "Transport unknown")
_UNKNOWN_SID = (1, "Session ID unknown")
_BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
_BAD_REQUEST = (3, "Bad request")
_FORBIDDEN = (4, "Forbidden")
_UNSUPPORTED_VERSION = (5, "Unsupported protocol version")

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

_CLIENT_FILES = (
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
)

_REPO = Path(__file__).resolve().parent.parent
_MAX_STATIC_FILE = 8 * 2**20


class Namespace:
    """A namespace: its own connection handlers, middleware, sockets and rooms."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.name = name
        self.sockets: dict[str, Socket] = {}  # socket id -> socket
        self.adapter = Adapter()
        self._middlewares: list[Handler] = []
        self._async_middleware = False
        self._connection_handlers: list[Handler] = []

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> Any:
        """Register a ``connection`` handler: ``fn(socket)``; usable as a decorator."""
        if event not in ("connection", "connect"):
            raise ValueError(f"a namespace has no {event!r} event; use socket.on() for events")

        def register(fn: F) -> F:
            self._connection_handlers.append(_takes_the_socket(fn, "a connection handler"))
            return fn

        return register if handler is None else register(handler)

    def use(self, middleware: F) -> F:
        """Add connect middleware ``fn(socket)``, plain or coroutine, run in order.

        Raise :class:`~minisio.ConnectionRefused` to refuse the connection;
        the client gets ``connect_error`` with the message.
        """
        handler = _takes_the_socket(middleware, "middleware")
        self._middlewares.append(handler)
        self._async_middleware = self._async_middleware or handler.is_async
        return middleware

    # Routing: every route is one BroadcastOperator.
    def to(self, *rooms: str) -> BroadcastOperator:
        """The sockets in ``rooms`` (a socket id is a room)."""
        return BroadcastOperator(self, frozenset(rooms))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Every socket but those in ``rooms``."""
        return BroadcastOperator(self, frozenset(), frozenset(rooms))

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket in the namespace."""
        BroadcastOperator(self).emit(event, *args)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace (``close=True``: their connections too)."""
        BroadcastOperator(self).disconnect(close)

    # -- called by connections --------------------------------------------
    def _add(self, socket: Socket) -> None:
        self.sockets[socket.id] = socket
        rooms = (socket.id, *(socket._early_rooms or ()))
        socket._early_rooms = None
        self.adapter.join(socket.id, rooms)

    def _remove(self, socket: Socket) -> None:
        self.sockets.pop(socket.id, None)
        self.adapter.leave_all(socket.id)

    def _on_connection(self, socket: Socket) -> None:
        for handler in self._connection_handlers:
            if handler.is_async:
                socket._conn.spawn(_run_connection_handler(handler, socket))
                continue
            try:
                handler.fn(socket)
            except Exception:
                logger.exception("connection handler of %s failed", self.name)


def _takes_the_socket(fn: Callable[..., Any], what: str) -> Handler:
    """Check, at registration, that ``fn`` can be called as ``fn(socket)``."""
    handler = Handler(fn)
    if handler.min_args > 1 or handler.max_args == 0:
        raise TypeError(
            f"{what} is called with the socket alone: fn(socket) "
            "(raise minisio.ConnectionRefused instead of calling next(err))"
        )
    return handler


async def _run_connection_handler(handler: Handler, socket: Socket) -> None:
    try:
        await handler.fn(socket)
    except Exception:
        logger.exception("connection handler of %s failed", socket.namespace.name)


class Server:
    """A Socket.IO server: Engine.IO v4 over WebSocket, Socket.IO v5 on top.

    The main namespace ``/`` is the server itself: ``on``, ``use``, ``emit``,
    ``to`` and ``except_`` act on it; :meth:`of` gives other namespaces.
    """

    def __init__(
        self,
        *,
        path: str = "/socket.io",
        static_dir: str | os.PathLike[str] | None = None,
        serve_client: bool = True,
        cors_allowed_origins: str | Sequence[str] | None = None,
        trace: bool = False,
        compression: bool = False,
        # Timeouts, in seconds
        ping_interval: float = 25,
        ping_timeout: float = 20,
        connect_timeout: float = 45,
        handshake_timeout: float = 10,
        # Limits
        max_payload: int = 1_000_000,
        max_attachments: int = 10,
        max_depth: int = 32,
        max_namespaces: int = 16,
        max_connections: int = 10_000,
        max_buffer: int = 4_000_000,
        max_pending_handlers: int = 64,
    ) -> None:
        """
        Args:
            path: where Engine.IO listens, as ``path`` in the Node server.
            static_dir: files served at ``/`` (``index.html`` for ``/``); none if None.
            serve_client: serve the official client bundle at
                ``<path>/socket.io.js`` from an installed npm ``socket.io-client``.
            cors_allowed_origins: ``"*"``, or the list of allowed ``Origin``
                values. The default allows requests without ``Origin`` (not a
                browser) and same-origin ones (``Origin`` matches ``Host``).
            trace: log every frame in and out on the ``minisio.trace`` logger.
            compression: permessage-deflate (off, as in the Node server; it
                costs memory per connection).
            ping_interval: seconds between the server's pings.
            ping_timeout: seconds to wait for the pong before closing.
            connect_timeout: seconds a new session has to join a namespace.
            handshake_timeout: seconds a client has to complete its HTTP request
                (slow or half-sent requests hold a socket at most this long).
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
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        if min(ping_interval, ping_timeout, connect_timeout, handshake_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        limits = (max_payload, max_depth, max_namespaces, max_connections, max_buffer)
        if min(limits) < 1 or max_pending_handlers < 1 or max_attachments < 0:
            raise ValueError("limits must be positive")
        self.path = path.rstrip("/") + "/"
        self.static_dir = Path(static_dir).resolve() if static_dir is not None else None
        self.serve_client = serve_client
        if isinstance(cors_allowed_origins, str) and cors_allowed_origins != "*":
            cors_allowed_origins = [cors_allowed_origins]
        self.cors_allowed_origins = cors_allowed_origins
        self.trace = trace
        self.compression = compression
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        # Bound on a closing handshake, drain included (see Connection.close).
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
        self._namespaces: dict[str, Namespace] = {}
        self._connections: set[Connection] = set()
        self._client_warned = False
        self.main = self.of("/")

    # -- namespaces and the main namespace's API ---------------------------
    def of(self, name: str) -> Namespace:
        """The namespace ``name``, created on first use."""
        if not name.startswith("/") or "," in name:
            raise ValueError("a namespace name starts with '/' and has no ','")
        nsp = self._namespaces.get(name)
        if nsp is None:
            nsp = self._namespaces[name] = Namespace(self, name)
        return nsp

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> Any:
        """``connection`` handler of the main namespace."""
        if handler is None:
            return self.main.on(event)
        return self.main.on(event, handler)

    def use(self, middleware: F) -> F:
        """Connect middleware of the main namespace."""
        return self.main.use(middleware)

    def emit(self, event: str, *args: Any) -> None:
        """Send to every socket of the main namespace."""
        self.main.emit(event, *args)

    def to(self, *rooms: str) -> BroadcastOperator:
        """The sockets of the main namespace in ``rooms`` (a socket id is a room)."""
        return self.main.to(*rooms)

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Every socket of the main namespace but those in ``rooms``."""
        return self.main.except_(*rooms)

    @property
    def sockets(self) -> dict[str, Socket]:
        """Sockets of the main namespace, by id."""
        return self.main.sockets

    # -- running -----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 8000) -> AsyncIterator[WSServer]:
        """Listen on ``host:port`` while the ``async with`` block runs.

        Yields the ``websockets`` server; ``server.sockets[0].getsockname()``
        tells the port when ``port=0``.
        """
        async with serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            compression="deflate" if self.compression else None,
            # Engine.IO's ping/pong is the one liveness clock.
            ping_interval=None,
            ping_timeout=None,
            max_size=self.max_payload,
            create_connection=WebSocket,
            open_timeout=self.handshake_timeout,
            close_timeout=self.close_timeout,
            server_header=None,
        ) as server:
            try:
                yield server
            finally:
                self.close()

    def close(self) -> None:
        """Disconnect every session ("server shutting down")."""
        for conn in list(self._connections):
            conn.close("server shutting down", code=1001)

    def run(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Serve until interrupted (blocking)."""

        async def main() -> None:
            async with self.serve(host, port):
                await asyncio.Future()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, WebSocket)
        conn = Connection(self, ws)
        self._connections.add(conn)
        await conn.run()

    # -- HTTP --------------------------------------------------------------
    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        response = self._answer(request)
        if response is not None and request.method == "HEAD":
            # RFC 9110 9.3.2: "the server MUST NOT send content in the response" to HEAD.
            response = Response(response.status_code, response.reason_phrase, response.headers)
        return response

    def _answer(self, request: Request) -> Response | None:
        try:
            url = urlsplit(request.path)
        except ValueError:  # "//[x/" reads as an authority with an invalid IPv6 host
            return _text(400, "Bad Request\n")
        if url.path.startswith(self.path) and url.path[len(self.path) :] == "":
            if request.method != "GET":
                return _engine_error(400, _BAD_HANDSHAKE_METHOD)
            return self._check_handshake(request, url.query)
        if request.method not in ("GET", "HEAD"):
            response = _text(405, "Method Not Allowed\n")
            response.headers["Allow"] = "GET, HEAD"
            return response
        if url.path.startswith(self.path):
            rest = url.path[len(self.path) :]
            if self.serve_client and rest in _CLIENT_FILES:
                return self._client_file(rest)
            return _text(404, "Not Found\n")
        return self._static(url.path)

    def _check_handshake(self, request: Request, query: str) -> Response | None:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        # Checked in the order of the reference server's verify().
        if params.get("transport") != "websocket":
            # Also the answer to HTTP long-polling, which minisio does not offer.
            return _engine_error(400, _UNKNOWN_TRANSPORT)
        if "sid" in params:
            return _engine_error(400, _UNKNOWN_SID)
        if any(len(request.headers.get_all(name)) > 1 for name in ("Upgrade", "Origin", "Host")):
            # Ambiguous, and Headers.get() would raise: refuse instead of answering 500.
            return _engine_error(400, _BAD_REQUEST)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _engine_error(400, _BAD_REQUEST)
        if not self._origin_allowed(request.headers):
            logger.warning("refused origin %r", request.headers.get("Origin"))
            return _engine_error(403, _FORBIDDEN)
        if params.get("EIO") != "4":
            return _engine_error(400, _UNSUPPORTED_VERSION)
        if len(self._connections) >= self.max_connections:
            logger.warning("refused a connection: max_connections reached")
            return _text(503, "Too many connections\n")
        return None

    def _origin_allowed(self, headers: Headers) -> bool:
        origin = headers.get("Origin")
        allowed = self.cors_allowed_origins
        if allowed == "*" or origin is None:
            return True
        if allowed is not None:
            return origin in allowed
        host = headers.get("Host")
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # "http://[": malformed, so not the same origin
            return False
        return host is not None and netloc == host

    def _static(self, path: str) -> Response:
        root = self.static_dir
        if root is None:
            return _text(404, "Not Found\n")
        name = unquote(path)
        if "\\" in name or "\0" in name or not name.startswith("/"):
            return _text(400, "Bad Request\n")
        parts = [p for p in name.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return _text(404, "Not Found\n")
        target = root.joinpath(*parts) if parts else root
        try:  # any OSError, e.g. ENAMETOOLONG from is_dir(), means no such file
            if target.is_dir():
                target = target / "index.html"
            real = target.resolve(strict=True)
            if not real.is_relative_to(root) or not real.is_file():
                return _text(404, "Not Found\n")
            return _file(real)
        except (OSError, RuntimeError):
            return _text(404, "Not Found\n")

    def _client_file(self, name: str) -> Response:
        for base in _client_dirs():
            candidate = base / name
            if candidate.is_file():
                return _file(candidate)
        if not self._client_warned:
            self._client_warned = True
            logger.warning(
                "the Socket.IO client bundle is missing: run `npm ci` in %s "
                "to install socket.io-client",
                _REPO,
            )
        return _text(
            404,
            "socket.io-client is not installed: run `npm ci` in the minisio "
            "checkout (or set MINISIO_CLIENT_DIR to its dist/ folder)\n",
        )


def _client_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("MINISIO_CLIENT_DIR")
    if env:
        dirs.append(Path(env))
    for base in (Path.cwd(), _REPO):
        dirs.append(base / "node_modules" / "socket.io-client" / "dist")
    return dirs


def _response(status: int, content_type: str, body: bytes, *extra: tuple[str, str]) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _engine_error(status: int, error: tuple[int, str]) -> Response:
    code, message = error
    return _response(status, "application/json", orjson.dumps({"code": code, "message": message}))


def _text(status: int, text: str) -> Response:
    return _response(status, "text/plain; charset=utf-8", text.encode())


def _file(path: Path) -> Response:
    if path.stat().st_size > _MAX_STATIC_FILE:
        # Read whole and on the event loop: fine for a page and its scripts, not for media.
        logger.warning("not serving %s: larger than %d bytes", path.name, _MAX_STATIC_FILE)
        return _text(404, "Not Found\n")
    content_type = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return _response(
        200,
        content_type,
        path.read_bytes(),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    )

"""The same sessions hosted by an ASGI server (uvicorn, Hypercorn, ...) instead of minisio's own.

:class:`ASGIApp` is an ASGI 3 application. Under ``io.path`` it speaks
Engine.IO with the very code of the standalone server: each ``http`` scope
is one polling request and each ``websocket`` scope one WebSocket, decided
by :class:`~minisio.http.EngineHttp` (the routing, validation, CORS, error
bodies and hooks of :mod:`minisio.http`) and carried by the same
:class:`~minisio.engine.Session`. The client bundle and the static folder are
served as :mod:`minisio.http` serves them; every other request goes to
``other_app`` (or gets a 404), and so does the ``lifespan`` scope, with
minisio started before the application and stopped after it.

ASGI sends are awaits and minisio's emits are not: a WebSocket here has an
outgoing queue, drained by one task per connection, and the queue is held to
``max_buffer`` bytes as a standalone WebSocket's write buffer is (a client
that does not read is cut, alone). A held polling GET waits in its own
request's coroutine for the payload :class:`~minisio.polling.Polling` hands
it. Nothing here imports a web framework or an ASGI server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from . import files
from .engine import Session
from .files import Reply
from .http import BAD_REQUEST, EngineHttp
from .http11 import Headers, HttpError, Request

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ASGIApp", "AsgiWebSocket"]

logger = logging.getLogger("minisio")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Any ASGI 3 application: ``await app(scope, receive, send)``.
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_NOT_FOUND = files.text(404, "Not Found\n")
_NOT_ALLOWED = files.text(405, "Method Not Allowed\n", ("Allow", "GET, HEAD"))
# The last text packet made into an ASGI message: a broadcast hands the same
# bytes object to every recipient, which then shares one ``str`` and one dict.
_last: tuple[bytes, Message] = (b"", {})


class ASGIApp:
    """``io`` as an ASGI application; requests outside it go to ``other_app``.

    ``app = minisio.ASGIApp(io, fastapi_app)`` and ``uvicorn module:app``
    serve both on one port; or ``fastapi_app.mount("/", minisio.ASGIApp(io))``
    (a sub-path works too: the client's ``path`` is then ``"/sub" + io.path``).

    minisio starts with the ``lifespan`` startup, before ``other_app``'s, and
    stops after ``other_app``'s shutdown: every session is closed ("server
    shutting down") and the adapters closed. Mounted apps get no lifespan
    scope (Starlette does not pass it on): minisio then starts with the first
    request, and :meth:`lifespan` gives the host app a context to stop it in.
    """

    def __init__(self, io: Server, other_app: App | None = None) -> None:
        self.io = io
        self.other_app = other_app
        self._started: asyncio.Future[None] | None = None
        self._owns_loop = False  # this app set io._loop (and unsets it when it stops)
        self._stopping = False
        self._sockets: set[AsgiWebSocket] = set()  # WebSockets whose scope still runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            await self._elsewhere(scope, receive, send)
            return
        started = self._started
        if (started is None or not started.done()) and not self._stopping:
            await self._start()  # mounted: no lifespan scope reaches this app
        io = self.io
        path = _route_path(scope)
        if path == io.path:
            if kind == "http":
                await self._polling(scope, receive, send)
            else:
                await self._websocket(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if kind == "http" and method in ("GET", "HEAD"):
            reply: Reply | None = None
            if path.startswith(io.path):
                rest = path[len(io.path) :]
                served = io.serve_client and rest in files.CLIENT_FILES
                reply = files.client_file(rest) if served else _NOT_FOUND
            elif io.static_dir is not None or io._mounts:
                reply = files.http_file(io, path)  # the admin UI's folder, then static_dir
                if reply[0] == 404 and self.other_app is not None:
                    reply = None  # not a file of ours: maybe a page of the app's
            if reply is not None:
                await _send_reply(send, reply)
                return
        elif kind == "http" and self.other_app is None:
            await _send_reply(send, _NOT_ALLOWED)
            return
        await self._elsewhere(scope, receive, send)

    async def _elsewhere(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What is not minisio's: ``other_app``'s, or a 404."""
        if self.other_app is not None:
            await self.other_app(scope, receive, send)
        elif scope["type"] == "http":
            await _send_reply(send, _NOT_FOUND)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await _refuse_websocket(scope, send, _NOT_FOUND)

    # -- starting and stopping -------------------------------------------------
    async def _start(self) -> None:
        """Start minisio once, whoever asks first (the lifespan, or a first request)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await self.startup()
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started.exception()  # retrieved: the caller gets it
                self._started = None
                raise
            self._started.set_result(None)
        else:
            await asyncio.shield(self._started)

    async def startup(self) -> None:
        """What ``io.serve()`` does before it listens: the loop, and the adapters.

        Called by the lifespan startup (or the first request); call it yourself
        only when neither reaches this app.
        """
        io = self.io
        self._stopping = False
        if io._serving:  # already served by io.serve() or another ASGIApp
            return
        self._owns_loop = True
        await io._start()

    async def shutdown(self) -> None:
        """What ``io.serve()`` does on its way out: every session closed, the adapters too.

        The WebSockets' closing handshakes are awaited, each bounded by
        ``io.close_timeout``; held polling GETs get the close packet.
        """
        io = self.io
        self._stopping = True
        self._started = None
        await io._shut()
        if self._sockets:
            await asyncio.wait([ws.ended for ws in self._sockets], timeout=io.close_timeout)
        if self._owns_loop:
            self._owns_loop = False
            await io._stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """minisio started for the ``async with`` block: for an app this one is mounted in.

        ``FastAPI(lifespan=sio_app.lifespan)``, or ``async with
        sio_app.lifespan(): ...`` inside the host app's own lifespan.
        """
        await self._start()
        try:
            yield
        finally:
            await self.shutdown()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The lifespan scope: minisio starts first and stops last; ``other_app`` gets it too."""
        if self.other_app is None:
            await self._own_lifespan(receive, send)
            return
        asked = False  # other_app called receive(): it speaks the lifespan protocol

        async def receive_() -> Message:
            nonlocal asked
            asked = True
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except Exception as exc:
                    logger.exception("minisio failed to start")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
            return message

        async def send_(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.shutdown()
            await send(message)

        try:
            await self.other_app(scope, receive_, send_)
        except Exception:
            if asked:
                raise
            # An app without lifespan support refuses the scope at once; minisio
            # still starts and stops with the server.
            await self._own_lifespan(receive, send)

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except Exception as exc:
                    logger.exception("minisio failed to start")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- Engine.IO -------------------------------------------------------------
    async def _polling(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One polling request (or a preflight, or a refusal) under ``io.path``."""
        io = self.io
        request = _request(scope)
        exchange = _Exchange(io, _address(scope), request, self._stopping)
        exchange._engine(request, scope.get("query_string", b"").decode("latin-1"))
        limit = exchange.body_limit
        if limit is not None and exchange.reply is None:
            try:
                async with asyncio.timeout(io.handshake_timeout):
                    body = await _read_body(receive, request, limit)
            except HttpError as exc:
                exchange._fail(exc)
            except TimeoutError:
                exchange._fail(HttpError(408, "request body not in within handshake_timeout"))
            else:
                if body is None:  # the client left
                    exchange.lost()
                    return
                request.body = body
                exchange._on_request(request)
        if exchange.reply is None:
            await exchange.hold(receive)
        if exchange.reply is not None:
            await _send_reply(send, *exchange.reply)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One WebSocket under ``io.path``: a new session, or the upgrade of a polling one."""
        io = self.io
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        request = _request(scope)
        decider = _Upgrade(io, _address(scope), request, self._stopping)
        decider._engine(request, scope.get("query_string", b"").decode("latin-1"))
        if decider.ws is None and decider.reply is None and decider._deciding is not None:
            with contextlib.suppress(TimeoutError):  # allow_request is thinking
                async with asyncio.timeout(io.handshake_timeout):
                    await asyncio.shield(decider._deciding)
            decider.closed = True  # no answer comes after this
        ws = decider.ws
        if ws is None:
            await _refuse_websocket(scope, send, decider.reply[0] if decider.reply else _NOT_FOUND)
            return
        self._sockets.add(ws)
        try:
            await ws.run(receive, send)
        finally:
            self._sockets.discard(ws)


class _Decision(EngineHttp):
    """One ASGI scope under ``io.path`` being decided; ``reply`` is what to send, if anything."""

    def __init__(self, server: Server, address: str, request: Request, last: bool) -> None:
        self.server = server
        self.address = address
        self.request = request
        self.polling = None
        self.extra = []
        self._view = None
        self._deciding = None
        self.closed = False
        self._last = last
        self.reply: tuple[Reply, bool] | None = None  # the answer, and whether to close after


class _Exchange(_Decision):
    """One polling request under an ASGI server: its answer waits for the request's coroutine."""

    def __init__(self, server: Server, address: str, request: Request, last: bool) -> None:
        super().__init__(server, address, request, last)
        self.body_limit: int | None = None  # a POST: its body is read, up to this
        self._waiter: asyncio.Future[None] | None = None  # set when a held request is answered

    def _respond(self, reply: Reply, *, close: bool = False) -> None:
        if self.reply is not None or self.closed:
            return
        request = self.request
        if request is not None:
            # As the standalone server decides: a body left unread (a refused
            # POST), or a client that asked for it, close the connection.
            unread = request.has_body and self.body_limit is None
            close = close or unread or not request.keep_alive
        status, headers, body = reply
        self.reply = ((status, [*headers, *self.extra], body), close)
        self.extra = []
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expect_body(self, limit: int) -> None:
        self.body_limit = limit

    def _hand_over(self, request: Request, headers: list[tuple[str, str]]) -> None:
        # A WebSocket handshake arrived as a plain request: this server does not
        # speak WebSocket (uvicorn's ws="none", say). The client falls back to polling.
        self._refuse(request, BAD_REQUEST)

    def drop(self) -> None:
        # No TCP connection to cut here: the answer that comes nearest is a
        # bare 400 that closes it.
        self.polling = None
        self._respond((400, [], b""), close=True)

    def _close(self) -> None:
        self._respond(files.text(503, "Server shutting down\n"), close=True)

    async def hold(self, receive: Receive) -> None:
        """Wait for the answer of a held GET (or of ``allow_request``), or for the client to go."""
        loop = asyncio.get_running_loop()
        self._waiter = answered = loop.create_future()
        gone = asyncio.ensure_future(_disconnected(receive))
        # allow_request deciding is bounded as the request it answers; a held GET is not.
        timeout = self.server.handshake_timeout if self._deciding is not None else None
        try:
            await asyncio.wait(
                {answered, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        if self.reply is None:
            self.lost()
            if not gone.done():  # out of time, and the client is still there
                self.reply = (files.text(408, "Request Timeout\n"), True)

    def lost(self) -> None:
        """The client went away before its answer (or ran out of time)."""
        self.closed = True
        polling, self.polling = self.polling, None
        if polling is not None:
            polling.lost(self)


class _Upgrade(_Decision):
    """The decision on one ``websocket`` scope: a refusal, or the WebSocket to run."""

    def __init__(self, server: Server, address: str, request: Request, last: bool) -> None:
        super().__init__(server, address, request, last)
        self.ws: AsgiWebSocket | None = None

    def _respond(self, reply: Reply, *, close: bool = False) -> None:
        if self.reply is None and self.ws is None and not self.closed:
            status, headers, body = reply
            self.reply = ((status, [*headers, *self.extra], body), True)

    def _hand_over(self, request: Request, headers: list[tuple[str, str]]) -> AsgiWebSocket:
        self.ws = ws = AsgiWebSocket(self.server, request, headers)
        return ws

    def _expect_body(self, limit: int) -> None:
        raise AssertionError("a WebSocket handshake has no body")  # refused before

    def drop(self) -> None:
        self.closed = True

    def _close(self) -> None:
        self.closed = True


class AsgiWebSocket:
    """A WebSocket of an ASGI server as a session's transport (``engine.WebSocketLike``).

    Writes are synchronous, as on a standalone WebSocket: each one queues an
    ASGI message; one task per connection sends them in order. The queue
    counts as the standalone write buffer does: past ``max_buffer`` bytes
    unsent, the session is cut (``Session._overflow``), and only it.
    """

    name = "websocket"
    polling = False
    # minisio frames nothing here: the ASGI server does, compression included
    # (its own setting), so compress(False) has nothing to turn off.
    plain = True

    __slots__ = (
        "_close_args",
        "_cut",
        "_headers",
        "_queue",
        "_queued",
        "_task",
        "_wake",
        "_writer",
        "ended",
        "probed",
        "probing",
        "request",
        "server",
        "session",
    )

    def __init__(self, server: Server, request: Request, headers: list[tuple[str, str]]) -> None:
        self.server = server
        self.request = request  # what socket.handshake and socket.request read
        self.session: Session | None = None
        self.probing = False
        self.probed = False
        self._headers = headers  # the 101's, from the header hooks
        self._queue: collections.deque[tuple[Message, int]] = collections.deque()
        self._queued = 0  # bytes in the queue, the one being sent included
        self._close_args: tuple[int, str] | None = None  # end() was called
        self._cut = False  # abort() was called
        self._wake: asyncio.Future[None] | None = None  # the writer waits on it when idle
        self._writer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None  # the scope's coroutine, reading
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- the transport interface of a session ------------------------------
    def start(self, session: Session) -> None:
        self.session = session

    def write(self, text: bytes, attachments: list[bytes], wire: bytes) -> None:
        """Queue a text message and its binary attachments (``wire`` is not needed here)."""
        global _last
        if self._close_args is not None or self._cut:
            return
        key, message = _last
        if key is not text:
            message = {"type": "websocket.send", "text": text.decode()}
            _last = (text, message)
        queue = self._queue
        queue.append((message, len(text)))
        size = len(text)
        for attachment in attachments:
            queue.append(({"type": "websocket.send", "bytes": attachment}, len(attachment)))
            size += len(attachment)
        self._queued += size
        self._flush()

    def write_uncompressed(self, wire: bytes) -> None:
        raise AssertionError("never called: plain is True")

    def write_binary(self, data: bytes) -> None:
        """Queue one binary message (an attachment moved over from polling at the upgrade)."""
        if self._close_args is None and not self._cut:
            self._queue.append(({"type": "websocket.send", "bytes": data}, len(data)))
            self._queued += len(data)
            self._flush()

    def buffered(self) -> int:
        return self._queued

    def end(self, code: int = 1000, message: str = "") -> None:
        """Send what is queued, then the close frame; bounded by ``close_timeout``."""
        if self._close_args is not None or self._cut:
            return
        self._close_args = (code, message)
        loop = asyncio.get_running_loop()
        loop.call_later(self.server.close_timeout, self._too_slow)
        waiter = self._wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def abort(self) -> None:
        """Cut: nothing more is sent, the scope ends (the ASGI server closes the connection)."""
        if self._cut:
            return
        self._cut = True
        self._queue.clear()
        self._queued = 0
        if self._writer is not None:
            self._writer.cancel()
        if self._task is not None and not self.ended.done():
            self._task.cancel()

    # -- internals ---------------------------------------------------------
    def _flush(self) -> None:
        session = self.session
        if session is not None and self._queued > self.server.max_buffer:
            if self.probing:  # cutting a probe ends the probe alone
                logger.warning("%s: probe cut, over the write high-water mark", session.sid)
                self.session = None
                session._drop_probe(close=False)
                self.abort()
            else:
                session._overflow()
            return
        waiter = self._wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _too_slow(self) -> None:
        if not self.ended.done():
            logger.info("closing handshake not finished in time: connection cut")
            self.abort()

    async def run(self, receive: Receive, send: Send) -> None:
        """Accept, then read until the client or the server ends the connection."""
        self._task = asyncio.current_task()
        try:
            await send({"type": "websocket.accept", "headers": _asgi_headers(self._headers)})
            self._writer = asyncio.ensure_future(self._write_all(send))
            limit = self.server.max_payload
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data: str | bytes | None = message.get("text")
                    if data is None:
                        data = message.get("bytes") or b""
                    self._deliver(data, limit)
                elif kind == "websocket.disconnect":
                    self._failed(message.get("code", 1005))
                    break
        except asyncio.CancelledError:
            task = self._task
            if not self._cut or task is None:
                raise
            task.uncancel()  # our own cut: the scope ends normally
        except OSError:  # the ASGI server's "client disconnected" (uvicorn's is an OSError)
            pass
        finally:
            if self._writer is not None:
                self._writer.cancel()
            self._task = None
            if not self.ended.done():
                self.ended.set_result(None)
            session, self.session = self.session, None
            if session is not None:
                session.transport_gone(self)

    def _failed(self, code: int) -> None:
        """The connection ended with ``code``: the reason the sockets get, when it is not
        the peer's close ("transport close").

        1002, 1007, 1009: the ASGI server failed it (a frame over its ``ws_max_size``,
        bad framing, invalid UTF-8), "transport error" as websockets' failures are on
        the standalone server. 1012 (Service Restart): the server is stopping (uvicorn
        closes every WebSocket so before the lifespan shutdown).
        """
        session = self.session
        if session is None or self.probing:
            return
        if code in (1002, 1007, 1009):
            logger.info("closing %s: websocket closed with %d", session.sid, code)
            reason = "transport error"
        elif code == 1012:
            reason = "server shutting down"
        else:
            return
        self._cut = True  # nothing more can be sent
        session.close(reason, code=code)

    def _deliver(self, data: str | bytes, limit: int) -> None:
        session = self.session
        if session is None:
            return  # a refused upgrade, or a probe given up: it is closing
        n = len(data)
        if n > limit // 4 and (n > limit or (isinstance(data, str) and len(data.encode()) > limit)):
            # What websockets' max_size does on the standalone server: 1009.
            if self.probing:
                session._drop_probe()
                return
            logger.info("closing %s: message over max_payload", session.sid)
            session.close("transport error", code=1009, message="message too big")
            return
        if self.probing:
            if data == "2probe":
                self.probed = True
            session.probe(self, data)
        else:
            session.receive(data)

    async def _write_all(self, send: Send) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                while queue:
                    message, size = queue[0]
                    await send(message)
                    queue.popleft()
                    self._queued -= size
                if self._close_args is not None:
                    code, reason = self._close_args
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
        except (OSError, RuntimeError):  # closed under us: the reader sees the disconnect
            queue.clear()
            self._queued = 0


# -- ASGI helpers ------------------------------------------------------------------
def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette's ``get_route_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root) :]
    return path or "/"


def _request(scope: Scope) -> Request:
    """The scope as minisio's own parser would have read the request (head not kept)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    target = raw.decode("latin-1")
    query = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    length = 0
    value = headers.get("content-length")
    if value is not None:
        length = int(value) if value.isdigit() else -1
    elif headers.get("transfer-encoding") is not None:
        length = -1  # chunked: the ASGI server reads it
    version = "HTTP/" + scope.get("http_version", "1.1")
    return Request(scope.get("method", "GET"), target, version, headers, b"", b"", length)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


async def _read_body(receive: Receive, request: Request, limit: int) -> bytes | None:
    """The request body, at most ``limit`` bytes (413 past it); None if the client left."""
    if request.length > limit:
        raise HttpError(413, "body over the limit")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "body over the limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    """Until the client goes away (the body, if any, was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _asgi_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def _send_reply(send: Send, reply: Reply, close: bool = False) -> None:
    status, headers, body = reply
    out = _asgi_headers(headers)
    if close:
        out.append((b"connection", b"close"))
    if status != 204:  # last, as http11.response() writes it
        out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(scope: Scope, send: Send, reply: Reply) -> None:
    """An HTTP answer to a WebSocket handshake where the server can give one, else a 403."""
    if "websocket.http.response" in scope.get("extensions", {}):
        status, headers, body = reply
        out = _asgi_headers(headers)
        out.append((b"content-length", str(len(body)).encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": out})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})

"""The HTTP side: one asyncio protocol per TCP connection, until it upgrades.

:class:`HttpConnection` owns each accepted TCP connection and its HTTP/1.1
exchange: it feeds the bytes to :class:`~minisio.http11.RequestReader`,
answers requests one after the other on the same connection (keep-alive;
pipelined requests wait their turn), and routes each one:

* ``<path>`` with ``transport=polling``: Engine.IO over long-polling, a
  handshake, a held ``GET`` or a ``POST`` (:mod:`minisio.polling`);
* ``<path>`` with a WebSocket upgrade: the connection is handed to
  websockets (:func:`minisio.websocket.accept`) and leaves this module;
* ``<path>socket.io.js`` and the rest of the client bundle, then the
  static folder (:mod:`minisio.files`).

Engine.IO's refusals are those of the reference server
(packages/engine.io/lib/server.ts, ``verify()``): HTTP 400 (403 for
"Forbidden") with ``{"code":N,"message":"..."}``. Every response says
``Connection: close`` when the connection ends after it.

The server's HTTP hooks run here, once per request or handshake and never
per WebSocket frame: ``allow_request`` before a handshake's open packet or
101 (Node's ``allowRequest``: refused with 403 code 4), ``handshake_headers``
and ``response_headers`` (Node's ``initial_headers`` and ``headers`` events),
``connection_error`` for every Engine.IO refusal, and ``generate_id``. They
see a read-only :class:`~minisio.request.HttpRequest`, made only when a hook
asks for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson

from . import files, http11
from .engine import Session, WebSocketLike
from .errors import ConnectionRefused
from .files import Reply
from .http11 import Headers, HttpError, Request, RequestReader
from .polling import Polling
from .request import HttpRequest, forwarded
from .websocket import WebSocket, accept

if TYPE_CHECKING:
    from .server import Server

__all__ = ["HttpConnection"]

logger = logging.getLogger("minisio")

# Engine.IO's errors (packages/engine.io/lib/server.ts, Server.errors).
UNKNOWN_TRANSPORT = (0, "Transport unknown")
UNKNOWN_SID = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
FORBIDDEN = (4, "Forbidden")
UNSUPPORTED_VERSION = (5, "Unsupported protocol version")

# Bytes asked of each recv() on asyncio's own transport (see connection_made).
_READ_SIZE = 16 * 1024
# Bytes of pipelined requests kept while a response is pending, before reading pauses.
_MAX_PIPELINED = 64 * 1024
# The methods a CORS preflight is told about (the npm cors package's default).
_CORS_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
_POLL_HEADERS = [("Content-Type", "text/plain; charset=UTF-8"), ("Cache-Control", "no-store")]
_OK_HEADERS = [("Content-Type", "text/html"), ("Cache-Control", "no-store")]
# What generate_id may return: a sid travels in query strings unescaped.
_SAFE_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Hooks' coroutines under way (async allow_request, connection_error), kept referenced.
_hook_tasks: set[asyncio.Future[Any]] = set()


def engine_error(error: tuple[int, str]) -> Reply:
    """The reference server's refusal: 403 for Forbidden, else 400, and a JSON body."""
    code, message = error
    status = 403 if code == FORBIDDEN[0] else 400
    body = orjson.dumps({"code": code, "message": message})
    return status, [("Content-Type", "application/json")], body


class EngineHttp:
    """What to answer an Engine.IO request, whatever carries it.

    The routing, validation, CORS, error bodies and HTTP hooks of a request
    under ``server.path``, and the sessions they open. It does no I/O: it
    answers through :meth:`_respond`, gives a WebSocket upgrade to
    :meth:`_hand_over`, and asks :meth:`_expect_body` for a POST's body;
    :class:`HttpConnection` does those on its own asyncio protocol, and
    :mod:`minisio.asgi` on an ASGI server's ``http`` and ``websocket`` scopes.
    It is also the :class:`~minisio.polling.Exchange` of a polling request.
    """

    server: Server
    address: str
    request: Request | None  # the request being decided, or waiting for its answer
    polling: Polling | None  # the transport this request is an exchange of
    extra: list[tuple[str, str]]  # CORS and hook headers of the current answer
    _view: tuple[Request, HttpRequest] | None  # the hooks' view of it
    _deciding: asyncio.Future[None] | None  # an async allow_request under way
    closed: bool  # closed (or handed over): nothing more is answered
    _last: bool  # the server stops: no new session

    # -- what a carrier does ---------------------------------------------------
    def _respond(self, reply: Reply, *, close: bool = False) -> None:
        """Send ``reply`` to the current request (``close``: and end the connection)."""
        raise NotImplementedError

    def _hand_over(self, request: Request, headers: list[tuple[str, str]]) -> WebSocketLike | None:
        """Accept the WebSocket upgrade ``request``, ``headers`` on the 101; None if refused."""
        raise NotImplementedError

    def _expect_body(self, limit: int) -> None:
        """Read the current request's body, at most ``limit`` bytes, then hand it to polling."""
        raise NotImplementedError

    def _cancel_timer(self) -> None:
        """The request is whole (or held): its clock, if it has one, stops."""

    def drop(self) -> None:
        """Cut the connection without an answer (polling's ``Exchange``)."""
        raise NotImplementedError

    def _close(self) -> None:
        """End the connection without an answer (the server stopped meanwhile)."""
        raise NotImplementedError

    # -- the exchange interface of polling.Polling ---------------------------
    def answer(self, body: bytes) -> None:
        """Answer the current polling request: a payload to a GET, ``ok`` to a POST."""
        self.polling = None
        if self.closed:
            return
        request = self.request
        headers = _OK_HEADERS if request is not None and request.method == "POST" else _POLL_HEADERS
        self._respond((200, headers, body))

    def refuse(self) -> None:
        """A bare 400, as the reference answers a request that overlaps another."""
        self.polling = None
        if not self.closed:
            self._respond((400, [], b""))

    # -- Engine.IO -----------------------------------------------------------
    def _on_request(self, request: Request) -> None:
        """A POST is whole: its packets go to the session."""
        self._cancel_timer()
        polling = self.polling
        if polling is None or polling.session is None:  # the session ended meanwhile
            self._refuse(request, UNKNOWN_SID)
            return
        polling.post(self, request.body)

    def _fail(self, exc: HttpError) -> None:
        """A request that cannot be read: its exchange is lost, ``exc.status`` answers it."""
        logger.info("refused a request from %s: %s", self.address or "?", exc)
        polling, self.polling = self.polling, None
        if polling is not None:
            polling.lost(self)
        self._respond(files.text(exc.status, f"{http11.phrase(exc.status)}\n"), close=True)

    def _engine(self, request: Request, query: str) -> None:
        server = self.server
        params = _query(query)
        transport = params.get("transport")
        found, repeated = _engine_headers(request.headers)
        upgrade = found.get("upgrade", "").lower() == "websocket"
        if request.method == "OPTIONS" and server._cors_headers:
            self._preflight(request)
            return
        # Checked in the order of the reference server's verify().
        if transport not in server.transports:
            self._refuse(request, UNKNOWN_TRANSPORT)
            return
        if repeated:
            self._refuse(request, BAD_REQUEST)
            return
        origin = found.get("origin")
        if not _origin_allowed(server, origin, found.get("host"), request.headers):
            logger.warning("refused origin %r", origin)
            self._refuse(request, FORBIDDEN)
            return
        if origin is not None and server._cors_headers:
            self.extra = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            if server.cors_credentials:
                self.extra.append(("Access-Control-Allow-Credentials", "true"))
        sid = params.get("sid")
        if sid is not None:
            self._with_sid(request, sid, transport, upgrade)
            return
        if request.method != "GET":
            self._refuse(request, BAD_HANDSHAKE_METHOD)
        elif request.has_body or (transport == "websocket") != upgrade:
            self._refuse(request, BAD_REQUEST, close=True)
        elif params.get("EIO") != "4":
            self._refuse(request, UNSUPPORTED_VERSION)
        elif server.allow_request is not None:
            self._ask(request, transport)
        else:
            self._handshake(request, transport)

    def _ask(self, request: Request, transport: str) -> None:
        """Ask ``allow_request``; a coroutine's answer is acted on when it comes.

        Meanwhile the request is pending as a held GET is: pipelined requests
        wait, and ``handshake_timeout`` still bounds it.
        """
        assert self.server.allow_request is not None
        try:
            result = self.server.allow_request(self._request_view(request))
        except Exception as exc:
            result = exc
        if inspect.isawaitable(result):
            self._deciding = asyncio.ensure_future(self._await_answer(request, transport, result))
            _keep(self._deciding)
        else:
            self._answered(request, transport, result)

    async def _await_answer(self, request: Request, transport: str, pending: Any) -> None:
        try:
            result = await pending
        except Exception as exc:
            result = exc
        finally:
            self._deciding = None
        if self.closed or self.request is not request:
            return  # the client left, or ran out of time, meanwhile
        if self._last:  # the server stopped meanwhile: no new session
            self._close()
            return
        self._answered(request, transport, result)

    def _answered(self, request: Request, transport: str, result: Any) -> None:
        """``allow_request``'s answer: as Node's ``callback(err, success)``, 403 code 4."""
        if isinstance(result, ConnectionRefused):
            message = result.message
        elif isinstance(result, BaseException):
            logger.error("allow_request failed: refused", exc_info=result)
            message = FORBIDDEN[1]
        elif isinstance(result, str):
            message = result or FORBIDDEN[1]
        elif result:
            self._handshake(request, transport)
            return
        else:
            message = FORBIDDEN[1]
        self._refuse(request, FORBIDDEN, message)

    def _handshake(self, request: Request, transport: str) -> None:
        """A new session: the open packet over polling, or the 101 of a WebSocket."""
        server = self.server
        if len(server._sessions) >= server.max_connections:
            logger.warning("refused a connection: max_connections reached")
            self._respond(files.text(503, "Too many connections\n"))
            return
        sid = None
        if server.generate_id is not None:
            sid = self._generate_id(request)
            if sid is None:
                self._refuse(request, BAD_REQUEST)
                return
        headers = self._hook_headers(request, initial=True)
        if transport == "websocket":
            ws = self._hand_over(request, headers)
            if ws is not None and ws.request is not None:
                session = Session(server, ws, ws.request, self.address, sid)
                session.open(())
                ws.start(session)
        else:
            self.extra += headers
            polling = Polling()
            session = Session(server, polling, _trimmed(request), self.address, sid)
            polling.session = session
            upgrades = ("websocket",) if server._can_upgrade else ()
            session.open(upgrades)
            self._cancel_timer()
            self.polling = polling
            polling.get(self)

    def _generate_id(self, request: Request) -> str | None:
        """The application's session id, or None (logged) if it is not a new URL-safe string."""
        server = self.server
        assert server.generate_id is not None
        try:
            sid = server.generate_id(self._request_view(request))
        except Exception:
            logger.exception("generate_id failed")
            return None
        if not isinstance(sid, str) or not _SAFE_ID.fullmatch(sid) or sid in server._sessions:
            logger.error("generate_id returned %r: not a new id of URL-safe characters", sid)
            return None
        return sid

    def _hook_headers(self, request: Request, *, initial: bool) -> list[tuple[str, str]]:
        """What ``handshake_headers`` (``initial``) and ``response_headers`` add."""
        server = self.server
        hooks = (server.handshake_headers if initial else None, server.response_headers)
        out: list[tuple[str, str]] = []
        for hook in hooks:
            if hook is None:
                continue
            try:
                out += _checked_headers(hook(self._request_view(request)))
            except Exception:
                logger.exception("a header hook failed: its headers are left out")
        return out

    def _request_view(self, request: Request) -> HttpRequest:
        """The hooks' read-only view of ``request``, made once per request."""
        view = self._view
        if view is None or view[0] is not request:
            made = HttpRequest.of(
                request.method,
                request.target,
                request.headers.raw_items(),
                self.address,
                self.server.trust_proxy,
            )
            view = self._view = (request, made)
        return view[1]

    def _refuse(
        self,
        request: Request,
        error: tuple[int, str],
        message: str | None = None,
        *,
        close: bool = False,
    ) -> None:
        """An Engine.IO error response, told to ``connection_error`` first."""
        code, default = error
        message = default if message is None else message
        hook = self.server.connection_error
        if hook is not None:
            try:
                result = hook(self._request_view(request), code, message)
                if inspect.isawaitable(result):
                    _keep(asyncio.ensure_future(_logged(result)))
            except Exception:
                logger.exception("connection_error hook failed")
        self._respond(engine_error((code, message)), close=close)

    def _with_sid(self, request: Request, sid: str, transport: str, upgrade: bool) -> None:
        """A request of an existing session: a poll, a POST, or an upgrade."""
        server = self.server
        session = server._sessions.get(sid)
        current = session.transport if session is not None else None
        # A closed session still owes its last payload (the close packet) to a GET.
        owed = isinstance(current, Polling) and current.closing and request.method == "GET"
        if session is None or current is None or (session.closed and not owed):
            self._refuse(request, UNKNOWN_SID)
            return
        if upgrade and transport == "websocket":
            if request.has_body:
                self._refuse(request, BAD_REQUEST, close=True)
                return
            ws = self._hand_over(request, self._hook_headers(request, initial=False))
            if ws is None:
                return
            if (
                not server._can_upgrade
                or not isinstance(current, Polling)
                or session._probe is not None
                or session.closed
            ):
                # As the reference: the handshake completes, then the WebSocket closes.
                logger.info("%s: refused a second upgrade", sid)
                ws.end(1000, "")
                return
            session.start_upgrade(ws)
            return
        if upgrade or transport != current.name:
            # "TRANSPORT_MISMATCH": e.g. polling after the session upgraded.
            self._refuse(request, BAD_REQUEST)
            return
        assert isinstance(current, Polling)
        if request.method == "GET":
            if request.has_body:
                self._refuse(request, BAD_REQUEST, close=True)
                return
            if server.response_headers is not None:
                self.extra += self._hook_headers(request, initial=False)
            self._cancel_timer()
            self.polling = current
            current.get(self)
        elif request.method == "POST":
            if request.length == 0:
                self._refuse(request, BAD_REQUEST)
                return
            content_type = (request.headers.get("Content-Type") or "").lower()
            if content_type.startswith("application/octet-stream"):
                # Engine.IO v4 payloads are text; the reference: "invalid content".
                logger.info("closing %s: a binary POST body", sid)
                session.close("transport error")
                self._respond((400, [], b""))
                return
            if not current.begin_post(self):
                return
            if server.response_headers is not None:
                self.extra += self._hook_headers(request, initial=False)
            self.polling = current
            self._expect_body(server.max_payload)
        else:
            self._respond((500, [], b""))  # as the reference

    def _preflight(self, request: Request) -> None:
        """``OPTIONS``: a CORS preflight (204), or 403 for an origin not allowed."""
        headers = request.headers
        origin = headers.get("Origin")
        if origin is None or not _origin_allowed(self.server, origin, headers.get("Host"), headers):
            self._refuse(request, FORBIDDEN)
            return
        reply = [("Access-Control-Allow-Origin", origin)]
        if self.server.cors_credentials:
            reply.append(("Access-Control-Allow-Credentials", "true"))
        reply.append(("Access-Control-Allow-Methods", _CORS_METHODS))
        wanted = headers.get("Access-Control-Request-Headers")
        if wanted is not None:
            reply.append(("Access-Control-Allow-Headers", wanted))
            reply.append(("Vary", "Origin, Access-Control-Request-Headers"))
        else:
            reply.append(("Vary", "Origin"))
        self._respond((204, reply, b""))


class HttpConnection(EngineHttp, asyncio.Protocol):
    """One TCP connection while it speaks HTTP/1.1."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.reader = RequestReader()
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.request: Request | None = None  # being read, or waiting for its answer
        self.limit = 0  # bytes of body the current request may have
        self.polling: Polling | None = None  # the transport this request is an exchange of
        self.extra: list[tuple[str, str]] = []  # CORS and hook headers of the current answer
        self._view: tuple[Request, HttpRequest] | None = None  # the hooks' view of it
        self._deciding: asyncio.Future[None] | None = None  # an async allow_request under way
        self.closed = False  # closed, or handed over to websockets
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # loop time the current request must be in by
        self._processing = False
        self._paused = False
        self._reading_body = False  # the current request's body is being read
        self._body_done = True  # the current request's body (if any) was read
        self._eof = False  # the client sent all it will send
        self._last = False  # the server stops: the current answer is the last

    # -- asyncio's protocol callbacks ---------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Read in 16 KiB instead of asyncio's 256 KiB.

        asyncio's selector transport calls ``recv(256 KiB)`` for every read;
        that buffer is above glibc's default mmap threshold, so unless an
        earlier free happened to raise the threshold, every message costs
        an mmap, an mremap and a munmap. Measured with strace under echo-50:
        three more system calls per read, and half the messages per second.
        16 KiB comes from the heap. It also bounds the work one read can
        make: a read of tiny frames (empty pings) is all parsed before the
        loop serves anyone else; measured with 64 KiB reads, a flood of them
        delayed another client's round trip to ~100 ms, with 16 KiB ~20 ms.
        The price is ~0.6 ms more per 1 MB message. (uvloop reads into its
        own buffer and has no such attribute.) The setting stays with the
        transport when a WebSocket takes it over.
        """
        # Not an isinstance() check: uvloop's TCPTransport is no asyncio.Transport subclass.
        transport = cast(asyncio.Transport, transport)
        if isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else ""
        self.server._http.add(self)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.reader.feed(data)
        self._process()

    def eof_received(self) -> bool | None:
        # A client that half-closes still gets the answer to a held GET; an
        # unfinished request can never finish.
        self._eof = True
        if self.request is None or self._reading_body:
            self._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._http.discard(self)
        self._stop_timer()
        if self._deciding is not None:  # nobody is left to answer
            self._deciding.cancel()
        if self.closed and self.transport is None:
            return  # handed over to a WebSocket
        self.closed = True
        polling, self.polling = self.polling, None
        if polling is not None:
            polling.lost(self)

    def pause_writing(self) -> None:
        pass  # answers are whole and bounded; a client that stops reading hits max_buffer

    def resume_writing(self) -> None:
        pass

    # -- what EngineHttp needs of its carrier ----------------------------------
    def drop(self) -> None:
        self.polling = None
        self._abort()

    def _expect_body(self, limit: int) -> None:
        self.limit = limit
        self._reading_body = True

    def _hand_over(self, request: Request, headers: list[tuple[str, str]]) -> WebSocket | None:
        """Give the TCP connection to websockets for this upgrade; ``headers`` go on the 101."""
        transport = self.transport
        assert transport is not None
        self._stop_timer()
        self.closed = True
        self.transport = None  # this protocol is done with it
        self.server._http.discard(self)
        return accept(self.server, transport, request, self.reader.take_rest(), headers)

    # -- reading requests ----------------------------------------------------
    def _process(self) -> None:
        """Read and route requests from the buffer, one at a time, while none is pending."""
        if self._processing:
            return  # an answer given while routing: the loop below goes on
        self._processing = True
        try:
            while not self.closed:
                request = self.request
                if request is None:
                    request = self.reader.next_head()
                    if request is None:
                        break
                    self.request = request
                    self._body_done = not request.has_body
                    self._reading_body = False
                    self._on_head(request)
                elif self._reading_body:
                    if not self.reader.read_body(request, self.limit):
                        break
                    self._reading_body = False
                    self._body_done = True
                    self._on_request(request)
                else:
                    break  # a held GET: the next request waits its turn
        except HttpError as exc:
            self._fail(exc)
        finally:
            self._processing = False
        # Only requests queued behind one awaiting its answer pause reading: the
        # body being read (bounded by ``limit``) must come in whole, or no answer
        # would ever resume it.
        pending = self.request is not None and not self._reading_body
        pending = pending and self.reader.buffered > _MAX_PIPELINED
        if pending and not self.closed and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _on_head(self, request: Request) -> None:
        """Route a request by its head; most are answered right away, a POST reads its body."""
        try:
            url = urlsplit(request.target)
        except ValueError:  # "//[x/" reads as an authority with an invalid IPv6 host
            self._respond(files.text(400, "Bad Request\n"), close=True)
            return
        server = self.server
        if url.path == server.path:
            self._engine(request, url.query)
            return
        if request.has_body:
            # Only Engine.IO's POST has a body; any other is refused and the
            # connection closed rather than read.
            if request.method in ("GET", "HEAD"):
                reply = files.text(400, "Request bodies are not accepted\n")
            else:
                reply = files.text(405, "Method Not Allowed\n", ("Allow", "GET, HEAD"))
            self._respond(reply, close=True)
            return
        if request.method not in ("GET", "HEAD"):
            self._respond(files.text(405, "Method Not Allowed\n", ("Allow", "GET, HEAD")))
            return
        if url.path.startswith(server.path):
            rest = url.path[len(server.path) :]
            if server.serve_client and rest in files.CLIENT_FILES:
                self._respond(files.client_file(rest))
            else:
                self._respond(files.text(404, "Not Found\n"))
            return
        self._respond(files.http_file(server, url.path))

    # -- writing answers -----------------------------------------------------
    def _respond(self, reply: Reply, *, close: bool = False) -> None:
        status, headers, body = reply
        request = self.request
        transport = self.transport
        if transport is None or self.closed:
            return
        # A body left unread would be taken for the next request: close instead.
        keep = not close and request is not None and request.keep_alive and self._body_done
        keep = keep and not (self._eof and not self.reader.buffered) and not self._last
        out = [*headers, *self.extra]
        if not keep:
            out.append(("Connection", "close"))
        elif request is not None and request.version == "HTTP/1.0":
            out.append(("Connection", "keep-alive"))
        head_only = request is not None and request.method == "HEAD"
        transport.write(http11.response(status, out, body, head_only=head_only))
        self.request = None
        self.extra = []
        self._view = None
        self.limit = 0
        if not keep:
            self._close()
            return
        self._arm_timer()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        if not self._processing:
            self._process()

    def shut(self) -> None:
        """The server stops: close this connection once its current answer is out."""
        self._last = True
        if self.request is None:
            self._close()

    def _close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    # -- the request clock ---------------------------------------------------
    def _arm_timer(self) -> None:
        """A client has ``handshake_timeout`` to send a whole request (the first, or the next).

        A kept-alive polling connection is armed after every answer and disarmed
        at every request, twice per round trip: that moves the deadline only. The
        timer handle is made when none is pending and, when it fires before the
        deadline, moved to it (instead of being cancelled and made anew each time).
        """
        loop = asyncio.get_running_loop()
        self._deadline = deadline = loop.time() + self.server.handshake_timeout
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        """Disarm: a request is whole (or held); a pending handle will find nothing to do."""
        self._deadline = None

    def _stop_timer(self) -> None:
        """The connection ends here (closed, or handed to websockets): drop the handle too."""
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        timer, self._timer = self._timer, None
        deadline = self._deadline
        if deadline is None:
            return  # disarmed since
        if timer is not None and deadline > timer.when():  # re-armed since: wait on
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        self._deadline = None
        if self.reader.buffered or self.request is not None:
            logger.info("dropped %s: request not finished in time", self.address or "?")
        polling, self.polling = self.polling, None
        if polling is not None:
            polling.lost(self)  # a POST whose body trickles in: its session ends too
        self._close()


def _origin_allowed(server: Server, origin: str | None, host: str | None, headers: Headers) -> bool:
    """Whether ``origin`` may connect, by ``cors_allowed_origins`` (see Server)."""
    allowed = server.cors_allowed_origins
    if origin is None or allowed == "*" or allowed == []:
        return True
    if callable(allowed):
        try:
            return bool(allowed(origin))
        except Exception:
            logger.exception("cors_allowed_origins(%r) failed: refused", origin)
            return False
    if allowed is not None:
        return origin in allowed
    # Same origin: the Host the client asked for, or what a trusted proxy was asked for.
    scheme = None
    if server.trust_proxy:
        host = forwarded(headers.get("X-Forwarded-Host")) or host
        scheme = forwarded(headers.get("X-Forwarded-Proto"))
    try:
        url = urlsplit(origin)
    except ValueError:  # "http://[": malformed, so not the same origin
        return False
    if scheme is not None and url.scheme.lower() != scheme.lower():
        return False
    return host is not None and url.netloc == host


def _checked_headers(result: Any) -> list[tuple[str, str]]:
    """A header hook's result as pairs; a name or value that could split the head is refused."""
    if result is None:
        return []
    items = result.items() if isinstance(result, Mapping) else result
    out = []
    for name, value in items:
        name, value = str(name), str(value)
        if not _HEADER_NAME.fullmatch(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}: {value!r}")
        value.encode("latin-1")  # what the head is written in
        out.append((name, value))
    return out


def _keep(task: asyncio.Future[Any]) -> None:
    _hook_tasks.add(task)
    task.add_done_callback(_hook_tasks.discard)


async def _logged(pending: Any) -> None:
    try:
        await pending
    except Exception:
        logger.exception("connection_error hook failed")


def _query(query: str) -> dict[str, str]:
    """The first value of each query parameter, blank ones left out, as ``parse_qs`` has them.

    Most Engine.IO queries (``EIO=4&transport=polling&sid=...``) have nothing to
    unquote; they are split here without ``parse_qs``'s work per field.
    """
    if "%" in query or "+" in query:
        return {k: v[0] for k, v in parse_qs(query).items()}
    params: dict[str, str] = {}
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if value and name not in params:
            params[name] = value
    return params


_ENGINE_HEADERS = frozenset(("upgrade", "origin", "host"))


def _engine_headers(headers: Headers) -> tuple[dict[str, str], bool]:
    """The first ``Upgrade``, ``Origin`` and ``Host`` (lowercase keys), and whether any
    of them is repeated: one pass over the headers instead of one per name."""
    found: dict[str, str] = {}
    repeated = False
    for name, value in headers.raw_items():
        key = name.lower()
        if key in _ENGINE_HEADERS:
            if key in found:
                repeated = True
            else:
                found[key] = value
    return found, repeated


def _trimmed(request: Request) -> Request:
    """What a session keeps of its first request: the target and headers, not the bytes."""
    request.head = b""
    request.body = b""
    return request

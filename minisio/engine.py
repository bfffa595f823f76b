"""The Engine.IO session: sid, heartbeat, the upgrade, and the sockets riding on it.

A session outlives its transport. It starts on HTTP long-polling or on a
WebSocket (``transport``) and may move from the first to the second once
(the upgrade, "Protocol / Upgrade"); the Socket.IO layer above it, rooms
and routing never ask which one carries it. The two transports,
``websocket.WebSocket`` and ``polling.Polling``, share ``buffered``, ``end``
and ``abort``; a packet goes to the first as frames (``write``) and to the
second as one payload item (``push``), each built once per broadcast.
Any other WebSocket carrier (:mod:`minisio.asgi`'s, on an ASGI server)
offers the first one's interface, :class:`WebSocketLike`.

Packets come in as the items a WebSocket frame or a polling payload
record holds (``str`` text, ``bytes`` binary) through :meth:`Session.receive`,
the one boundary for peer faults. Packets go out synchronously:
:func:`write_many` encodes a packet once and hands the same bytes to every
recipient's transport, with no task, future or ``await`` per message.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from . import eio, sio
from .errors import ConnectionRefused, ProtocolError
from .polling import Polling, payload_item
from .request import HttpRequest
from .websocket import BINARY, TEXT, ws_frame

if TYPE_CHECKING:
    from .server import Namespace, Server
    from .socket import Handshake, Socket

__all__ = [
    "VOLATILE_MARK",
    "Request",
    "Session",
    "WebSocketLike",
    "new_id",
    "ready_for",
    "send_flagged",
    "send_many",
    "wire_size",
    "write_many",
]


logger = logging.getLogger("minisio")

_MESSAGE = b"4"
# Enum members looked up once: ``sio.PacketType.EVENT`` costs two attribute
# lookups on every packet otherwise.
_EIO_MESSAGE = eio.PacketType.MESSAGE
_EIO_PONG = eio.PacketType.PONG
_EIO_CLOSE = eio.PacketType.CLOSE
_EIO_NOOP = eio.PacketType.NOOP
_EVENT = sio.PacketType.EVENT
_BINARY_EVENT = sio.PacketType.BINARY_EVENT
_ACK = sio.PacketType.ACK
_BINARY_ACK = sio.PacketType.BINARY_ACK
_CONNECT = sio.PacketType.CONNECT
_DISCONNECT = sio.PacketType.DISCONNECT
_PING = eio.text_frame(eio.PacketType.PING)
# A middleware that returns False refuses, as a python-socketio connect handler
# does; the client gets python-socketio's message.
_REJECTED = "Connection rejected by server"
# Events one connection may have waiting for a handler, per allowed running one.
_BACKLOG_FACTOR = 16
# A volatile packet goes to a WebSocket only while it has at most this many
# bytes unsent (asyncio's default low-water mark for a transport's buffer).
VOLATILE_MARK = 16_384


def new_id() -> str:
    """A random, URL-safe, unguessable id (120 bits, 20 characters)."""
    return secrets.token_urlsafe(15)


class Request(Protocol):
    """What a session keeps of the HTTP request that opened it (for ``socket.handshake``)."""

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> Any: ...  # has raw_items(): [(name, value), ...]


class WebSocketLike(Protocol):
    """What a session needs of a WebSocket transport (``websocket.WebSocket``, or asgi's).

    A polling transport is a :class:`~minisio.polling.Polling`; anything else
    carrying a session is one of these.
    """

    name: str
    polling: bool
    plain: bool  # False: minisio compresses its frames (see send_flagged)
    probing: bool  # the probe of an upgrade ("2probe" ... "5")
    probed: bool
    session: Session | None

    @property
    def request(self) -> Any: ...  # the opening request, as ``Request``

    def start(self, session: Session) -> None: ...
    def write(self, text: bytes, attachments: list[bytes], wire: bytes) -> None: ...
    def write_uncompressed(self, wire: bytes) -> None: ...
    def write_binary(self, data: bytes) -> None: ...
    def buffered(self) -> int: ...
    def end(self, code: int = 1000, message: str = "") -> None: ...
    def abort(self) -> None: ...


class Session:
    """The server side of one Engine.IO session and the sockets riding on it."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_close_args",
        "_connect_timer",
        "_ping_timer",
        "_pong_timer",
        "_pong_wait_extended",
        "_probe",
        "_tasks",
        "_upgrade_timer",
        "_withdrawn",
        "address",
        "closed",
        "decoder",
        "pending",
        "request",
        "server",
        "sid",
        "sockets",
        "started",
        "trace",
        "transport",
    )

    def __init__(
        self,
        server: Server,
        transport: WebSocketLike | Polling,
        request: Request,
        address: str,
        sid: str | None = None,
    ) -> None:
        self.server = server
        self.transport = transport
        self.request = request
        self.address = address
        self.sid = new_id() if sid is None else sid
        self.started = time.time()
        self.decoder = sio.Decoder(
            max_attachments=server.max_attachments,
            max_depth=server.max_depth,
            max_attachment_bytes=server.max_payload,
        )
        self.sockets: dict[str, Socket] = {}  # namespace name -> socket
        # Dicts used as sets: an empty dict is 64 bytes, an empty set 216, and
        # most connections never put anything in these two.
        # Namespace -> the task of the CONNECT attempt whose middleware (or
        # namespace check) is running. An attempt the client withdrew
        # (DISCONNECT before the reply) still runs; it is kept in _withdrawn
        # until it ends, and counts towards max_namespaces. When the session
        # ends, both are cancelled: no answer of theirs can be used.
        self.pending: dict[str, asyncio.Task[Any]] = {}
        self._withdrawn: dict[asyncio.Task[Any], None] | None = None
        self.closed = False
        # What watches this session (the wire trace, the admin UI): None, or a trace.Tap.
        self.trace = server._tap
        self._tasks: dict[asyncio.Task[Any], None] = {}
        # Events waiting for a handler slot (see _on_packet); None when empty.
        self._backlog: collections.deque[tuple[Socket, sio.Packet, int]] | None = None
        self._backlog_bytes = 0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._pong_wait_extended = False
        self._connect_timer: asyncio.TimerHandle | None = None
        # The WebSocket this session is upgrading to, and its deadline.
        self._probe: WebSocketLike | None = None
        self._upgrade_timer: asyncio.TimerHandle | None = None
        self._close_args = (1000, "")  # for a probe that finishes after the session ended

    # -- lifecycle -------------------------------------------------------
    def open(self, upgrades: tuple[str, ...]) -> None:
        """Send the open packet and start the clocks ("Protocol / Handshake")."""
        server = self.server
        loop = asyncio.get_running_loop()
        server._sessions[self.sid] = self
        if self.trace:
            self.trace.opened(self)
        self.send_eio(
            eio.PacketType.OPEN,
            eio.open_payload(
                self.sid,
                server.ping_interval_ms,
                server.ping_timeout_ms,
                server.max_payload,
                upgrades,
            ),
        )
        self._ping_timer = loop.call_later(server.ping_interval, self._ping)
        self._connect_timer = loop.call_later(server.connect_timeout, self._connect_timeout)

    def transport_gone(self, transport: WebSocketLike | Polling) -> None:
        """``transport`` closed for good (TCP closed, or its last answer given)."""
        if transport is self._probe:
            self._drop_probe(close=False)
            return
        if transport is not self.transport:
            return  # the polling transport left behind by an upgrade
        if not self.closed:  # the peer went away without a close packet
            self.closed = True
            self._drop_probe()
            self._finish("transport close")
        # Counted towards max_connections until the transport is really gone.
        if self.server._sessions.get(self.sid) is self:
            del self.server._sessions[self.sid]
            if self.trace:
                self.trace.closed(self)

    def receive(self, message: str | bytes) -> None:
        """Handle one packet (WebSocket message, polling record): the boundary for peer faults."""
        if self.closed:
            return  # the session ended; its transport is still closing
        try:
            self._on_frame(message)
        except ProtocolError as exc:
            # Log the problem, never the payload.
            logger.info("closing %s: %s", self.sid, exc)
            self.close("parse error", code=1002)
            return
        except Exception:
            # A bug of ours: it must not escape into data_received and take
            # the transport down without a word. 1011: internal error.
            logger.exception("closing %s: internal error", self.sid)
            self.close("transport error", code=1011)

    def close(
        self, reason: str, *, code: int = 1000, message: str = "", abort: bool = False
    ) -> None:
        """End the session now: sockets see ``reason`` at once, the transport closes after.

        ``code`` and ``message`` go in a WebSocket close frame; over polling
        the pending (or next) GET gets the close packet.
        """
        if self.closed:
            return
        self.closed = True
        probe = self._probe
        if probe is not None and probe.probed and not abort:
            # The client was told "3probe" and stops polling: it would never
            # fetch the close packet, and a probe closed now leaves its polling
            # paused for good (engine.io-client). As the reference server, let
            # the upgrade finish ("5", within upgrade_timeout), then close it.
            self._close_args = (code, message)
        else:
            self._drop_probe()
        if abort:
            self.transport.abort()
            # Not now: abort() may be called from inside a broadcast, and the
            # disconnect handlers must not run in the middle of someone's emit.
            asyncio.get_running_loop().call_soon(self._finish, reason)
        else:
            self._finish(reason)
            self.transport.end(code, message)

    def kick(self) -> None:
        """Server-side ``disconnect(close=True)``: leave every namespace, then close."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self.close("forced close")

    def _finish(self, reason: str) -> None:
        # Not the upgrade timer: the probe, if any, was dropped with it, or
        # is kept (see close) and its deadline still holds.
        timers = (self._ping_timer, self._pong_timer, self._connect_timer)
        for timer in timers:
            if timer is not None:
                timer.cancel()
        sockets = list(self.sockets.values())
        self.sockets.clear()
        # A middleware that never returns must not hold the session forever.
        for task in [*self.pending.values(), *(self._withdrawn or ())]:
            task.cancel()
        self.pending.clear()
        self._withdrawn = None
        self._backlog = None
        self._backlog_bytes = 0
        self.decoder.reset()  # a packet half-received goes now
        for socket in sockets:
            socket._onclose(reason)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine for this connection, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks[task] = None
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        backlog = self._backlog
        limit = self.server.max_pending_handlers
        while backlog and len(self._tasks) < limit:
            socket, packet, size = backlog.popleft()
            self._backlog_bytes -= size
            if socket.connected:
                socket._on_event(packet.data, packet.id)
        if not backlog:
            self._backlog = None

    # -- the upgrade ("Protocol / Upgrade"): polling first, then a WebSocket.
    def start_upgrade(self, ws: WebSocketLike) -> None:
        """A WebSocket with this session's sid opened: probe it, switch on ``5``."""
        self._probe = ws
        ws.probing = True
        loop = asyncio.get_running_loop()
        self._upgrade_timer = loop.call_later(self.server.upgrade_timeout, self._upgrade_timeout)
        ws.start(self)

    def probe(self, ws: WebSocketLike, frame: str | bytes) -> None:
        """A frame on the WebSocket being probed: ``2probe``, then ``5``; anything else ends it."""
        if frame == "2probe":
            ws.write(b"3probe", [], b"")
            # The client now stops polling; release its pending GET (and any
            # later one) with a noop so that it can send the upgrade packet.
            if isinstance(self.transport, Polling):
                self.transport.pause()
        elif frame == "5" and ws.probed:
            self._upgraded(ws)
        else:
            logger.info("%s: upgrade abandoned (unexpected packet on the probe)", self.sid)
            self._drop_probe()

    def _upgraded(self, ws: WebSocketLike) -> None:
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None
        self._probe = None
        ws.probing = False
        old, self.transport = self.transport, ws
        assert isinstance(old, Polling)
        # Packets queued for polling and not yet taken by a GET go over the
        # WebSocket, first and in order; the polling transport sends nothing more.
        # (They were traced when queued.)
        for item in old.discard():
            if isinstance(item, str):
                if not (self.closed and item == "1"):  # a close frame instead, below
                    ws.write(item.encode(), [], b"")
            else:
                ws.write_binary(item)
        if self.trace:
            self.trace.upgraded(self)
        if self.closed:  # the session ended during the probe
            ws.end(*self._close_args)

    def _upgrade_timeout(self) -> None:
        self._upgrade_timer = None
        logger.info("%s: upgrade not finished in time", self.sid)
        self._drop_probe()

    def _drop_probe(self, *, close: bool = True) -> None:
        """Give up the upgrade; the session goes on over polling."""
        ws, self._probe = self._probe, None
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None
        if ws is None:
            return
        ws.session = None
        if isinstance(self.transport, Polling) and not self.closed:
            self.transport.resume()
        if close:
            ws.end(*self._close_args)  # (1000, "") unless the session ended meanwhile

    # -- heartbeat ("Protocol / Heartbeat"): the server pings, the client pongs.
    def _ping(self) -> None:
        self._ping_timer = None
        if self.closed:
            return
        self.send_raw(_PING)
        self._wait_for_pong()
        self._pong_wait_extended = False

    def _wait_for_pong(self) -> None:
        loop = asyncio.get_running_loop()
        self._pong_timer = loop.call_later(self.server.ping_timeout, self._no_pong)

    def _alive_while_pong_due(self) -> None:
        # Any other packet while a pong is due shows the peer is alive, and its
        # pong may be queued behind a large upload: as the reference server
        # does, the wait starts again, once per ping.
        if self._pong_wait_extended or self._pong_timer is None:
            return
        self._pong_wait_extended = True
        self._pong_timer.cancel()
        self._wait_for_pong()

    def _no_pong(self) -> None:
        logger.info("closing %s: ping timeout", self.sid)
        self.close("ping timeout")

    def _pong(self) -> None:
        if self._pong_timer is None:
            return  # unsolicited: ignored (the reference server restarts its ping interval)
        self._pong_timer.cancel()
        self._pong_timer = None
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self.server.ping_interval, self._ping)

    def _connect_timeout(self) -> None:
        self._connect_timer = None
        if not self.sockets and not self.closed:
            logger.info("closing %s: no namespace joined in time", self.sid)
            self.close("connect timeout")

    # -- receiving -------------------------------------------------------
    def _on_frame(self, frame: str | bytes) -> None:
        if self.trace:
            self.trace.frame_in(self, frame)
        packet = eio.decode(frame)
        kind = packet.type
        if self._pong_timer is not None and kind is not _EIO_PONG:
            self._alive_while_pong_due()
        if kind is _EIO_MESSAGE:
            decoded = self.decoder.feed(packet.data)
            if decoded is not None:
                self._on_packet(decoded)
        elif kind is _EIO_PONG:
            self._pong()
        elif kind is _EIO_CLOSE:
            self.close("transport close")
        elif kind is not _EIO_NOOP:
            # open, ping and upgrade never come from a client outside a probe.
            raise ProtocolError(f"unexpected Engine.IO {kind.name.lower()} packet")

    def _on_packet(self, packet: sio.Packet) -> None:
        kind = packet.type
        socket = self.sockets.get(packet.namespace)
        if socket is None:
            if kind is _CONNECT:
                self._on_connect(packet.namespace, packet.data)
            elif packet.namespace not in self.pending:
                # "invalid state" in the reference server: it closes the connection.
                raise ProtocolError("packet for a namespace not joined")
            elif kind is _DISCONNECT:  # gave up: do not accept it afterwards
                token = self.pending.pop(packet.namespace)
                if self._withdrawn is None:
                    self._withdrawn = {}
                self._withdrawn[token] = None
            # Anything else before the CONNECT reply is dropped: a client waits for it.
            return
        if kind is _EVENT or kind is _BINARY_EVENT:
            if self._backlog is not None or len(self._tasks) >= self.server.max_pending_handlers:
                self._wait(socket, packet)
            else:
                socket._on_event(packet.data, packet.id)
        elif kind is _ACK or kind is _BINARY_ACK:
            assert packet.id is not None  # the decoder checked it
            socket._on_ack(packet.id, packet.data)
        elif kind is _DISCONNECT:
            self.forget(socket)
            socket._onclose("client namespace disconnect")
        elif kind is _CONNECT:
            raise ProtocolError("CONNECT to a namespace already joined")
        else:
            raise ProtocolError("CONNECT_ERROR sent by a client")

    def _wait(self, socket: Socket, packet: sio.Packet) -> None:
        """Queue an event until a handler slot frees up (max_pending_handlers).

        Reading goes on meanwhile: acks, pongs and disconnects must still get
        through, or a handler awaiting an ack would wait on itself. A client
        that queues far more than it could ever need is flooding: it is cut,
        past 16 waiting events per handler slot or past ``max_buffer`` bytes
        of them as sent (a few large events would hold far more memory
        decoded than their count says).
        """
        if self._backlog is None:
            self._backlog = collections.deque()
        # The size as sent, measured again only on this path, which a
        # connection reaches when its handlers are all busy.
        size = sum(map(len, sio.encode(packet)))
        self._backlog.append((socket, packet, size))
        self._backlog_bytes += size
        if (
            len(self._backlog) > self.server.max_pending_handlers * _BACKLOG_FACTOR
            or self._backlog_bytes > self.server.max_buffer
        ):
            logger.warning("closing %s: too many events waiting for their handlers", self.sid)
            self.close("transport error", code=1008, message="too many pending events")

    # -- joining namespaces ("Protocol / Connection to a namespace") --------
    def _on_connect(self, name: str, auth: dict[str, Any] | None) -> None:
        if name in self.pending:
            # Its middleware still runs; each repeat would start another run.
            raise ProtocolError("CONNECT to a namespace already joining")
        server = self.server
        nsp = server._namespaces.get(name)
        if nsp is None and server._parents and self._joined() < server.max_namespaces:
            from .dynamic import find_child  # io.of(regex or function): maybe a child

            found = find_child(server, name, auth or {})
            if inspect.isawaitable(found):  # an async check: connect once it answers
                self.pending[name] = self.spawn(self._connect_when_found(name, auth, found))
                return
            nsp = found
        if nsp is None:
            self.send_packet(sio.PacketType.CONNECT_ERROR, {"message": "Invalid namespace"}, name)
            return
        if self._joined() >= server.max_namespaces:
            self.send_packet(sio.PacketType.CONNECT_ERROR, {"message": "Too many namespaces"}, name)
            return
        from .socket import Socket

        if nsp.adapter.recovers:  # connection state recovery: maybe a kept socket
            from .socket import recoverable_socket

            socket = recoverable_socket(nsp, self, auth or {})
            recovery = server._recovery
            if socket.recovered and (recovery is None or recovery.skip_middlewares):
                self._accept(nsp, socket)
                return
        else:
            socket = Socket(nsp, self, new_id(), auth or {})
        if nsp._async_middleware:
            nsp._joining += 1
            self.pending[name] = self.spawn(self._connect_async(nsp, socket))
            return
        try:
            for middleware in nsp._middlewares:
                if middleware.fn(socket) is False:
                    raise ConnectionRefused(_REJECTED)
        except Exception as exc:
            self._refuse(nsp, exc)
            socket._not_accepted(refused=True)
            return
        self._accept(nsp, socket)

    def _joined(self) -> int:
        """Namespaces joined or joining, attempts withdrawn but still running included."""
        withdrawn = len(self._withdrawn) if self._withdrawn is not None else 0
        return len(self.sockets) + len(self.pending) + withdrawn

    def _settled(self, name: str, token: asyncio.Task[Any] | None) -> bool:
        """The run of CONNECT attempt ``token`` ended: whether its answer is still wanted."""
        if self._withdrawn is not None and token in self._withdrawn:
            del self._withdrawn[token]
            return False
        if self.pending.get(name) is token:
            del self.pending[name]
            return True
        return False  # the session ended meanwhile

    async def _connect_when_found(
        self,
        name: str,
        auth: dict[str, Any] | None,
        found: Awaitable[Namespace | None],
    ) -> None:
        nsp = await found
        if not self._settled(name, asyncio.current_task()):
            # The session ended, or the client gave up, meanwhile: a child made
            # for it alone is empty.
            if nsp is not None:
                _maybe_emptied(nsp)
            return
        if nsp is None:
            self.send_packet(sio.PacketType.CONNECT_ERROR, {"message": "Invalid namespace"}, name)
        else:
            self._on_connect(name, auth)  # the namespace exists now

    async def _connect_async(self, nsp: Namespace, socket: Socket) -> None:
        try:
            await self._connect_async_run(nsp, socket)
        except asyncio.CancelledError:  # the session ended during the middleware
            socket._not_accepted(refused=False)
            raise
        finally:
            nsp._joining -= 1
            _maybe_emptied(nsp)  # refused, or the client left meanwhile

    async def _connect_async_run(self, nsp: Namespace, socket: Socket) -> None:
        try:
            for middleware in nsp._middlewares:
                result = middleware.fn(socket)
                if middleware.is_async:
                    result = await result
                if result is False:
                    raise ConnectionRefused(_REJECTED)
        except Exception as exc:
            wanted = self._settled(nsp.name, asyncio.current_task())
            if wanted:
                self._refuse(nsp, exc)
            socket._not_accepted(refused=wanted)
            return
        if self._settled(nsp.name, asyncio.current_task()):  # not withdrawn, not closed
            self._accept(nsp, socket)
        else:
            socket._not_accepted(refused=False)

    def _refuse(self, nsp: Namespace, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefused):
            error: dict[str, Any] = {"message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
        elif isinstance(exc, ConnectionRefusedError):
            # The built-in, as python-socketio users raise its namesake:
            # ConnectionRefusedError(message, data) refuses the same way.
            # (An OSError: a third argument would be taken as a file name.)
            args = exc.args
            error = {"message": str(args[0]) if args else _REJECTED}
            if len(args) > 1:
                error["data"] = args[1]
        else:
            logger.error("middleware of %s failed", nsp.name, exc_info=exc)
            error = {"message": "Internal server error"}
        self.send_packet(sio.PacketType.CONNECT_ERROR, error, nsp.name)
        _maybe_emptied(nsp)  # a child made for this client

    def _accept(self, nsp: Namespace, socket: Socket) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.sockets[nsp.name] = socket
        socket.connected = True
        nsp._add(socket)
        # The CONNECT reply goes out before anything a connection handler emits.
        pid = socket._pid
        reply = {"sid": socket.id} if pid is None else {"sid": socket.id, "pid": pid}
        self.send_packet(sio.PacketType.CONNECT, reply, nsp.name)
        if socket.recovered:  # then what it missed, before anything new
            socket._replay()
        nsp._on_connection(socket)

    def forget(self, socket: Socket) -> None:
        """Detach a socket that left its namespace."""
        if self.sockets.get(socket.namespace.name) is socket:
            del self.sockets[socket.namespace.name]

    def handshake(self, auth: dict[str, Any]) -> Handshake:
        """A socket's ``handshake``, from the HTTP request of this session."""
        from .socket import Handshake

        request = self.request
        url = request.path
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        now = self.started
        return Handshake(
            headers=headers,
            query=dict(parse_qsl(urlsplit(url).query)),
            auth=auth,
            address=self.address,
            time=time.strftime("%a %b %d %Y %H:%M:%S GMT+0000", time.gmtime(now)),
            issued=int(now * 1000),
            url=url,
            secure=self.http_request().secure,
            # Node's: "xdomain: whether the connection is cross-domain", i.e. has an Origin.
            xdomain="origin" in headers,
        )

    def http_request(self) -> HttpRequest:
        """The request that opened this session, read-only (``socket.request``)."""
        request = self.request
        return HttpRequest.of(
            getattr(request, "method", "GET"),  # websockets' Request has none: a GET
            request.path,
            request.headers.raw_items(),
            self.address,
            self.server.trust_proxy,
        )

    # -- sending ---------------------------------------------------------
    def send_packet(self, kind: sio.PacketType, data: Any, namespace: str) -> None:
        """Encode and queue one Socket.IO packet."""
        self.send(sio.encode(sio.Packet(kind, data, namespace)))

    def send_eio(self, kind: eio.PacketType, data: bytes = b"") -> None:
        """Queue one Engine.IO packet that carries no Socket.IO packet (open)."""
        self.send_raw(eio.text_frame(kind, data))

    def send(self, frames: list[bytes]) -> None:
        """Queue one encoded Socket.IO packet: its text, then its attachments."""
        send_many((self,), frames)

    def send_raw(self, text: bytes) -> None:
        """Queue one text frame already encoded as Engine.IO (open, ping)."""
        write_many((self,), text, [])

    def _overflow(self) -> None:
        size = self.transport.buffered()
        logger.warning(
            "closing %s: %d bytes unsent, over the write high-water mark", self.sid, size
        )
        self.close("transport error", abort=True)


def send_many(conns: Sequence[Session], frames: list[bytes]) -> None:
    """Write one encoded Socket.IO packet to many sessions: encoded once, no await.

    The Engine.IO ``message`` prefix is added once; each attachment follows
    as a binary packet ("Transports / WebSocket").
    """
    write_many(conns, _MESSAGE + frames[0], frames[1:])


def write_many(conns: Sequence[Session], text: bytes, attachments: list[bytes]) -> None:
    """Write one Engine.IO text packet, then binary ones, to many sessions.

    A server's WebSocket frames are not masked (RFC 6455 5.1), so without a
    compression extension they are the same bytes for every recipient:
    they are framed once here; a polling recipient queues the same text.
    """
    wire = item = None
    for conn in conns:
        if conn.closed:
            continue
        if conn.trace:
            conn.trace.frame_out(conn, text, attachments)
        transport = conn.transport
        if isinstance(transport, Polling):
            if item is None:
                item = payload_item(text, attachments)
            transport.push(item)
        else:
            if wire is None:
                wire = ws_frame(TEXT, text)
                if attachments:
                    wire += b"".join(ws_frame(BINARY, a) for a in attachments)
            transport.write(text, attachments, wire)


def send_flagged(
    conns: Sequence[Session], frames: list[bytes], volatile: bool, compress: bool
) -> None:
    """:func:`send_many` with the flags of Node's ``volatile`` and ``compress(False)``.

    ``volatile``: a client not ready for the packet does not get it, and it is
    never the reason a client is cut: a WebSocket with more than
    :data:`VOLATILE_MARK` bytes unsent, a polling client with anything queued,
    or a client the packet would push over ``max_buffer``, are skipped (the
    reference server checks ``transport.writable``).

    ``compress=False``: a WebSocket with permessage-deflate gets the frames
    uncompressed (RSV1 clear). websockets compresses every message it sends,
    so these are written as built; RFC 7692 section 6: "An endpoint MAY send
    uncompressed messages", and the compression context is left untouched.
    Polling is never compressed by minisio.
    """
    text, attachments = _MESSAGE + frames[0], frames[1:]
    if volatile:
        size = wire_size(frames)
        conns = [conn for conn in conns if ready_for(conn, size)]
    if not compress:
        others: list[Session] = []
        wire = None
        for conn in conns:
            transport = conn.transport
            if conn.closed or isinstance(transport, Polling) or transport.plain:
                others.append(conn)
                continue
            if wire is None:
                wire = ws_frame(TEXT, text) + b"".join(ws_frame(BINARY, a) for a in attachments)
            if conn.trace:
                conn.trace.frame_out(conn, text, attachments)
            transport.write_uncompressed(wire)
        conns = others
    write_many(conns, text, attachments)


def wire_size(frames: list[bytes]) -> int:
    """The bytes an encoded Socket.IO packet adds to a transport's buffer, about."""
    return len(frames[0]) + sum(map(len, frames[1:])) + 2


def ready_for(conn: Session, size: int) -> bool:
    """Whether a volatile packet of ``size`` bytes goes to ``conn`` now."""
    if conn.closed:
        return False
    transport = conn.transport
    buffered = transport.buffered()
    if buffered + size > conn.server.max_buffer:
        return False
    return buffered == 0 if transport.polling else buffered <= VOLATILE_MARK


def _maybe_emptied(nsp: Namespace) -> None:
    """Tell a child namespace's parent once it has no socket and none joining."""
    parent = nsp._parent
    if parent is not None and not nsp.sockets and not nsp._joining and nsp in parent.children:
        parent._emptied(nsp)

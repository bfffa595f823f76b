"""One Engine.IO session over one WebSocket: the only module that does I/O.

It owns receiving, the heartbeat, the write path and closing.

Frames come in without a queue: :class:`WebSocket` (websockets' server
connection, through its ``create_connection`` hook) hands each message to
the session as soon as websockets has parsed it, inside ``data_received``.
websockets' own ``recv()`` would queue it and wake a task to read it; here a
plain handler runs right away and no task, future or ``await`` is spent per
message.

Frames go out synchronously too: an emit pushes bytes into the transport
and returns, as ``websockets.broadcast()`` does. The price of not awaiting
is that a client that stops reading would grow its write buffer forever, so
every emit checks the buffer against a high-water mark and cuts the
connection that passes it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import struct
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, Event

from . import eio, sio
from .errors import ConnectionRefused, ProtocolError
from .trace import trace_in, trace_out

if TYPE_CHECKING:
    from .server import Namespace, Server
    from .socket import Handshake, Socket

__all__ = ["Connection", "WebSocket", "new_id", "send_many", "write_many"]

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
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
# Frames a client may pipeline behind its handshake request, before the
# session starts: a well-behaved one sends none.
_MAX_EARLY_FRAMES = 16
# Bytes asked of each recv() on asyncio's own transport (see WebSocket.connection_made).
_READ_SIZE = 16 * 1024
# Request head bytes kept to find a body in it; websockets refuses longer heads.
_MAX_HEAD = 64 * 1024
# Events one connection may have waiting for a handler, per allowed running one.
_BACKLOG_FACTOR = 16


def new_id() -> str:
    """A random, URL-safe, unguessable id (120 bits, 20 characters)."""
    return secrets.token_urlsafe(15)


def _refuse_request_body(transport: asyncio.Transport, data: bytes) -> bool:
    """Answer a request that carries a body, which websockets would drop unanswered.

    websockets reads no request bodies and closes such a connection without
    a word; a browser or curl deserves a status: 405 for a method other than
    GET and HEAD, 400 otherwise. Returns True when it answered.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False  # not a whole request head yet
    lines = data[:end].split(b"\r\n")
    has_body = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            has_body = True
    if not has_body:
        return False
    method = lines[0].split(b" ", 1)[0]
    if method in (b"GET", b"HEAD"):
        status, text, extra = "400 Bad Request", "Request bodies are not accepted\n", ""
    else:
        status, text, extra = (
            "405 Method Not Allowed",
            "Method Not Allowed\n",
            "Allow: GET, HEAD\r\n",
        )
    transport.write(
        f"HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n{text}".encode()
    )
    transport.close()
    return True


class WebSocket(ServerConnection):
    """websockets' server connection, delivering messages straight to a session.

    ``process_event`` runs inside ``data_received`` for every parsed frame.
    websockets has already answered pings and close frames and enforced
    ``max_size`` (on the whole of a fragmented message too); what is left
    is to join fragments, decode text as UTF-8 and call the session.
    """

    session: Connection | None = None
    _head: bytes = b""  # the request head so far, until websockets has parsed it
    _early: list[Frame] | None = None
    _fragments: bytearray | None = None
    _fragments_text = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Read in 16 KiB instead of asyncio's 256 KiB, then let websockets set up.

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
        own buffer and has no such attribute.)
        """
        if isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
        super().connection_made(transport)

    def process_event(self, event: Event) -> None:
        """Turn one parsed frame into a message for the session (websockets' hook)."""
        session = self.session
        if session is None:
            if self.request is None or not isinstance(event, Frame):
                super().process_event(event)  # the handshake request
            else:
                self._keep_early(event)
            return
        assert isinstance(event, Frame)
        opcode = event.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if not event.fin:
                self._fragments = bytearray(event.data)
                self._fragments_text = opcode is _TEXT
                return
            data = bytes(event.data)
            text = opcode is _TEXT
        elif opcode is _CONT and self._fragments is not None:
            self._fragments += event.data
            if not event.fin:
                return
            data, text = bytes(self._fragments), self._fragments_text
            self._fragments = None
        else:
            return  # ping, pong and close: websockets handled them
        if text:
            try:
                session.receive(data.decode())
            except UnicodeDecodeError as exc:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection.
                logger.info("closing %s: invalid UTF-8", session.sid)
                message = f"{exc.reason} at position {exc.start}"
                session.close("transport error", code=1007, message=message)
        else:
            session.receive(data)

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket; after websockets parsed them, check the close and the buffer."""
        if self.request is None:
            # The head may come in several reads: look at all of it so far.
            head = self._head + data if self._head else data
            if _refuse_request_body(self.transport, head):
                return
            if b"\r\n\r\n" not in head and len(head) < _MAX_HEAD:
                self._head = head
            elif self._head:
                # Back to the class default: an instance attribute would cost
                # every idle connection ~1 KB (its __dict__ grows).
                del self._head
        super().data_received(data)
        session = self.session
        if session is None or session.closed:
            return
        if self.protocol.state is OPEN:
            # websockets answers pings itself; a peer that pings and never
            # reads would pile pongs up here, unseen by the emit path's check.
            if self.transport.get_write_buffer_size() > session.server.max_buffer:
                session._overflow()
        else:
            # The peer started the closing handshake, or websockets failed the
            # connection (frame too big, bad framing): end the session now;
            # ws.close() then bounds the wait for TCP to close by close_timeout.
            received, sent = self.protocol.close_rcvd, self.protocol.close_sent
            failed = received is None and sent is not None and sent.code in (1002, 1007, 1009)
            if failed:
                logger.info("closing %s: websocket closed with %s", session.sid, sent)
            session.close("transport error" if failed else "transport close")

    def _keep_early(self, frame: Frame) -> None:
        if self._early is None:
            self._early = []
        self._early.append(frame)
        if len(self._early) > _MAX_EARLY_FRAMES:
            self.transport.abort()

    def start(self, session: Connection) -> None:
        """Deliver messages to ``session`` from now on, those already parsed first."""
        self.session = session
        early, self._early = self._early, None
        for frame in early or ():
            self.process_event(frame)


class Connection:
    """The server side of one Engine.IO session and the sockets riding on it."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_connect_timer",
        "_ping_timer",
        "_pong_timer",
        "_pong_wait_extended",
        "_tasks",
        "closed",
        "decoder",
        "pending",
        "plain",
        "server",
        "sid",
        "sockets",
        "started",
        "trace",
        "ws",
    )

    def __init__(self, server: Server, ws: WebSocket) -> None:
        self.server = server
        self.ws = ws
        self.sid = new_id()
        self.started = time.time()
        self.decoder = sio.Decoder(
            max_attachments=server.max_attachments,
            max_depth=server.max_depth,
            max_attachment_bytes=server.max_payload,
        )
        self.sockets: dict[str, Socket] = {}  # namespace name -> socket
        # Dicts used as sets: an empty dict is 64 bytes, an empty set 216, and
        # most connections never put anything in these two.
        self.pending: dict[str, None] = {}  # namespaces whose middleware is running
        self.closed = False
        self.trace = server.trace
        # No extension (compression) negotiated: frames can be written as built.
        self.plain = not ws.protocol.extensions
        self._tasks: dict[asyncio.Task[Any], None] = {}
        # Events waiting for a handler slot (see _on_packet); None when empty.
        self._backlog: collections.deque[tuple[Socket, sio.Packet, int]] | None = None
        self._backlog_bytes = 0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._pong_wait_extended = False
        self._connect_timer: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------
    async def run(self) -> None:
        """Serve the session until the WebSocket closes."""
        server = self.server
        loop = asyncio.get_running_loop()
        # "Handshake": the server sends the open packet first.
        self.send_eio(
            eio.PacketType.OPEN,
            eio.open_payload(
                self.sid, server.ping_interval_ms, server.ping_timeout_ms, server.max_payload
            ),
        )
        self._ping_timer = loop.call_later(server.ping_interval, self._ping)
        self._connect_timer = loop.call_later(server.connect_timeout, self._connect_timeout)
        self.ws.start(self)
        try:
            await self.ws.wait_closed()
        finally:
            if not self.closed:  # the TCP connection dropped without a closing handshake
                self.closed = True
                self._finish("transport close")
            # Counted towards max_connections until the socket is really gone.
            self.server._connections.discard(self)
            # The WebSocket and the session refer to each other: part now, so
            # that both are freed at once rather than by the garbage collector.
            self.ws.session = None

    def receive(self, message: str | bytes) -> None:
        """Handle one WebSocket message: the one boundary for peer faults."""
        if self.closed:
            return  # the session ended; the WebSocket is still closing
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
        """End the session now: sockets see ``reason`` at once, the WebSocket closes after.

        ``code`` and ``message`` go in the WebSocket close frame.
        """
        if self.closed:
            return
        self.closed = True
        if abort:
            self.ws.transport.abort()
            # Not now: abort() may be called from inside a broadcast, and the
            # disconnect handlers must not run in the middle of someone's emit.
            asyncio.get_running_loop().call_soon(self._finish, reason)
        else:
            self._finish(reason)
            self.spawn(self._close_websocket(code, message))

    async def _close_websocket(self, code: int, message: str) -> None:
        # websockets' close() first waits for the write buffer to drain, with
        # no deadline: a peer that stopped reading would keep it (and its
        # buffer) forever. Bound the whole close, then drop the connection.
        try:
            async with asyncio.timeout(self.server.close_timeout):
                await self.ws.close(code, message)
        except TimeoutError:
            self.ws.transport.abort()

    def kick(self) -> None:
        """Server-side ``disconnect(close=True)``: leave every namespace, then close."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self.close("forced close")

    def _finish(self, reason: str) -> None:
        for timer in (self._ping_timer, self._pong_timer, self._connect_timer):
            if timer is not None:
                timer.cancel()
        sockets = list(self.sockets.values())
        self.sockets.clear()
        self.pending.clear()
        self._backlog = None
        self._backlog_bytes = 0
        self.decoder.reset()  # a packet half-received goes now
        for socket in sockets:
            socket._onclose(reason)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine for this connection, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks[task] = None
        task.add_done_callback(self._task_done)

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
            trace_in(self.sid, frame, self.decoder)
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
            # open, ping and upgrade never come from a client on a WebSocket-only session.
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
            elif kind is _DISCONNECT:
                del self.pending[packet.namespace]  # gave up: do not accept it afterwards
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
        if nsp is None:
            self.send_packet(sio.PacketType.CONNECT_ERROR, {"message": "Invalid namespace"}, name)
            return
        if len(self.sockets) + len(self.pending) >= server.max_namespaces:
            self.send_packet(sio.PacketType.CONNECT_ERROR, {"message": "Too many namespaces"}, name)
            return
        from .socket import Socket

        socket = Socket(nsp, self, new_id(), auth or {})
        if nsp._async_middleware:
            self.pending[name] = None
            self.spawn(self._connect_async(nsp, socket))
            return
        try:
            for middleware in nsp._middlewares:
                middleware.fn(socket)
        except Exception as exc:
            self._refuse(nsp, exc)
            return
        self._accept(nsp, socket)

    async def _connect_async(self, nsp: Namespace, socket: Socket) -> None:
        try:
            for middleware in nsp._middlewares:
                result = middleware.fn(socket)
                if middleware.is_async:
                    await result
        except Exception as exc:
            if nsp.name in self.pending:
                del self.pending[nsp.name]
                self._refuse(nsp, exc)
            return
        if nsp.name in self.pending:  # still wanted: not closed meanwhile
            del self.pending[nsp.name]
            self._accept(nsp, socket)

    def _refuse(self, nsp: Namespace, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefused):
            error: dict[str, Any] = {"message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
        else:
            logger.error("middleware of %s failed", nsp.name, exc_info=exc)
            error = {"message": "Internal server error"}
        self.send_packet(sio.PacketType.CONNECT_ERROR, error, nsp.name)

    def _accept(self, nsp: Namespace, socket: Socket) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.sockets[nsp.name] = socket
        socket.connected = True
        nsp._add(socket)
        # The CONNECT reply goes out before anything a connection handler emits.
        self.send_packet(sio.PacketType.CONNECT, {"sid": socket.id}, nsp.name)
        nsp._on_connection(socket)

    def forget(self, socket: Socket) -> None:
        """Detach a socket that left its namespace."""
        if self.sockets.get(socket.namespace.name) is socket:
            del self.sockets[socket.namespace.name]

    def handshake(self, auth: dict[str, Any]) -> Handshake:
        """A socket's ``handshake``, from the HTTP request of this session."""
        from .socket import Handshake

        request = self.ws.request
        assert request is not None
        url = request.path
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        peer = self.ws.remote_address
        now = self.started
        return Handshake(
            headers=headers,
            query=dict(parse_qsl(urlsplit(url).query)),
            auth=auth,
            address=str(peer[0]) if peer else "",
            time=time.strftime("%a %b %d %Y %H:%M:%S GMT+0000", time.gmtime(now)),
            issued=int(now * 1000),
            url=url,
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
        size = self.ws.transport.get_write_buffer_size()
        logger.warning(
            "closing %s: %d bytes unsent, over the write high-water mark", self.sid, size
        )
        self.close("transport error", abort=True)


def send_many(conns: Sequence[Connection], frames: list[bytes]) -> None:
    """Write one encoded Socket.IO packet to many connections: encoded once, no await.

    The Engine.IO ``message`` prefix is added once; each attachment follows
    as a binary frame ("Transports / WebSocket").
    """
    write_many(conns, _MESSAGE + frames[0], frames[1:])


def write_many(conns: Sequence[Connection], text: bytes, attachments: list[bytes]) -> None:
    """Write one Engine.IO text frame, then binary frames, to many connections.

    A server's frames are not masked (RFC 6455 5.1), so without a
    compression extension they are the same bytes for every recipient: they
    are framed once here and written as they are, instead of once per
    recipient by websockets.
    """
    if not conns:
        return
    wire = ws_frame(_TEXT, text)
    if attachments:
        wire += b"".join(ws_frame(_BINARY, attachment) for attachment in attachments)
    max_buffer = conns[0].server.max_buffer
    for conn in conns:
        ws = conn.ws
        if conn.closed or ws.protocol.state is not OPEN:
            continue
        if conn.trace:
            trace_out(conn.sid, text, text=True)
            for attachment in attachments:
                trace_out(conn.sid, attachment, text=False)
        transport = ws.transport
        if conn.plain:
            transport.write(wire)
        else:  # permessage-deflate: each connection has its own compression state
            ws.protocol.send_text(text)
            for attachment in attachments:
                ws.protocol.send_binary(attachment)
            ws.send_data()
        if transport.get_write_buffer_size() > max_buffer:
            conn._overflow()


def ws_frame(opcode: Opcode, payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 0x10000:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload

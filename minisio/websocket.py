"""The WebSocket transport: websockets' connection, delivering frames straight to a session.

The HTTP side (:mod:`minisio.http`) reads the upgrade request and, once it
has checked it, hands the TCP connection over: :func:`accept` makes a
:class:`WebSocket` the asyncio protocol of that transport, lets websockets'
sans-I/O ``ServerProtocol`` answer the handshake, and from then on every
byte goes to websockets' frame parser without passing through minisio's
HTTP code.

Frames come in without a queue: ``process_event`` runs inside
``data_received`` for each parsed frame and calls the session at once;
websockets' own ``recv()`` would queue it and wake a task to read it. No
task, future or ``await`` is spent per message.

Frames go out synchronously too: a write pushes bytes into the transport
and returns, as ``websockets.broadcast()`` does. The price of not awaiting
is that a client that stops reading would grow its write buffer forever,
so every write checks the buffer against ``max_buffer`` and cuts the
connection that passes it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from websockets.asyncio.connection import Connection
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WSRequest
from websockets.protocol import OPEN, Event
from websockets.server import ServerProtocol

if TYPE_CHECKING:
    from .engine import Session
    from .http11 import Request
    from .server import Server

__all__ = ["BINARY", "TEXT", "WebSocket", "accept", "wait_closing", "ws_frame"]

logger = logging.getLogger("minisio")

TEXT = Opcode.TEXT
BINARY = Opcode.BINARY
_CONT = Opcode.CONT
# Frames a client may pipeline behind its handshake request, before the
# session starts: a well-behaved one sends none.
_MAX_EARLY_FRAMES = 16
# Closing handshakes under way, kept referenced until they end.
_closing: set[asyncio.Task[None]] = set()


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


async def wait_closing(timeout: float) -> None:
    """Wait, at most ``timeout`` seconds, for the closing handshakes under way."""
    if _closing:
        await asyncio.wait(list(_closing), timeout=timeout)


def accept(
    server: Server,
    transport: asyncio.Transport,
    request: Request,
    rest: bytes,
    headers: Sequence[tuple[str, str]] = (),
) -> WebSocket | None:
    """Take over ``transport`` for the upgrade ``request``; None if websockets refused it.

    ``rest`` is what the client sent after the request head (frames it
    pipelined); they are parsed now and handed to the session when it starts.
    ``headers`` are added to the 101 (the server's header hooks).
    """
    extensions = enable_server_permessage_deflate(None) if server.compression else None
    protocol = ServerProtocol(extensions=extensions, max_size=server.max_payload, logger=logger)
    ws = WebSocket(protocol, close_timeout=server.close_timeout)
    transport.set_protocol(ws)
    ws.connection_made(transport)
    ws.data_received(request.head)  # websockets parses the head again, into its own Request
    if ws.request is None:
        transport.abort()
        return None
    response = protocol.accept(ws.request)
    if response.status_code == 101:
        for name, value in headers:
            response.headers[name] = value  # websockets' Headers: appends, repeats kept
    protocol.send_response(response)
    ws.send_data()
    if response.status_code != 101:  # e.g. a bad Sec-WebSocket-Key: websockets said why
        # It only half-closed: nothing else would ever close the connection.
        transport.close()
        return None
    if protocol.extensions:
        # Set only then: one more instance attribute can grow every idle
        # connection's __dict__ to its next size.
        ws.plain = False
    if rest:
        ws.data_received(rest)
    return ws


class WebSocket(Connection):
    """One WebSocket, the transport of a session (or of a probe, while it upgrades).

    websockets has already answered pings and close frames and enforced
    ``max_size`` (on the whole of a fragmented message too) before
    ``process_event`` sees a frame; what is left is to join fragments,
    decode text as UTF-8 and call the session.
    """

    name = "websocket"
    polling = False
    session: Session | None = None
    request: WSRequest | None = None
    # True while this WebSocket is the probe of an upgrade ("2probe" ... "5").
    probing = False
    probed = False
    # No extension (compression) negotiated: frames can be written as built.
    plain = True
    _early: list[Frame] | None = None
    _fragments: bytearray | None = None
    _fragments_text = False

    def __init__(self, protocol: ServerProtocol, close_timeout: float) -> None:
        # Engine.IO's ping/pong is the one liveness clock: no keepalive here.
        super().__init__(
            protocol, ping_interval=None, ping_timeout=None, close_timeout=close_timeout
        )

    def process_event(self, event: Event) -> None:
        """Turn one parsed frame into a message for the session (websockets' hook)."""
        session = self.session
        if session is None:
            if isinstance(event, WSRequest):
                self.request = event  # the handshake request, parsed by websockets
            elif self.request is not None and isinstance(event, Frame):
                self._keep_early(event)
            return
        assert isinstance(event, Frame)
        opcode = event.opcode
        if opcode is TEXT or opcode is BINARY:
            if not event.fin:
                self._fragments = bytearray(event.data)
                self._fragments_text = opcode is TEXT
                return
            data = bytes(event.data)
            text = opcode is TEXT
        elif opcode is _CONT and self._fragments is not None:
            self._fragments += event.data
            if not event.fin:
                return
            data, text = bytes(self._fragments), self._fragments_text
            self._fragments = None
        else:
            return  # ping, pong and close: websockets handled them
        message: str | bytes = data
        if text:
            try:
                message = data.decode()
            except UnicodeDecodeError as exc:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection.
                if self.probing:
                    session._drop_probe()
                    return
                logger.info("closing %s: invalid UTF-8", session.sid)
                reason = f"{exc.reason} at position {exc.start}"
                session.close("transport error", code=1007, message=reason)
                return
        if self.probing:
            if message == "2probe":
                self.probed = True
            session.probe(self, message)
        else:
            session.receive(message)

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket; after websockets parsed them, check the close and the buffer."""
        super().data_received(data)
        session = self.session
        if session is None:
            return
        if self.probing:
            # Pongs pile up on a probe too; cutting it ends the probe alone.
            if self.transport.get_write_buffer_size() > session.server.max_buffer:
                logger.warning("%s: probe cut, over the write high-water mark", session.sid)
                self.transport.abort()
            return
        if session.closed:
            return
        if self.protocol.state is OPEN:
            # websockets answers pings itself; a peer that pings and never
            # reads would pile pongs up here, unseen by the write path's check.
            if self.transport.get_write_buffer_size() > session.server.max_buffer:
                session._overflow()
        else:
            # The peer started the closing handshake, or websockets failed the
            # connection (frame too big, bad framing): end the session now;
            # close() then bounds the wait for TCP to close by close_timeout.
            received, sent = self.protocol.close_rcvd, self.protocol.close_sent
            failed = received is None and sent is not None and sent.code in (1002, 1007, 1009)
            if failed:
                logger.info("closing %s: websocket closed with %s", session.sid, sent)
            session.close("transport error" if failed else "transport close")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        session, self.session = self.session, None
        if session is not None:
            # The WebSocket and the session refer to each other: part now, so
            # that both are freed at once rather than by the garbage collector.
            session.transport_gone(self)

    def _keep_early(self, frame: Frame) -> None:
        if self._early is None:
            self._early = []
        self._early.append(frame)
        if len(self._early) > _MAX_EARLY_FRAMES:
            self.transport.abort()

    def start(self, session: Session) -> None:
        """Deliver messages to ``session`` from now on, those already parsed first."""
        self.session = session
        early, self._early = self._early, None
        for frame in early or ():
            if self.session is None:
                break
            self.process_event(frame)

    # -- the transport interface of a session ------------------------------
    def write(self, text: bytes, attachments: list[bytes], wire: bytes) -> None:
        """Send a text frame and its binary attachments (``wire``: the same, framed)."""
        if self.protocol.state is not OPEN:
            return
        transport = self.transport
        if self.plain:
            transport.write(wire or ws_frame(TEXT, text))
        else:  # permessage-deflate: each connection has its own compression state
            self.protocol.send_text(text)
            for attachment in attachments:
                self.protocol.send_binary(attachment)
            self.send_data()
        session = self.session
        if session is not None and transport.get_write_buffer_size() > session.server.max_buffer:
            session._overflow()

    def write_uncompressed(self, wire: bytes) -> None:
        """Write frames as built even if permessage-deflate is on (``compress(False)``)."""
        if self.protocol.state is not OPEN:
            return
        transport = self.transport
        transport.write(wire)
        session = self.session
        if session is not None and transport.get_write_buffer_size() > session.server.max_buffer:
            session._overflow()

    def write_binary(self, data: bytes) -> None:
        """Send one binary frame (an attachment moved over from polling at the upgrade)."""
        if self.protocol.state is not OPEN:
            return
        if self.plain:
            self.transport.write(ws_frame(BINARY, data))
        else:
            self.protocol.send_binary(data)
            self.send_data()

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def end(self, code: int = 1000, message: str = "") -> None:
        """Start the closing handshake, bounded by ``close_timeout``, drain included."""
        task = asyncio.ensure_future(self._close(code, message))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def _close(self, code: int, message: str) -> None:
        # websockets' close() first waits for the write buffer to drain, with
        # no deadline: a peer that stopped reading would keep it (and its
        # buffer) forever. Bound the whole close, then drop the connection.
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.close(code, message)
        except TimeoutError:
            self.transport.abort()

    def abort(self) -> None:
        self.transport.abort()

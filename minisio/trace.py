"""The wire trace: every frame in and out, with a one-line decoding beside it.

Turned on by ``Server(trace=True)`` or ``python -m minisio --trace``; the
connection checks one boolean per frame, so it costs nothing when off. Lines
go to the ``minisio.trace`` logger at INFO, one per frame, in the notation of
protocol.md: the Engine.IO session id, ``>`` for client -> server or ``<``
for server -> client, the frame as sent, then two spaces and what it means::

    Xy3WQ1k0zOr8bqtDpeUu > 42/admin,17["chat","hi"]  EVENT ns=/admin ack=17 "chat"
    Xy3WQ1k0zOr8bqtDpeUu < 43/admin,17[true]  ACK ns=/admin ack=17
    Xy3WQ1k0zOr8bqtDpeUu > <binary 01 02 03 04>  ATTACHMENT 4 bytes

Long text frames are cut after 300 characters and binary frames after 16
bytes; control characters are escaped so that a frame never spans two lines.
The peer's text in the description (namespace, event name, sid, error
message) is cut and escaped the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from . import eio, sio
from .errors import ProtocolError

if TYPE_CHECKING:
    from .engine import Session

__all__ = ["LogTap", "Tap", "Taps", "describe", "trace_in", "trace_out"]

logger = logging.getLogger("minisio.trace")

_MAX_TEXT = 300
_HEX_PREFIX = 16

# The Server's default limits, for frames described with no connection's
# decoder: INVALID marks what a default server refuses, and a hostile frame
# costs the trace no more than the connection's own decoding (a depth check
# to 1000 levels took seconds on one 1 MB frame).
_DECODER = sio.Decoder()


class Tap:
    """What watches every session's life and frames: the wire trace, the admin UI's stats.

    A session holds one in ``Session.trace`` (None when nothing watches, so
    an unwatched frame costs one test); each hook does nothing by default.
    """

    __slots__ = ()

    def opened(self, session: Session) -> None:
        """A session was opened (its handshake answered)."""

    def closed(self, session: Session) -> None:
        """A session's transport is gone for good."""

    def upgraded(self, session: Session) -> None:
        """A session moved from polling to its WebSocket."""

    def frame_in(self, session: Session, frame: str | bytes) -> None:
        """The client sent ``frame`` (before it is decoded)."""

    def frame_out(self, session: Session, text: bytes, attachments: list[bytes]) -> None:
        """A text frame (UTF-8), then binary ones, are being written to the client."""


class LogTap(Tap):
    """The wire trace: one log line per frame (``Server(trace=True)``)."""

    __slots__ = ()

    def upgraded(self, session: Session) -> None:
        logger.info("%s = upgraded to websocket", session.sid)

    def frame_in(self, session: Session, frame: str | bytes) -> None:
        trace_in(session.sid, frame, session.decoder)

    def frame_out(self, session: Session, text: bytes, attachments: list[bytes]) -> None:
        trace_out(session.sid, text, text=True)
        for attachment in attachments:
            trace_out(session.sid, attachment, text=False)


class Taps(Tap):
    """Several taps, called in order."""

    __slots__ = ("taps",)

    def __init__(self, *taps: Tap) -> None:
        self.taps = taps

    def opened(self, session: Session) -> None:
        for tap in self.taps:
            tap.opened(session)

    def closed(self, session: Session) -> None:
        for tap in self.taps:
            tap.closed(session)

    def upgraded(self, session: Session) -> None:
        for tap in self.taps:
            tap.upgraded(session)

    def frame_in(self, session: Session, frame: str | bytes) -> None:
        for tap in self.taps:
            tap.frame_in(session, frame)

    def frame_out(self, session: Session, text: bytes, attachments: list[bytes]) -> None:
        for tap in self.taps:
            tap.frame_out(session, text, attachments)


def trace_in(sid: str, frame: str | bytes, decoder: sio.Decoder | None = None) -> None:
    """Log a frame the client sent, judged by ``decoder``'s limits (the connection's)."""
    logger.info("%s > %s", sid, describe(frame, decoder))


def trace_out(sid: str, frame: bytes, *, text: bool) -> None:
    """Log a frame sent to the client; a text frame arrives as UTF-8 ``bytes``."""
    logger.info("%s < %s", sid, describe(frame.decode() if text else frame))


def describe(frame: str | bytes, decoder: sio.Decoder | None = None) -> str:
    """The frame (shortened) and what it means, e.g. ``2  PING``.

    Socket.IO packets are checked with ``decoder``'s limits, by default the
    Server's defaults; only its stateless ``parse()`` is used.
    """
    if isinstance(frame, bytes):
        head = frame[:_HEX_PREFIX].hex(" ")
        more = " ..." if len(frame) > _HEX_PREFIX else ""
        return f"<binary {head}{more}>  ATTACHMENT {len(frame)} bytes"
    raw = _one_line(frame)
    if len(frame) > _MAX_TEXT:
        raw += f" ({len(frame)} chars)"
    try:
        packet = eio.decode(frame)
    except ProtocolError as exc:
        return f"{raw or '(empty)'}  INVALID ({exc})"
    if packet.type is not eio.PacketType.MESSAGE:
        return f"{raw}  {packet.type.name}"
    assert isinstance(packet.data, str)
    return f"{raw}  {_describe_sio(packet.data, decoder or _DECODER)}"


def _one_line(text: str) -> str:
    """``text`` cut after 300 characters, control characters escaped: never two lines."""
    short = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
    if short.isprintable():
        return short
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in short)


def _describe_sio(text: str, decoder: sio.Decoder) -> str:
    try:
        packet, count = decoder.parse(text)
    except ProtocolError as exc:
        return f"INVALID ({exc})"
    # Everything printed below may come from the peer: each piece through _one_line.
    parts = [packet.type.name, f"ns={_one_line(packet.namespace)}"]
    if packet.id is not None:
        parts.append(f"ack={packet.id}")
    if packet.type in (sio.PacketType.BINARY_EVENT, sio.PacketType.BINARY_ACK):
        parts.append(f"attachments={count}")
    if packet.type in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT):
        parts.append(_one_line(orjson.dumps(packet.data[0]).decode()))
    elif packet.type is sio.PacketType.CONNECT and isinstance(packet.data, dict):
        if "sid" in packet.data:
            parts.append(f"sid={_one_line(str(packet.data['sid']))}")
    elif packet.type is sio.PacketType.CONNECT_ERROR:
        message = packet.data.get("message") if isinstance(packet.data, dict) else packet.data
        parts.append(_one_line(orjson.dumps(message).decode()))
    return " ".join(parts)

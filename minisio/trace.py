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
"""

from __future__ import annotations

import logging

import orjson

from . import eio, sio
from .errors import ProtocolError

__all__ = ["describe", "trace_in", "trace_out"]

logger = logging.getLogger("minisio.trace")

_MAX_TEXT = 300
_HEX_PREFIX = 16


def trace_in(sid: str, frame: str | bytes) -> None:
    """Log a frame the client sent."""
    logger.info("%s > %s", sid, describe(frame))


def trace_out(sid: str, frame: bytes, *, text: bool) -> None:
    """Log a frame sent to the client; a text frame arrives as UTF-8 ``bytes``."""
    logger.info("%s < %s", sid, describe(frame.decode() if text else frame))


def describe(frame: str | bytes) -> str:
    """The frame (shortened) and what it means, e.g. ``2  PING``."""
    if isinstance(frame, bytes):
        head = frame[:_HEX_PREFIX].hex(" ")
        more = " ..." if len(frame) > _HEX_PREFIX else ""
        return f"<binary {head}{more}>  ATTACHMENT {len(frame)} bytes"
    raw = frame if len(frame) <= _MAX_TEXT else frame[:_MAX_TEXT] + "..."
    if not raw.isprintable():
        raw = "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw)
    if len(frame) > _MAX_TEXT:
        raw += f" ({len(frame)} chars)"
    try:
        packet = eio.decode(frame)
    except ProtocolError as exc:
        return f"{raw or '(empty)'}  INVALID ({exc})"
    if packet.type is not eio.PacketType.MESSAGE:
        return f"{raw}  {packet.type.name}"
    assert isinstance(packet.data, str)
    return f"{raw}  {_describe_sio(packet.data)}"


def _describe_sio(text: str) -> str:
    decoder = sio.Decoder(max_attachments=1_000_000, max_depth=1_000)
    try:
        packet, count = decoder.parse(text)
    except ProtocolError as exc:
        return f"INVALID ({exc})"
    parts = [packet.type.name, f"ns={packet.namespace}"]
    if packet.id is not None:
        parts.append(f"ack={packet.id}")
    if packet.type in (sio.PacketType.BINARY_EVENT, sio.PacketType.BINARY_ACK):
        parts.append(f"attachments={count}")
    if packet.type in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT):
        parts.append(orjson.dumps(packet.data[0]).decode())
    elif packet.type is sio.PacketType.CONNECT and isinstance(packet.data, dict):
        if "sid" in packet.data:
            parts.append(f"sid={packet.data['sid']}")
    elif packet.type is sio.PacketType.CONNECT_ERROR:
        message = packet.data.get("message") if isinstance(packet.data, dict) else packet.data
        parts.append(orjson.dumps(message).decode())
    return " ".join(parts)

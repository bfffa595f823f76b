"""The wire trace: every frame in and out, with a one-line decoding beside it.

Turned on by ``Server(trace=True)`` or ``python -m minisio --trace``; the
connection checks one boolean per frame, so it costs nothing when off. Lines
go to the ``minisio.trace`` logger at INFO::

    Xy3...k < 42/admin,17["chat","hi"]  EVENT ns=/admin ack=17 "chat"
    Xy3...k > <binary 4 bytes: 01 02 03 04>  ATTACHMENT
"""

from __future__ import annotations

import logging

from . import eio, sio
from .errors import ProtocolError

__all__ = ["describe", "trace_frame"]

logger = logging.getLogger("minisio.trace")

_MAX_TEXT = 300
_HEX_PREFIX = 16


def trace_frame(sid: str, direction: str, frame: str | bytes, *, text: bool = False) -> None:
    """Log one frame. Outgoing text frames are UTF-8 ``bytes`` with ``text=True``."""
    if text and isinstance(frame, bytes):
        frame = frame.decode()
    logger.info("%s %s %s", sid, direction, describe(frame))


def describe(frame: str | bytes) -> str:
    """The raw frame (shortened) and what it means, e.g. ``2  PING``."""
    if isinstance(frame, bytes):
        head = " ".join(f"{b:02x}" for b in frame[:_HEX_PREFIX])
        more = " ..." if len(frame) > _HEX_PREFIX else ""
        return f"<binary {len(frame)} bytes: {head}{more}>  ATTACHMENT"
    raw = frame if len(frame) <= _MAX_TEXT else frame[:_MAX_TEXT] + f"... ({len(frame)} chars)"
    try:
        packet = eio.decode(frame)
    except ProtocolError as exc:
        return f"{raw}  INVALID ({exc})"
    if packet.type is not eio.PacketType.MESSAGE:
        return f"{raw}  {packet.type.name}"
    assert isinstance(packet.data, str)
    return f"{raw}  {_describe_sio(packet.data)}"


def _describe_sio(text: str) -> str:
    decoder = sio.Decoder(max_attachments=1_000_000, max_depth=1_000)
    try:
        packet, count = decoder._parse(text)
    except ProtocolError as exc:
        return f"INVALID ({exc})"
    parts = [packet.type.name, f"ns={packet.namespace}"]
    if packet.id is not None:
        parts.append(f"ack={packet.id}")
    if packet.type in (sio.PacketType.BINARY_EVENT, sio.PacketType.BINARY_ACK):
        parts.append(f"attachments={count}")
    if packet.type in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT):
        name = packet.data[0]
        parts.append(f'"{name}"')
    elif packet.type is sio.PacketType.CONNECT and isinstance(packet.data, dict):
        if "sid" in packet.data:
            parts.append(f"sid={packet.data['sid']}")
    elif packet.type is sio.PacketType.CONNECT_ERROR:
        message = packet.data.get("message") if isinstance(packet.data, dict) else packet.data
        parts.append(repr(message))
    return " ".join(parts)

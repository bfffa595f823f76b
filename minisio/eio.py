"""Engine.IO v4 codec for the WebSocket transport. Pure: no I/O, no asyncio.

On WebSocket every Engine.IO packet is one frame (Engine.IO protocol,
"Transports / WebSocket"):

* a text frame holds ``<type digit><data>``, for example ``2`` (ping) or
  ``4hello`` (message "hello");
* a binary frame holds the raw bytes of a binary ``message`` packet, with no
  type prefix.

Frames are ``str`` (text) or ``bytes`` (binary), the types ``websockets``
uses, so the text/binary distinction Engine.IO depends on is never lost.
Outgoing text frames are built as UTF-8 ``bytes`` (see :func:`text_frame`)
so JSON from orjson goes out without a decode/encode round trip.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import orjson

from .errors import ProtocolError

__all__ = [
    "Packet",
    "PacketType",
    "decode",
    "encode",
    "open_payload",
    "text_frame",
]


class PacketType(enum.IntEnum):
    """Engine.IO packet types ("Protocol / Packet encoding")."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPES = tuple(PacketType)


@dataclass(slots=True)
class Packet:
    """One Engine.IO packet. ``data`` is ``bytes`` only for a binary message.

    A plain value, not ``frozen``: one is built for every frame received, and
    a frozen dataclass costs four times as much to build.
    """

    type: PacketType
    data: str | bytes = ""


def decode(frame: str | bytes) -> Packet:
    """Decode one WebSocket frame into an Engine.IO packet.

    Raises :class:`ProtocolError` for an empty text frame or an unknown type.
    """
    if isinstance(frame, bytes):
        # "Binary payloads are sent as binary frames" - always a message.
        return Packet(PacketType.MESSAGE, frame)
    if not frame:
        raise ProtocolError("empty Engine.IO packet")
    code = ord(frame[0]) - 48  # '0'
    if not 0 <= code <= 6:
        raise ProtocolError("unknown Engine.IO packet type")
    return Packet(_TYPES[code], frame[1:])


def encode(packet: Packet) -> str | bytes:
    """Encode a packet as one WebSocket frame: ``str`` is text, ``bytes`` binary."""
    if isinstance(packet.data, bytes):
        if packet.type is not PacketType.MESSAGE:
            raise ValueError("only message packets may carry binary data")
        return packet.data
    return f"{int(packet.type)}{packet.data}"


def text_frame(type: PacketType, data: bytes = b"") -> bytes:
    """The UTF-8 payload of a text frame holding ``type`` and ``data``.

    Send it with ``text=True``. This is the fast path for outgoing messages:
    ``text_frame(PacketType.MESSAGE, b'2["chat","hi"]')`` is
    ``b'42["chat","hi"]'``.
    """
    return _PREFIX[type] + data


_PREFIX = {t: str(int(t)).encode() for t in PacketType}


def open_payload(sid: str, ping_interval_ms: int, ping_timeout_ms: int, max_payload: int) -> bytes:
    """The JSON data of the ``open`` packet ("Protocol / Handshake").

    ``upgrades`` is empty: minisio speaks WebSocket only, so there is nothing
    to upgrade to.
    """
    return orjson.dumps(
        {
            "sid": sid,
            "upgrades": [],
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload,
        }
    )

"""Engine.IO v4 codec for both transports. Pure: no I/O, no asyncio.

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

Over HTTP long-polling several packets travel in one body, a *payload*
("Transports / HTTP long-polling / Packet encoding"): each packet is the
text a text frame would hold, a binary packet is ``b`` and its bytes in
base64, and packets are separated by the record separator ``\x1e``.
:func:`encode_payload` and :func:`decode_payload` turn a payload into the
same ``str``/``bytes`` items the WebSocket carries, so one session code
handles both.
"""

from __future__ import annotations

import binascii
import enum
from base64 import b64decode, b64encode
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from .errors import ProtocolError

__all__ = [
    "Packet",
    "PacketType",
    "decode",
    "decode_payload",
    "encode",
    "encode_payload",
    "open_payload",
    "payload_item",
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


def open_payload(
    sid: str,
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload: int,
    upgrades: tuple[str, ...] = (),
) -> bytes:
    """The JSON data of the ``open`` packet ("Protocol / Handshake").

    ``upgrades`` lists the transports the session may move to: ``websocket``
    for a session that opened over polling, nothing for one that opened
    over WebSocket (there is nothing better to move to).
    """
    return orjson.dumps(
        {
            "sid": sid,
            "upgrades": list(upgrades),
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload,
        }
    )


# "Transports / HTTP long-polling": packets are separated by the record separator.
SEPARATOR = b"\x1e"
_B = b"b"


def payload_item(text: bytes | None = None, binary: bytes | None = None) -> bytes:
    """One packet as it goes in a polling payload: a text packet as it is,
    a binary one as ``b`` and base64 ("b" + base64 of the raw bytes)."""
    if binary is not None:
        return _B + b64encode(binary)
    assert text is not None
    return text


def encode_payload(items: Iterable[bytes]) -> bytes:
    """Join packets already made by :func:`payload_item` into one payload."""
    return SEPARATOR.join(items)


def decode_payload(body: str) -> list[str | bytes]:
    """Split a polling payload into WebSocket-style items: ``str`` text, ``bytes`` binary.

    Raises :class:`ProtocolError` for an empty record (an empty body
    included) or a binary record that is not valid base64. The items still
    go through :func:`decode` one by one.
    """
    items: list[str | bytes] = []
    for record in body.split("\x1e"):
        if not record:
            raise ProtocolError("empty packet in a polling payload")
        if record[0] == "b":
            try:
                items.append(b64decode(record[1:], validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError("invalid base64 in a polling payload") from None
        else:
            items.append(record)
    return items

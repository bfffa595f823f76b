"""Socket.IO v5 codec. Pure: no I/O, no asyncio.

A packet is written as ("Protocol / Packet encoding")::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]

for example ``2["chat","hi"]``, ``2/admin,17["chat","hi"]`` or
``51-["file",{"_placeholder":true,"num":0}]`` followed by one binary frame.
The namespace part is left out for the main namespace ``/``.

:func:`encode` turns a :class:`Packet` into the text (as UTF-8 ``bytes``)
plus the binary attachments; :class:`Decoder` does the reverse, frame by
frame, and raises :class:`~minisio.errors.ProtocolError` and nothing else on
malformed input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ProtocolError

__all__ = [
    "RESERVED_EVENTS",
    "Decoder",
    "Packet",
    "PacketType",
    "encode",
]


class PacketType(enum.IntEnum):
    """Socket.IO packet types ("Protocol / Packet format")."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_TYPES = tuple(PacketType)
_BINARY = {PacketType.BINARY_EVENT, PacketType.BINARY_ACK}
# Module-level aliases for encode(): an enum member lookup
# (``PacketType.EVENT``) costs more than the rest of the comparison.
_EVENT = PacketType.EVENT
_ACK = PacketType.ACK

#: Event names a peer may not send: the Socket.IO API gives them their own
#: meaning on both sides ("connect", "disconnect", ...).
RESERVED_EVENTS = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    }
)

# Ack ids are JavaScript numbers on the other side; keep them exact there.
_MAX_ACK_ID = 2**53 - 1
_MAX_ACK_ID_DIGITS = 16
_MAX_COUNT_DIGITS = 6
_MAX_NAMESPACE = 256


@dataclass(slots=True)
class Packet:
    """One Socket.IO packet, a plain value: the codec never changes one it built.

    (Not ``frozen``: a frozen dataclass costs four times as much to build,
    and one is built for every packet in and out.)

    ``data`` is the decoded JSON payload (``None`` when absent) with binary
    attachments put back in place as ``bytes``. For ``EVENT`` it is
    ``[name, *args]``; for ``ACK``, the list of answer arguments.
    """

    type: PacketType
    data: Any = None
    namespace: str = "/"
    id: int | None = None


def encode(packet: Packet) -> list[bytes]:
    """Encode a packet as ``[text, *attachments]``.

    ``text`` is UTF-8 to be sent in a text frame (prefixed by the Engine.IO
    message type); each attachment goes in a binary frame right after it.
    An ``EVENT`` or ``ACK`` whose data holds ``bytes``, ``bytearray`` or
    ``memoryview`` anywhere becomes ``BINARY_EVENT``/``BINARY_ACK``, each
    buffer replaced by ``{"_placeholder":true,"num":N}``.

    Raises ``TypeError`` if the data is not JSON-serializable.
    """
    type_ = packet.type
    data = packet.data
    attachments: list[bytes] = []
    if data is None:
        body = b""
    else:
        try:
            body = orjson.dumps(data)
        except TypeError:
            # orjson refuses bytes: that is how binary data is noticed without
            # walking every packet. Walk only this one.
            # Non-string dict keys land here too: JSON.stringify and json.dumps
            # turn them into strings, and so does this slower path.
            data = _extract(data, attachments)
            body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
            if attachments and (type_ is _EVENT or type_ is _ACK):
                type_ = PacketType(type_ + 3)
    if type_ is _EVENT and packet.namespace == "/" and packet.id is None:
        return [b"2" + body]  # the common case, kept short
    if type_ not in _BINARY:
        head = str(int(type_))
    elif attachments:
        head = f"{int(type_)}{len(attachments)}-"
    else:  # nothing to attach: a count of 0 is refused by the decoders
        head = str(type_ - 3)
    if packet.namespace != "/":
        head += packet.namespace + ","
    if packet.id is not None:
        head += str(packet.id)
    return [head.encode() + body, *attachments]


def _extract(value: Any, attachments: list[bytes]) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        attachments.append(bytes(value))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(value, (list, tuple)):
        return [_extract(v, attachments) for v in value]
    if isinstance(value, dict):
        return {k: _extract(v, attachments) for k, v in value.items()}
    return value


class Decoder:
    """Turns incoming frames into packets, one connection's worth of state.

    Feed it every Socket.IO-level frame in order: the text of each Engine.IO
    message as ``str``, each binary message as ``bytes``. It returns a
    :class:`Packet` when one is complete, or ``None`` while a binary packet
    still waits for its attachments.
    """

    __slots__ = (
        "_buffered",
        "_buffers",
        "_expected",
        "_pending",
        "max_attachment_bytes",
        "max_attachments",
        "max_depth",
    )

    def __init__(
        self,
        *,
        max_attachments: int = 10,
        max_depth: int = 32,
        max_attachment_bytes: int = 1_000_000,
    ) -> None:
        self.max_attachments = max_attachments
        self.max_depth = max_depth
        # All attachments of one packet together: without it a peer could park
        # max_attachments full-size frames in memory per connection.
        self.max_attachment_bytes = max_attachment_bytes
        self._buffered = 0
        self._pending: Packet | None = None
        self._buffers: list[bytes] = []
        self._expected = 0

    @property
    def waiting(self) -> bool:
        """True while a binary packet waits for more attachments."""
        return self._pending is not None

    def reset(self) -> None:
        """Forget a binary packet still waiting for attachments."""
        self._pending = None
        self._buffers = []
        self._buffered = 0

    def feed(self, frame: str | bytes) -> Packet | None:
        """Consume one frame; return the packet it completes, if any."""
        if type(frame) is str and frame[:2] == "2[" and self._pending is None:
            # The packet most frames carry, an event to the main namespace
            # without ack id: parse() and _validate() inline, for speed alone.
            # A payload that is not a valid event goes on to parse(), to say why.
            payload = frame[1:]
            limit = self.max_depth
            if payload.count("[") + payload.count("{") > limit and _too_deep(payload, limit):
                raise ProtocolError("JSON nested too deeply")
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise ProtocolError("invalid JSON payload") from None
            name = data[0] if data else None  # text that opens with "[" is an array
            if type(name) is str and name not in RESERVED_EVENTS:
                return Packet(_EVENT, data)
        if isinstance(frame, str):
            if self._pending is not None:
                raise ProtocolError("text packet while waiting for binary attachments")
            packet, count = self.parse(frame)
            if count < 0:
                return packet
            self._pending = packet
            self._buffers = []
            self._buffered = 0
            self._expected = count
            return None
        if self._pending is None:
            raise ProtocolError("unexpected binary frame")
        self._buffered += len(frame)
        if self._buffered > self.max_attachment_bytes:
            raise ProtocolError("binary attachments too large")
        self._buffers.append(frame)
        if len(self._buffers) < self._expected:
            return None
        packet, buffers = self._pending, self._buffers
        self._pending, self._buffers = None, []
        return _rebuild(packet, buffers)

    def parse(self, text: str) -> tuple[Packet, int]:
        """Decode one packet's text alone, with no attachment state.

        Returns the packet, its placeholders not yet replaced, and its
        attachment count (-1 for a type that takes none). :meth:`feed` is
        the way to decode a stream; the wire trace uses this to describe a
        single frame.
        """
        code = ord(text[0]) - 48 if text else -1
        if not 0 <= code <= 6:
            raise ProtocolError(
                "unknown Socket.IO packet type" if text else "empty Socket.IO packet"
            )
        payload = text[1:]
        namespace, ack_id, count = "/", None, -1
        # Most packets are "2[...]": no count, no namespace, no ack id. Only
        # parse the header when something other than the JSON follows the type.
        if code >= 5 or payload[:1] not in "[{":
            namespace, ack_id, count, payload = self._header(code, payload)
        data = None
        if payload:
            # Each level opens a bracket, so few brackets settle it at once.
            limit = self.max_depth
            if payload.count("[") + payload.count("{") > limit and _too_deep(payload, limit):
                raise ProtocolError("JSON nested too deeply")
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise ProtocolError("invalid JSON payload") from None
            if data is None:
                # "null" is a payload too, and no packet type takes it ("isPayloadValid").
                raise ProtocolError("null payload")
        _validate(code, data, ack_id)
        return Packet(_TYPES[code], data, namespace, ack_id), count

    def _header(self, code: int, rest: str) -> tuple[str, int | None, int, str]:
        """Parse ``[<count>-][<namespace>,][<ack id>]``; return them and the JSON text."""
        n = len(rest)
        i = 0
        count = -1
        if code >= 5:  # BINARY_EVENT, BINARY_ACK
            dash = rest.find("-", 0, 1 + _MAX_COUNT_DIGITS)
            digits = rest[:dash]
            if dash < 0 or not digits or not (digits.isascii() and digits.isdigit()):
                raise ProtocolError("malformed attachment count")
            count = int(digits)
            if count == 0:  # the reference parser too: "Illegal attachments"
                raise ProtocolError("binary packet without attachments")
            if count > self.max_attachments:
                raise ProtocolError("too many binary attachments")
            i = dash + 1
        namespace = "/"
        if i < n and rest[i] == "/":
            comma = rest.find(",", i, i + _MAX_NAMESPACE + 1)
            if comma < 0:
                if n - i > _MAX_NAMESPACE:
                    raise ProtocolError("namespace too long")
                namespace, i = rest[i:], n
            else:
                namespace, i = rest[i:comma], comma + 1
            if not namespace.isascii():
                # JSON gets this check from orjson; the namespace must get it
                # here, or encoding the reply to it fails.
                try:
                    namespace.encode()
                except UnicodeEncodeError:
                    raise ProtocolError("namespace is not valid UTF-8") from None
        ack_id = None
        j = i
        while j < n and "0" <= rest[j] <= "9":
            j += 1
            if j - i > _MAX_ACK_ID_DIGITS:
                raise ProtocolError("ack id too long")
        if j > i:
            ack_id = int(rest[i:j])
            if ack_id > _MAX_ACK_ID:
                raise ProtocolError("ack id too large")
            i = j
        return namespace, ack_id, count, rest[i:]


def _validate(code: int, data: Any, ack_id: int | None) -> None:
    # Mirrors "isPayloadValid" of the reference parser, a little stricter:
    # event names must be strings, acks must carry an id.
    if code == 2 or code == 5:  # EVENT, BINARY_EVENT
        if type(data) is not list or not data:
            raise ProtocolError("EVENT payload must be a non-empty array")
        name = data[0]
        if type(name) is not str:
            raise ProtocolError("event name must be a string")
        if name in RESERVED_EVENTS:
            raise ProtocolError("reserved event name")
    elif code == 3 or code == 6:  # ACK, BINARY_ACK
        if type(data) is not list:
            raise ProtocolError("ACK payload must be an array")
        if ack_id is None:
            raise ProtocolError("ACK without an ack id")
    elif ack_id is not None:
        raise ProtocolError("ack id on a packet that takes none")
    elif code == 0:  # CONNECT
        if data is not None and type(data) is not dict:
            raise ProtocolError("CONNECT payload must be an object")
    elif code == 1:  # DISCONNECT
        if data is not None:
            raise ProtocolError("DISCONNECT takes no payload")
    elif not isinstance(data, (str, dict)):  # CONNECT_ERROR
        raise ProtocolError("CONNECT_ERROR payload must be an object or a string")


# For _too_deep: keep brackets and quotes, and make every bracket square.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_MARKS = bytes(c for c in range(256) if c not in b'[]{}"')


def _too_deep(payload: str, limit: int) -> bool:
    """Whether the JSON text ``payload`` nests deeper than ``limit``.

    Read from the text, before it is decoded, so that a hostile payload
    costs no decoding. Callers first count the brackets, which settles
    most payloads: each level opens one. Here escapes and strings are
    taken out, then the remaining brackets lose their innermost pairs, one
    level per pass, until none are left or a run of openers shows that the
    limit is passed; all of it C-level string operations. A text that is
    not valid JSON may come out either way: decoding it fails anyway.
    """
    if "\\" in payload:
        # Escaped backslashes first, then escaped quotes: what is left of
        # the quotes delimits strings. (Any other escape is harmless here.)
        payload = payload.replace("\\\\", "").replace('\\"', "")
    # surrogatepass: lone surrogates are orjson's to refuse, not a crash here.
    marks = payload.encode("utf-8", "surrogatepass").translate(_SQUARE, _NOT_MARKS)
    if marks.count(b'""') * 2 == marks.count(b'"'):
        brackets = marks.translate(None, b'"')  # every string is bracket-free
    else:
        brackets = b"".join(marks.split(b'"')[::2])  # outside the strings
    for done in range(limit):
        # After `done` passes, what is left nests `done` levels less, so a run
        # of openers this long proves the depth at once (a bracket bomb).
        if b"[" * (limit + 1 - done) in brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return True


def _rebuild(packet: Packet, buffers: list[bytes]) -> Packet:
    """Put the attachments back where their placeholders are."""
    used = [False] * len(buffers)

    def put(value: Any) -> Any:
        if isinstance(value, list):
            return [put(v) for v in value]
        if isinstance(value, dict):
            if value.get("_placeholder") is True:
                num = value.get("num")
                if type(num) is not int or not 0 <= num < len(buffers):
                    raise ProtocolError("attachment placeholder out of range")
                used[num] = True
                return buffers[num]
            return {k: put(v) for k, v in value.items()}
        return value

    data = put(packet.data)
    if not all(used):
        raise ProtocolError("binary attachment without a placeholder")
    return Packet(packet.type, data, packet.namespace, packet.id)

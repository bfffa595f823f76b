"""Engine.IO v4 codec: every wire example of the protocol document, both directions.

Each case is a literal frame as it travels on the WebSocket (``str`` for a
text frame, ``bytes`` for a binary one) beside the packet it means. The frame
is decoded and compared with the packet, then the packet is encoded and
compared with the frame, byte for byte (websockets ``tests/test_frames.py``).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisio import eio
from minisio.eio import Packet, PacketType
from minisio.errors import ProtocolError

OPEN = PacketType.OPEN
CLOSE = PacketType.CLOSE
PING = PacketType.PING
PONG = PacketType.PONG
MESSAGE = PacketType.MESSAGE
UPGRADE = PacketType.UPGRADE
NOOP = PacketType.NOOP

# The handshake data of the documents' sample sessions, verbatim.
DOC_OPEN_POLLING = (
    '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,'
    '"pingTimeout":5000}'
)
DOC_OPEN_WEBSOCKET = '{"sid":"lv_VI97HAXpY6yYWAAAC","pingInterval":25000,"pingTimeout":5000}'
DOC_OPEN_SOCKETIO = (
    '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
    '"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}'
)

# (frame, packet): every frame of the Engine.IO v4 document, then the
# Engine.IO frames of the Socket.IO v5 document's sample session.
CASES: list[tuple[str | bytes, Packet]] = [
    # "Sample session" and "Sample session with WebSocket only": the handshake.
    ("0" + DOC_OPEN_POLLING, Packet(OPEN, DOC_OPEN_POLLING)),
    ("0" + DOC_OPEN_WEBSOCKET, Packet(OPEN, DOC_OPEN_WEBSOCKET)),
    ("0" + DOC_OPEN_SOCKETIO, Packet(OPEN, DOC_OPEN_SOCKETIO)),
    # "close"
    ("1", Packet(CLOSE)),
    # "ping" / "pong", and the upgrade probe.
    ("2", Packet(PING)),
    ("3", Packet(PONG)),
    ("2probe", Packet(PING, "probe")),
    ("3probe", Packet(PONG, "probe")),
    # "message": the sample sessions and the packet type examples.
    ("4hey", Packet(MESSAGE, "hey")),
    ("4hello", Packet(MESSAGE, "hello")),
    ("4world", Packet(MESSAGE, "world")),
    ("4HelloWorld", Packet(MESSAGE, "HelloWorld")),
    ("4€", Packet(MESSAGE, "€")),
    ("4", Packet(MESSAGE)),
    # "upgrade", "noop"
    ("5", Packet(UPGRADE)),
    ("6", Packet(NOOP)),
    # "Binary payloads are sent as binary frames": no type prefix.
    (b"\x01\x02\x03\x04", Packet(MESSAGE, b"\x01\x02\x03\x04")),
    (b"\x04hello", Packet(MESSAGE, b"\x04hello")),
    (b"", Packet(MESSAGE, b"")),
    # Socket.IO v5 document, "Sample session": Socket.IO packets in messages.
    ("40", Packet(MESSAGE, "0")),
    ('40{"sid":"wZX3oN0bSVIhsaknAAAI"}', Packet(MESSAGE, '0{"sid":"wZX3oN0bSVIhsaknAAAI"}')),
    ('42["hey","Jude"]', Packet(MESSAGE, '2["hey","Jude"]')),
    ('42["hello"]', Packet(MESSAGE, '2["hello"]')),
    ('42["world"]', Packet(MESSAGE, '2["world"]')),
    ('42["foo"]', Packet(MESSAGE, '2["foo"]')),
    ("40/admin,", Packet(MESSAGE, "0/admin,")),
    (
        '40/admin,{"sid":"-G5j-67EZFp-q59rADQM"}',
        Packet(MESSAGE, '0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}'),
    ),
    ('42/admin,1["tellme"]', Packet(MESSAGE, '2/admin,1["tellme"]')),
    (
        '461-/admin,1[{"_placeholder":true,"num":0}]',
        Packet(MESSAGE, '61-/admin,1[{"_placeholder":true,"num":0}]'),
    ),
]


@pytest.mark.parametrize(("frame", "packet"), CASES)
def test_decode(frame: str | bytes, packet: Packet) -> None:
    decoded = eio.decode(frame)
    assert decoded == packet
    assert type(decoded.data) is type(frame)


@pytest.mark.parametrize(("frame", "packet"), CASES)
def test_encode(frame: str | bytes, packet: Packet) -> None:
    encoded = eio.encode(packet)
    assert encoded == frame
    # A text frame must stay text and a binary frame binary.
    assert type(encoded) is type(frame)


@pytest.mark.parametrize(
    ("frame", "packet"), [(f, p) for f, p in CASES if isinstance(f, str)], ids=repr
)
def test_text_frame(frame: str, packet: Packet) -> None:
    assert isinstance(packet.data, str)
    assert eio.text_frame(packet.type, packet.data.encode()) == frame.encode()


def test_text_frame_docstring_example() -> None:
    assert eio.text_frame(MESSAGE, b'2["chat","hi"]') == b'42["chat","hi"]'
    assert eio.text_frame(PING) == b"2"


def test_open_payload_exact_bytes() -> None:
    # Key order is the reference server's: sid, upgrades, pingInterval,
    # pingTimeout, maxPayload. WebSocket only, so nothing to upgrade to.
    payload = eio.open_payload("lv_VI97HAXpY6yYWAAAC", 25000, 5000, 1000000)
    assert payload == (
        b'{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],'
        b'"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}'
    )
    # The Socket.IO document's open packet, less the polling-only upgrade.
    expected = "0" + DOC_OPEN_SOCKETIO.replace('["websocket"]', "[]")
    assert eio.text_frame(OPEN, payload) == expected.encode()


def test_open_payload_defaults_of_the_reference_server() -> None:
    frame = eio.text_frame(OPEN, eio.open_payload("AAAAAAAAAAAAAAAAAAAA", 25000, 20000, 1000000))
    assert frame == (
        b'0{"sid":"AAAAAAAAAAAAAAAAAAAA","upgrades":[],'
        b'"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
    )
    assert eio.decode(frame.decode()) == Packet(OPEN, frame[1:].decode())


@pytest.mark.parametrize("type_", [t for t in PacketType if t is not MESSAGE])
def test_encode_binary_data_only_in_message(type_: PacketType) -> None:
    # A caller's mistake, not the peer's: ValueError, not ProtocolError.
    with pytest.raises(ValueError, match="only message packets"):
        eio.encode(Packet(type_, b"\x00"))


# (frame, message the ProtocolError must carry)
ERRORS: list[tuple[str, str]] = [
    ("", "empty Engine.IO packet"),
    ("7", "unknown Engine.IO packet type"),
    ("8hello", "unknown Engine.IO packet type"),
    ("9", "unknown Engine.IO packet type"),
    ("a", "unknown Engine.IO packet type"),
    ("b4hello", "unknown Engine.IO packet type"),  # a polling payload's base64 marker
    ("/", "unknown Engine.IO packet type"),  # just below "0"
    (":", "unknown Engine.IO packet type"),  # just above "9"
    (" 4hello", "unknown Engine.IO packet type"),
    ("-1", "unknown Engine.IO packet type"),
    ("\x00", "unknown Engine.IO packet type"),
    ("\u0664hello", "unknown Engine.IO packet type"),  # ARABIC-INDIC DIGIT FOUR
    ("\uff14hello", "unknown Engine.IO packet type"),  # FULLWIDTH DIGIT FOUR
    ("\ud800", "unknown Engine.IO packet type"),
]


@pytest.mark.parametrize(("frame", "message"), ERRORS)
def test_decode_error(frame: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=f"^{re.escape(message)}$") as excinfo:
        eio.decode(frame)
    assert excinfo.type is ProtocolError


# Properties.

text_data = st.text(max_size=50)


@settings(max_examples=300)
@given(st.sampled_from(PacketType), text_data)
def test_round_trip_text(type_: PacketType, data: str) -> None:
    packet = Packet(type_, data)
    frame = eio.encode(packet)
    assert isinstance(frame, str)
    assert eio.decode(frame) == packet
    assert eio.text_frame(type_, data.encode()) == frame.encode()


@settings(max_examples=300)
@given(st.binary(max_size=50))
def test_round_trip_binary(data: bytes) -> None:
    packet = eio.decode(data)
    assert packet == Packet(MESSAGE, data)
    assert eio.encode(packet) == data


@settings(max_examples=500)
@given(st.text(st.characters(codec=None), max_size=20) | st.binary(max_size=20))
def test_decode_arbitrary_frame(frame: str | bytes) -> None:
    # Anything may arrive; the codec answers with a packet or ProtocolError,
    # and a frame it accepts encodes back to exactly the same frame.
    try:
        packet = eio.decode(frame)
    except ProtocolError:
        assert isinstance(frame, str)
        assert frame == "" or frame[0] not in "0123456"
        return
    assert eio.encode(packet) == frame


# -- HTTP long-polling payloads ("Transports / HTTP long-polling / Packet encoding") --
# (payload, items): the spec's examples, then binary in base64 beside text.
PAYLOADS: list[tuple[str, list[str | bytes]]] = [
    ("4hello\x1e2\x1e4€", ["4hello", "2", "4€"]),
    ("4hello\x1ebAQIDBA==", ["4hello", b"\x01\x02\x03\x04"]),
    ("bAQIDBA==", [b"\x01\x02\x03\x04"]),
    ("3", ["3"]),
    (
        '451-["up",{"_placeholder":true,"num":0}]\x1ebAQID',
        ['451-["up",{"_placeholder":true,"num":0}]', b"\x01\x02\x03"],
    ),
]


@pytest.mark.parametrize(("payload", "items"), PAYLOADS)
def test_polling_payloads_both_ways(payload: str, items: list[str | bytes]) -> None:
    assert eio.decode_payload(payload) == items
    encoded = [
        eio.payload_item(binary=i) if isinstance(i, bytes) else eio.payload_item(i.encode())
        for i in items
    ]
    assert eio.encode_payload(encoded) == payload.encode()


@pytest.mark.parametrize(
    "payload",
    ["", "\x1e", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "b!!!", "bAQI", "b€", "\x1e" * 1000],
)
def test_malformed_polling_payloads_are_protocol_errors(payload: str) -> None:
    with pytest.raises(ProtocolError):
        eio.decode_payload(payload)


def test_open_payload_lists_the_upgrades_of_a_polling_session() -> None:
    payload = eio.open_payload("lv_VI97HAXpY6yYWAAAC", 25000, 5000, 1000000, ("websocket",))
    assert payload == DOC_OPEN_SOCKETIO.encode()

"""Socket.IO v5 codec: every wire example of the protocol document, both directions.

The Socket.IO codec works on the Socket.IO text, without the Engine.IO ``4``
prefix: the document's ``42["foo"]`` is the frame ``2["foo"]`` here. A case
is the list of frames (the text, then one ``bytes`` per binary attachment)
beside the packet they mean. The frames are fed to a :class:`Decoder` and
the result compared with the packet; the packet is encoded and compared with
the frames, byte for byte (websockets ``tests/test_frames.py``).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisio import sio
from minisio.errors import ProtocolError
from minisio.sio import RESERVED_EVENTS, Decoder, Packet, PacketType

CONNECT = PacketType.CONNECT
DISCONNECT = PacketType.DISCONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK
CONNECT_ERROR = PacketType.CONNECT_ERROR
BINARY_EVENT = PacketType.BINARY_EVENT
BINARY_ACK = PacketType.BINARY_ACK

BUF = b"\x01\x02\x03\x04"  # the documents' <Buffer <01 02 03 04>>


def placeholder(num: int) -> str:
    return f'{{"_placeholder":true,"num":{num}}}'


P0 = placeholder(0)
P1 = placeholder(1)

Frames = list[str | bytes]

# (frames, packet). Sources: Socket.IO v5 document, "Packet encoding" table
# and "Sample session"; then the reference server's replies.
CASES: list[tuple[Frames, Packet]] = [
    # CONNECT
    (["0"], Packet(CONNECT)),
    (['0{"sid":"wZX3oN0bSVIhsaknAAAI"}'], Packet(CONNECT, {"sid": "wZX3oN0bSVIhsaknAAAI"})),
    (["0/admin,"], Packet(CONNECT, namespace="/admin")),
    (
        ['0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}'],
        Packet(CONNECT, {"sid": "oSO0OpakMV_3jnilAAAA"}, "/admin"),
    ),
    (
        ['0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}'],
        Packet(CONNECT, {"sid": "-G5j-67EZFp-q59rADQM"}, "/admin"),
    ),
    (['0/admin,{"token":"123"}'], Packet(CONNECT, {"token": "123"}, "/admin")),
    (
        ['0{"sid":"wZX3oN0bSVIhsaknAAAI","pid":"x1"}'],
        Packet(CONNECT, {"sid": "wZX3oN0bSVIhsaknAAAI", "pid": "x1"}),
    ),
    # CONNECT_ERROR
    (['4{"message":"Not authorized"}'], Packet(CONNECT_ERROR, {"message": "Not authorized"})),
    (
        ['4/foo,{"message":"Invalid namespace"}'],
        Packet(CONNECT_ERROR, {"message": "Invalid namespace"}, "/foo"),
    ),
    (
        ['4{"message":"msg","data":{"code":7}}'],
        Packet(CONNECT_ERROR, {"message": "msg", "data": {"code": 7}}),
    ),
    (['4"Not authorized"'], Packet(CONNECT_ERROR, "Not authorized")),
    # EVENT
    (['2["foo"]'], Packet(EVENT, ["foo"])),
    (['2/admin,["bar"]'], Packet(EVENT, ["bar"], "/admin")),
    (['2["hey","Jude"]'], Packet(EVENT, ["hey", "Jude"])),
    (['2["hello"]'], Packet(EVENT, ["hello"])),
    (['2["world"]'], Packet(EVENT, ["world"])),
    (['212["foo"]'], Packet(EVENT, ["foo"], id=12)),
    (['215["foo"]'], Packet(EVENT, ["foo"], id=15)),
    (['2/admin,13["foo"]'], Packet(EVENT, ["foo"], "/admin", 13)),
    (['2/admin,1["tellme"]'], Packet(EVENT, ["tellme"], "/admin", 1)),
    (['20["ev",1]'], Packet(EVENT, ["ev", 1], id=0)),  # the server's first ack id
    (['29007199254740991["foo"]'], Packet(EVENT, ["foo"], id=2**53 - 1)),
    (
        ['2["€",{"a":[1,2.5,null,true,false]}]'],
        Packet(EVENT, ["€", {"a": [1, 2.5, None, True, False]}]),
    ),
    (['2["Connect"]'], Packet(EVENT, ["Connect"])),  # names are case-sensitive
    # ACK
    (["312[]"], Packet(ACK, [], id=12)),
    (['314["bar"]'], Packet(ACK, ["bar"], id=14)),
    (['3/admin,13["bar"]'], Packet(ACK, ["bar"], "/admin", 13)),
    (["31[3]"], Packet(ACK, [3], id=1)),
    # BINARY_EVENT
    ([f'51-["baz",{P0}]', BUF], Packet(BINARY_EVENT, ["baz", BUF])),
    (
        [f'52-/admin,["baz",{P0},{P1}]', b"\x01\x02", b"\x03\x04"],
        Packet(BINARY_EVENT, ["baz", b"\x01\x02", b"\x03\x04"], "/admin"),
    ),
    ([f'51-14["foo",{P0}]', BUF], Packet(BINARY_EVENT, ["foo", BUF], id=14)),
    (
        [f'52-/up,7["file",{{"data":{P0},"parts":[{P1}]}}]', b"", b"\xff"],
        Packet(BINARY_EVENT, ["file", {"data": b"", "parts": [b"\xff"]}], "/up", 7),
    ),
    # BINARY_ACK
    ([f'61-15["bar",{P0}]', BUF], Packet(BINARY_ACK, ["bar", BUF], id=15)),
    ([f"61-/admin,1[{P0}]", BUF], Packet(BINARY_ACK, [BUF], "/admin", 1)),
    # DISCONNECT
    (["1"], Packet(DISCONNECT)),
    (["1/admin,"], Packet(DISCONNECT, namespace="/admin")),
]


def feed_all(frames: Frames, decoder: Decoder | None = None) -> Packet:
    """Feed ``frames``; only the last one may complete the packet."""
    decoder = decoder or Decoder()
    for frame in frames[:-1]:
        assert decoder.feed(frame) is None
        assert decoder.waiting
    packet = decoder.feed(frames[-1])
    assert packet is not None
    assert not decoder.waiting
    return packet


@pytest.mark.parametrize(("frames", "packet"), CASES)
def test_decode(frames: Frames, packet: Packet) -> None:
    assert feed_all(frames) == packet


@pytest.mark.parametrize(("frames", "packet"), CASES)
def test_encode(frames: Frames, packet: Packet) -> None:
    text, *attachments = frames
    assert isinstance(text, str)
    assert sio.encode(packet) == [text.encode(), *attachments]


def test_decoder_keeps_going() -> None:
    # One decoder per connection: every case, one after the other.
    decoder = Decoder()
    for frames, packet in CASES:
        assert feed_all(frames, decoder) == packet


# Frames the decoder accepts that the encoder never writes.
DECODE_ONLY: list[tuple[Frames, Packet]] = [
    # The namespace runs to the end when nothing follows it (reference parser).
    (["0/admin"], Packet(CONNECT, namespace="/admin")),
    (["1/admin"], Packet(DISCONNECT, namespace="/admin")),
    # Placeholders may come in any order.
    ([f'52-["x",{P1},{P0}]', b"a", b"b"], Packet(BINARY_EVENT, ["x", b"b", b"a"])),
    # Brackets inside strings do not count towards the nesting depth.
    (['2["' + "[{" * 40 + '"]'], Packet(EVENT, ["[{" * 40])),
]


@pytest.mark.parametrize(("frames", "packet"), DECODE_ONLY)
def test_decode_only(frames: Frames, packet: Packet) -> None:
    assert feed_all(frames) == packet


# (packet as the caller builds it, frames on the wire)
ENCODE_ONLY: list[tuple[Packet, list[bytes]]] = [
    # An EVENT or ACK carrying bytes becomes BINARY_EVENT / BINARY_ACK.
    (Packet(EVENT, ["baz", BUF]), [f'51-["baz",{P0}]'.encode(), BUF]),
    (Packet(EVENT, ["foo", BUF], id=14), [f'51-14["foo",{P0}]'.encode(), BUF]),
    (Packet(ACK, ["bar", BUF], id=15), [f'61-15["bar",{P0}]'.encode(), BUF]),
    (
        Packet(EVENT, ["baz", b"\x01\x02", b"\x03\x04"], "/admin"),
        [f'52-/admin,["baz",{P0},{P1}]'.encode(), b"\x01\x02", b"\x03\x04"],
    ),
    (Packet(ACK, [BUF], "/admin", 1), [f"61-/admin,1[{P0}]".encode(), BUF]),
    # Any buffer type, anywhere in the data, numbered depth first.
    (
        Packet(EVENT, ("up", {"a": bytearray(b"1"), "b": [memoryview(b"2")]}, b"3")),
        [f'53-["up",{{"a":{P0},"b":[{P1}]}},{placeholder(2)}]'.encode(), b"1", b"2", b"3"],
    ),
    # A binary type with nothing to attach goes out as the plain type.
    (Packet(BINARY_EVENT, ["x"]), [b'2["x"]']),
    (Packet(BINARY_ACK, [], "/admin", 3), [b"3/admin,3[]"]),
    # Tuples are arrays.
    (Packet(EVENT, ("chat", "hi")), [b'2["chat","hi"]']),
    (Packet(ACK, (), id=3), [b"33[]"]),
    # Non-ASCII goes out as UTF-8.
    (Packet(EVENT, ["€"]), ['2["€"]'.encode()]),
]


@pytest.mark.parametrize(("packet", "frames"), ENCODE_ONLY)
def test_encode_only(packet: Packet, frames: list[bytes]) -> None:
    encoded = sio.encode(packet)
    assert encoded == frames
    assert all(type(frame) is bytes for frame in encoded)


@pytest.mark.parametrize("data", [["x", object()], ["x", {1, 2}], ["x", 2**64]])
def test_encode_unserializable(data: Any) -> None:
    # A caller's mistake, not the peer's: TypeError, not ProtocolError.
    with pytest.raises(TypeError):
        sio.encode(Packet(EVENT, data))


def test_encode_leaves_the_packet_alone() -> None:
    data = ["up", {"a": [b"1", b"2"]}]
    packet = Packet(EVENT, data)
    sio.encode(packet)
    assert packet.data == ["up", {"a": [b"1", b"2"]}]
    assert packet.type is EVENT


# Malformed input: (frames, message). Every frame but the last must be
# accepted; the last must raise ProtocolError with the message.
ERRORS: list[tuple[Frames, str]] = [
    # Packet type.
    ([""], "empty Socket.IO packet"),
    (["7"], "unknown Socket.IO packet type"),
    (['9["x"]'], "unknown Socket.IO packet type"),
    (["a"], "unknown Socket.IO packet type"),
    (["/admin,"], "unknown Socket.IO packet type"),
    ([" 0"], "unknown Socket.IO packet type"),  # the reference parser reads CONNECT
    (['\u0662["x"]'], "unknown Socket.IO packet type"),  # ARABIC-INDIC DIGIT TWO
    (["\ud800"], "unknown Socket.IO packet type"),
    # JSON.
    (['2["foo"'], "invalid JSON payload"),
    (['2["foo"]]'], "invalid JSON payload"),
    (['2["foo"]x'], "invalid JSON payload"),
    (["2['foo']"], "invalid JSON payload"),
    (['2["x",NaN]'], "invalid JSON payload"),
    (['0{"a":}'], "invalid JSON payload"),
    (["0 "], "invalid JSON payload"),
    (['2["x",1e400]'], "invalid JSON payload"),
    (["2" + "[" * 2000 + "]" * 2000], "JSON nested too deeply"),  # seen before decoding
    # A namespace must start with "/": anything else is read as the payload.
    (['2admin,["x"]'], "invalid JSON payload"),
    (["0admin,"], "invalid JSON payload"),
    (['2/admin["a","b"]'], "invalid JSON payload"),  # no comma: runs to the first one
    # Lone surrogates cannot be UTF-8.
    (['2["\ud800"]'], "invalid JSON payload"),
    (['2["\\ud800"]'], "invalid JSON payload"),
    (['2["x","\\udc00y"]'], "invalid JSON payload"),
    (['0{"\\ud83d":1}'], "invalid JSON payload"),
    (["0/\ud800,"], "namespace is not valid UTF-8"),
    (['2/ad\udfffmin,["x"]'], "namespace is not valid UTF-8"),
    # Nesting (max_depth 32 by default).
    (['2["x",' + "[" * 32 + "]" * 32 + "]"], "JSON nested too deeply"),
    (["0" + '{"a":' * 32 + "{}" + "}" * 32], "JSON nested too deeply"),
    # Namespace length (256 at most).
    (["0/" + "a" * 256 + ","], "namespace too long"),
    (["0/" + "a" * 300], "namespace too long"),
    # EVENT payload.
    (["2"], "EVENT payload must be a non-empty array"),
    (["2[]"], "EVENT payload must be a non-empty array"),
    (['2{"foo":1}'], "EVENT payload must be a non-empty array"),
    (['2"foo"'], "EVENT payload must be a non-empty array"),
    (["2/admin,"], "EVENT payload must be a non-empty array"),
    (["212"], "EVENT payload must be a non-empty array"),
    (['2/admin["x"]'], "EVENT payload must be a non-empty array"),  # namespace /admin["x"]
    (["51-"], "EVENT payload must be a non-empty array"),
    (["51-{}"], "EVENT payload must be a non-empty array"),
    # Event name.
    (["2[1]"], "event name must be a string"),
    (["2[null]"], "event name must be a string"),
    (["2[true]"], "event name must be a string"),
    (['2[["foo"]]'], "event name must be a string"),
    (['2[{"a":1}]'], "event name must be a string"),
    ([f"51-[{P0}]"], "event name must be a string"),
    # Reserved event names, in every kind of event packet.
    *[([f'2["{name}"]'], "reserved event name") for name in sorted(RESERVED_EVENTS)],
    (['2/admin,5["connect",1]'], "reserved event name"),
    ([f'51-["disconnect",{P0}]'], "reserved event name"),
    # ACK payload.
    (["312"], "ACK payload must be an array"),
    (["312{}"], "ACK payload must be an array"),
    (['312"bar"'], "ACK payload must be an array"),
    (["3/admin,13{}"], "ACK payload must be an array"),
    ([f"61-15{P0}"], "ACK payload must be an array"),
    # ACK id.
    (["3[]"], "ACK without an ack id"),
    (['3/admin,["bar"]'], "ACK without an ack id"),
    ([f"61-[{P0}]"], "ACK without an ack id"),
    (["012{}"], "ack id on a packet that takes none"),
    (["01"], "ack id on a packet that takes none"),
    (["0/admin,1"], "ack id on a packet that takes none"),
    (["11"], "ack id on a packet that takes none"),
    (['412{"message":"x"}'], "ack id on a packet that takes none"),
    (["2" + "1" * 17 + '["foo"]'], "ack id too long"),
    (["3" + "0" * 17 + "[]"], "ack id too long"),
    (['29007199254740992["foo"]'], "ack id too large"),
    (['29999999999999999["foo"]'], "ack id too large"),
    # CONNECT payload.
    (["0[]"], "CONNECT payload must be an object"),
    (['0"token"'], "CONNECT payload must be an object"),
    (["0/admin,true"], "CONNECT payload must be an object"),
    # DISCONNECT payload.
    (["1{}"], "DISCONNECT takes no payload"),
    (["1[]"], "DISCONNECT takes no payload"),
    (['1"bye"'], "DISCONNECT takes no payload"),
    (["1/admin,{}"], "DISCONNECT takes no payload"),
    # CONNECT_ERROR payload.
    (["4"], "CONNECT_ERROR payload must be an object or a string"),
    (['4["x"]'], "CONNECT_ERROR payload must be an object or a string"),
    (["4/admin,"], "CONNECT_ERROR payload must be an object or a string"),
    # A JSON null is a payload, and no packet type takes one.
    (["0null"], "null payload"),
    (["0/admin,null"], "null payload"),
    (["1null"], "null payload"),
    (["2null"], "null payload"),
    (["312null"], "null payload"),
    (["4null"], "null payload"),
    (["51-null"], "null payload"),
    # Attachment count.
    (['5-["x"]'], "malformed attachment count"),  # empty
    (['5["x"]'], "malformed attachment count"),  # no count, no dash
    (['51["x"]'], "malformed attachment count"),  # no dash
    (["5"], "malformed attachment count"),
    (["6"], "malformed attachment count"),
    (['5-1-["x"]'], "malformed attachment count"),  # negative
    (['5+1-["x"]'], "malformed attachment count"),
    (['5a-["x"]'], "malformed attachment count"),
    (['5 1-["x"]'], "malformed attachment count"),
    (['5\u0661-["x"]'], "malformed attachment count"),  # ARABIC-INDIC DIGIT ONE
    (['51234567-["x"]'], "malformed attachment count"),  # more than 6 digits
    (["6-15[]"], "malformed attachment count"),
    (['511-["x"]'], "too many binary attachments"),
    (['5999999-["x"]'], "too many binary attachments"),
    # Placeholders.
    # A binary packet has at least one attachment (the reference parser agrees).
    (['50-["x"]'], "binary packet without attachments"),
    (["60-3[]"], "binary packet without attachments"),
    (['500-["x"]'], "binary packet without attachments"),
    ([f'50-["x",{P0}]'], "binary packet without attachments"),
    ([f'51-["x",{P1}]', b"a"], "attachment placeholder out of range"),
    (['51-["x",{"_placeholder":true,"num":-1}]', b"a"], "attachment placeholder out of range"),
    (['51-["x",{"_placeholder":true,"num":"0"}]', b"a"], "attachment placeholder out of range"),
    (['51-["x",{"_placeholder":true,"num":0.0}]', b"a"], "attachment placeholder out of range"),
    (['51-["x",{"_placeholder":true,"num":true}]', b"a"], "attachment placeholder out of range"),
    (
        [f'52-["x",{P0},{{"_placeholder":true,"num":true}}]', b"a", b"b"],
        "attachment placeholder out of range",  # true is not 1
    ),
    (['51-["x",{"_placeholder":true,"num":null}]', b"a"], "attachment placeholder out of range"),
    (['51-["x",{"_placeholder":true}]', b"a"], "attachment placeholder out of range"),
    (
        [f'52-["x",{P0},{{"y":[{placeholder(2)}]}}]', b"a", b"b"],
        "attachment placeholder out of range",
    ),
    # Attachment count mismatch.
    ([b"\x01"], "unexpected binary frame"),
    ([b""], "unexpected binary frame"),
    (['2["foo"]', b"\x01"], "unexpected binary frame"),
    ([f'51-["x",{P0}]', b"a", b"b"], "unexpected binary frame"),
    ([f'51-["x",{P0}]', '2["foo"]'], "text packet while waiting for binary attachments"),
    ([f'52-["x",{P0},{P1}]', b"a", "1"], "text packet while waiting for binary attachments"),
    ([f'51-["x",{P0}]', ""], "text packet while waiting for binary attachments"),
    (['51-["x"]', b"a"], "binary attachment without a placeholder"),
    ([f'52-["x",{P0},{P0}]', b"a", b"b"], "binary attachment without a placeholder"),
    ([f"62-1[{P1}]", b"a", b"b"], "binary attachment without a placeholder"),
]


def error_id(case: tuple[Frames, str]) -> str:
    shown = repr(case[0])
    return shown if len(shown) < 60 else shown[:57] + "..."


@pytest.mark.parametrize(("frames", "message"), ERRORS, ids=[error_id(c) for c in ERRORS])
def test_decode_error(frames: Frames, message: str) -> None:
    decoder = Decoder()
    for frame in frames[:-1]:
        decoder.feed(frame)
    with pytest.raises(ProtocolError, match=f"^{re.escape(message)}$") as excinfo:
        decoder.feed(frames[-1])
    assert excinfo.type is ProtocolError
    # Safe to log: the message never repeats what the peer sent.
    text = frames[0]
    if len(text) > 4:
        assert str(text) not in str(excinfo.value)


def test_depth_limit_is_inclusive() -> None:
    at_limit = '2["x",' + "[" * 31 + "]" * 31 + "]"  # 32 levels, the outer array included
    packet = Decoder().feed(at_limit)
    assert packet is not None
    assert packet.data == orjson.loads(at_limit[1:])
    with pytest.raises(ProtocolError, match="nested too deeply"):
        Decoder(max_depth=31).feed(at_limit)
    # The same with brackets in a string, so that counting them is not enough.
    at_limit = '2["[{",' + "[" * 31 + "]" * 31 + "]"
    assert Decoder().feed(at_limit) == Packet(EVENT, orjson.loads(at_limit[1:]))
    with pytest.raises(ProtocolError, match="nested too deeply"):
        Decoder().feed('2["[{",' + "[" * 32 + "]" * 32 + "]")


def test_a_value_hidden_by_a_duplicate_key_still_counts_towards_the_depth() -> None:
    # The depth is that of the text as sent: orjson keeps the last "a", a
    # value two levels deep, but the peer sent four.
    with pytest.raises(ProtocolError, match=r"^JSON nested too deeply$"):
        Decoder(max_depth=3).feed('2["x",{"a":[[]],"a":1}]')
    assert Decoder(max_depth=4).feed('2["x",{"a":[[]],"a":1}]') == Packet(EVENT, ["x", {"a": 1}])


def test_max_depth_is_a_parameter() -> None:
    # Past orjson's own limit (1024 levels) the text is refused as invalid JSON.
    with pytest.raises(ProtocolError, match=r"^invalid JSON payload$"):
        Decoder(max_depth=5000).feed("2" + "[" * 2000 + "]" * 2000)
    decoder = Decoder(max_depth=2)
    assert decoder.feed('2["x",[1]]') == Packet(EVENT, ["x", [1]])
    assert decoder.feed('0{"a":{}}') == Packet(CONNECT, {"a": {}})
    with pytest.raises(ProtocolError, match=r"^JSON nested too deeply$"):
        decoder.feed('2["x",{"a":[]}]')
    with pytest.raises(ProtocolError, match=r"^JSON nested too deeply$"):
        decoder.feed('0{"a":{"b":{}}}')


def test_attachment_limit_is_inclusive() -> None:
    placeholders = ",".join(placeholder(n) for n in range(10))
    buffers = [bytes([n]) for n in range(10)]
    frames: Frames = [f'510-["x",{placeholders}]', *buffers]
    assert feed_all(frames) == Packet(BINARY_EVENT, ["x", *buffers])
    with pytest.raises(ProtocolError, match=r"^too many binary attachments$"):
        Decoder(max_attachments=9).feed(str(frames[0]))


def test_namespace_length_limit_is_inclusive() -> None:
    namespace = "/" + "a" * 255
    assert Decoder().feed(f"0{namespace},") == Packet(CONNECT, namespace=namespace)
    assert Decoder().feed(f"0{namespace}") == Packet(CONNECT, namespace=namespace)


def test_decoder_recovers_after_an_attachment_error() -> None:
    # The connection closes on ProtocolError, but the decoder's state must
    # not be left half-way: the next packet decodes normally.
    decoder = Decoder()
    assert decoder.feed('51-["x"]') is None
    with pytest.raises(ProtocolError):
        decoder.feed(b"a")
    assert not decoder.waiting
    assert decoder.feed('2["foo"]') == Packet(EVENT, ["foo"])


# Properties.

# Strings made of what JSON nesting is written with, so that brackets,
# quotes and escapes inside strings get in the way of the depth check, and
# plain ones, so that the text alone can settle it.
STRINGS = st.sampled_from(["", "a"]) | st.text(st.sampled_from('[]{}"\\a\u20ac\n'), max_size=6)
NESTED = st.recursive(
    st.none() | st.integers(-9, 9) | STRINGS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(STRINGS, children, max_size=4)
    ),
    max_leaves=40,
)


def nesting(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    return 0


HEADS = [("2", "/", None), ("2/a,", "/a", None), ("212", "/", 12)]


@settings(max_examples=1000)
@given(NESTED, st.sampled_from([-1, 0, 1]), st.booleans(), st.sampled_from(HEADS))
def test_depth_limit_matches_the_nesting(
    value: Any, slack: int, ascii_only: bool, head: tuple[str, str, int | None]
) -> None:
    # The decoder counts brackets, then strips escapes, strings and then
    # brackets level by level from the text: it must give the true nesting,
    # at the limit and on either side of it. "2" takes feed()'s fast path, the
    # other two parse(); json.dumps(ensure_ascii=True) writes escapes.
    prefix, namespace, ack_id = head
    text = prefix + json.dumps(["x", value], ensure_ascii=ascii_only)
    depth = 1 + nesting(value)
    decoder = Decoder(max_depth=depth + slack)
    if slack >= 0:
        assert decoder.feed(text) == Packet(EVENT, ["x", value], namespace, ack_id)
    else:
        with pytest.raises(ProtocolError, match=r"^JSON nested too deeply$"):
            decoder.feed(text)


NAMESPACES = st.just("/") | st.text(
    st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=20
).map(lambda s: "/" + s)
ACK_IDS = st.integers(0, 2**53 - 1)
TEXT = st.text(max_size=10)
KEYS = TEXT.filter(lambda k: k != "_placeholder")  # the protocol's own marker
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
BUFFERS = st.binary(max_size=10) | st.binary(max_size=10).map(bytearray)


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.lists(children, max_size=4).map(tuple)
            | st.dictionaries(KEYS, children, max_size=4)
        ),
        max_leaves=12,
    )


JSON = json_values(SCALARS)
WITH_BUFFERS = json_values(SCALARS | BUFFERS)
EVENT_NAMES = TEXT.filter(lambda name: name not in RESERVED_EVENTS)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    type_ = draw(st.sampled_from(PacketType))
    namespace = draw(NAMESPACES)
    if type_ in (EVENT, BINARY_EVENT):
        data = [draw(EVENT_NAMES), *draw(st.lists(WITH_BUFFERS, max_size=4))]
        return Packet(type_, data, namespace, draw(st.none() | ACK_IDS))
    if type_ in (ACK, BINARY_ACK):
        return Packet(type_, draw(st.lists(WITH_BUFFERS, max_size=4)), namespace, draw(ACK_IDS))
    if type_ is CONNECT:
        return Packet(type_, draw(st.none() | st.dictionaries(KEYS, JSON)), namespace)
    if type_ is CONNECT_ERROR:
        return Packet(type_, draw(TEXT | st.dictionaries(KEYS, JSON)), namespace)
    return Packet(type_, None, namespace)


def normalized(value: Any) -> Any:
    """What a value becomes on the wire: tuples are arrays, buffers bytes."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    return value


def buffers_in(value: Any) -> list[bytes]:
    """The buffers of ``value``, depth first: the attachments, in order."""
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, list):
        return [b for v in value for b in buffers_in(v)]
    if isinstance(value, dict):
        return [b for v in value.values() for b in buffers_in(v)]
    return []


def expected_after_round_trip(packet: Packet) -> Packet:
    data = normalized(packet.data)
    type_ = packet.type
    if buffers_in(data) and type_ in (EVENT, ACK):
        type_ = PacketType(type_ + 3)
    elif not buffers_in(data) and type_ in (BINARY_EVENT, BINARY_ACK):
        type_ = PacketType(type_ - 3)  # nothing to attach: the plain type
    return Packet(type_, data, packet.namespace, packet.id)


@settings(max_examples=400)
@given(packets())
def test_round_trip(packet: Packet) -> None:
    frames: Frames = [sio.encode(packet)[0].decode(), *sio.encode(packet)[1:]]
    decoder = Decoder(max_attachments=100)
    assert feed_all(frames, decoder) == expected_after_round_trip(packet)


HEAD = re.compile(r"(?P<type>[0-6])(?:(?P<count>\d+)-)?(?:(?P<namespace>/[^,]*),)?(?P<id>\d+)?")


@settings(max_examples=400)
@given(packets())
def test_encode_once_structure(packet: Packet) -> None:
    before = copy.deepcopy(packet.data)
    text, *attachments = frames = sio.encode(packet)
    # Deterministic and free of side effects: the same bytes can be written
    # to every recipient of a broadcast.
    assert sio.encode(packet) == frames
    assert normalized(packet.data) == normalized(before)
    assert all(type(frame) is bytes for frame in frames)
    # The header says what follows.
    expected = expected_after_round_trip(packet)
    wire = text.decode()
    head = HEAD.match(wire)
    assert head is not None
    assert int(head["type"]) == expected.type
    if expected.type in (BINARY_EVENT, BINARY_ACK):
        assert head["count"] is not None and int(head["count"]) == len(attachments)
    else:
        assert head["count"] is None and attachments == []
    assert (head["namespace"] or "/") == packet.namespace
    assert (None if head["id"] is None else int(head["id"])) == packet.id
    # The attachments are the buffers, in placeholder order.
    assert attachments == buffers_in(expected.data)
    # The rest is the JSON payload, placeholders in place of the buffers.
    body = wire[head.end() :]
    if packet.data is None:
        assert body == ""
    else:
        assert orjson.loads(body) == normalized_with_placeholders(expected.data, iter(range(99)))


def normalized_with_placeholders(value: Any, numbers: Any) -> Any:
    if isinstance(value, bytes):
        return {"_placeholder": True, "num": next(numbers)}
    if isinstance(value, list):
        return [normalized_with_placeholders(v, numbers) for v in value]
    if isinstance(value, dict):
        return {k: normalized_with_placeholders(v, numbers) for k, v in value.items()}
    return value


# Fragments that reach every branch of the parser when strung together.
FRAGMENTS = st.sampled_from(
    [
        *"0123456789",
        "-",
        "/",
        "/admin",
        ",",
        "[",
        "]",
        "{",
        "}",
        ":",
        '"x"',
        '"connect"',
        '"_placeholder"',
        '"num"',
        "true",
        "null",
        "-1",
        "9007199254740993",
        P0,
        P1,
        "\ud800",
        "\\ud800",
        "€",
    ]
) | st.text(st.characters(codec=None), max_size=3)
TEXT_FRAMES = st.lists(FRAGMENTS, max_size=12).map("".join) | st.text(st.characters(codec=None))
FRAMES = TEXT_FRAMES | st.binary(max_size=8)


def outcome(decode: Any, text: str) -> Packet | str:
    try:
        return decode(text)  # type: ignore[no-any-return]
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"


# "2[" and what may follow: arrays of names (reserved ones too), numbers and
# nested values, written out by json.dumps, and garbage made of fragments.
EVENT_TEXTS = st.lists(
    st.sampled_from([*RESERVED_EVENTS, "x", ""]) | st.integers() | NESTED, max_size=4
).map(lambda items: "2" + json.dumps(items)) | st.lists(FRAGMENTS, max_size=8).map(
    lambda parts: "2[" + "".join(parts)
)


@settings(max_examples=1000)
@given(EVENT_TEXTS, st.integers(1, 6))
def test_the_event_fast_path_decides_as_parse_does(text: str, max_depth: int) -> None:
    # feed() decodes "2[..." inline; parse() is the general path. Whatever
    # follows, both must return the same packet or raise the same error.
    fast = outcome(Decoder(max_depth=max_depth).feed, text)
    general = outcome(lambda t: Decoder(max_depth=max_depth).parse(t)[0], text)
    assert fast == general


@settings(max_examples=500)
@given(st.lists(FRAMES, min_size=1, max_size=6), st.integers(0, 12), st.integers(1, 40))
def test_decoding_anything_raises_only_protocol_error(
    frames: Frames, max_attachments: int, max_depth: int
) -> None:
    decoder = Decoder(max_attachments=max_attachments, max_depth=max_depth)
    for frame in frames:
        try:
            packet = decoder.feed(frame)
        except ProtocolError:
            continue
        if packet is not None:
            # Whatever the decoder lets through, the encoder can write back,
            # and what it writes decodes to the same packet.
            text, *attachments = sio.encode(packet)
            again = Decoder(max_attachments=max_attachments, max_depth=max_depth)
            assert feed_all([text.decode(), *attachments], again) == packet


@settings(max_examples=300)
@given(st.sampled_from("012346"), st.text(st.characters(codec=None), max_size=8))
def test_any_accepted_namespace_can_be_answered(type_: str, name: str) -> None:
    # The server replies in the namespace the peer named (CONNECT,
    # CONNECT_ERROR), so a namespace the decoder accepts must encode.
    payload = {"0": "{}", "1": "", "2": '["x"]', "3": "1[]", "4": '"no"', "6": ""}[type_]
    try:
        packet = Decoder().feed(f"{type_}/{name},{payload}")
    except ProtocolError:
        return
    assert packet is not None
    assert packet.namespace == "/" + name.split(",")[0]
    reply = sio.encode(Packet(CONNECT_ERROR, "no", packet.namespace))[0]
    assert Decoder().feed(reply.decode()) == Packet(CONNECT_ERROR, "no", packet.namespace)

"""The wire trace: one exact log line per frame, in and out, and silence when off."""

from __future__ import annotations

import asyncio
import logging

import pytest

import minisio
from minisio.trace import describe

from .conftest import UNIT, raw_client, running

OPEN_TAIL = '","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


def make_app(**options: object) -> minisio.Server:
    io = minisio.Server(trace=True, **options)  # type: ignore[arg-type]

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        @socket.on("upload")
        def upload(data: bytes) -> int:
            return len(data)

        @socket.on("photo")
        def photo() -> None:
            socket.emit("photo", b"\x01\x02\x03\x04")

        @socket.on("pair")
        def pair() -> tuple[bytes, bytes]:
            return b"\x01\x02", b"\x03\x04"

        @socket.on("quiz")
        async def quiz() -> None:
            socket.emit("verdict", await socket.emit_with_ack("question") == 4)

        @socket.on("bye")
        def bye() -> None:
            socket.disconnect()

    @io.of("/admin").on("connection")
    def admin(socket: minisio.Socket) -> None:
        @socket.on("chat")
        def chat(text: str) -> str:
            return text

    return io


def traced(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "minisio.trace"]


@pytest.fixture
def trace_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="minisio.trace")
    return caplog


async def test_every_packet_type(trace_log: pytest.LogCaptureFixture) -> None:
    io = make_app()
    async with running(io) as address, raw_client(address) as client:
        sid = client.open[len('0{"sid":"') :][:20]
        me = await client.join()
        admin = await client.join("/admin")
        await client.send('42/admin,17["chat","hi"]')
        await client.expect('43/admin,17["hi"]')
        await client.send('451-3["upload",{"_placeholder":true,"num":0}]')
        await client.send(bytes(range(20)))
        await client.expect("433[20]")
        await client.send('42["photo"]')
        await client.expect('451-["photo",{"_placeholder":true,"num":0}]')
        await client.expect(b"\x01\x02\x03\x04")
        await client.send('424["pair"]')
        await client.expect('462-4[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
        await client.expect(b"\x01\x02")
        await client.expect(b"\x03\x04")
        await client.send('42["quiz"]')
        await client.expect('420["question"]')
        await client.send("430[4]")
        await client.expect('42["verdict",true]')
        await client.send("40/nope,")
        await client.expect('44/nope,{"message":"Invalid namespace"}')
        await client.send("41/admin,")
        await client.send('42["bye"]')
        await client.expect("41")
    assert traced(trace_log) == [
        f'{sid} < 0{{"sid":"{sid}{OPEN_TAIL}  OPEN',
        f"{sid} > 40  CONNECT ns=/",
        f'{sid} < 40{{"sid":"{me}"}}  CONNECT ns=/ sid={me}',
        f"{sid} > 40/admin,  CONNECT ns=/admin",
        f'{sid} < 40/admin,{{"sid":"{admin}"}}  CONNECT ns=/admin sid={admin}',
        f'{sid} > 42/admin,17["chat","hi"]  EVENT ns=/admin ack=17 "chat"',
        f'{sid} < 43/admin,17["hi"]  ACK ns=/admin ack=17',
        f'{sid} > 451-3["upload",{{"_placeholder":true,"num":0}}]'
        '  BINARY_EVENT ns=/ ack=3 attachments=1 "upload"',
        f"{sid} > <binary 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f ...>"
        "  ATTACHMENT 20 bytes",
        f"{sid} < 433[20]  ACK ns=/ ack=3",
        f'{sid} > 42["photo"]  EVENT ns=/ "photo"',
        f'{sid} < 451-["photo",{{"_placeholder":true,"num":0}}]'
        '  BINARY_EVENT ns=/ attachments=1 "photo"',
        f"{sid} < <binary 01 02 03 04>  ATTACHMENT 4 bytes",
        f'{sid} > 424["pair"]  EVENT ns=/ ack=4 "pair"',
        f'{sid} < 462-4[{{"_placeholder":true,"num":0}},{{"_placeholder":true,"num":1}}]'
        "  BINARY_ACK ns=/ ack=4 attachments=2",
        f"{sid} < <binary 01 02>  ATTACHMENT 2 bytes",
        f"{sid} < <binary 03 04>  ATTACHMENT 2 bytes",
        f'{sid} > 42["quiz"]  EVENT ns=/ "quiz"',
        f'{sid} < 420["question"]  EVENT ns=/ ack=0 "question"',
        f"{sid} > 430[4]  ACK ns=/ ack=0",
        f'{sid} < 42["verdict",true]  EVENT ns=/ "verdict"',
        f"{sid} > 40/nope,  CONNECT ns=/nope",
        f'{sid} < 44/nope,{{"message":"Invalid namespace"}}  CONNECT_ERROR ns=/nope'
        ' "Invalid namespace"',
        f"{sid} > 41/admin,  DISCONNECT ns=/admin",
        f'{sid} > 42["bye"]  EVENT ns=/ "bye"',
        f"{sid} < 41  DISCONNECT ns=/",
    ]


async def test_ping_and_pong(trace_log: pytest.LogCaptureFixture) -> None:
    io = make_app(ping_interval=0.05 * UNIT, ping_timeout=2 * UNIT)
    async with running(io) as address, raw_client(address) as client:
        sid = client.open[len('0{"sid":"') :][:20]
        await client.expect("2")
        await client.send("3")
        await client.expect("2")
    assert traced(trace_log)[1:] == [f"{sid} < 2  PING", f"{sid} > 3  PONG", f"{sid} < 2  PING"]


@pytest.mark.parametrize(
    ("frame", "line"),
    [
        ("9", "9  INVALID (unknown Engine.IO packet type)"),
        ("", "(empty)  INVALID (empty Engine.IO packet)"),
        ("2", "2  PING"),  # decoded fine, but a client may not ping: the server closes
        ("1", "1  CLOSE"),
        ('42{"text":"hi"}', '42{"text":"hi"}  INVALID (EVENT payload must be a non-empty array)'),
        ('42["connect"]', '42["connect"]  INVALID (reserved event name)'),
        ("4x", "4x  INVALID (unknown Socket.IO packet type)"),
        # A raw line break would split the trace line: control characters are escaped.
        ('42["a\nb"]', '42["a\\nb"]  INVALID (invalid JSON payload)'),
        (b"\xff\x00", "<binary ff 00>  ATTACHMENT 2 bytes"),
    ],
)
async def test_invalid_and_closing_frames(
    trace_log: pytest.LogCaptureFixture, frame: str | bytes, line: str
) -> None:
    io = make_app()
    async with running(io) as address, raw_client(address) as client:
        sid = client.open[len('0{"sid":"') :][:20]
        await client.join()
        await client.send(frame)
        await client.closed()
    assert traced(trace_log)[3:] == [f"{sid} > {line}"]


async def test_long_frames_are_cut(trace_log: pytest.LogCaptureFixture) -> None:
    io = make_app()
    text = "x" * 400
    async with running(io) as address, raw_client(address) as client:
        sid = client.open[len('0{"sid":"') :][:20]
        await client.join()
        await client.send(f'42["upload","{text}"]')
        await client.send("40/nope,")  # a round trip, so the first frame was traced
        await client.expect('44/nope,{"message":"Invalid namespace"}')
    frame = f'42["upload","{text}"]'
    assert traced(trace_log)[3] == (
        f'{sid} > {frame[:300]}... ({len(frame)} chars)  EVENT ns=/ "upload"'
    )


def test_describe_is_one_line_for_any_frame() -> None:
    assert describe("4" + "\u2028" + "\r") == "4\\u2028\\r  INVALID (unknown Socket.IO packet type)"
    assert describe(bytes(17)) == (
        "<binary 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ...>  ATTACHMENT 17 bytes"
    )


@pytest.mark.parametrize(
    ("frame", "line"),
    [
        # A namespace, a CONNECT's sid, an event name and an error message are
        # the peer's text too: escaped like the frame, or they forge log lines.
        ("40/x\nFORGED,", "40/x\\nFORGED,  CONNECT ns=/x\\nFORGED"),
        ('40{"sid":"a\\nFORGED"}', '40{"sid":"a\\nFORGED"}  CONNECT ns=/ sid=a\\nFORGED'),
        ('42["a\u2028FORGED"]', '42["a\\u2028FORGED"]  EVENT ns=/ "a\\u2028FORGED"'),
        (
            '44{"message":"a\x85FORGED"}',
            '44{"message":"a\\x85FORGED"}  CONNECT_ERROR ns=/ "a\\x85FORGED"',
        ),
    ],
)
def test_the_peer_text_in_a_description_is_escaped(frame: str, line: str) -> None:
    assert describe(frame) == line


def test_the_peer_text_in_a_description_is_cut() -> None:
    long = "y" * 1000
    for frame, tail in [
        (f'40{{"sid":"{long}"}}', f" sid={long[:300]}..."),
        (f'42["{long}"]', f' "{long[:299]}...'),
        (f'44"{long}"', f' "{long[:299]}...'),
    ]:
        assert describe(frame).endswith(tail)


def test_frames_are_decoded_with_the_default_limits() -> None:
    # What a default server refuses is INVALID; and a hostile frame is
    # checked no deeper than the server checks it.
    assert describe(f'42["e",{"[" * 31}{"]" * 31}]').endswith('EVENT ns=/ "e"')
    deep = f'42["e",{"[" * 900}{"]" * 900}]'
    assert describe(deep).endswith("INVALID (JSON nested too deeply)")
    many = '4511-["e",{"_placeholder":true,"num":0}]'
    assert describe(many).endswith("INVALID (too many binary attachments)")


async def test_a_server_with_raised_limits_traces_by_them(
    trace_log: pytest.LogCaptureFixture,
) -> None:
    # What the server accepts is not INVALID in its own trace.
    io = minisio.Server(trace=True, max_depth=40)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("e", lambda *args: None)

    deep = f'42["e",{"[" * 35}{"]" * 35}]'
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send(deep)
        await client.send('421["e"]')  # no handler answer: the ack comes back empty
        await client.expect("431[]")
    assert any(line.endswith(deep + '  EVENT ns=/ "e"') for line in traced(trace_log))


async def test_nothing_is_logged_when_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    io = minisio.Server()

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        @socket.on("sum")
        def add(a: int, b: int) -> int:
            return a + b

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('421["sum",1,2]')
        await client.expect("431[3]")
        await client.send(b"\x01")  # refused, and still not traced
        await client.closed()
    await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "minisio.trace"] == []

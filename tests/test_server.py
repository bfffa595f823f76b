"""The server over real sockets: the open packet, ordering, acks, binary, limits.

Every assertion is on exact frames, read by the raw client of conftest.py.
Routing, namespaces, heartbeat/disconnects and the HTTP side have their own
modules (test_routes.py, test_namespaces.py, test_heartbeat.py, test_http.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
import pytest

import minisio

from .conftest import SID, UNIT, joined_clients, raw_client, running


def _placeholder(num: int) -> str:
    return f'{{"_placeholder":true,"num":{num}}}'


# -- the open packet ---------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "timeout", "max_payload", "expected"),
    [
        (25, 20, 1_000_000, '"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000'),
        (0.3, 0.2, 5000, '"pingInterval":300,"pingTimeout":200,"maxPayload":5000'),
        (0.25, 1.5, 64, '"pingInterval":250,"pingTimeout":1500,"maxPayload":64'),
        # Below one millisecond: still announced as 1 ms, never 0 (0 would mean "no heartbeat").
        (0.0004, 0.0004, 100, '"pingInterval":1,"pingTimeout":1,"maxPayload":100'),
    ],
)
async def test_open_packet_announces_exact_settings(
    interval: float, timeout: float, max_payload: int, expected: str
) -> None:
    io = minisio.Server(ping_interval=interval, ping_timeout=timeout, max_payload=max_payload)
    async with running(io) as address, raw_client(address) as client:
        assert re.fullmatch(rf'0\{{"sid":"{SID}","upgrades":\[\],{expected}\}}', client.open)


async def test_socket_id_is_not_the_engine_sid() -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as a, raw_client(address) as b:
        eio_a = orjson.loads(a.open[1:])["sid"]
        eio_b = orjson.loads(b.open[1:])["sid"]
        sid_a, sid_b = await a.join(), await b.join()
        assert len({eio_a, eio_b, sid_a, sid_b}) == 4
        assert all(len(s) == 20 for s in (eio_a, eio_b, sid_a, sid_b))
        assert set(io.sockets) == {sid_a, sid_b}
        assert io.sockets[sid_a].id == sid_a


async def test_connect_reply_precedes_what_the_connection_handler_emits() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.emit("welcome", socket.id)
        io.emit("notice", "joined")
        io.to(socket.id).emit("direct", 1)
        socket.emit("file", b"\x01")

    async with running(io) as address, raw_client(address) as client:
        await client.send("40")
        sid = (await client.expect_match(rf'40\{{"sid":"({SID})"\}}')).group(1)
        await client.expect(f'42["welcome","{sid}"]')
        await client.expect('42["notice","joined"]')
        await client.expect('42["direct",1]')
        await client.expect(f'451-["file",{_placeholder(0)}]')
        await client.expect(b"\x01")
        await client.expect_nothing()


async def test_async_connection_handler_emits_after_the_connect_reply() -> None:
    io = minisio.Server()

    @io.on("connection")
    async def joined(socket: minisio.Socket) -> None:
        socket.emit("first")
        await asyncio.sleep(0)
        socket.emit("second")

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('42["first"]')
        await client.expect('42["second"]')


async def test_frames_to_one_socket_leave_in_emit_order() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("go")
        def go(n: int) -> None:
            # Every route that reaches this socket, interleaved.
            for i in range(n):
                if i % 4 == 0:
                    socket.emit("n", i)
                elif i % 4 == 1:
                    io.emit("n", i)
                elif i % 4 == 2:
                    io.to(socket.id).emit("n", i)
                else:
                    socket.emit("n", i, b"\xff")

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('42["go",40]')
        for i in range(40):
            if i % 4 == 3:
                await client.expect(f'451-["n",{i},{_placeholder(0)}]')
                await client.expect(b"\xff")
            else:
                await client.expect(f'42["n",{i}]')
        await client.expect_nothing()


# -- acks: client asks, handler answers ---------------------------------------


def _ack_server() -> minisio.Server:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("sum")
        def add(a: int, b: int) -> int:
            return a + b

        @socket.on("pair")
        def pair() -> tuple[int, str, None]:
            return 1, "two", None

        @socket.on("nothing")
        def nothing(*args: Any) -> None:
            return None

        @socket.on("later")
        async def later(x: Any) -> list[Any]:
            await asyncio.sleep(0.01 * UNIT)
            return [x, x]

        @socket.on("boom")
        def boom() -> int:
            raise RuntimeError("handler bug")

    return io


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        ('421["sum",1,2]', "431[3]"),
        ('4217["sum",-1,0.5]', "4317[-0.5]"),
        ('429007199254740991["sum",1,2]', "439007199254740991[3]"),
        # A tuple answers with several arguments.
        ('425["pair"]', '435[1,"two",null]'),
        # None answers with no arguments at all.
        ('426["nothing",1,2]', "436[]"),
        ('420["nothing"]', "430[]"),
        # A coroutine handler's return value answers too; a list is one argument.
        ('428["later",{"a":[]}]', '438[[{"a":[]},{"a":[]}]]'),
        # Missing arguments arrive as None (JavaScript's undefined).
        ('423["later"]', "433[[null,null]]"),
    ],
)
async def test_handler_return_value_answers_the_client_ack(sent: str, answer: str) -> None:
    io = _ack_server()
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send(sent)
        await client.expect(answer)
        await client.expect_nothing()


async def test_no_ack_without_an_ack_id_and_none_from_a_failing_handler() -> None:
    io = _ack_server()
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('42["sum",1,2]')
        await client.send('427["boom"]')
        await client.send('42["unknown",1]')
        await client.expect_nothing()
        # The connection survived all three.
        await client.send('421["sum",2,2]')
        await client.expect("431[4]")


# -- acks: server asks, client answers ----------------------------------------


async def test_emit_with_ack_is_answered_by_the_client() -> None:
    io = minisio.Server()
    results: asyncio.Queue[Any] = asyncio.Queue()

    @io.on("connection")
    async def joined(socket: minisio.Socket) -> None:
        await results.put(await socket.emit_with_ack("question", 1, timeout=2 * UNIT))
        await results.put(await socket.emit_with_ack("question", 2))
        await results.put(await socket.emit_with_ack("question", 3))

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('420["question",1]')
        await client.send('430["yes",{"n":2}]')
        assert await asyncio.wait_for(results.get(), 2 * UNIT) == ("yes", {"n": 2})
        # Ids count up per socket.
        await client.expect('421["question",2]')
        await client.send("431[7]")
        assert await asyncio.wait_for(results.get(), 2 * UNIT) == 7
        await client.expect('422["question",3]')
        await client.send("432[]")
        assert await asyncio.wait_for(results.get(), 2 * UNIT) is None


async def test_emit_with_ack_in_a_namespace_and_answered_with_binary() -> None:
    io = minisio.Server()
    results: asyncio.Queue[Any] = asyncio.Queue()

    @io.of("/admin").on("connection")
    async def joined(socket: minisio.Socket) -> None:
        await results.put(await socket.emit_with_ack("send me", b"\x00"))

    async with running(io) as address, raw_client(address) as client:
        await client.join("/admin")
        await client.expect(f'451-/admin,0["send me",{_placeholder(0)}]')
        await client.expect(b"\x00")
        await client.send(f"461-/admin,0[{_placeholder(0)}]")
        await client.send(b"\xde\xad")
        assert await asyncio.wait_for(results.get(), 2 * UNIT) == b"\xde\xad"


async def test_emit_with_ack_times_out_and_a_late_ack_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io = minisio.Server()
    results: asyncio.Queue[Any] = asyncio.Queue()

    @io.on("connection")
    async def joined(socket: minisio.Socket) -> None:
        try:
            await socket.emit_with_ack("question", timeout=0.1 * UNIT)
        except minisio.AckTimeout as exc:
            await results.put(exc)

        @socket.on("ping me")
        def ping_me() -> str:
            return "pong"

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('420["question"]')
        asked = asyncio.get_running_loop().time()
        assert isinstance(await asyncio.wait_for(results.get(), 2 * UNIT), minisio.AckTimeout)
        assert asyncio.get_running_loop().time() - asked >= 0.09 * UNIT  # not before its time
        with caplog.at_level(logging.WARNING, logger="minisio"):
            await client.send('430["too late"]')  # nobody waits for it any more: ignored
            await client.send('425["ping me"]')
            await client.expect('435["pong"]')
        assert caplog.records == []


@pytest.mark.parametrize("leave", ["41", "close"])
async def test_emit_with_ack_raises_disconnected_when_the_socket_goes(leave: str) -> None:
    io = minisio.Server()
    results: asyncio.Queue[Any] = asyncio.Queue()

    @io.on("connection")
    async def joined(socket: minisio.Socket) -> None:
        try:
            await socket.emit_with_ack("question", timeout=5 * UNIT)
        except minisio.Disconnected as exc:
            await results.put(exc)
            # Once gone, asking again fails at once.
            try:
                await socket.emit_with_ack("again")
            except minisio.Disconnected as again:
                await results.put(again)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('420["question"]')
        if leave == "41":
            await client.send("41")
        else:
            await client.ws.close()
        first = await asyncio.wait_for(results.get(), 2 * UNIT)
        second = await asyncio.wait_for(results.get(), 2 * UNIT)
        assert isinstance(first, minisio.Disconnected)
        assert isinstance(second, minisio.Disconnected)
        if leave == "41":
            await client.expect_nothing()


# -- binary --------------------------------------------------------------------


async def test_client_binary_event_arrives_as_bytes_nested_anywhere() -> None:
    io = minisio.Server()
    received: asyncio.Queue[Any] = asyncio.Queue()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("up")
        def up(*args: Any) -> None:
            received.put_nowait(args)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send(f'451-["up",{_placeholder(0)}]')
        await client.send(b"\x01\x02\x03\x04")
        assert await asyncio.wait_for(received.get(), 2 * UNIT) == (b"\x01\x02\x03\x04",)
        await client.send(
            f'453-["up",{{"a":[1,{_placeholder(2)}],"b":{{"c":{_placeholder(0)}}}}},'
            f'[{_placeholder(1)}],"text"]'
        )
        for frame in (b"zero", b"", b"\x00\xff"):
            await client.send(frame)
        args = await asyncio.wait_for(received.get(), 2 * UNIT)
        assert args == ({"a": [1, b"\x00\xff"], "b": {"c": b"zero"}}, [b""], "text")
        assert type(args[1][0]) is bytes


async def test_client_binary_event_with_ack_gets_a_binary_ack() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("reverse")
        def reverse(data: bytes) -> tuple[bytes, str]:
            return data[::-1], "ok"

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send(f'451-15["reverse",{_placeholder(0)}]')
        await client.send(b"\x01\x02\x03")
        await client.expect(f'461-15[{_placeholder(0)},"ok"]')
        await client.expect(b"\x03\x02\x01")


async def test_server_emits_binary_as_placeholders_and_binary_frames() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.emit("file", b"\x01\x02\x03", {"x": bytearray(b"\x04"), "y": [memoryview(b"56")]})

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect(
            f'453-["file",{_placeholder(0)},{{"x":{_placeholder(1)},"y":[{_placeholder(2)}]}}]'
        )
        await client.expect(b"\x01\x02\x03")
        await client.expect(b"\x04")
        await client.expect(b"56")
        await client.expect_nothing()


async def test_binary_broadcast_reaches_every_socket() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("share")
        def share(data: bytes) -> None:
            io.emit("shared", data)

    async with running(io) as address, joined_clients(address, 3) as pairs:
        sender = pairs[0][0]
        await sender.send(f'451-["share",{_placeholder(0)}]')
        await sender.send(b"\xca\xfe")
        for client, _ in pairs:
            await client.expect(f'451-["shared",{_placeholder(0)}]')
            await client.expect(b"\xca\xfe")


async def test_binary_event_and_binary_ack_in_a_namespace() -> None:
    io = minisio.Server()

    @io.of("/files").on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("upload")
        def upload(name: str, data: bytes) -> dict[str, Any]:
            return {"name": name, "size": len(data), "head": data[:1]}

    async with running(io) as address, raw_client(address) as client:
        await client.join("/files")
        await client.send(f'451-/files,3["upload","a.bin",{_placeholder(0)}]')
        await client.send(b"\x07\x08\x09")
        await client.expect(f'461-/files,3[{{"name":"a.bin","size":3,"head":{_placeholder(0)}}}]')
        await client.expect(b"\x07")


async def test_reserved_event_names_cannot_be_emitted() -> None:
    io = minisio.Server()
    sockets: list[minisio.Socket] = []
    io.on("connection", sockets.append)
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        for name in ("connect", "connect_error", "disconnect", "disconnecting"):
            with pytest.raises(ValueError, match="reserved"):
                sockets[0].emit(name)
            with pytest.raises(ValueError, match="reserved"):
                io.emit(name)
            with pytest.raises(ValueError, match="reserved"):
                await sockets[0].emit_with_ack(name)
        for bad in (1, None, b"chat"):
            with pytest.raises(TypeError, match="must be a str"):
                sockets[0].emit(bad)  # type: ignore[arg-type]
        await client.expect_nothing()


# -- limits and malformed input --------------------------------------------------


async def test_frame_above_max_payload_closes_only_that_connection_with_1009() -> None:
    io = minisio.Server(max_payload=1000)
    reasons: asyncio.Queue[str] = asyncio.Queue()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.put_nowait)

        @socket.on("say")
        def say(text: str) -> None:
            io.emit("said", len(text))

    async with running(io) as address, joined_clients(address, 3) as pairs:
        (big, _), (b, _), (c, _) = pairs
        assert big.open.endswith('"maxPayload":1000}')
        # Exactly at the limit is fine...
        at_limit = '42["say","' + "x" * (1000 - 12) + '"]'
        assert len(at_limit) == 1000
        await big.send(at_limit)
        for client, _ in pairs:
            await client.expect('42["said",988]')
        # ...one byte more is not, for text and binary frames alike.
        await big.send(at_limit[:-2] + 'x"]')
        assert await big.closed() == 1009
        assert await asyncio.wait_for(reasons.get(), 2 * UNIT) == "transport error"
        await b.send('42["say","hi"]')
        await b.expect('42["said",2]')
        await c.expect('42["said",2]')
        await c.send(f'451-["say",{_placeholder(0)}]')
        await c.send(b"\x00" * 1001)
        assert await c.closed() == 1009
        await b.send('42["say","?"]')
        await b.expect('42["said",1]')


@pytest.mark.parametrize(
    "frames",
    [
        ["42["],  # invalid JSON
        [""],  # empty Engine.IO packet
        ["9"],  # unknown Engine.IO type
        ["4"],  # empty Socket.IO packet
        ["47[]"],  # unknown Socket.IO type
        ["42{}"],  # EVENT payload not an array
        ["42[]"],  # EVENT payload empty
        ['42["disconnect"]'],  # reserved event name
        ["43[]"],  # ACK without an id
        ["40"],  # CONNECT to a namespace already joined
        ['42/admin,["x"]'],  # EVENT for a namespace not joined
        ["44{}"],  # CONNECT_ERROR from a client
        [b"\x01"],  # binary frame with no binary packet waiting
        [f'451-["x",{_placeholder(0)}]', '42["x"]'],  # text while attachments are due
        [f'451-["x",{_placeholder(1)}]', b"\x01"],  # placeholder out of range
        ['452-["x",1]', b"\x01", b"\x02"],  # attachments without placeholders
        ["2"],  # ping from the client: wrong heartbeat direction
    ],
    ids=repr,
)
async def test_malformed_input_closes_only_that_client_with_1002(
    frames: list[str | bytes],
) -> None:
    io = minisio.Server()
    reasons: asyncio.Queue[str] = asyncio.Queue()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.put_nowait)

        @socket.on("shout")
        def shout(text: str) -> None:
            io.emit("heard", text)

    async with running(io) as address, joined_clients(address, 3) as pairs:
        (bad, bad_sid), (b, _), (c, _) = pairs
        for frame in frames:
            await bad.send(frame)
        assert await bad.closed() == 1002
        assert await asyncio.wait_for(reasons.get(), 2 * UNIT) == "parse error"
        assert bad_sid not in io.sockets
        await b.send('42["shout","still here"]')
        for client in (b, c):
            await client.expect('42["heard","still here"]')
        await c.send('42["shout","me too"]')
        for client in (b, c):
            await client.expect('42["heard","me too"]')
        assert reasons.empty()


async def test_unserializable_ack_or_emit_is_logged_and_the_connection_lives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("bad_ack", lambda: {1, 2})  # a set: not JSON
        socket.on("bad_emit", lambda: socket.emit("x", object()))
        socket.on("ok", lambda: "fine")

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        with caplog.at_level(logging.ERROR, logger="minisio"):
            await client.send('421["bad_ack"]')
            await client.send('422["bad_emit"]')
            await client.send('423["ok"]')
            await client.expect('433["fine"]')  # nothing for 1 and 2, and still connected
        messages = [r.getMessage() for r in caplog.records]
        assert any("not JSON-serializable" in m for m in messages), messages
        assert any("'bad_emit' failed" in m for m in messages), messages

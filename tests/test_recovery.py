"""Connection state recovery on the wire: raw clients, byte-exact frames.

A client "drops" by closing its WebSocket (the server sees "transport
close", a reason that keeps the session) and comes back on a new one with
``40{"pid":...,"offset":...}``, as socket.io-client 4.8 does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import minisio
from minisio.adapter import SessionAwareAdapter
from minisio.redis import redis_adapter

from .conftest import SID, UNIT, RawClient, eventually, raw_client, running

OFFSET = r"[1-9a-f][0-9a-f]*"


def make_app(**recovery: Any) -> tuple[minisio.Server, dict[str, Any]]:
    """A server with recovery on, and what its handlers saw."""
    io = minisio.Server(connection_state_recovery=recovery or True)
    seen: dict[str, Any] = {"connections": [], "expired": [], "middleware": 0}

    @io.use
    def count(socket: minisio.Socket) -> None:
        seen["middleware"] += 1

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        seen["connections"].append((socket.id, socket.recovered))
        socket.data.setdefault("name", f"user{len(seen['connections'])}")

        @socket.on("join")
        def join(room: str) -> None:
            socket.join(room)

        @socket.on("all")
        def to_all(text: str) -> None:
            io.emit("said", text)

        @socket.on("room")
        def to_room(room: str, text: str) -> None:
            io.to(room).emit("said", text)

        @socket.on("others")
        def others(text: str) -> None:
            socket.broadcast.emit("said", text)

        @socket.on("except")
        def except_room(room: str, text: str) -> None:
            io.except_(room).emit("said", text)

        @socket.on("volatile")
        def volatile(text: str) -> None:
            io.volatile.emit("said", text)

        @socket.on("me")
        def me(text: str) -> None:
            socket.emit("said", text)

        @socket.on("whoami")
        def whoami() -> list[Any]:
            return [socket.id, socket.recovered, socket.data.get("name"), sorted(socket.rooms)]

    @io.on("session_expired")
    def expired(session: minisio.KeptSession) -> None:
        seen["expired"].append((session.id, dict(session.data or {})))

    return io, seen


async def join(client: RawClient, auth: str = "") -> tuple[str, str]:
    """CONNECT; the reply must be ``{"sid","pid"}``, in that order: (sid, pid)."""
    await client.send(f"40{auth}")
    match = await client.expect_match(rf'40\{{"sid":"({SID})","pid":"({SID})"\}}')
    return match.group(1), match.group(2)


async def said(client: RawClient, text: str) -> str:
    """The next frame must be ``said`` with ``text`` and an offset: the offset."""
    match = await client.expect_match(rf'42\["said",{json.dumps(text)},"({OFFSET})"\]')
    return match.group(1)


async def drop(client: RawClient) -> None:
    """Lose the connection (a clean WebSocket close: "transport close" on the server)."""
    await client.ws.close()


def resume(pid: str, offset: str | None) -> str:
    return json.dumps({"pid": pid} | ({} if offset is None else {"offset": offset}))


async def test_connect_reply_has_pid_and_events_their_offset() -> None:
    io, _ = make_app()
    async with running(io) as address, raw_client(address) as a:
        sid, pid = await join(a)
        assert sid != pid
        await a.send('42["all","hi"]')
        first = await said(a, "hi")
        await a.send('42["all","again"]')
        second = await said(a, "again")
        # Offsets are consecutive counters, in hex.
        assert int(second, 16) == int(first, 16) + 1


async def test_recovered_after_a_drop_same_id_rooms_data_and_missed_packets_in_order() -> None:
    io, seen = make_app()
    async with running(io) as address, raw_client(address) as b:
        await join(b)
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await a.send('42["join","red"]')
            await a.send('42["all","before"]')
            offset = await said(a, "before")
            await said(b, "before")
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        for text in ("one", "two"):
            await b.send(f'42["all","{text}"]')
            await said(b, text)
        await b.send('42["room","red","to red"]')  # a is in red: replayed
        await b.send('42["room","blue","to blue"]')  # a is not in blue: not
        await b.send('42["except","red","not red"]')  # red excluded: not
        await b.send('42["others","from b"]')  # everyone but b: replayed
        await b.send('42["volatile","fleeting"]')  # volatile: never kept
        await said(b, "not red")
        await b.expect_match(r'42\["said","fleeting"\]')  # volatile: no offset either
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, offset)}")
            # The same sid and pid, then what it missed, in order.
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
            for text in ("one", "two", "to red", "from b"):
                await said(a2, text)
            await a2.send('421["whoami"]')
            match = await a2.expect_match(r"431\[(.*)\]")
            assert json.loads(match.group(1)) == [sid, True, "user2", sorted([sid, "red"])]
            # A room emit reaches it live again.
            await b.send('42["room","red","live"]')
            await said(a2, "live")
            await a2.expect_nothing()
    assert seen["connections"][-1] == (sid, True)  # the connection handler ran, recovered
    assert seen["middleware"] == 2  # skip_middlewares: not run for the recovered one
    assert seen["expired"] == []


async def test_own_emits_are_kept_and_replayed_acks_are_not() -> None:
    io, _ = make_app()

    @io.on("connection")
    def later(socket: minisio.Socket) -> None:
        @socket.on("later")
        async def send_later() -> None:
            await asyncio.sleep(0.2 * UNIT)
            socket.emit("said", "while away")
            socket.emit("asked", "question", callback=lambda *a: None)  # has an ack: not kept

    async with running(io) as address, raw_client(address) as a:
        sid, pid = await join(a)
        await a.send('42["me","mine"]')
        offset = await said(a, "mine")
        await a.send('42["later"]')
        await drop(a)
        await eventually(lambda: len(io.main.adapter.log) == 2)  # type: ignore[attr-defined]
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, offset)}")
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
            await said(a2, "while away")
            await a2.expect_nothing()


async def test_a_client_that_never_got_an_offset_recovers_everything_since_it_connected() -> None:
    # socket.io-client sends {"pid"} alone then; the Node server starts a new
    # session, minisio replays from the socket's first connection.
    io, _ = make_app()
    async with running(io) as address, raw_client(address) as b:
        await join(b)
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        await b.send('42["all","missed"]')
        await said(b, "missed")
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, None)}")
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
            await said(a2, "missed")
            await a2.expect_nothing()


async def test_another_clients_pid_while_it_is_connected_is_a_new_session() -> None:
    io, seen = make_app()
    async with running(io) as address, raw_client(address) as a, raw_client(address) as m:
        sid, pid = await join(a)
        await a.send('42["all","x"]')
        offset = await said(a, "x")
        await m.send(f"40{resume(pid, offset)}")
        match = await m.expect_match(rf'40\{{"sid":"({SID})","pid":"({SID})"\}}')
        assert match.group(1) != sid and match.group(2) != pid
        assert seen["connections"][-1] == (match.group(1), False)
        # The live one is untouched: still connected, still gets what is sent to it.
        await m.send(f'42["room","{sid}","for a"]')
        await said(a, "for a")
        assert io.main.sockets[sid].connected


async def test_a_session_is_restored_once_only() -> None:
    io, _ = make_app()
    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await a.send('42["all","x"]')
            offset = await said(a, "x")
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        async with raw_client(address) as a2, raw_client(address) as a3:
            await a2.send(f"40{resume(pid, offset)}")
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
            got_sid, _ = await join(a3, resume(pid, offset))
            assert got_sid != sid


@pytest.mark.parametrize(
    "offset",
    [
        '"zz"',  # not hex
        '"0"',  # not a counter
        '"0abc"',  # leading zero: not the way offsets are written
        '"ffffffffffffffff"',  # far in the future
        '"' + "9" * 5000 + '"',  # huge
        "12345",  # not a string
        '{"a":1}',
    ],
)
async def test_a_forged_offset_is_a_new_session_and_ends_the_kept_one(offset: str) -> None:
    io, seen = make_app()
    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        async with raw_client(address) as a2:
            await a2.send(f'40{{"pid":"{pid}","offset":{offset}}}')
            match = await a2.expect_match(rf'40\{{"sid":"({SID})","pid":"({SID})"\}}')
            assert match.group(1) != sid and match.group(2) != pid
            await a2.expect_nothing()
            assert len(io.main.adapter.store) == 0  # type: ignore[attr-defined]
    assert seen["expired"] == [(sid, {"name": "user1"})]


async def test_an_offset_one_past_the_last_packet_is_refused() -> None:
    io, _ = make_app()
    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await a.send('42["all","x"]')
            offset = await said(a, "x")
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        future = format(int(offset, 16) + 1, "x")
        async with raw_client(address) as a2:
            got, _ = await join(a2, resume(pid, future))
            assert got != sid


async def test_after_the_window_a_new_session_and_the_expiry_hook() -> None:
    io, seen = make_app(max_disconnection_duration=0.3 * UNIT)
    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await a.send('42["all","x"]')
            offset = await said(a, "x")
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        # The timer tells the namespace, with nobody reconnecting.
        await eventually(lambda: seen["expired"] == [(sid, {"name": "user1"})])
        async with raw_client(address) as a2:  # pid reuse after expiry
            got_sid, got_pid = await join(a2, resume(pid, offset))
            assert got_sid != sid and got_pid != pid
    assert seen["connections"][-1] == (got_sid, False)


async def test_offset_older_than_the_packets_kept_is_a_new_session() -> None:
    io, seen = make_app(max_packets=3)
    async with running(io) as address, raw_client(address) as b:
        await join(b)
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await a.send('42["all","x"]')
            offset = await said(a, "x")
            await said(b, "x")
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        for i in range(4):  # "x" and the first of these are pushed out
            await b.send(f'42["all","{i}"]')
            await said(b, str(i))
        assert len(io.main.adapter.log) == 3  # type: ignore[attr-defined]
        async with raw_client(address) as a2:
            got, _ = await join(a2, resume(pid, offset))
            assert got != sid
    assert seen["expired"] == [(sid, {"name": "user2"})]


async def test_deliberate_disconnects_are_not_kept() -> None:
    io, seen = make_app()
    assert seen["expired"] == []

    @io.on("connection")
    def kick(socket: minisio.Socket) -> None:
        socket.on("kick", lambda: socket.disconnect())

    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await a.send("41")  # the client leaves: "client namespace disconnect"
            await eventually(lambda: sid not in io.main.sockets)
        async with raw_client(address) as k:
            ksid, _ = await join(k)
            await k.send('42["kick"]')  # the server disconnects it
            await k.expect("41")
            await eventually(lambda: ksid not in io.main.sockets)
        adapter = io.main.adapter
        assert isinstance(adapter, SessionAwareAdapter)
        assert len(adapter.store) == 0
        async with raw_client(address) as a2:
            got, _ = await join(a2, resume(pid, None))
            assert got != sid


async def test_middleware_runs_for_a_recovered_socket_when_not_skipped() -> None:
    io, seen = make_app(skip_middlewares=False)
    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, None)}")
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
    assert seen["middleware"] == 2


async def test_async_middleware_then_packets_sent_meanwhile_are_replayed_too() -> None:
    io = minisio.Server(connection_state_recovery={"skip_middlewares": False})
    gate = asyncio.Event()

    @io.use
    async def slow(socket: minisio.Socket) -> None:
        if socket.handshake.auth.get("pid"):
            await gate.wait()

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        socket.on("all", lambda text: io.emit("said", text))

    async with running(io) as address, raw_client(address) as b:
        await join(b)
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        await b.send('42["all","before"]')
        await said(b, "before")
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, None)}")
            await asyncio.sleep(0.05 * UNIT)
            await b.send('42["all","during"]')  # while the middleware waits
            await said(b, "during")
            gate.set()
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
            await said(a2, "before")
            await said(a2, "during")
            await a2.expect_nothing()


async def test_thousands_of_disconnects_keep_the_store_bounded_oldest_first() -> None:
    io, seen = make_app(max_sessions=50)
    pids: list[tuple[str, str]] = []
    async with running(io) as address:
        for _ in range(300):
            async with raw_client(address) as c:
                pids.append(await join(c))
        adapter = io.main.adapter
        assert isinstance(adapter, SessionAwareAdapter)
        await eventually(lambda: len(seen["expired"]) == 250)
        assert len(adapter.store) == 50
        # The oldest went first, in order.
        assert [sid for sid, _ in seen["expired"]] == [sid for sid, _ in pids[:250]]
        async with raw_client(address) as old, raw_client(address) as new:
            got, _ = await join(old, resume(pids[0][1], None))
            assert got != pids[0][0]
            await new.send(f"40{resume(pids[-1][1], None)}")
            await new.expect(f'40{{"sid":"{pids[-1][0]}","pid":"{pids[-1][1]}"}}')


async def test_off_by_default_no_pid_no_offset() -> None:
    io = minisio.Server()
    io.on("connection", lambda socket: socket.on("all", lambda t: io.emit("said", t)))
    async with running(io) as address, raw_client(address) as a:
        await a.send('40{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"1"}')
        await a.expect_match(rf'40\{{"sid":"{SID}"\}}')
        await a.send('42["all","hi"]')
        await a.expect('42["said","hi"]')


async def test_a_namespace_keeps_its_own_sessions() -> None:
    io, _ = make_app()
    chat = io.of("/chat")
    chat.on("connection", lambda socket: None)
    async with running(io) as address:
        async with raw_client(address) as a:
            await a.send("40/chat,")
            match = await a.expect_match(rf'40/chat,\{{"sid":"({SID})","pid":"({SID})"\}}')
            sid, pid = match.groups()
            await drop(a)
        await eventually(lambda: sid not in chat.sockets)
        async with raw_client(address) as a2:
            # The main namespace knows nothing of /chat's pid.
            got, _ = await join(a2, resume(pid, None))
            assert got != sid
            await a2.send(f"40/chat,{resume(pid, None)}")
            await a2.expect(f'40/chat,{{"sid":"{sid}","pid":"{pid}"}}')


def test_options() -> None:
    assert minisio.Recovery.of(None) is None and minisio.Recovery.of(False) is None
    assert minisio.Recovery.of(True) == minisio.Recovery()
    assert minisio.Recovery.of({"max_disconnection_duration": 5}).max_disconnection_duration == 5
    with pytest.raises(TypeError, match="maxDisconnectionDuration"):
        minisio.Recovery.of({"maxDisconnectionDuration": 5})
    with pytest.raises(ValueError):
        minisio.Recovery(max_packets=0)
    with pytest.warns(UserWarning, match="milliseconds"):
        minisio.Recovery(max_disconnection_duration=120_000)
    io = minisio.Server(connection_state_recovery={"skip_middlewares": False})
    assert isinstance(io.main.adapter, SessionAwareAdapter)
    assert not isinstance(minisio.Server().main.adapter, SessionAwareAdapter)


async def test_redis_adapter_gives_no_recovery_as_in_node(redis_url: str) -> None:
    """The pub/sub adapter keeps no log: a CONNECT reply without a pid, no offsets,
    and a client back after a drop is a new socket (see README, protocol.md)."""
    io = minisio.Server(connection_state_recovery=True, adapter=redis_adapter(redis_url))
    io.on("connection", lambda socket: socket.on("all", lambda t: io.emit("said", t)))
    async with running(io) as address:
        async with raw_client(address) as a:
            await a.send("40")
            match = await a.expect_match(rf'40\{{"sid":"({SID})"\}}')
            await a.send('42["all","hi"]')
            await a.expect('42["said","hi"]')
            await drop(a)
        async with raw_client(address) as a2:
            await a2.send(f'40{{"pid":"{match.group(1)}","offset":"1"}}')
            again = await a2.expect_match(rf'40\{{"sid":"({SID})"\}}')
            assert again.group(1) != match.group(1)


async def test_a_recovered_socket_refused_by_middleware_ends_its_session() -> None:
    io = minisio.Server(connection_state_recovery={"skip_middlewares": False})
    expired: list[str] = []
    io.on("session_expired", lambda session: expired.append(session.id))

    @io.use
    def no_comebacks(socket: minisio.Socket) -> None:
        if socket.recovered:
            raise minisio.ConnectionRefused("start again")

    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, None)}")
            await a2.expect('44{"message":"start again"}')
            assert expired == [sid]
            got, _ = await join(a2, resume(pid, None))  # gone for good: a new session
            assert got != sid


async def test_a_client_that_leaves_while_async_middleware_runs_keeps_its_session() -> None:
    io = minisio.Server(connection_state_recovery={"skip_middlewares": False})
    gate = asyncio.Event()
    expired: list[str] = []
    io.on("session_expired", lambda session: expired.append(session.id))

    @io.use
    async def slow(socket: minisio.Socket) -> None:
        if socket.recovered and not gate.is_set():
            await gate.wait()

    async with running(io) as address:
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, None)}")
            await asyncio.sleep(0.05 * UNIT)
        await eventually(lambda: not io._sessions)
        gate.set()  # the middleware ends after its client left: the session is kept again
        adapter = io.main.adapter
        assert isinstance(adapter, SessionAwareAdapter)
        await eventually(lambda: len(adapter.store) == 1)
        async with raw_client(address) as a3:
            await a3.send(f"40{resume(pid, None)}")
            await a3.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
    assert expired == []


async def test_a_binary_broadcast_is_replayed_with_its_attachment() -> None:
    io, _ = make_app()

    @io.on("connection")
    def binary(socket: minisio.Socket) -> None:
        socket.on("picture", lambda: io.emit("picture", b"\x01\x02\x03"))

    async with running(io) as address, raw_client(address) as b:
        await join(b)
        async with raw_client(address) as a:
            sid, pid = await join(a)
            await drop(a)
        await eventually(lambda: sid not in io.main.sockets)
        await b.send('42["picture"]')
        head = rf'451-\["picture",\{{"_placeholder":true,"num":0\}},"({OFFSET})"\]'
        await b.expect_match(head)
        await b.expect(b"\x01\x02\x03")
        async with raw_client(address) as a2:
            await a2.send(f"40{resume(pid, None)}")
            await a2.expect(f'40{{"sid":"{sid}","pid":"{pid}"}}')
            await a2.expect_match(head)
            await a2.expect(b"\x01\x02\x03")
            await a2.expect_nothing()

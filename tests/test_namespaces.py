"""Namespaces over real sockets: joining, refusing, middleware, the handshake."""

from __future__ import annotations

import asyncio
import gc
import re
from typing import Any

import pytest

import minisio
from minisio.engine import Session

from .conftest import SID, UNIT, eventually, raw_client, running


async def test_several_namespaces_on_one_websocket() -> None:
    io = minisio.Server()
    admin = io.of("/admin")
    assert io.of("/admin") is admin
    seen: list[tuple[str, str]] = []

    @io.on("connection")
    def main_joined(socket: minisio.Socket) -> None:
        seen.append(("/", socket.id))

        @socket.on("where")
        def where() -> str:
            return "main"

    @admin.on("connection")
    def admin_joined(socket: minisio.Socket) -> None:
        seen.append(("/admin", socket.id))
        socket.emit("hello", "admin")

        @socket.on("where")
        def where() -> str:
            return "admin"

        @socket.on("tell all")
        def tell_all(x: Any) -> None:
            admin.emit("told", x)

    async with running(io) as address, raw_client(address) as a, raw_client(address) as b:
        main_a = await a.join()
        await a.send("40/admin,")
        admin_a = (await a.expect_match(rf'40/admin,\{{"sid":"({SID})"\}}')).group(1)
        await a.expect('42/admin,["hello","admin"]')
        assert main_a != admin_a
        assert seen == [("/", main_a), ("/admin", admin_a)]
        # The same event name, routed by namespace; acks carry the namespace back.
        await a.send('421["where"]')
        await a.expect('431["main"]')
        await a.send('42/admin,2["where"]')
        await a.expect('43/admin,2["admin"]')
        # Joining only /admin, without the main namespace, is allowed.
        admin_b = await b.join("/admin")
        await b.expect('42/admin,["hello","admin"]')
        assert set(admin.sockets) == {admin_a, admin_b}
        assert set(io.sockets) == {main_a}
        await b.send('42/admin,["tell all",1]')
        await a.expect('42/admin,["told",1]')
        await b.expect('42/admin,["told",1]')
        # io.emit is the main namespace only: b is not in it.
        io.emit("main only")
        await a.expect('42["main only"]')
        await b.expect_nothing()


async def test_unknown_namespace_is_refused_and_the_connection_stays_usable() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("echo")
        def echo(x: Any) -> Any:
            return x

    async with running(io) as address, raw_client(address) as client:
        await client.send("40/nope,")
        await client.expect('44/nope,{"message":"Invalid namespace"}')
        # Without the trailing comma too ("the comma is required only when more follows").
        await client.send("40/nope")
        await client.expect('44/nope,{"message":"Invalid namespace"}')
        await client.send('40/nope,{"token":"x"}')
        await client.expect('44/nope,{"message":"Invalid namespace"}')
        await client.join()
        await client.send('421["echo","still fine"]')
        await client.expect('431["still fine"]')
        await client.send("40/nope,")
        await client.expect('44/nope,{"message":"Invalid namespace"}')
        await client.send('422["echo",2]')
        await client.expect("432[2]")


def _guarded(use_async: bool, refusal: minisio.ConnectionRefused) -> minisio.Server:
    """/admin lets in only auth {"token": "123"}; others get ``refusal``."""
    io = minisio.Server()
    admin = io.of("/admin")

    def check(socket: minisio.Socket) -> None:
        if socket.handshake.auth.get("token") != "123":
            # A new exception each time: the shared one would keep the
            # traceback, and with it the frames, session and socket, of the
            # last refusal alive after the test.
            raise minisio.ConnectionRefused(refusal.message, refusal.data)

    if use_async:

        @admin.use
        async def guard(socket: minisio.Socket) -> None:
            await asyncio.sleep(0.01 * UNIT)
            check(socket)

    else:
        admin.use(check)

    @admin.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.emit("auth", socket.handshake.auth)

    return io


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        (minisio.ConnectionRefused(), '44/admin,{"message":"not authorized"}'),
        (
            minisio.ConnectionRefused("bad token", {"retry": False, "n": [1]}),
            '44/admin,{"message":"bad token","data":{"retry":false,"n":[1]}}',
        ),
    ],
    ids=["message", "message+data"],
)
async def test_middleware_refuses_and_admits(
    use_async: bool, refusal: minisio.ConnectionRefused, expected: str
) -> None:
    io = _guarded(use_async, refusal)
    async with running(io) as address, raw_client(address) as client:
        await client.send("40/admin,")
        await client.expect(expected)
        await client.send('40/admin,{"token":"wrong"}')
        await client.expect(expected)
        assert not io.of("/admin").sockets
        # Refused, but the connection stays open: the right token gets in.
        sid = await client.join("/admin", '{"token":"123","extra":[1,{"a":null}]}')
        await client.expect('42/admin,["auth",{"token":"123","extra":[1,{"a":null}]}]')
        assert io.of("/admin").sockets[sid].handshake.auth == {
            "token": "123",
            "extra": [1, {"a": None}],
        }
        # The main namespace has no middleware.
        await client.join()


async def test_main_namespace_middleware_runs_in_order_and_stops_at_a_refusal() -> None:
    io = minisio.Server()
    calls: list[str] = []
    connected: list[str] = []

    @io.use
    def first(socket: minisio.Socket) -> None:
        calls.append("first")
        socket.data["user"] = socket.handshake.auth.get("user")

    @io.use
    async def second(socket: minisio.Socket) -> None:
        calls.append("second")
        if socket.data["user"] is None:
            raise minisio.ConnectionRefused("who are you?")

    @io.use
    def third(socket: minisio.Socket) -> None:
        calls.append("third")

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        connected.append(socket.data["user"])

        @socket.on("disconnect")
        def gone(reason: str) -> None:
            connected.append("gone")

    async with running(io) as address, raw_client(address) as client:
        await client.send("40")
        await client.expect('44{"message":"who are you?"}')
        assert calls == ["first", "second"]
        assert connected == []
        await client.join(auth='{"user":"ann"}')
        assert calls == ["first", "second", "first", "second", "third"]
        assert connected == ["ann"]


async def test_middleware_failing_unexpectedly_refuses_without_leaking_details() -> None:
    io = minisio.Server()

    @io.use
    def broken(socket: minisio.Socket) -> None:
        raise KeyError("secret detail")

    async with running(io) as address, raw_client(address) as client:
        await client.send("40")
        await client.expect('44{"message":"Internal server error"}')
        await client.expect_nothing()


async def test_events_to_a_namespace_still_in_middleware_are_not_fatal() -> None:
    io = minisio.Server()
    gate = asyncio.Event()

    @io.use
    async def slow(socket: minisio.Socket) -> None:
        await gate.wait()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("echo")
        def echo(x: Any) -> Any:
            return x

    async with running(io) as address, raw_client(address) as client:
        await client.send("40")
        await client.send('421["echo",1]')
        await client.expect_nothing()
        gate.set()
        await client.expect_match(rf'40\{{"sid":"{SID}"\}}')
        await client.send('422["echo",2]')
        await client.expect("432[2]")


async def test_a_second_connect_while_middleware_runs_closes_the_connection() -> None:
    # Each repeat would start another middleware run and another socket,
    # counted by no limit; the reference server calls it an invalid state.
    io = minisio.Server()
    runs = 0

    @io.use
    async def slow(socket: minisio.Socket) -> None:
        nonlocal runs
        runs += 1
        await asyncio.Event().wait()

    async with running(io) as address, raw_client(address) as client:
        await client.send("40")
        await client.send("40")
        assert await client.closed() == 1002
        # No second run; the first is cancelled with the session (before it
        # started, if the close came first).
        assert runs <= 1


async def test_handshake_headers_query_and_address() -> None:
    io = minisio.Server()
    handshakes: list[minisio.Handshake] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        handshakes.append(socket.handshake)

    query = "EIO=4&transport=websocket&room=blue&name=J%C3%BCrgen"
    async with (
        running(io) as address,
        raw_client(address, query=query, additional_headers={"X-Token": "abc"}) as client,
    ):
        await client.join(auth='{"k":"v"}')
        (handshake,) = handshakes
        assert handshake.query == {
            "EIO": "4",
            "transport": "websocket",
            "room": "blue",
            "name": "Jürgen",
        }
        assert handshake.headers["x-token"] == "abc"
        assert handshake.headers["host"] == address
        assert handshake.address == "127.0.0.1"
        assert handshake.auth == {"k": "v"}
        assert handshake.url == f"/socket.io/?{query}"
        assert re.fullmatch(r"\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT\+0000", handshake.time)
        assert handshake.issued > 0


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_rooms_joined_in_middleware_count_once_accepted(use_async: bool) -> None:
    io = minisio.Server()
    rooms_in_middleware: list[set[str]] = []

    def join_vip(socket: minisio.Socket) -> None:
        socket.join("vip", "tmp")
        socket.leave("tmp")
        rooms_in_middleware.append(set(socket.rooms))
        if socket.handshake.auth.get("refuse"):
            raise minisio.ConnectionRefused()

    if use_async:

        @io.use
        async def guard(socket: minisio.Socket) -> None:
            await asyncio.sleep(0)
            join_vip(socket)

    else:
        io.use(join_vip)

    async with running(io) as address, raw_client(address) as a, raw_client(address) as b:
        sid = await a.join()
        assert io.sockets[sid].rooms == {sid, "vip"}
        await b.send('40{"refuse":true}')
        await b.expect('44{"message":"not authorized"}')
        assert rooms_in_middleware == [{"vip"}, {"vip"}]
        # The refused socket left no trace in the room.
        assert io.main.adapter.rooms["vip"] == {sid}
        io.to("vip").emit("vip only")
        await a.expect('42["vip only"]')
        await b.expect_nothing()


async def test_a_failing_connection_handler_leaves_the_socket_connected() -> None:
    io = minisio.Server()

    @io.on("connection")
    def refuse_too_late(socket: minisio.Socket) -> None:
        raise minisio.ConnectionRefused("too late to refuse")

    @io.on("connection")
    def second(socket: minisio.Socket) -> None:
        socket.emit("second handler ran")

    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        await client.expect('42["second handler ran"]')
        assert sid in io.sockets


async def test_a_middleware_that_never_returns_is_cancelled_when_its_session_ends() -> None:
    # Nothing can use its answer any more; left running, it would hold the
    # session and the socket for good.
    io = minisio.Server()
    started, cancelled = asyncio.Event(), asyncio.Event()

    def alive() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if isinstance(o, (Session, minisio.Socket))}

    before = alive()  # earlier tests' leftovers (exceptions kept with their tracebacks)

    @io.use
    async def stuck(socket: minisio.Socket) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with running(io) as address:
        async with raw_client(address) as client:
            await client.send("40")
            await asyncio.wait_for(started.wait(), 2 * UNIT)
            assert alive() - before  # this session and its socket
        await asyncio.wait_for(cancelled.wait(), 2 * UNIT)
        await eventually(lambda: not io._sessions)
        await eventually(lambda: not alive() - before)

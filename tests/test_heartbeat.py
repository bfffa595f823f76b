"""Liveness and leaving over real sockets: heartbeat, timeouts, disconnect reasons.

Intervals are a few tenths of a second so the whole module stays fast; the
reason strings are the ones ``socket.on("disconnect")`` gets, exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import websockets

import minisio

from .conftest import UNIT, raw_client, running


class Reasons:
    """Records ``disconnecting`` and ``disconnect`` handler calls of every socket."""

    def __init__(self, io: minisio.Server, *namespaces: str) -> None:
        self.queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        for name in namespaces or ("/",):
            io.of(name).on("connection", self._watch)

    def _watch(self, socket: minisio.Socket) -> None:
        name = socket.namespace.name
        rooms_while_disconnecting: list[frozenset[str]] = []

        @socket.on("disconnecting")
        def disconnecting(reason: str) -> None:
            rooms_while_disconnecting.append(frozenset(socket.rooms))

        @socket.on("disconnect")
        def disconnect(reason: str) -> None:
            # "disconnecting" ran first, still in the socket's rooms; now it is in none.
            once = len(rooms_while_disconnecting) == 1
            if not once or socket.id not in rooms_while_disconnecting[0] or socket.rooms:
                reason = f"broken: {rooms_while_disconnecting} then {set(socket.rooms)}"
            elif socket.id in socket.namespace.sockets:
                reason = "broken: still in the namespace"
            self.queue.put_nowait((name, socket.id, reason))

    async def next(self) -> tuple[str, str, str]:
        return await asyncio.wait_for(self.queue.get(), 2 * UNIT)


# -- heartbeat -----------------------------------------------------------------------


async def test_server_pings_client_pongs_connection_stays_alive() -> None:
    io = minisio.Server(ping_interval=0.1 * UNIT, ping_timeout=0.5 * UNIT)
    reasons = Reasons(io)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("echo")
        def echo(x: int) -> int:
            return x

    async with running(io) as address, raw_client(address) as client:
        interval, timeout = round(100 * UNIT), round(500 * UNIT)
        assert f'"pingInterval":{interval},"pingTimeout":{timeout},' in client.open
        sid = await client.join()
        start = time.monotonic()
        for n in range(7):
            await client.expect("2", timeout=1)
            await client.send("3")
            await client.send(f'42{n}["echo",{n}]')
            await client.expect(f"43{n}[{n}]")
        # Each interval starts at the pong, so six of them took at least this long:
        # twice ping interval + ping timeout, and the socket is still connected.
        assert time.monotonic() - start >= 6 * 0.1 * UNIT
        assert sid in io.sockets
        assert reasons.queue.empty()


async def test_ping_timeout_disconnects_and_closes() -> None:
    io = minisio.Server(ping_interval=0.1 * UNIT, ping_timeout=0.1 * UNIT)
    reasons = Reasons(io)
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        await client.expect("2", timeout=1)
        # No pong: the server gives up.
        assert await reasons.next() == ("/", sid, "ping timeout")
        assert await client.closed() == 1000
        assert sid not in io.sockets


async def test_ping_timeout_without_any_namespace() -> None:
    io = minisio.Server(ping_interval=0.1 * UNIT, ping_timeout=0.1 * UNIT)
    async with running(io) as address, raw_client(address) as client:
        await client.expect("2", timeout=1)
        assert await client.closed() == 1000


async def test_other_traffic_is_no_pong() -> None:
    io = minisio.Server(ping_interval=0.1 * UNIT, ping_timeout=0.2 * UNIT)
    reasons = Reasons(io)
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        await client.expect("2", timeout=1)
        # Other traffic is no pong: the session ends before a second ping
        # (had the event counted, the next frame would be another "2").
        await client.send('42["anything"]')
        with pytest.raises(websockets.ConnectionClosedOK):
            frame = await client.recv()
            raise AssertionError(f"got {frame!r} instead of the close")
        assert client.ws.close_code == 1000
        assert await reasons.next() == ("/", sid, "ping timeout")


async def test_traffic_while_a_pong_is_due_restarts_the_wait_once() -> None:
    # As the reference server: the first packet other than a pong while one is
    # due restarts the ping timeout (the pong may sit behind an upload); a
    # second one does not.
    io = minisio.Server(ping_interval=0.1 * UNIT, ping_timeout=0.4 * UNIT)
    reasons = Reasons(io)
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        await client.expect("2", timeout=1)
        pinged = time.monotonic()
        await asyncio.sleep(0.3 * UNIT)
        await client.send('42["anything"]')  # the wait now ends at ~0.7
        await asyncio.sleep(0.3 * UNIT)
        assert sid in io.sockets  # past the first deadline (0.4)
        await client.send('42["anything"]')  # had it restarted again: ~1.0
        assert await reasons.next() == ("/", sid, "ping timeout")
        assert 0.6 * UNIT <= time.monotonic() - pinged < 0.9 * UNIT
        assert await client.closed() == 1000  # closed normally, as any ping timeout


async def test_connect_timeout_closes_a_session_that_joins_no_namespace() -> None:
    io = minisio.Server(connect_timeout=0.2 * UNIT)
    async with running(io) as address, raw_client(address) as joined:
        await joined.join()
        async with raw_client(address) as idle, raw_client(address) as refused:
            # An unknown namespace is no join.
            await refused.send("40/nope,")
            await refused.expect('44/nope,{"message":"Invalid namespace"}')
            assert await idle.closed() == 1000
            assert await refused.closed() == 1000
        # The one that joined in time lives on.
        await joined.expect_nothing(0.3)
        assert len(io.sockets) == 1


async def test_connect_timeout_is_not_rearmed_after_leaving() -> None:
    io = minisio.Server(connect_timeout=0.2 * UNIT)
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send("41")
        await client.expect_nothing(0.4)
        await client.join()


# -- disconnect reasons ----------------------------------------------------------------


async def test_client_namespace_disconnect() -> None:
    io = minisio.Server()
    reasons = Reasons(io, "/", "/admin")
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        admin_sid = await client.join("/admin")
        await client.send("41/admin,")
        assert await reasons.next() == ("/admin", admin_sid, "client namespace disconnect")
        await client.send("41")
        assert await reasons.next() == ("/", sid, "client namespace disconnect")
        # Only the namespaces were left: the WebSocket is open, joining again works.
        await client.expect_nothing()
        new_sid = await client.join()
        assert new_sid != sid
        assert set(io.sockets) == {new_sid}


async def test_server_namespace_disconnect() -> None:
    io = minisio.Server()
    reasons = Reasons(io, "/", "/admin")

    @io.of("/admin").on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("kick me")
        def kick_me() -> None:
            socket.disconnect()

    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        admin_sid = await client.join("/admin")
        await client.send('42/admin,["kick me"]')
        await client.expect("41/admin,")
        assert await reasons.next() == ("/admin", admin_sid, "server namespace disconnect")
        io.sockets[sid].disconnect()
        await client.expect("41")
        assert await reasons.next() == ("/", sid, "server namespace disconnect")
        # A second disconnect() of the same socket sends nothing more.
        await client.expect_nothing()
        await client.join()


async def test_server_disconnect_with_close_closes_the_websocket() -> None:
    io = minisio.Server()
    reasons = Reasons(io, "/", "/admin")
    async with running(io) as address, raw_client(address) as client, raw_client(address) as other:
        sid = await client.join()
        admin_sid = await client.join("/admin")
        other_sid = await other.join()
        io.of("/admin").sockets[admin_sid].disconnect(close=True)
        # Every namespace of that connection is told, then the WebSocket closes.
        frames = {await client.recv(), await client.recv()}
        assert frames == {"41", "41/admin,"}
        assert await client.closed() == 1000
        got = {await reasons.next(), await reasons.next()}
        assert got == {
            ("/", sid, "server namespace disconnect"),
            ("/admin", admin_sid, "server namespace disconnect"),
        }
        assert set(io.sockets) == {other_sid}
        await other.expect_nothing()


@pytest.mark.parametrize("how", ["websocket close", "engine close packet", "abort"])
async def test_transport_close(how: str) -> None:
    io = minisio.Server()
    reasons = Reasons(io, "/", "/admin")
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        admin_sid = await client.join("/admin")
        if how == "websocket close":
            await client.ws.close()
        elif how == "engine close packet":
            await client.send("1")
        else:
            client.ws.transport.abort()
        got = {await reasons.next(), await reasons.next()}
        assert got == {("/", sid, "transport close"), ("/admin", admin_sid, "transport close")}
        if how == "engine close packet":
            assert await client.closed() == 1000


async def test_server_shutting_down() -> None:
    io = minisio.Server()
    reasons = Reasons(io)
    async with contextlib.AsyncExitStack() as stack:
        async with running(io) as address:
            client = await stack.enter_async_context(raw_client(address))
            sid = await client.join()
        assert await reasons.next() == ("/", sid, "server shutting down")
        assert await client.closed() == 1001


async def test_disconnecting_a_socket_that_already_left_does_nothing() -> None:
    io = minisio.Server()
    reasons = Reasons(io, "/", "/admin")
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        admin_sid = await client.join("/admin")
        stale = io.of("/admin").sockets[admin_sid]
        await client.send("41/admin,")
        assert await reasons.next() == ("/admin", admin_sid, "client namespace disconnect")
        # A stale reference must not kick the client out of the namespaces it is still in.
        stale.disconnect()
        stale.disconnect(close=True)
        await client.expect_nothing()
        assert sid in io.sockets
        assert reasons.queue.empty()


async def test_disconnect_a_room_from_the_server() -> None:
    io = minisio.Server()
    reasons = Reasons(io)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        if socket.handshake.auth.get("vip"):
            socket.join("vip")

    async with (
        running(io) as address,
        raw_client(address) as a,
        raw_client(address) as b,
        raw_client(address) as c,
    ):
        sid_a = await a.join(auth='{"vip":true}')
        sid_b = await b.join(auth='{"vip":true}')
        sid_c = await c.join()
        io.to("vip").disconnect_sockets()
        await a.expect("41")
        await b.expect("41")
        got = {await reasons.next(), await reasons.next()}
        assert got == {
            ("/", sid_a, "server namespace disconnect"),
            ("/", sid_b, "server namespace disconnect"),
        }
        io.main.disconnect_sockets(close=True)
        await c.expect("41")
        assert await reasons.next() == ("/", sid_c, "server namespace disconnect")
        assert await c.closed() == 1000
        # a and b had left: close=True on the namespace does not reach their connections.
        await a.expect_nothing()
        await b.send("40")
        await b.expect_match(r'40\{"sid":"[A-Za-z0-9_-]{20}"\}')

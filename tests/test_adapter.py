"""The operations on a selection of sockets, through the in-memory adapter, on the wire.

``fetch_sockets``, ``sockets_join``, ``sockets_leave`` and
``disconnect_sockets`` on the server, a namespace and an operator
(``to``/``except_``/``socket.broadcast``) are asked of the namespace's
adapter; with the default one they act on this node's sockets. Each test
checks what the clients see (rooms reached by a later emit, DISCONNECT
packets) rather than the adapter's tables alone.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

import minisio
from minisio.adapter import Adapter

from .conftest import UNIT, eventually, joined_clients, running


def _server() -> minisio.Server:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("join", lambda room: socket.join(room))

    return io


async def test_fetch_sockets_selects_as_emit_does() -> None:
    io = _server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (sid_a, sid_b, sid_c) = (sid for _, sid in pairs)
        io.sockets[sid_a].join("red")
        io.sockets[sid_b].join("red", "blue")
        assert {s.id for s in await io.fetch_sockets()} == {sid_a, sid_b, sid_c}
        assert {s.id for s in await io.in_("red").fetch_sockets()} == {sid_a, sid_b}
        assert {s.id for s in await io.to("red").except_("blue").fetch_sockets()} == {sid_a}
        assert {s.id for s in await io.sockets[sid_a].broadcast.fetch_sockets()} == {sid_b, sid_c}
        assert await io.to("nobody").fetch_sockets() == []
        (only,) = await io.in_(sid_c).fetch_sockets()
        assert only is io.sockets[sid_c]
        assert await io.server_count() == 1
        assert await io.of("/").server_count() == 1


async def test_sockets_join_and_leave_change_who_a_room_emit_reaches() -> None:
    io = _server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (a, sid_a), (b, sid_b), (c, sid_c) = pairs
        io.sockets[sid_a].join("red")
        io.in_("red").sockets_join("green", "blue")  # A only
        io.except_("red").sockets_join("yellow")  # B and C
        assert io.sockets[sid_a].rooms == {sid_a, "red", "green", "blue"}
        io.to("green").emit("g", 1)
        await a.expect('42["g",1]')
        io.to("yellow").emit("y", 2)
        await b.expect('42["y",2]')
        await c.expect('42["y",2]')
        io.sockets_leave("green", "yellow")  # everyone
        io.to("green").to("yellow").emit("gone")
        io.to("blue").emit("b")
        await a.expect('42["b"]')  # not "gone" first: no one is in green or yellow
        await b.expect_nothing()
        await c.expect_nothing()
        assert io.main.adapter.rooms.keys() == {sid_a, sid_b, sid_c, "red", "blue"}


async def test_disconnect_sockets_of_a_selection() -> None:
    io = _server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (a, sid_a), (b, sid_b), (c, sid_c) = pairs
        io.sockets[sid_a].join("red")
        io.to("red").disconnect_sockets()  # A leaves the namespace, keeps its connection
        await a.expect("41")
        assert set(io.sockets) == {sid_b, sid_c}
        io.sockets[sid_b].broadcast.disconnect_sockets(close=True)  # C, and its connection
        await c.expect("41")
        assert await c.closed() == 1000
        await b.expect_nothing()
        await eventually(lambda: len(io._sessions) == 2)
        io.disconnect_sockets()
        await b.expect("41")
        assert not io.sockets


async def test_every_namespace_gets_its_adapter_from_the_factory() -> None:
    made: list[str] = []

    class Counting(Adapter):
        def __init__(self, nsp: minisio.Namespace) -> None:
            super().__init__(nsp)
            made.append(nsp.name)

    io = minisio.Server(adapter=Counting)
    io.of("/admin")
    assert made == ["/", "/admin"]
    assert isinstance(io.of("/admin").adapter, Counting)


async def test_a_broadcast_with_acks_gathers_one_answer_per_socket() -> None:
    io = _server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (a, sid_a), (b, _), (c, _) = pairs
        io.sockets[sid_a].join("red")

        async def answer(client: Any, value: str) -> str:
            frame = await client.recv()
            match = re.fullmatch(r'42(\d+)\["vote","yes\?"\]', frame)
            assert match, frame
            await client.send(f"43{match.group(1)}[{orjson.dumps(value).decode()}]")
            return match.group(1)

        asking = asyncio.ensure_future(io.timeout(2 * UNIT).emit_with_ack("vote", "yes?"))
        ids = {await answer(a, "A"), await answer(b, "B"), await answer(c, "C")}
        assert len(ids) == 1  # one ack id for every recipient: encoded once
        assert sorted(await asking) == ["A", "B", "C"]
        # Only the room, and a socket that never answers.
        asking = asyncio.ensure_future(
            io.to("red").timeout(0.3 * UNIT).emit_with_ack("vote", "yes?")
        )
        await answer(a, "A again")
        assert await asking == ["A again"]
        asking = asyncio.ensure_future(io.timeout(0.3 * UNIT).emit_with_ack("vote", "yes?"))
        await answer(a, "only A")
        await b.recv()
        await c.recv()  # B and C stay silent
        with pytest.raises(minisio.AckTimeout) as caught:
            await asking
        assert caught.value.results == ["only A"]
        assert await io.to("nobody").timeout(1).emit_with_ack("vote") == []
        with pytest.raises(TypeError):
            await io.to("red").emit_with_ack("vote")  # no timeout set

"""Routing over real sockets: who receives an emit, and who does not.

Three clients A, B and C. After the emit under test, A asks for a marker
that ``io.emit`` sends to everyone; frames to one socket keep their order, so
a client whose next frame is the marker did not receive the emit. One test
also waits on ``expect_nothing`` for the same proof by silence.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

import minisio

from .conftest import RawClient, eventually, joined_clients, raw_client, running

MARK = '42["mark"]'


def _route_server() -> minisio.Server:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        handlers = {
            "all": lambda x: io.emit("all", x),
            "me": lambda x: socket.emit("me", x),
            "others": lambda x: socket.broadcast.emit("others", x),
            "whisper": lambda to, text: io.to(to).emit("whisper", socket.id, text),
            "room": lambda room, x: io.to(room).emit("room", x),
            "two rooms": lambda a, b: io.to(a).to(b).emit("two rooms"),
            "in": lambda room: io.in_(room).emit("in"),
            "except": lambda room: io.except_(room).emit("except"),
            "room except": lambda room, ex: io.to(room).except_(ex).emit("room except"),
            "socket to": lambda room: socket.to(room).emit("socket to"),
            "socket except": lambda room: socket.except_(room).emit("socket except"),
            "mark": lambda: io.emit("mark"),
        }
        for event, fn in handlers.items():
            socket.on(event, fn)

        @socket.on("join")
        def join(*rooms: str) -> list[str]:
            socket.join(*rooms)
            return sorted(socket.rooms)

        @socket.on("leave")
        def leave(room: str) -> list[str]:
            socket.leave(room)
            return sorted(socket.rooms)

    return io


async def _route(
    sender: RawClient,
    frame: str,
    clients: dict[str, RawClient],
    receivers: dict[str, str],
) -> None:
    """Send ``frame``, then check each client gets exactly its expected frame, or none."""
    await sender.send(frame)
    await sender.send(MARK)
    for name, client in clients.items():
        if name in receivers:
            await client.expect(receivers[name])
        await client.expect(MARK)


async def _join(client: RawClient, sid: str, *rooms: str) -> None:
    await client.send("429" + orjson.dumps(["join", *rooms]).decode())
    await client.expect("439" + orjson.dumps([sorted({sid, *rooms})]).decode())


async def test_the_four_routes() -> None:
    io = _route_server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (a, sid_a), (b, sid_b), (c, sid_c) = pairs
        abc = {"A": a, "B": b, "C": c}
        # io.emit: everyone, the sender included.
        await _route(
            a, '42["all",1]', abc, {"A": '42["all",1]', "B": '42["all",1]', "C": '42["all",1]'}
        )
        # socket.emit: the sender only.
        await _route(b, '42["me",2]', abc, {"B": '42["me",2]'})
        # socket.broadcast.emit: everyone but the sender.
        await _route(c, '42["others",3]', abc, {"A": '42["others",3]', "B": '42["others",3]'})
        # io.to(id).emit: one socket, by its id.
        whisper = f'42["whisper","{sid_a}","psst"]'
        await _route(a, f'42["whisper","{sid_c}","psst"]', abc, {"C": whisper})
        whisper = f'42["whisper","{sid_c}","back"]'
        await _route(c, f'42["whisper","{sid_a}","back"]', abc, {"A": whisper})
        # A whisper to oneself, and to an id nobody has.
        whisper = f'42["whisper","{sid_b}","me"]'
        await _route(b, f'42["whisper","{sid_b}","me"]', abc, {"B": whisper})
        await _route(b, '42["whisper","nobody","?"]', abc, {})


async def test_non_receivers_get_nothing() -> None:
    io = _route_server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (a, _), (b, _), (c, sid_c) = pairs
        await a.send('42["others","x"]')
        await b.expect('42["others","x"]')
        await c.expect('42["others","x"]')
        await a.expect_nothing()
        await b.send('42["me","y"]')
        await b.expect('42["me","y"]')
        await b.send(f'42["whisper","{sid_c}","z"]')
        await c.expect(f'42["whisper","{pairs[1][1]}","z"]')
        await asyncio.gather(a.expect_nothing(), b.expect_nothing(), c.expect_nothing())


async def test_rooms_join_leave_and_own_id() -> None:
    io = _route_server()
    async with running(io) as address, joined_clients(address, 3) as pairs:
        (a, sid_a), (b, sid_b), (c, sid_c) = pairs
        abc = {"A": a, "B": b, "C": c}
        # A fresh socket is in the room named by its id, and only there.
        assert io.sockets[sid_a].rooms == {sid_a}
        await a.send('425["leave","nothing"]')
        await a.expect(f'435[["{sid_a}"]]')
        await _join(a, sid_a, "blue")
        await _join(b, sid_b, "blue", "red")
        await _join(c, sid_c, "red")
        assert io.sockets[sid_b].rooms == {sid_b, "blue", "red"}

        await _route(c, '42["room","blue",1]', abc, {"A": '42["room",1]', "B": '42["room",1]'})
        await _route(a, '42["room","red",2]', abc, {"B": '42["room",2]', "C": '42["room",2]'})
        await _route(a, '42["room","green",3]', abc, {})
        await _route(a, '42["in","blue"]', abc, {"A": '42["in"]', "B": '42["in"]'})
        # to(a).to(b): the union, each socket once.
        two = '42["two rooms"]'
        await _route(a, '42["two rooms","blue","red"]', abc, {"A": two, "B": two, "C": two})
        await _route(a, f'42["two rooms","red","{sid_a}"]', abc, {"A": two, "B": two, "C": two})
        await _route(a, f'42["two rooms","{sid_a}","{sid_c}"]', abc, {"A": two, "C": two})
        # except_(): everyone but the room's members.
        await _route(a, '42["except","blue"]', abc, {"C": '42["except"]'})
        await _route(a, f'42["except","{sid_b}"]', abc, {"A": '42["except"]', "C": '42["except"]'})
        await _route(b, '42["room except","blue","red"]', abc, {"A": '42["room except"]'})
        # socket.to(room): the room without the sender.
        await _route(b, '42["socket to","blue"]', abc, {"A": '42["socket to"]'})
        await _route(b, '42["socket to","red"]', abc, {"C": '42["socket to"]'})
        await _route(
            c, '42["socket to","blue"]', abc, {"A": '42["socket to"]', "B": '42["socket to"]'}
        )
        # socket.except_(room): everyone but the sender and the room.
        await _route(a, '42["socket except","red"]', abc, {})
        await _route(c, '42["socket except","blue"]', abc, {})
        await _route(c, f'42["socket except","{sid_a}"]', abc, {"B": '42["socket except"]'})

        # Leaving a room stops its traffic; the other rooms stay.
        await b.send('425["leave","blue"]')
        await b.expect("435" + orjson.dumps([sorted([sid_b, "red"])]).decode())
        await _route(c, '42["room","blue",4]', abc, {"A": '42["room",4]'})
        await _route(c, '42["room","red",5]', abc, {"B": '42["room",5]', "C": '42["room",5]'})
        # Whispers by id still reach a socket that left a room.
        whisper = f'42["whisper","{sid_c}","hi"]'
        await _route(c, f'42["whisper","{sid_b}","hi"]', abc, {"B": whisper})


async def test_a_socket_that_left_is_in_no_room() -> None:
    io = _route_server()
    async with running(io) as address, joined_clients(address, 2) as pairs:
        (a, sid_a), (b, _) = pairs
        await _join(a, sid_a, "blue")
        async with raw_client(address) as c:
            sid_c = await c.join()
            await _join(c, sid_c, "blue")
        # C closed its WebSocket: gone from the namespace and from every room.
        await eventually(lambda: sid_c not in io.sockets, timeout=2, interval=0.02)
        assert sid_c not in io.sockets
        assert io.main.adapter.socket_rooms(sid_c) == frozenset()
        assert io.main.adapter.rooms["blue"] == {sid_a}
        ab = {"A": a, "B": b}
        await _route(b, '42["room","blue",1]', ab, {"A": '42["room",1]'})
        await _route(b, f'42["whisper","{sid_c}","?"]', ab, {})


async def test_routes_stay_inside_their_namespace() -> None:
    io = _route_server()
    admin = io.of("/admin")
    admin_sockets: dict[str, minisio.Socket] = {}

    @admin.on("connection")
    def joined(socket: minisio.Socket) -> None:
        admin_sockets[socket.id] = socket
        socket.join("blue")

        @socket.on("admin all")
        def admin_all(x: Any) -> None:
            admin.emit("admin all", x)

    async with running(io) as address, joined_clients(address, 2) as pairs:
        (a, sid_a), (b, _) = pairs
        admin_sid = await a.join("/admin")
        await _join(b, pairs[1][1], "blue")
        # The main namespace's emit does not reach /admin, nor the other way round.
        await a.send('42/admin,["admin all",1]')
        await a.expect('42/admin,["admin all",1]')
        await a.send('42["room","blue",2]')
        await b.expect('42["room",2]')
        # A /admin socket id is no room of the main namespace.
        await a.send(f'42["whisper","{admin_sid}","x"]')
        await a.send('42["all",3]')
        await a.expect('42["all",3]')
        await b.expect('42["all",3]')
        assert admin_sockets[admin_sid].rooms == {admin_sid, "blue"}
        assert sid_a != admin_sid

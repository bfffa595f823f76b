"""Operators and names Node users type (issue 13, item 4), on the wire.

Room lists in to()/in_()/except_()/join(); the flags volatile,
compress(False) and local; io.sockets as the main namespace; of("chat");
``await io.close()``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import threading
import zlib

import pytest
from websockets.asyncio.client import connect

import minisio
from minisio.engine import VOLATILE_MARK
from minisio.redis import redis_adapter

from .conftest import (
    POLL,
    SID,
    UNIT,
    eventually,
    free_port,
    http_client,
    masked_frame,
    polling_handshake,
    raw_client,
    running,
)


def rooms_from_auth() -> minisio.Server:
    """A server whose sockets join the list of rooms their auth names: ``socket.join([...])``."""
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.join(socket.handshake.auth.get("rooms", []))

    return io


# -- room lists -------------------------------------------------------------------------------
async def test_to_in_except_and_join_take_lists_tuples_and_sets() -> None:
    io = rooms_from_auth()
    async with running(io) as address:  # noqa: SIM117
        async with raw_client(address) as a, raw_client(address) as b, raw_client(address) as c:
            sid_a = await a.join(auth='{"rooms":["red","blue"]}')
            sid_b = await b.join(auth='{"rooms":["blue"]}')
            await c.join(auth='{"rooms":["green"]}')
            assert io.sockets[sid_a].rooms == {sid_a, "red", "blue"}
            assert io.sockets[sid_b].rooms == {sid_b, "blue"}

            io.to(["red", "green"]).emit("x", 1)
            await a.expect('42["x",1]')
            await c.expect('42["x",1]')
            io.in_(("blue",)).except_({"red"}).emit("x", 2)
            await b.expect('42["x",2]')
            io.to("green", ["red"]).except_(["red"], "nothing").emit("x", 3)  # mixed
            await c.expect('42["x",3]')
            io.to([sid_b]).emit("x", 4)
            await b.expect('42["x",4]')
            io.sockets_join(["all", "of"], "us")
            assert io.sockets[sid_b].rooms == {sid_b, "blue", "all", "of", "us"}
            io.except_(["all"]).emit("x", 5)  # nobody
            io.sockets[sid_a].to(["blue"]).emit("x", 6)  # socket.to(list): b, not a
            await b.expect('42["x",6]')
            for client in (a, b, c):
                await client.expect_nothing()

            with pytest.raises(TypeError):
                io.to(5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                io.to(["ok", 5])  # type: ignore[list-item]
            with pytest.raises(TypeError):
                io.sockets[sid_a].join(["ok", None])  # type: ignore[list-item]


# -- volatile ---------------------------------------------------------------------------------
async def test_volatile_is_dropped_for_a_polling_client_with_packets_queued() -> None:
    io = minisio.Server()
    async with running(io) as address, http_client(address) as conn:
        sid = await polling_handshake(conn)
        target = f"{POLL}&sid={sid}"
        assert (await conn.request("POST", target, b"40"))[2] == b"ok"
        status, _, body = await conn.request("GET", target)
        match = re.fullmatch(rb'40\{"sid":"(' + SID.encode() + rb')"\}', body)
        assert status == 200 and match, body
        socket = io.sockets[match.group(1).decode()]

        io.emit("kept", 1)  # queued: no GET is held
        io.volatile.emit("dropped", 2)  # the queue is not empty: dropped, not queued
        socket.volatile.emit("dropped", 3)
        assert (await conn.request("GET", target))[2] == b'42["kept",1]'

        io.volatile.emit("sent", 4)  # nothing queued now: it goes
        socket.volatile.emit("sent", 5)  # (now something is queued)
        assert (await conn.request("GET", target))[2] == b'42["sent",4]'


async def test_a_volatile_broadcast_with_acks_waits_only_for_the_clients_it_reached() -> None:
    io = minisio.Server()
    async with running(io) as address, http_client(address) as conn, raw_client(address) as ws:
        await ws.join()
        sid = await polling_handshake(conn)
        target = f"{POLL}&sid={sid}"
        assert (await conn.request("POST", target, b"40"))[2] == b"ok"
        status, _, body = await conn.request("GET", target)
        assert status == 200 and body.startswith(b"40{"), body

        io.emit("kept", 1)  # queued for the polling client, which holds no GET
        await ws.expect('42["kept",1]')
        asking = asyncio.ensure_future(io.volatile.timeout(2 * UNIT).emit_with_ack("vote"))
        match = await ws.expect_match(r'42(\d+)\["vote"\]')
        await ws.send(f'43{match.group(1)}["yes"]')
        # The polling client was skipped: not asked, not waited for.
        assert await asyncio.wait_for(asking, UNIT) == ["yes"]
        assert (await conn.request("GET", target))[2] == b'42["kept",1]'
        await ws.expect_nothing()


async def test_volatile_is_dropped_for_a_websocket_with_unsent_data_and_never_cuts_it() -> None:
    io = minisio.Server(max_buffer=64_000_000)
    async with running(io) as address:
        # max_queue=1: the client stops reading, so the server's buffer fills up.
        url = f"ws://{address}/socket.io/?EIO=4&transport=websocket"
        async with connect(url, max_queue=1, max_size=None, compression=None) as ws:
            assert str(await ws.recv()).startswith("0{")
            await ws.send("40")
            sid = str(await ws.recv())[10:-2]
            socket = io.sockets[sid]
            block = "x" * 200_000
            sent = 0
            while socket._conn.transport.buffered() <= VOLATILE_MARK:
                assert sent < 300, "the buffer never filled"
                io.emit("block", sent, block)
                sent += 1
                await asyncio.sleep(0)
            io.volatile.emit("volatile", 1)
            socket.volatile.emit("volatile", 2)
            socket.volatile.broadcast.emit("nobody")  # no other socket
            io.emit("end")
            frames = [str(await asyncio.wait_for(ws.recv(), 5 * UNIT)) for _ in range(sent + 1)]
            assert frames[:sent] == [f'42["block",{i},"{block}"]' for i in range(sent)]
            assert frames[-1] == '42["end"]'
            assert socket.connected

    # A volatile packet that would put a client over max_buffer is dropped: the client stays.
    io = minisio.Server(max_buffer=1_000)
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        io.volatile.emit("big", "y" * 2_000)
        io.emit("small")
        await client.expect('42["small"]')
        assert io.sockets[sid].connected


# -- compress(False) --------------------------------------------------------------------------
async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked): (first byte, payload)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 2 * UNIT)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first, await reader.readexactly(length)


async def test_compress_false_sends_that_packet_uncompressed_with_permessage_deflate() -> None:
    io = minisio.Server(compression=True)
    async with running(io) as address:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                (
                    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                    f"Host: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
                ).encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2 * UNIT)
            assert b"101" in head.split(b"\r\n")[0]
            assert b"permessage-deflate" in head
            inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # one context: context takeover

            async def message() -> tuple[bool, bytes]:
                first, payload = await read_frame(reader)
                compressed = bool(first & 0x40)  # RSV1
                assert first & 0x8F == 0x81  # FIN, text
                if compressed:
                    payload = inflate.decompress(payload + b"\x00\x00\xff\xff")
                return compressed, payload

            compressed, opened = await message()
            assert compressed and opened.startswith(b'0{"sid":"')
            writer.write(masked_frame(b"40"))
            compressed, connected = await message()
            assert compressed and connected.startswith(b'40{"sid":"')
            sid = connected[10:-2].decode()

            text = "a" * 300
            io.emit("packed", text)
            io.compress(False).emit("plain", text)
            io.sockets[sid].compress(False).emit("plain", 1)
            io.to(sid).compress(True).emit("packed", 2)
            io.sockets[sid].emit("packed", text)  # the context is intact after plain ones
            assert await message() == (True, f'42["packed","{text}"]'.encode())
            assert await message() == (False, f'42["plain","{text}"]'.encode())
            assert await message() == (False, b'42["plain",1]')
            assert await message() == (True, b'42["packed",2]')
            assert await message() == (True, f'42["packed","{text}"]'.encode())
        finally:
            writer.close()


async def test_compress_false_is_accepted_without_compression_and_on_polling() -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        io.compress(False).emit("a", 1)
        io.sockets[sid].compress(False).volatile.emit("b", 2)
        await client.expect('42["a",1]')
        await client.expect('42["b",2]')


# -- local ------------------------------------------------------------------------------------
async def test_local_in_memory_is_every_socket_of_this_server() -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        io.local.emit("a", 1)
        await client.expect('42["a",1]')
        io.local.to(sid).volatile.sockets_join("r")
        assert "r" in io.sockets[sid].rooms
        assert [s.id for s in await io.local.fetch_sockets()] == [sid]


async def test_local_is_not_published_to_the_other_nodes(redis_url: str) -> None:
    a = minisio.Server(adapter=redis_adapter(redis_url, requests_timeout=1.0 * UNIT))
    b = minisio.Server(adapter=redis_adapter(redis_url, requests_timeout=1.0 * UNIT))
    async with running(a) as addr_a, running(b) as addr_b:  # noqa: SIM117
        async with raw_client(addr_a) as ca, raw_client(addr_b) as cb:
            sid_a, sid_b = await ca.join(), await cb.join()
            assert await a.server_count() == 2

            a.local.emit("only", "a")
            a.emit("both", 1)  # the control: published
            await ca.expect('42["only","a"]')
            await ca.expect('42["both",1]')
            await cb.expect('42["both",1]')

            a.local.sockets_join("here")
            a.sockets_join("there")
            await eventually(lambda: "there" in b.sockets[sid_b].rooms)
            assert a.sockets[sid_a].rooms == {sid_a, "here", "there"}
            assert b.sockets[sid_b].rooms == {sid_b, "there"}

            assert [s.id for s in await a.local.fetch_sockets()] == [sid_a]
            assert {s.id for s in await a.fetch_sockets()} == {sid_a, sid_b}

            a.local.disconnect_sockets()
            await ca.expect("41")
            b.local.to(sid_a).emit("not here", 1)  # sid_a is on a: nothing reaches it
            a.volatile.emit("vol", 1)  # the flags travel: b delivers it, volatile
            await cb.expect('42["vol",1]')
            await cb.expect_nothing()
            assert b.sockets[sid_b].connected


async def test_flags_travel_in_the_published_opts(redis_url: str) -> None:
    import msgpack
    import redis.asyncio as aioredis

    a = minisio.Server(adapter=redis_adapter(redis_url))
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("socket.io#/#*")
    try:
        async with running(a):
            a.volatile.compress(False).emit("x", 1)
            a.local.emit("never published")
            a.emit("y", 2)
            got = []
            while len(got) < 2:
                message = await pubsub.get_message(timeout=2 * UNIT)
                if message and message["type"] == "pmessage":
                    got.append(msgpack.unpackb(message["data"], raw=False))
            assert [m[1]["data"] for m in got] == [["x", 1], ["y", 2]]
            assert got[0][2] == {
                "rooms": [],
                "except": [],
                "flags": {"volatile": True, "compress": False},
            }
            assert got[1][2]["flags"] == {}
    finally:
        await pubsub.aclose()
        await client.aclose()


# -- io.sockets, of("chat") -------------------------------------------------------------------
async def test_io_sockets_is_the_main_namespace_and_still_reads_as_its_sockets() -> None:
    io = minisio.Server()
    assert io.sockets is io.main is io.of("/")
    assert not io.sockets and len(io.sockets) == 0  # empty, as the dict was
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        io.sockets.emit("hi", 1)  # Node: io.sockets.emit
        await client.expect('42["hi",1]')
        assert io.sockets.sockets[sid] is io.sockets[sid]  # Node: io.sockets.sockets.get(id)
        assert sid in io.sockets and list(io.sockets) == [sid] and len(io.sockets) == 1
        assert io.sockets.get(sid) is io.sockets[sid] and io.sockets.get("nobody") is None
        assert [s.id for s in io.sockets.values()] == [sid] == list(io.sockets.keys())
        assert dict(io.sockets.items()) == io.main.sockets


async def test_of_without_a_slash_is_the_same_namespace() -> None:
    io = minisio.Server()
    chat = io.of("chat")
    assert chat is io.of("/chat") and chat.name == "/chat"
    with pytest.raises(ValueError):
        io.of("a,b")
    chat.on("connection", lambda socket: socket.emit("in", socket.namespace.name))
    async with running(io) as address, raw_client(address) as client:
        await client.join("/chat")
        await client.expect('42/chat,["in","/chat"]')


# -- close ------------------------------------------------------------------------------------
async def test_await_close_disconnects_everyone_and_stops_listening() -> None:
    io = minisio.Server()
    reasons: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.append)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await io.close()
        assert await client.closed() == 1001
        assert reasons == ["server shutting down"]
        host, port = address.rsplit(":", 1)
        with pytest.raises(OSError):
            await asyncio.open_connection(host, int(port))
        await io.close()  # twice is fine
    await io.close()  # not serving: nothing to do


def test_close_from_another_thread_makes_run_return() -> None:
    io = minisio.Server()
    port = free_port()
    runner = threading.Thread(target=io.run, args=("127.0.0.1", port))
    runner.start()
    try:
        for _ in range(int(200 * UNIT)):
            if io._listener is not None:
                break
            threading.Event().wait(0.01)
        assert io._listener is not None, "the server did not start"
        io.close()  # from this thread: handed to the loop
        runner.join(5 * UNIT)
        assert not runner.is_alive()
    finally:
        if runner.is_alive():
            io.close()
            runner.join(5)

"""Several minisio nodes as one server through a real Redis (redis-server started per test).

Each node is a ``minisio.Server`` of its own, with its own Redis
connections, served on its own port; raw clients on each node check on
the wire that every route of the classroom chat, the room operations and
the cluster calls reach across nodes, and that Redis going away stops only
what needs it. What the adapter publishes is checked byte for byte against
the format of ``@socket.io/redis-adapter`` by reading the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import orjson
import pytest
import redis.asyncio as aioredis

import minisio
from minisio.redis import Emitter, RemoteSocket, redis_adapter

from .conftest import UNIT, RedisProcess, eventually, raw_client, running


def make_node(url: str, name: str, **options: Any) -> minisio.Server:
    io = minisio.Server(adapter=redis_adapter(url, requests_timeout=1.0 * UNIT), **options)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.data["node"] = name
        socket.on("join", lambda room: socket.join(room))

    @io.on("whoami")
    def whoami(prefix: str) -> str:
        return f"{prefix} {name}"

    return io


@contextlib.asynccontextmanager
async def nodes(url: str, *names: str) -> AsyncIterator[list[tuple[minisio.Server, str]]]:
    """Servers on one Redis, each listening: [(io, address), ...]."""
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for name in names:
            io = make_node(url, name)
            out.append((io, await stack.enter_async_context(running(io))))
        yield out


async def test_every_route_of_the_chat_reaches_across_three_nodes(redis_url: str) -> None:
    async with nodes(redis_url, "a", "b", "c") as ((a, addr_a), (b, addr_b), (c, addr_c)):  # noqa: SIM117
        async with raw_client(addr_a) as ca, raw_client(addr_b) as cb, raw_client(addr_c) as cc:
            sid_a, sid_b, sid_c = await ca.join(), await cb.join(), await cc.join()
            assert await a.server_count() == 3
            a.emit("all", 1)  # io.emit: everyone, everywhere
            for client in (ca, cb, cc):
                await client.expect('42["all",1]')
            a.sockets[sid_a].broadcast.emit("others", 2)  # everyone but the sender
            await cb.expect('42["others",2]')
            await cc.expect('42["others",2]')
            await ca.expect_nothing()
            a.to(sid_c).emit("whisper", "psst")  # one socket, by its id, on another node
            await cc.expect('42["whisper","psst"]')
            b.sockets[sid_b].join("blue")
            c.to("blue").emit("room", b"\x01\x02")  # a room that lives on node b, binary
            await cb.expect('451-["room",{"_placeholder":true,"num":0}]')
            await cb.expect(b"\x01\x02")
            for client in (ca, cb, cc):
                await client.expect_nothing(0.1)


async def test_room_operations_and_fetch_sockets_across_nodes(redis_url: str) -> None:
    async with nodes(redis_url, "a", "b") as ((a, addr_a), (b, addr_b)):  # noqa: SIM117
        async with raw_client(addr_a) as ca, raw_client(addr_b) as cb:
            sid_a, sid_b = await ca.join(), await cb.join()
            a.in_(sid_b).sockets_join("green")  # a remote socket joins a room
            await eventually(lambda: "green" in b.sockets[sid_b].rooms)
            a.to("green").emit("g")
            await cb.expect('42["g"]')
            found = await a.fetch_sockets()
            assert [s.id for s in found] == [sid_a, sid_b]  # local first
            remote = found[1]
            assert isinstance(remote, RemoteSocket)
            assert remote.rooms == {sid_b, "green"}
            assert remote.data == {"node": "b"}
            assert remote.handshake.address == "127.0.0.1"
            assert [s.id for s in await a.in_("green").fetch_sockets()] == [sid_b]
            remote.emit("direct", 3)
            await cb.expect('42["direct",3]')
            remote.leave("green")
            await eventually(lambda: "green" not in b.sockets[sid_b].rooms)
            a.sockets_join("all-of-us")  # every socket of every node
            await eventually(lambda: "all-of-us" in b.sockets[sid_b].rooms)
            assert "all-of-us" in a.sockets[sid_a].rooms
            remote.disconnect()
            await cb.expect("41")
            await eventually(lambda: not b.sockets)
            a.disconnect_sockets(close=True)
            await ca.expect("41")
            assert await ca.closed() == 1000


async def test_server_side_emit_with_and_without_acks(redis_url: str) -> None:
    async with nodes(redis_url, "a", "b", "c") as ((a, _), (b, _), (c, _)):
        seen: list[tuple[str, Any]] = []
        b.on("note", lambda text: seen.append(("b", text)))

        @c.on("note")
        async def note(text: str) -> None:
            seen.append(("c", text))

        a.server_side_emit("note", "hello")
        await eventually(lambda: len(seen) == 2)
        assert sorted(seen) == [("b", "hello"), ("c", "hello")]
        answers = await a.server_side_emit_with_ack("whoami", "I am")
        assert sorted(answers) == ["I am b", "I am c"]
        a.server_side_emit("note", "again")  # the sender's own handlers do not run
        await eventually(lambda: len(seen) == 4)
        assert ("a", "again") not in seen


async def test_a_silent_node_makes_cluster_calls_time_out_with_what_arrived(
    redis_url: str,
) -> None:
    async with nodes(redis_url, "a") as ((a, addr_a),):
        # A second subscriber on the request channel that never answers.
        silent = aioredis.Redis.from_url(redis_url)
        pubsub = silent.pubsub()
        await pubsub.subscribe("socket.io-request#/#")
        try:
            async with raw_client(addr_a) as ca:
                sid_a = await ca.join()
                assert await a.server_count() == 2
                with pytest.raises(minisio.ClusterError) as caught:
                    await a.fetch_sockets()
                assert [s.id for s in caught.value.results] == [sid_a]
                assert "0 responses received out of 1" in str(caught.value)
                with pytest.raises(minisio.ClusterError):
                    await a.server_side_emit_with_ack("whoami", "x")
        finally:
            await pubsub.aclose()
            await silent.aclose()


async def test_what_is_published_is_the_node_adapters_format(redis_url: str) -> None:
    async with nodes(redis_url, "a") as ((a, _),):
        spy = aioredis.Redis.from_url(redis_url)
        pubsub = spy.pubsub()
        await pubsub.psubscribe("socket.io*")
        await pubsub.get_message(timeout=1)  # the psubscribe confirmation
        try:
            uid = a.main.adapter.uid  # type: ignore[attr-defined]
            a.emit("chat", "hi", b"\x00\xff")
            a.to("lobby").except_("muted").emit("tell", 1)
            a.in_("lobby").sockets_join("vip")
            got = []
            while len(got) < 3:
                message = await pubsub.get_message(timeout=2 * UNIT)
                if message is not None and message["type"] == "pmessage":
                    got.append((message["channel"], message["data"]))
            (ch1, m1), (ch2, m2), (ch3, m3) = got
            assert ch1 == b"socket.io#/#"
            assert msgpack.unpackb(m1) == [
                uid,
                {"type": 2, "data": ["chat", "hi", b"\x00\xff"], "nsp": "/"},
                {"rooms": [], "except": [], "flags": {}},
            ]
            assert ch2 == b"socket.io#/#lobby#"  # one room: its own channel
            assert msgpack.unpackb(m2)[2] == {"rooms": ["lobby"], "except": ["muted"], "flags": {}}
            assert ch3 == b"socket.io-request#/#"
            assert m3 == orjson.dumps(
                {
                    "uid": uid,
                    "type": 2,
                    "opts": {"rooms": ["lobby"], "except": []},
                    "rooms": ["vip"],
                }
            )
        finally:
            await pubsub.aclose()
            await spy.aclose()


async def test_the_emitter_drives_the_nodes(redis_url: str) -> None:
    async with nodes(redis_url, "a", "b") as ((a, addr_a), (_, addr_b)):
        emitter = Emitter(redis_url)
        try:
            async with raw_client(addr_a) as ca, raw_client(addr_b) as cb:
                sid_a, sid_b = await ca.join(), await cb.join()
                await emitter.emit("news", {"n": 1})
                await ca.expect('42["news",{"n":1}]')
                await cb.expect('42["news",{"n":1}]')
                await emitter.except_(sid_a).emit("not a")
                await cb.expect('42["not a"]')
                await emitter.to(sid_a).sockets_join("red")
                await eventually(lambda: "red" in a.sockets[sid_a].rooms)
                await emitter.to("red").emit("red", b"\x07")
                await ca.expect('451-["red",{"_placeholder":true,"num":0}]')
                await ca.expect(b"\x07")
                await emitter.to(sid_b).disconnect_sockets()
                await cb.expect("41")
                await ca.expect_nothing(0.1)
                with pytest.raises(ValueError):
                    await emitter.emit("disconnect")
        finally:
            await emitter.aclose()


async def test_redis_down_keeps_local_routes_and_cross_node_ones_come_back(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "minisio.redis")
    async with nodes(redis_server.url, "a", "b") as ((a, addr_a), (b, addr_b)):  # noqa: SIM117
        async with raw_client(addr_a) as ca, raw_client(addr_b) as cb:
            sid_a = await ca.join()
            await cb.join()
            redis_server.stop()
            for i in range(50):
                a.emit("local", i)  # published into the void: dropped and counted, not kept
            for i in range(50):
                await ca.expect(f'42["local",{i}]')
            link = a.main.adapter.link  # type: ignore[attr-defined]
            await eventually(lambda: link.dropped >= 50, timeout=3)
            with pytest.raises(minisio.ClusterError):
                await a.fetch_sockets()
            redis_server.start()
            # Both nodes connect and subscribe again by themselves.
            await eventually(lambda: any("reachable again" in r.message for r in caplog.records), 5)

            async def cross_node_works() -> bool:
                a.emit("back")
                try:
                    await cb.expect('42["back"]', timeout=0.3)
                except (TimeoutError, AssertionError):
                    return False
                return True

            for _ in range(20):
                if await cross_node_works():
                    break
            else:
                raise AssertionError("cross-node delivery did not come back")
            assert [s.id for s in await b.in_(sid_a).fetch_sockets()] == [sid_a]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "garbage",
    [
        b"not msgpack at all \xc1",
        msgpack.packb("just a string"),
        msgpack.packb(["uid", {"type": 2, "data": "not a list", "nsp": "/"}, {}]),
        msgpack.packb(["uid", {"type": 2, "data": [1, 2], "nsp": "/"}, {"rooms": []}]),
        msgpack.packb(["uid", {"type": 2, "data": ["ev"], "nsp": "/"}, {"rooms": "x"}]),
        msgpack.packb([b"\x00" * 10]),
    ],
)
async def test_garbage_on_the_channels_is_ignored(redis_url: str, garbage: bytes) -> None:
    async with nodes(redis_url, "a", "b") as ((a, _), (_, addr_b)):
        publisher = aioredis.Redis.from_url(redis_url)
        try:
            async with raw_client(addr_b) as cb:
                await cb.join()
                await publisher.publish("socket.io#/#", garbage)
                await publisher.publish("socket.io-request#/#", garbage)
                await publisher.publish("socket.io-request#/#", b'{"type": 2, "opts": 5}')
                await publisher.publish("socket.io-response#/#", b"{")
                a.emit("still", 1)
                await cb.expect('42["still",1]')
                assert await a.server_count() == 2
        finally:
            await publisher.aclose()


async def test_the_demo_chat_is_one_chat_over_two_nodes(redis_url: str) -> None:
    from minisio.__main__ import create_app

    async def until(client: Any, wanted: Any) -> None:
        """Read until a frame ``wanted`` accepts; rosters and notices may come between."""
        for _ in range(20):
            frame = await client.recv()
            if isinstance(frame, str) and wanted(frame):
                return
        raise AssertionError("the frame never came")

    def roster(*names: str) -> Any:
        def check(frame: str) -> bool:
            if not frame.startswith('42["users"'):
                return False
            return sorted(u["name"] for u in orjson.loads(frame[2:])[1]) == sorted(names)

        return check

    one = create_app(adapter=redis_adapter(redis_url))
    two = create_app(adapter=redis_adapter(redis_url))
    async with (
        running(one) as addr_one,
        running(two) as addr_two,
        raw_client(addr_one) as ada,
        raw_client(addr_two) as bob,
    ):
        await ada.join(auth='{"name":"Ada"}')
        await until(ada, roster("Ada"))
        bob_id = await bob.join(auth='{"name":"Bob"}')
        await until(ada, lambda f: f == '42["notice","Bob joined"]')  # across nodes
        await until(ada, roster("Ada", "Bob"))  # one roster over both nodes
        await until(bob, roster("Ada", "Bob"))
        whisper = {"text": "hi Bob", "route": "whisper", "to": bob_id}
        await ada.send("421" + orjson.dumps(["chat", whisper]).decode())
        await until(bob, lambda f: f.startswith('42["chat",{"from"') and '"hi Bob"' in f)
        await until(ada, lambda f: f == '431[{"ok":true}]')


async def test_a_broadcast_with_acks_gathers_answers_from_every_node(redis_url: str) -> None:
    async with (
        nodes(redis_url, "a", "b", "c") as ((a, addr_a), (_, addr_b), (_, addr_c)),
        raw_client(addr_a) as ca,
        raw_client(addr_b) as cb,
        raw_client(addr_c) as cc,
    ):
        for client in (ca, cb, cc):
            await client.join()

        async def answer(client: Any, value: str) -> None:
            match = await client.expect_match(r'42(\d+)\["poll"\]')
            await client.send(f"43{match.group(1)}" + orjson.dumps([value]).decode())

        asking = asyncio.ensure_future(a.timeout(2 * UNIT).emit_with_ack("poll"))
        for client, value in ((ca, "a"), (cb, "b"), (cc, "c")):
            await answer(client, value)
        assert sorted(await asking) == ["a", "b", "c"]
        # One client on node c stays silent: a timeout with what came.
        asking = asyncio.ensure_future(a.timeout(0.5 * UNIT).emit_with_ack("poll"))
        await answer(ca, "a")
        await answer(cb, "b")
        await cc.recv()
        with pytest.raises(minisio.AckTimeout) as caught:
            await asking
        assert sorted(caught.value.results) == ["a", "b"]


async def test_a_node_whose_redis_is_unreachable_serves_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .conftest import free_port

    caplog.set_level(logging.WARNING, "minisio.redis")
    url = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    io = make_node(url, "alone")
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        io.emit("local", 1)
        await client.expect('42["local",1]')
        io.to(sid).emit("still", 2)
        await client.expect('42["still",2]')
        with pytest.raises(minisio.ClusterError):
            await io.fetch_sockets()
    assert any("not reachable" in r.message for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_namespace_made_while_serving_loses_no_message_of_the_others(
    redis_url: str,
) -> None:
    async with (
        nodes(redis_url, "a", "b") as ((a, _), (b, addr_b)),
        raw_client(addr_b) as cb,
    ):
        await cb.join()
        for i in range(200):
            a.emit("n", i)
            if i == 100:
                late = b.of("/late")  # its channels are subscribed while the others flow
                await asyncio.sleep(0)
        for i in range(200):
            await cb.expect(f'42["n",{i}]')
        await eventually(lambda: redis_command_numsub(redis_url, "socket.io-request#/late#") == 1)
        assert late.adapter is not None


def redis_command_numsub(url: str, channel: str) -> int:
    from .conftest import redis_command

    port = int(url.rsplit(":", 1)[1])
    return int(redis_command(port, "PUBSUB", "NUMSUB", channel)[1])

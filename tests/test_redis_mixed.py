"""A mixed cluster on one real Redis: the official Node node and a minisio node.

Each test runs one Node node (tests/js/cluster_node.mjs: socket.io 4.8 with
@socket.io/redis-adapter 8.3) next to a minisio node with ``redis_adapter``,
raw clients on both, and checks on the wire what the clients of one node see
when the other node (or an emitter) acts: broadcasts to all, to rooms and to
socket ids, binary attachments, fetching sockets, remote joins and
disconnects, server-side emits with and without acks, the server count, and
both emitters (@socket.io/redis-emitter 5.1 and minisio's ``Emitter``).

Not covered: broadcasts with acks (the BROADCAST request, type 7), which
minisio does not serve yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import minisio
from minisio.redis import Emitter, RemoteSocket, redis_adapter

from .conftest import (
    UNIT,
    NodeServer,
    RawClient,
    RedisProcess,
    cluster_node,
    eventually,
    node_emit,
    raw_client,
    running,
)


class NodeClient:
    """A raw client on the Node node: calls its events and reads their acks."""

    def __init__(self, client: RawClient, sid: str, namespace: str = "/") -> None:
        self.client = client
        self.sid = sid
        self.prefix = "" if namespace == "/" else f"{namespace},"
        self._ack = 0

    async def call(self, event: str, *args: Any, before: list[str] | None = None) -> Any:
        """Emit ``event`` with an ack id; return the ack's first argument.

        ``before`` are the frames that must come first (socket.io emits what
        the handler sends, then acks); nothing else may.
        """
        self._ack += 1
        await self.client.send(f"42{self.prefix}{self._ack}" + json.dumps([event, *args]))
        for frame in before or ():
            await self.client.expect(frame)
        match = await self.client.expect_match(rf"43{re.escape(self.prefix)}{self._ack}(\[.*\])")
        return json.loads(match.group(1))[0]


def frame(*data: Any, head: str = "42") -> str:
    """A Socket.IO frame as both servers write it: ``head`` then compact JSON."""
    return head + json.dumps(list(data), separators=(",", ":"))


def slot(num: int) -> dict[str, Any]:
    """The placeholder of binary attachment ``num``."""
    return {"_placeholder": True, "num": num}


async def node_join(client: RawClient, namespace: str = "/") -> NodeClient:
    """Join ``namespace`` on the Node node, which greets every socket with ``welcome``."""
    sid = await client.join(namespace)
    prefix = "" if namespace == "/" else f"{namespace},"
    await client.expect(f'42{prefix}["welcome","{sid}"]')
    return NodeClient(client, sid, namespace)


def minisio_node(redis_url: str, **kw: Any) -> minisio.Server:
    """A minisio node of the cluster; it also serves "/admin", as the Node node does."""
    io = minisio.Server(adapter=redis_adapter(redis_url, **kw))
    io.of("/admin")
    return io


@dataclass
class Cluster:
    io: minisio.Server
    node: NodeServer
    address: str  # the minisio node's


@contextlib.asynccontextmanager
async def mixed(redis_url: str, **kw: Any) -> AsyncIterator[Cluster]:
    """A minisio node and a Node node, both subscribed, on ``redis_url``."""
    io = minisio_node(redis_url, **kw)
    async with running(io) as address, cluster_node(redis_url) as node:
        yield Cluster(io, node, address)


async def frame_pair(client: RawClient) -> tuple[str, bytes]:
    """A binary event as it arrives: its text frame, then its one attachment."""
    text = await client.recv()
    data = await client.recv()
    assert isinstance(text, str) and isinstance(data, bytes), (text, data)
    return text, data


# -- broadcasts ------------------------------------------------------------------------


async def test_broadcasts_rooms_and_whispers_cross_both_ways(redis_url: str) -> None:
    async with (
        mixed(redis_url) as cluster,
        raw_client(cluster.address) as a,
        raw_client(cluster.address) as c,
        raw_client(cluster.node.address) as b_raw,
        raw_client(cluster.node.address) as d_raw,
    ):
        io = cluster.io
        aid, cid = await a.join(), await c.join()
        b, d = await node_join(b_raw), await node_join(d_raw)

        # io.emit on minisio reaches the Node node's clients, and its own.
        io.emit("hi", 1, {"x": [True, None]})
        for client in (a, c, b_raw, d_raw):
            await client.expect('42["hi",1,{"x":[true,null]}]')

        # The Node node's nsp.emit reaches minisio's clients.
        routed = frame("routed", {"route": "all", "from": b.sid, "payload": {"n": 1}})
        assert await b.call("route", "all", {"n": 1}, before=[routed]) is True
        for client in (a, c, d_raw):
            await client.expect(routed)

        # A room with members on both nodes, addressed from either.
        io.sockets[aid].join("red")
        assert await b.call("join", "red") == sorted([b.sid, "red"])
        io.to("red").emit("in-red", "from minisio")
        await a.expect('42["in-red","from minisio"]')
        await b_raw.expect('42["in-red","from minisio"]')
        assert await d.call("room", "red", "from node") is True
        in_red = '42["room",{"room":"red","mode":"io","payload":"from node"}]'
        await a.expect(in_red)
        await b_raw.expect(in_red)
        # except_ a room of the other node's socket, and socket.broadcast from Node.
        io.except_("red").emit("not-red")
        await c.expect('42["not-red"]')
        await d_raw.expect('42["not-red"]')
        assert await b.call("room", "red", "socket mode", "socket") is True
        await a.expect('42["room",{"room":"red","mode":"socket","payload":"socket mode"}]')
        for client in (c, b_raw, d_raw):
            await client.expect_nothing()

        # Whispers by socket id, both ways.
        io.to(b.sid).emit("whisper", "to node socket")
        await b_raw.expect('42["whisper","to node socket"]')
        assert await d.call("route", "to_id", "to minisio socket", cid) is True
        await c.expect(
            frame("routed", {"route": "to_id", "from": d.sid, "payload": "to minisio socket"})
        )
        # "local" stays on the Node node.
        local = frame("routed", {"route": "local", "from": d.sid, "payload": "here only"})
        assert await d.call("route", "local", "here only", before=[local]) is True
        await b_raw.expect(local)
        for client in (a, c, b_raw, d_raw):
            await client.expect_nothing()


async def test_binary_crosses_both_ways(redis_url: str) -> None:
    async with (
        mixed(redis_url) as cluster,
        raw_client(cluster.address) as a,
        raw_client(cluster.node.address) as b_raw,
    ):
        await a.join()
        b = await node_join(b_raw)

        # minisio -> Node: msgpack bin in Redis, an attachment on the Node node's wire.
        cluster.io.emit("bin", b"\x00\x01\xff", {"k": bytearray(b"xy")})
        head = frame("bin", slot(0), {"k": slot(1)}, head="452-")
        for client in (a, b_raw):
            await client.expect(head)
            await client.expect(b"\x00\x01\xff")
            await client.expect(b"xy")

        # Node -> minisio: the Node client sends a binary event that nsp.emit()s it on.
        await b_raw.send(frame("route", "all", slot(0), head="451-1"))
        await b_raw.send(b"\x10\x20")
        text, data = await frame_pair(b_raw)  # the Node node's own delivery
        assert data == b"\x10\x20"
        expected = frame("routed", {"route": "all", "from": b.sid, "payload": slot(0)}, head="451-")
        assert text == expected
        await b_raw.expect("431[true]")
        assert await frame_pair(a) == (expected, b"\x10\x20")
        await a.expect_nothing()


# -- fetch_sockets -----------------------------------------------------------------------


async def test_fetch_sockets_both_ways(redis_url: str) -> None:
    async with (
        mixed(redis_url) as cluster,
        raw_client(cluster.address) as a,
        raw_client(cluster.node.address, query="EIO=4&transport=websocket&who=bob") as b_raw,
    ):
        io = cluster.io
        aid = await a.join()
        b = await node_join(b_raw)
        io.sockets[aid].join("red")
        io.sockets[aid].data.update({"user": "ann", "n": [1, 2]})
        assert await b.call("set_data", {"user": "bob"}) is True
        assert await b.call("join", "blue") == sorted([b.sid, "blue"])

        # minisio asks: its own socket as is, the Node node's as RemoteSocket.
        found = await io.fetch_sockets()
        assert {s.id for s in found} == {aid, b.sid}
        local = next(s for s in found if s.id == aid)
        assert local is io.sockets[aid]
        remote = next(s for s in found if s.id == b.sid)
        assert isinstance(remote, RemoteSocket)
        assert remote.rooms == {b.sid, "blue"}
        assert remote.data == {"user": "bob"}
        assert remote.handshake.query["who"] == "bob"
        (only,) = await io.in_("blue").fetch_sockets()
        assert isinstance(only, RemoteSocket) and only.id == b.sid
        assert [s.id for s in await io.to("red").fetch_sockets()] == [aid]
        assert [s.id for s in await io.except_("red").fetch_sockets()] == [b.sid]
        assert await io.to("nowhere").fetch_sockets() == []

        # The Node node asks: minisio's socket with its rooms and data.
        sockets = await b.call("fetch")
        assert {s["id"] for s in sockets} == {aid, b.sid}
        mine = next(s for s in sockets if s["id"] == aid)
        assert sorted(mine["rooms"]) == sorted([aid, "red"])
        assert mine["data"] == {"user": "ann", "n": [1, 2]}
        (red,) = await b.call("fetch", "red")
        assert red["id"] == aid
        assert await b.call("fetch", "nowhere") == []

        # A RemoteSocket acts on its node: emit to it, make it join, disconnect it.
        remote.emit("direct", "hello")
        await b_raw.expect('42["direct","hello"]')
        remote.join("violet")
        io.to("violet").emit("violet", 1)
        await b_raw.expect('42["violet",1]')
        remote.disconnect()
        await b_raw.expect("41")
        await a.expect_nothing()


# -- sockets_join / sockets_leave / disconnect_sockets ----------------------------------


async def test_remote_join_leave_and_disconnect_both_ways(redis_url: str) -> None:
    async with (
        mixed(redis_url) as cluster,
        raw_client(cluster.address) as a,
        raw_client(cluster.address) as c,
        raw_client(cluster.node.address) as b_raw,
        raw_client(cluster.node.address) as d_raw,
    ):
        io = cluster.io
        aid, cid = await a.join(), await c.join()
        b, d = await node_join(b_raw), await node_join(d_raw)

        # minisio makes the Node node's socket join a room; a room emit from either node.
        io.in_(b.sid).sockets_join("green", "teal")
        io.to("green").emit("green", 1)
        await b_raw.expect('42["green",1]')
        assert sorted((await b.call("fetch", b.sid))[0]["rooms"]) == sorted(
            [b.sid, "green", "teal"]
        )
        assert await d.call("room", "teal", "t") is True
        await b_raw.expect('42["room",{"room":"teal","mode":"io","payload":"t"}]')
        io.in_(b.sid).sockets_leave("green")
        io.to("green").emit("green", 2)
        await b_raw.expect_nothing()

        # The Node node makes minisio's sockets join: one by id, all but one by except.
        assert await b.call("remote_join", "gold", aid) is True
        await eventually(lambda: "gold" in io.sockets[aid].rooms)
        assert io.sockets[cid].rooms == {cid}
        io.to("gold").emit("gold", 1)
        await a.expect('42["gold",1]')
        assert await b.call("room", "gold", "from node") is True
        await a.expect('42["room",{"room":"gold","mode":"io","payload":"from node"}]')
        assert await b.call("remote_leave", "gold", aid) is True
        await eventually(lambda: "gold" not in io.sockets[aid].rooms)
        # Every socket of the cluster, from the Node node (its own included).
        assert await b.call("remote_join", "all-in") is True
        await eventually(lambda: all("all-in" in s.rooms for s in io.sockets.values()))
        io.to("all-in").emit("everyone")
        for client in (a, c, b_raw, d_raw):
            await client.expect('42["everyone"]')

        # A remote disconnect sends 41 to that client only.
        io.in_(d.sid).disconnect_sockets()
        await d_raw.expect("41")
        assert await b.call("remote_disconnect", cid) is True
        await c.expect("41")
        await eventually(lambda: cid not in io.sockets)
        assert set(io.sockets) == {aid}
        # close=True from the Node node closes minisio's connection.
        assert await b.call("remote_disconnect", aid, True) is True
        await a.closed()
        await eventually(lambda: not io.sockets)
        for client in (b_raw,):
            await client.expect_nothing()


# -- server-side emits, server count -------------------------------------------------


async def node_notes(client: NodeClient, count: int) -> list[Any]:
    """The Node node's ``server_notes()`` once it holds ``count`` of them."""
    deadline = asyncio.get_running_loop().time() + 2 * UNIT
    while len(notes := await client.call("server_notes")) < count:
        assert asyncio.get_running_loop().time() < deadline, notes
        await asyncio.sleep(0.02)
    return notes  # type: ignore[no-any-return]


async def test_server_side_emit_and_server_count_both_ways(redis_server: RedisProcess) -> None:
    redis_url = redis_server.url
    io = minisio_node(redis_url)
    got: list[list[Any]] = []

    @io.on("hello")
    def hello(*args: Any) -> str:
        got.append(list(args))
        return f"hi from minisio {args[0]}"

    @io.of("/admin").on("slow-hello")
    async def slow_hello(arg: Any) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"async": arg}

    async with running(io):
        # Subscribed to both namespaces once serving: counted at once.
        for name in ("/", "/admin"):
            channel = f"socket.io-request#{name}#"
            assert redis_server.command("PUBSUB", "NUMSUB", channel) == [channel, 1]
        assert await io.of("/admin").server_count() == 1
    async with (
        running(io),
        cluster_node(redis_url, name="n1") as node,
        raw_client(node.address) as b_raw,
        raw_client(node.address) as admin_raw,
    ):
        b = await node_join(b_raw)
        admin = await node_join(admin_raw, "/admin")

        assert await io.server_count() == 2
        assert await io.of("/admin").server_count() == 2
        assert await b.call("server_count") == 2
        assert await admin.call("server_count") == 2

        # minisio -> Node, with and without an ack.
        assert await io.server_side_emit_with_ack("ping-node", "x") == ["pong from node x"]
        assert await io.of("/admin").server_side_emit_with_ack("note", 7) == ["noted by n1"]
        io.server_side_emit("note", "a", 1, {"b": None})
        assert await node_notes(b, 1) == [["a", 1, {"b": None}]]

        # Node -> minisio: the handler's return value answers the ack.
        assert await b.call("server_side_emit", "hello", 1, [2]) is True
        await eventually(lambda: got == [[1, [2]]])
        assert await b.call("server_side_emit_ack", "hello", "y") == {
            "ok": True,
            "result": ["hi from minisio y"],
        }
        assert got[-1] == ["y"]
        assert await admin.call("server_side_emit_ack", "slow-hello", 3) == {
            "ok": True,
            "result": [{"async": 3}],
        }

        # Both emitters' serverSideEmit reach the other kind of node.
        await node_emit(redis_url, ":serverSideEmit", "hello", "from the node emitter")
        await eventually(lambda: got[-1] == ["from the node emitter"])
        emitter = Emitter(redis_url)
        try:
            await emitter.server_side_emit("note", "from minisio's emitter")
        finally:
            await emitter.aclose()
        assert (await node_notes(b, 2))[1] == ["from minisio's emitter"]


async def test_server_side_emit_with_ack_times_out_on_a_silent_node(redis_url: str) -> None:
    """A node with no listener for the event never answers: a ClusterError, no results.

    (socket.io answers a server-side ack only when a listener calls it.)
    """
    async with mixed(redis_url, requests_timeout=0.3 * UNIT) as cluster:
        try:
            await cluster.io.server_side_emit_with_ack("unheard", 1)
        except minisio.ClusterError as exc:
            assert exc.results == []
            assert "timeout" in str(exc)
        else:
            raise AssertionError("no ClusterError")


# -- emitters --------------------------------------------------------------------------


async def test_both_emitters_drive_both_nodes(redis_url: str) -> None:
    async with (
        mixed(redis_url) as cluster,
        raw_client(cluster.address) as a,
        raw_client(cluster.address) as c,
        raw_client(cluster.address) as a_admin,
        raw_client(cluster.node.address) as b_raw,
        raw_client(cluster.node.address) as d_raw,
        raw_client(cluster.node.address) as b_admin_raw,
    ):
        io = cluster.io
        aid, cid = await a.join(), await c.join()
        await a_admin.join("/admin")
        b, d = await node_join(b_raw), await node_join(d_raw)
        await node_join(b_admin_raw, "/admin")
        io.sockets[aid].join("red")
        assert await b.call("join", "red") == sorted([b.sid, "red"])
        everyone = (a, c, b_raw, d_raw)
        emitter = Emitter(redis_url)

        async def emit(
            via: str, event: str, *args: Any, to: str | None = None, except_: str | None = None
        ) -> None:
            """Emit with the Node emitter (``via="node"``) or minisio's."""
            if via == "node":
                await node_emit(redis_url, event, *args, to=to, except_=except_)
                return
            selected = emitter.to(to) if to is not None else emitter
            selected = selected.except_(except_) if except_ is not None else selected
            await selected.emit(event, *args)

        try:
            for name in ("node", "minisio"):
                # To all: both nodes' clients of "/", nobody on "/admin".
                await emit(name, "news", name, {"bin": b"\x01"})
                for client in everyone:
                    await client.expect(frame("news", name, {"bin": slot(0)}, head="451-"))
                    await client.expect(b"\x01")
                # To a room, and except a room.
                await emit(name, "red-news", name, to="red")
                await emit(name, "not-red", name, except_="red")
                for client in (a, b_raw):
                    await client.expect(f'42["red-news","{name}"]')
                for client in (c, d_raw):
                    await client.expect(f'42["not-red","{name}"]')
                # Another namespace.
                if name == "node":
                    await node_emit(redis_url, "admin-news", name, nsp="/admin")
                else:
                    await emitter.of("/admin").emit("admin-news", name)
                for client in (a_admin, b_admin_raw):
                    await client.expect(f'42/admin,["admin-news","{name}"]')
                # socketsJoin on one socket of each node, then a room emit.
                room = f"joined-by-{name}"
                if name == "node":
                    await node_emit(redis_url, ":socketsJoin", [room], to=[cid, d.sid])
                else:
                    await emitter.to(cid, d.sid).sockets_join(room)
                await emit(name, "joined", name, to=room)
                for client in (c, d_raw):
                    await client.expect(f'42["joined","{name}"]')
                assert room in io.sockets[cid].rooms
                for client in (*everyone, a_admin, b_admin_raw):
                    await client.expect_nothing(0.05)

            # disconnectSockets: the Node emitter on c, minisio's on d.
            await node_emit(redis_url, ":disconnectSockets", False, to=cid)
            await c.expect("41")
            await emitter.in_(d.sid).disconnect_sockets()
            await d_raw.expect("41")
            await eventually(lambda: set(io.sockets) == {aid})
            # Everyone else is still there.
            await emitter.emit("still", 1)
            for client in (a, b_raw):
                await client.expect('42["still",1]')
        finally:
            await emitter.aclose()


# -- broadcasts with acks ------------------------------------------------------------------


async def answer_vote(client: RawClient, value: str, prefix: str = "") -> None:
    """Read a ``vote`` event asking for an ack and answer it with ``value``."""
    match = await client.expect_match(rf'42{re.escape(prefix)}(\d+)\["vote","\?"\]')
    await client.send(f"43{prefix}{match.group(1)}" + json.dumps([value]))


async def test_broadcast_acks_gather_answers_from_both_nodes(redis_url: str) -> None:
    async with (
        mixed(redis_url) as cluster,
        raw_client(cluster.address) as m,
        raw_client(cluster.node.address) as n1_raw,
        raw_client(cluster.node.address) as n2,
    ):
        await m.join()
        n1 = await node_join(n1_raw)
        await node_join(n2)
        # From minisio: the Node node's clients count and answer too.
        asking = asyncio.ensure_future(cluster.io.timeout(3 * UNIT).emit_with_ack("vote", "?"))
        await answer_vote(m, "minisio")
        await answer_vote(n1_raw, "node 1")
        await answer_vote(n2, "node 2")
        assert sorted(await asking) == ["minisio", "node 1", "node 2"]
        # From Node: minisio counts its client and passes its answer back.
        spec = {"event": "vote", "args": ["?"], "timeout": round(3000 * UNIT)}
        n1._ack += 1
        await n1_raw.send(f"42{n1._ack}" + json.dumps(["broadcast_ack", spec]))
        await answer_vote(n1_raw, "node 1")
        await answer_vote(n2, "node 2")
        await answer_vote(m, "minisio")
        match = await n1_raw.expect_match(rf"43{n1._ack}(\[.*\])")
        outcome = json.loads(match.group(1))[0]
        assert outcome["ok"] is True, outcome
        assert sorted(outcome["result"]) == ["minisio", "node 1", "node 2"]

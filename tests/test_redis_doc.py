"""Every ```redis example in protocol.md, checked against what minisio publishes.

protocol.md shows what the Redis adapter (and the emitter) publish in
fenced ```redis blocks, one line per published message, in the order Redis
delivers them::

    <channel> msgpack <the message, decoded and rendered>
    <channel> json <the message's bytes, exactly>

A message whose first byte is ``{`` is JSON, as the Node adapter decides
too, and is written as it is. Anything else is msgpack, rendered by
:func:`render`: JSON-like and compact, map keys in the order of the bytes,
a bin value as ``<bin 00 ff>``, a float with its decimal point.

The block's info string names a scenario (```redis scenario=emit): one of
the functions in :data:`SCENARIOS`, which start minisio nodes on the test's
own redis-server, connect raw clients and do what the chapter describes.
Meanwhile a spy PSUBSCRIBEs ``socket.io*``, which covers the broadcast
channels and the request and response channels alike (and does not count in
PUBSUB NUMSUB, so the nodes do not wait for its answers). When the scenario
is done, the spy publishes a marker of its own and reads up to it, so every
message a node published before is in; then the lines must be equal to the
block's, placeholders aside:

``<uid>``, ``<uid:NAME>``, ``<rid>``, ``<rid:NAME>``: a 6-character id;
``<sid:NAME>``: a 20-character socket id; ``<time>``: a handshake time;
``<ms>``: milliseconds since the epoch; ``<host>``: a server's host:port.

A placeholder stands for one value wherever it appears in a block, and two
different placeholders for two different values. A ``<uid...>``,
``<sid:NAME>`` or ``<host>`` must moreover be the value the scenario knows
(the node's uid, the socket id of the client it named NAME, the address
of a node); the others only have to fit their pattern.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
import redis.asyncio as aioredis

import minisio
from minisio.redis import Emitter, redis_adapter

from .conftest import UNIT, RedisProcess, eventually, masked_frame, running, upgrade_request

DOC = Path(__file__).resolve().parent.parent / "protocol.md"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the example key of RFC 6455, as in protocol.md
MARKER = b"socket.io~end-of-scenario"  # matches the spy's pattern; no node listens there

PLACEHOLDER = re.compile(r"<(uid|rid|sid|time|ms|host)(?::(\w+))?>")
PATTERNS = {
    "uid": r"[A-Za-z0-9_-]{6}",
    "rid": r"[A-Za-z0-9_-]{6}",
    "sid": r"[A-Za-z0-9_-]{20}",
    "time": r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d\d \d{4} \d\d:\d\d:\d\d GMT\+0000",
    "ms": r"\d{13}",
    "host": r"127\.0\.0\.1:\d{1,5}",
}
KNOWN = ("<uid", "<sid", "<host")  # placeholders whose values the scenario must give
LINE = re.compile(r"(socket\.io\S*) (msgpack|json) (.+)")


# -- the document ---------------------------------------------------------
@dataclass(frozen=True)
class Block:
    number: int  # line of the opening fence in protocol.md
    scenario: str
    lines: list[tuple[int, str]]  # (line number, expected line)


def blocks(text: str) -> list[Block]:
    found, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            start, words, body = i + 1, lines[i][3:].split(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append((i + 1, lines[i]))
                i += 1
            assert i < len(lines), f"protocol.md:{start}: unclosed fence"
            if words[:1] == ["redis"]:
                tags = dict(word.split("=", 1) for word in words[1:])
                assert "scenario" in tags, f"protocol.md:{start}: which scenario?"
                kept = [(n, raw) for n, raw in body if raw.strip() and not raw.startswith("#")]
                found.append(Block(start, tags["scenario"], kept))
        i += 1
    return found


BLOCKS = blocks(DOC.read_text(encoding="utf-8"))


# -- what a message looks like in the document ----------------------------------
def render(value: Any) -> str:
    """A decoded msgpack value, written as in protocol.md."""
    if isinstance(value, bytes):
        return "<bin" + "".join(f" {b:02x}" for b in value) + ">"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{render(k)}:{render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, msgpack.ExtType):
        return f"<ext {value.code}{render(value.data)[4:]}"
    if isinstance(value, float):
        return repr(value)
    return orjson.dumps(value).decode()  # str, int, bool, None


def line_of(channel: bytes, data: bytes) -> str:
    """One published message, as a line of a ```redis block."""
    name = channel.decode()
    if data[:1] == b"{":
        orjson.loads(data)  # JSON it must be, and is shown as it is
        return f"{name} json {data.decode()}"
    value = msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=0)
    return f"{name} msgpack {render(value)}"


@dataclass
class Matcher:
    """Compares actual lines with a block's, binding placeholders as it goes."""

    known: dict[str, str]
    bound: dict[str, str] = field(default_factory=dict)

    def check(self, number: int, expected: str, actual: str) -> None:
        parts, groups, pattern = PLACEHOLDER.split(expected), {}, ""
        # split() yields: text, kind, name, text, kind, name, ..., text
        for i in range(0, len(parts), 3):
            pattern += re.escape(parts[i])
            if i + 1 >= len(parts):
                break
            kind, name = parts[i + 1], parts[i + 2]
            token = f"<{kind}:{name}>" if name else f"<{kind}>"
            if token in self.bound:
                pattern += re.escape(self.bound[token])
            elif token in groups:
                pattern += f"(?P={groups[token]})"
            else:
                groups[token] = f"g{len(groups)}"
                pattern += f"(?P<{groups[token]}>{PATTERNS[kind]})"
        match = re.fullmatch(pattern, actual)
        assert match, (
            f"protocol.md:{number}: minisio published\n  {actual}\nthe document says\n  {expected}"
        )
        for token, group in groups.items():
            value = match.group(group)
            if token.startswith(KNOWN):
                assert token in self.known, f"protocol.md:{number}: the scenario has no {token}"
            if token in self.known:
                assert value == self.known[token], f"protocol.md:{number}: {token} is {value!r}"
            others = [t for t, v in self.bound.items() if v == value]
            assert not others, f"protocol.md:{number}: {token} and {others[0]} are the same value"
            self.bound[token] = value


# -- a client that shows its handshake --------------------------------------------
class Client:
    """A WebSocket client whose upgrade request is section 1's, byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sid = ""

    @classmethod
    async def connect(cls, address: str, auth: str = "") -> Client:
        host, port = address.rsplit(":", 1)
        client = cls(*await asyncio.open_connection(host, int(port)))
        client.writer.write(upgrade_request(address, key=RFC_KEY))
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2 * UNIT)
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert (await client.recv()).startswith('0{"sid":"')
        client.writer.write(masked_frame(f"40{auth}".encode()))
        reply = await client.recv()
        match = re.fullmatch(r'40\{"sid":"([A-Za-z0-9_-]{20})"\}', reply)
        assert match, reply
        client.sid = match.group(1)
        return client

    async def recv(self) -> str:
        """The next text frame (binary frames and pings do not happen in these scenarios)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 2 * UNIT)
        assert first == 0x81, f"not a final text frame: {first:#x}"
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2))
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8))
        return (await self.reader.readexactly(length)).decode()

    async def expect(self, *frames: str) -> None:
        for frame in frames:
            assert await self.recv() == frame

    def close(self) -> None:
        self.writer.close()


# -- the scenarios -------------------------------------------------------------
@dataclass
class Context:
    """What a scenario gets: Redis, and helpers whose nodes and clients end with the test."""

    redis: RedisProcess
    stack: contextlib.AsyncExitStack
    listen: Callable[[], Awaitable[None]]
    nodes: list[minisio.Server] = field(default_factory=list)
    known: dict[str, str] = field(default_factory=dict)  # <sid:NAME> of every client
    seen: list[tuple[str, Any]] = field(default_factory=list)  # server-side events received

    async def node(self, name: str) -> tuple[minisio.Server, str]:
        """A minisio node on the test's Redis, listening: (io, host:port)."""
        io = minisio.Server(adapter=redis_adapter(self.redis.url, requests_timeout=1.0 * UNIT))
        io.of("/admin")

        @io.on("connection")
        def connected(socket: minisio.Socket) -> None:
            socket.data["name"] = socket.handshake.auth.get("name")

        @io.on("whoami")
        def whoami(prefix: str) -> str:
            return f"{prefix} {name}"

        @io.on("note")
        def note(text: str) -> None:
            self.seen.append((name, text))

        address = await self.stack.enter_async_context(running(io))
        self.nodes.append(io)
        return io, address

    async def client(self, address: str, name: str) -> Client:
        client = await Client.connect(address, orjson.dumps({"name": name}).decode())
        self.known[f"<sid:{name}>"] = client.sid
        self.stack.callback(client.close)
        return client


def uid(io: minisio.Server, nsp: str = "/") -> str:
    return io.of(nsp).adapter.uid  # type: ignore[attr-defined,no-any-return]


async def scenario_emit(ctx: Context) -> dict[str, str]:
    io, _ = await ctx.node("a")
    io.emit("chat", "hi", b"\x00\xff")
    io.of("/admin").emit("alert", True, 1.5, None)
    return {"<uid>": uid(io), "<uid:admin>": uid(io, "/admin")}


async def scenario_flags(ctx: Context) -> dict[str, str]:
    io, address = await ctx.node("a")
    bob = await ctx.client(address, "bob")
    io.volatile.emit("tick", 1)
    io.compress(False).emit("big", "x")
    io.local.emit("here", 2)  # this node's sockets only: nothing published
    await bob.expect('42["tick",1]', '42["big","x"]', '42["here",2]')
    return {"<uid>": uid(io)}


async def scenario_routes(ctx: Context) -> dict[str, str]:
    io, address = await ctx.node("a")
    bob = await ctx.client(address, "bob")
    socket = io.sockets[bob.sid]
    socket.join("lobby")
    io.to("lobby").except_("muted").emit("news", {"n": 1})
    socket.emit("private", 1)  # one socket, its own connection: nothing to publish
    socket.broadcast.emit("others", 2)
    io.to(bob.sid).emit("whisper", "psst")
    await bob.expect('42["news",{"n":1}]', '42["private",1]', '42["whisper","psst"]')
    return {"<uid>": uid(io)}


async def scenario_fetch(ctx: Context) -> dict[str, str]:
    a, _ = await ctx.node("a")
    _, address_b = await ctx.node("b")
    bob = await ctx.client(address_b, "bob")
    assert await a.server_count() == 2  # PUBSUB NUMSUB: the spy's PSUBSCRIBE does not count
    found = await a.fetch_sockets()
    assert [s.id for s in found] == [bob.sid]
    assert found[0].data == {"name": "bob"}
    return {"<uid>": uid(a), "<host>": address_b}


async def scenario_rooms(ctx: Context) -> dict[str, str]:
    a, address_a = await ctx.node("a")
    b, address_b = await ctx.node("b")
    bob, carol = await ctx.client(address_a, "bob"), await ctx.client(address_b, "carol")
    a.sockets[bob.sid].join("lobby")
    b.sockets[carol.sid].join("lobby")
    a.in_("lobby").sockets_join("vip")
    assert "vip" in a.sockets[bob.sid].rooms  # here at once, before Redis has it
    await eventually(lambda: "vip" in b.sockets[carol.sid].rooms)
    a.in_("vip").sockets_leave("lobby")
    assert "lobby" not in a.sockets[bob.sid].rooms
    await eventually(lambda: "lobby" not in b.sockets[carol.sid].rooms)
    a.in_(carol.sid).disconnect_sockets()
    await carol.expect("41")
    return {"<uid>": uid(a)}


async def scenario_server_side_emit(ctx: Context) -> dict[str, str]:
    a, _ = await ctx.node("a")
    await ctx.node("b")
    a.server_side_emit("note", "hello")
    assert await a.server_side_emit_with_ack("whoami", "I am") == ["I am b"]
    assert ctx.seen == [("b", "hello")]  # a's own handlers do not run
    return {"<uid>": uid(a)}


async def scenario_broadcast_ack(ctx: Context) -> dict[str, str]:
    a, address_a = await ctx.node("a")
    b, address_b = await ctx.node("b")
    bob, carol = await ctx.client(address_a, "bob"), await ctx.client(address_b, "carol")
    a.sockets[bob.sid].join("lobby")
    b.sockets[carol.sid].join("lobby")
    asking = asyncio.ensure_future(a.to("lobby").timeout(2).emit_with_ack("quiz", "2+2?"))
    for client, answer in ((bob, 4), (carol, 5)):  # bob on a, then carol on b
        match = re.fullmatch(r'42(\d+)\["quiz","2\+2\?"\]', await client.recv())
        assert match, "not the question"
        client.writer.write(masked_frame(f"43{match.group(1)}[{answer}]".encode()))
        await asyncio.sleep(0.05 * UNIT)  # bob's answer first
    assert await asking == [4, 5]
    return {"<uid>": uid(a)}


async def scenario_emitter(ctx: Context) -> dict[str, str]:
    a, address = await ctx.node("a")
    bob = await ctx.client(address, "bob")
    a.sockets[bob.sid].join("lobby")
    emitter = Emitter(ctx.redis.url)
    ctx.stack.push_async_callback(emitter.aclose)
    await emitter.to("lobby").emit("notice", "maintenance at noon")
    await emitter.to("lobby").sockets_join("alerts")
    await emitter.server_side_emit("note", "from a worker")
    await bob.expect('42["notice","maintenance at noon"]')
    await eventually(lambda: "alerts" in a.sockets[bob.sid].rooms and ctx.seen)
    assert ctx.seen == [("a", "from a worker")]
    return {}


async def scenario_redis_down(ctx: Context) -> dict[str, str]:
    """Redis goes away and comes back: nothing of the meantime is published later."""
    a, address = await ctx.node("a")
    bob = await ctx.client(address, "bob")
    link = a.main.adapter.link  # type: ignore[attr-defined]
    ctx.redis.stop()
    a.emit("lost", 1)
    await bob.expect('42["lost",1]')  # local delivery goes on
    await eventually(lambda: link.dropped == 1)
    with pytest.raises(minisio.ClusterError):
        await a.fetch_sockets()
    ctx.redis.start()
    channel = "socket.io-request#/#"
    await eventually(lambda: ctx.redis.command("PUBSUB", "NUMSUB", channel)[1] == 1, 5)
    await ctx.listen()
    a.emit("back", 2)
    await bob.expect('42["back",2]')
    return {"<uid>": uid(a)}


SCENARIOS: dict[str, Callable[[Context], Awaitable[dict[str, str]]]] = {
    "emit": scenario_emit,
    "flags": scenario_flags,
    "routes": scenario_routes,
    "fetch": scenario_fetch,
    "rooms": scenario_rooms,
    "server-side-emit": scenario_server_side_emit,
    "broadcast-ack": scenario_broadcast_ack,
    "emitter": scenario_emitter,
    "redis-down": scenario_redis_down,
}
LISTENS_ITSELF = {"redis-down"}  # the spy must start after Redis came back


# -- the spy -------------------------------------------------------------------------
class Spy:
    """PSUBSCRIBE ``socket.io*``: every message of every node and emitter, in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: aioredis.Redis | None = None
        self.pubsub: Any = None

    async def start(self) -> None:
        self.client = aioredis.Redis.from_url(self.url, decode_responses=False)
        self.pubsub = self.client.pubsub()
        await self.pubsub.psubscribe("socket.io*")
        confirmation = await self.pubsub.get_message(timeout=2 * UNIT)
        assert confirmation is not None and confirmation["type"] == "psubscribe", confirmation

    async def collect(self, nodes: list[minisio.Server]) -> list[str]:
        """Every line published since :meth:`start`, up to a marker published now."""
        assert self.client is not None, "the scenario never listened"
        for io in nodes:  # what the nodes queued is sent first
            link = io.main.adapter.link  # type: ignore[attr-defined]
            await eventually(lambda link=link: not link._outbox)
        await asyncio.sleep(0.05 * UNIT)  # and the last pipeline is through
        await self.client.publish(MARKER, b"")
        lines = []
        while True:
            message = await self.pubsub.get_message(timeout=2 * UNIT)
            assert message is not None, "the marker never came back"
            if message["type"] != "pmessage":
                continue
            if message["channel"] == MARKER:
                return lines
            lines.append(line_of(message["channel"], message["data"]))

    async def aclose(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()


@contextlib.asynccontextmanager
async def spying(url: str) -> AsyncIterator[Spy]:
    spy = Spy(url)
    try:
        yield spy
    finally:
        await spy.aclose()


async def run(block: Block, redis: RedisProcess) -> list[str]:
    """Run the block's scenario; check and return what was published."""
    async with spying(redis.url) as spy, contextlib.AsyncExitStack() as stack:
        ctx = Context(redis, stack, spy.start)
        if block.scenario not in LISTENS_ITSELF:
            await spy.start()
        known = await SCENARIOS[block.scenario](ctx)
        actual = await spy.collect(ctx.nodes)
    matcher = Matcher({**ctx.known, **known})
    for (number, expected), line in zip(block.lines, actual, strict=False):
        matcher.check(number, expected, line)
    missing = [f"protocol.md:{n}: {text}" for n, text in block.lines[len(actual) :]]
    extra = actual[len(block.lines) :]
    assert not missing, "not published:\n" + "\n".join(missing)
    assert not extra, f"protocol.md:{block.number}: also published:\n" + "\n".join(extra)
    return actual


# -- the tests -------------------------------------------------------------------------
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.scenario}@{b.number}" for b in BLOCKS])
async def test_redis_example(block: Block, redis_server: RedisProcess) -> None:
    await run(block, redis_server)


def test_every_block_and_scenario_is_used() -> None:
    """Each block names a scenario, each scenario has a block, and no message hides elsewhere."""
    assert len(BLOCKS) >= len(SCENARIOS)
    for block in BLOCKS:
        assert block.scenario in SCENARIOS, f"protocol.md:{block.number}: no such scenario"
        assert block.lines, f"protocol.md:{block.number}: an empty block checks nothing"
        for number, raw in block.lines:
            match = LINE.fullmatch(raw)
            assert match, f"protocol.md:{number}: not a ```redis line: {raw!r}"
            for kind in re.findall(r"<(\w+)", match.group(3)):
                assert kind in PATTERNS or kind == "bin", f"protocol.md:{number}: <{kind}...>?"
    assert {b.scenario for b in BLOCKS} == set(SCENARIOS)
    text = DOC.read_text(encoding="utf-8").split("\n")
    inside = {n for b in BLOCKS for n, _ in b.lines}
    for number, raw in enumerate(text, 1):
        if LINE.fullmatch(raw):
            assert number in inside, f"protocol.md:{number}: a message outside ```redis"


def test_the_rendering() -> None:
    """msgpack as the document writes it, and JSON as it is."""
    packed = msgpack.packb(["x", {"a": b"\x00\xff", "b": [1.0, None, True, -3]}, b""])
    assert line_of(b"socket.io#/#", packed) == (
        'socket.io#/# msgpack ["x",{"a":<bin 00 ff>,"b":[1.0,null,true,-3]},<bin>]'
    )
    assert line_of(b"socket.io-request#/#", b'{"type":2}') == 'socket.io-request#/# json {"type":2}'


def test_a_wrong_line_fails() -> None:
    """The matcher is strict: a changed byte, a reused placeholder, a wrong known value."""
    line = 'socket.io#/# msgpack ["abcdef",{"data":["chat"]}]'
    doc = 'socket.io#/# msgpack ["<uid>",{"data":["chat"]}]'
    Matcher({"<uid>": "abcdef"}).check(1, doc, line)
    with pytest.raises(AssertionError, match="published"):
        Matcher({"<uid>": "abcdef"}).check(1, doc.replace("chat", "chap"), line)
    with pytest.raises(AssertionError, match="has no <uid>"):
        Matcher({}).check(1, doc, line)
    with pytest.raises(AssertionError, match="<uid> is"):
        Matcher({"<uid>": "zzzzzz"}).check(1, doc, line)
    matcher = Matcher({})
    matcher.check(1, "socket.io#/# json <rid>", "socket.io#/# json abcdef")
    with pytest.raises(AssertionError, match="same value"):
        matcher.check(2, "socket.io#/# json <rid:other>", "socket.io#/# json abcdef")
    with pytest.raises(AssertionError, match="published"):
        matcher.check(3, "socket.io#/# json <rid>", "socket.io#/# json ghijkl")

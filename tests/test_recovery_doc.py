"""Every ```recovery example in protocol.md (section 14), replayed against a running server.

The notation is the ```wire blocks' (see tests/test_protocol_doc.py), over
WebSocket only: ``A> frame`` is sent by connection ``A``, ``A< frame`` must
be the next frame ``A`` receives, byte for byte. Each label is one
WebSocket, opened at its first line. Placeholders: ``<sid>`` (any
20-character id), ``<sid:NAME>`` and ``<pid:NAME>`` (a 20-character id, the
same wherever NAME appears), ``<offset:NAME>`` (an offset, lower-case hex).
A NAME seen first on a server line is read from it; two names stand for two
different values. ``A> <close 1000>`` closes ``A``'s WebSocket (the client
drops); ``A< <close 1000>`` is the server's answer, and the replay then
waits until the server has let that session go, so that what the next
lines do happens while the client is away. When a session ends, no
connection may have anything more to read.

Blocks tagged with the same ``session=`` run together, in document order.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

import minisio

from .conftest import SID, UNIT, eventually, running
from .test_protocol_doc import fences

DOC = Path(__file__).resolve().parent.parent / "protocol.md"
LINE = re.compile(r"([A-Z])([<>]) (.*)")
PLACEHOLDER = re.compile(r"<(sid|pid|offset)(?::(\w+))?>")
PATTERNS = {"sid": SID, "pid": SID, "offset": r"[1-9a-f][0-9a-f]{0,15}"}
QUIET = min(0.2 * UNIT, 0.5)


@dataclass
class Line:
    number: int
    client: str
    sent: bool
    payload: str


@dataclass
class Example:
    name: str
    lines: list[Line] = field(default_factory=list)


def examples(text: str) -> Iterator[Example]:
    found: dict[str, Example] = {}
    for fence in fences(text):
        words = fence.info.split()
        if words[:1] != ["recovery"]:
            continue
        tags = dict(word.split("=", 1) for word in words[1:])
        name = tags.get("session", f"line {fence.number}")
        example = found.setdefault(name, Example(name))
        for number, raw in fence.body:
            if not raw.strip() or raw.startswith("#"):
                continue
            match = LINE.fullmatch(raw)
            assert match, f"protocol.md:{number}: not a recovery line: {raw!r}"
            label, arrow, payload = match.groups()
            example.lines.append(Line(number, label, arrow == ">", payload))
    yield from found.values()


EXAMPLES = list(examples(DOC.read_text(encoding="utf-8")))


def make_app() -> minisio.Server:
    io = minisio.Server(connection_state_recovery=True)

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        socket.on("chat", lambda text: io.emit("chat", text))
        socket.on("sum", lambda a, b: a + b)
        socket.on("join", lambda room: socket.join(room))
        socket.on("tell", lambda room, text: io.to(room).emit("said", text))
        socket.on("others", lambda text: socket.broadcast.emit("said", text))
        socket.on("fleeting", lambda text: io.volatile.emit("said", text))
        socket.on("me", lambda text: socket.emit("said", text))

    return io


class Replay:
    def __init__(self, io: minisio.Server, address: str, stack: contextlib.AsyncExitStack) -> None:
        self.io = io
        self.address = address
        self.stack = stack
        self.conns: dict[str, ClientConnection] = {}
        self.eio: dict[str, str] = {}  # label -> its Engine.IO session id
        self.names: dict[str, str] = {}  # "pid:alice" -> the value seen

    def expand(self, line: Line) -> str:
        def fill(match: re.Match[str]) -> str:
            key = f"{match.group(1)}:{match.group(2)}"
            assert key in self.names, f"protocol.md:{line.number}: {match.group(0)} not seen yet"
            return self.names[key]

        return PLACEHOLDER.sub(fill, line.payload)

    def check(self, line: Line, actual: str) -> None:
        parts, new, pos = [], [], 0
        for match in PLACEHOLDER.finditer(line.payload):
            parts.append(re.escape(line.payload[pos : match.start()]))
            kind, name = match.groups()
            key = f"{kind}:{name}"
            if name is None:
                parts.append(PATTERNS[kind])
            elif key in self.names:
                parts.append(re.escape(self.names[key]))
            else:
                group = f"g{len(new)}"
                new.append((group, key))
                parts.append(f"(?P<{group}>{PATTERNS[kind]})")
            pos = match.end()
        parts.append(re.escape(line.payload[pos:]))
        match = re.fullmatch("".join(parts), actual)
        assert match, (
            f"protocol.md:{line.number}: server sent\n  {actual!r}\nthe document says\n"
            f"  {line.payload!r}"
        )
        for group, key in new:
            value = match.group(group)
            taken = [k for k, v in self.names.items() if v == value]
            assert not taken, f"protocol.md:{line.number}: <{key}> is the value of <{taken[0]}>"
            self.names[key] = value

    async def run(self, line: Line) -> None:
        ws = self.conns.get(line.client)
        if ws is None:
            url = f"ws://{self.address}/socket.io/?EIO=4&transport=websocket"
            ws = await self.stack.enter_async_context(connect(url))
            self.conns[line.client] = ws
        if line.sent and line.payload == "<close 1000>":
            await asyncio.wait_for(ws.close(), 2 * UNIT)
        elif line.sent:
            await ws.send(self.expand(line))
        elif line.payload == "<close 1000>":
            assert ws.close_code == 1000, f"protocol.md:{line.number}: closed {ws.close_code}"
            eio = self.eio[line.client]
            await eventually(lambda: eio not in self.io._sessions)
        else:
            frame = await asyncio.wait_for(ws.recv(), 2 * UNIT)
            assert isinstance(frame, str), f"protocol.md:{line.number}: binary {frame!r}"
            self.check(line, frame)
            if frame.startswith('0{"sid":"'):
                self.eio[line.client] = frame[9:29]

    async def at_rest(self) -> None:
        for label, ws in self.conns.items():
            if ws.close_code is not None:
                continue
            with pytest.raises(TimeoutError):
                frame = await asyncio.wait_for(ws.recv(), QUIET)
                raise AssertionError(f"{label} got a frame the document does not show: {frame!r}")


def test_the_document_has_recovery_examples() -> None:
    assert EXAMPLES and all(example.lines for example in EXAMPLES)
    lines = [line.payload for example in EXAMPLES for line in example.lines]
    assert any('"pid":"<pid:' in text for text in lines)
    assert any("<offset:" in text for text in lines)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
async def test_recovery_example(example: Example) -> None:
    io = make_app()
    async with running(io) as address, contextlib.AsyncExitStack() as stack:
        replay = Replay(io, address, stack)
        for line in example.lines:
            await replay.run(line)
        await replay.at_rest()

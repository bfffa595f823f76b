"""Every wire example in protocol.md, replayed against a running server.

protocol.md writes its examples in fenced ```wire blocks, one line per
frame (the notation is explained at the top of protocol.md):

    > 42["chat","hi"]            a text frame, client -> server
    < 42["chat","hi"]            a text frame, server -> client
    B< 40{"sid":"<sid:bob>"}     the same, for a second connection labelled B
    > <binary 01 02 03 04>       a binary frame, written in hex
    < <close 1000>               a WebSocket close frame: code, then reason
    # ...                        a comment (also blank lines)

Each label (none, ``A``, ``B``, ...) is one TCP connection. A connection
whose first line is an HTTP request (``> GET ...``) speaks HTTP: request
lines up to a lone ``>``, then, for a request with a ``Content-Length``, its
body on one line; response head lines up to a lone ``<``, then the body,
one ``<`` line per line of it (a line break ending the body is not
written; the ``Content-Length`` line shows it). In a body, ``\\x1e`` stands
for the record separator that joins polling packets. One connection may
carry any number of requests, one after the other (keep-alive), each once
the previous answer has been read; after a ``101`` it carries frames. Any
other connection starts right after a standard WebSocket upgrade done by
the test.

A request sent but not answered yet is *held*: when the next line belongs
to another connection, the held request must still be unanswered (nothing
arrives for a moment), since the document shows its answer later, after
what released it.

Client lines are sent as written. Server lines are compared byte for byte
with what arrives; only placeholders vary: ``<sid>`` (any 20-character id),
``<sid:NAME>`` (an id, the same wherever NAME appears, usable in later client
lines), ``<date>`` (an HTTP date) and ``<host>`` (the server's address). A
request must be the exact one a client sends (:func:`canonical`). When a
block ends, each connection must have nothing more to read: every request
answered, no extra frame, and after a closing handshake or a
``Connection: close`` the server must close the TCP connection.

Blocks tagged ``session=NAME`` are parts of one session and run together,
connections included, in document order. A ```trace block tagged
``of=NAME`` lists the exact wire-trace lines the server logs while that
session runs.

The server is :func:`make_app`, which answers the events the document uses;
options in a block's info string (``ping_interval=1``) are passed to
``minisio.Server``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

import minisio

from .conftest import SID, UNIT, running

DOC = Path(__file__).resolve().parent.parent / "protocol.md"

DATE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT"
PLACEHOLDER = re.compile(r"<(sid(?::(\w+))?|date|host)>")
LINE = re.compile(r"([A-Z]?)([<>])(?: (.*))?")
NOTATION = re.compile(r"<(binary|text) [0-9a-f]{2}( [0-9a-f]{2})*>|<close \d{4}>")
HTTP_METHODS = ("GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the example key of RFC 6455

OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8
# Polling packets are joined by the record separator; the document writes it so.
RS, RS_NOTATION = "\x1e", "\\x1e"
POST_TYPE = "text/plain;charset=UTF-8"  # what the official client's POSTs say


# -- the document ---------------------------------------------------------
@dataclass(frozen=True)
class Line:
    number: int  # in protocol.md
    client: str  # "" when the example has one client
    sent: bool  # client -> server
    payload: str


@dataclass
class Example:
    """One ```wire block, or several tagged with the same ``session``."""

    name: str
    options: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    trace: list[tuple[int, str]] | None = None  # (line number, expected trace line)


@dataclass(frozen=True)
class Fence:
    number: int  # line of the opening fence
    info: str
    body: list[tuple[int, str]]


def fences(text: str) -> Iterator[Fence]:
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            start, info, body = i + 1, lines[i][3:].strip(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append((i + 1, lines[i]))
                i += 1
            assert i < len(lines), f"protocol.md:{start}: unclosed fence"
            yield Fence(start, info, body)
        i += 1


def _option(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse(text: str) -> list[Example]:
    examples: dict[str, Example] = {}
    traces: list[tuple[str, Fence]] = []
    for fence in fences(text):
        words = fence.info.split()
        if not words:
            continue
        tags = dict(word.split("=", 1) for word in words[1:])
        if words[0] == "trace":
            traces.append((tags["of"], fence))
            continue
        if words[0] != "wire":
            continue
        name = tags.pop("session", f"line {fence.number}")
        options = {key: _option(value) for key, value in tags.items()}
        example = examples.setdefault(name, Example(name, options))
        assert example.options == options or not tags, (
            f"protocol.md:{fence.number}: a session's options go on its first block"
        )
        for number, raw in fence.body:
            if not raw.strip() or raw.startswith("#"):
                continue
            match = LINE.fullmatch(raw)
            assert match, f"protocol.md:{number}: not a wire line: {raw!r}"
            label, arrow, payload = match.groups()
            example.lines.append(Line(number, label, arrow == ">", payload or ""))
    for of, fence in traces:
        assert of in examples, f"protocol.md:{fence.number}: no session {of!r}"
        examples[of].trace = [(n, raw) for n, raw in fence.body if raw.strip()]
    for example in examples.values():
        texts = [line.payload for line in example.lines]
        for text in texts:
            for name in re.findall(r"<sid:(\w+)>", text):
                uses = sum(t.count(f"<sid:{name}>") for t in texts)
                assert uses >= 2, f"{example.name}: <sid:{name}> used once; write <sid>"
    return list(examples.values())


EXAMPLES = parse(DOC.read_text(encoding="utf-8"))


# -- the server the examples talk to ---------------------------------------
def make_app(**options: Any) -> minisio.Server:
    """Handlers answering every event protocol.md sends."""
    if options.pop("hooks", None) == "doc":  # section 9.5
        options["allow_request"] = lambda request: (
            "banned" if request.query.get("user") == "mallory" else True
        )
        options["handshake_headers"] = lambda request: [("Set-Cookie", "lb=node-1; Path=/")]
        options["response_headers"] = lambda request: {"X-Node": "1"}
    io = minisio.Server(**options)

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        # Volatile emits (section 5.1).
        @socket.on("burst")
        def burst() -> None:
            socket.emit("said", "kept")
            socket.volatile.emit("said", "dropped")

        @socket.on("tick")
        def tick() -> None:
            socket.volatile.emit("said", "tick")

        @socket.on("chat")
        def chat(text: str) -> None:
            io.emit("chat", text)

        @socket.on("sum")
        def add(a: int, b: int) -> int:
            return a + b

        @socket.on("upload")
        def upload(name: str, data: bytes) -> str:
            return f"{name}: {len(data)} bytes"

        @socket.on("thumbnail")
        def thumbnail() -> None:
            socket.emit("thumbnail", b"\x01\x02\x03\x04")

        @socket.on("pair")
        def pair() -> tuple[bytes, bytes]:
            return b"\x01\x02", b"\x03\x04"

        @socket.on("quiz")
        async def quiz() -> None:
            answer = await socket.emit_with_ack("question", "2+2?")
            socket.emit("verdict", answer == 4)

        # The four routes, and rooms.
        @socket.on("everyone")
        def everyone(text: str) -> None:
            io.emit("said", text)

        @socket.on("me")
        def me(text: str) -> None:
            socket.emit("said", text)

        @socket.on("others")
        def others(text: str) -> None:
            socket.broadcast.emit("said", text)

        @socket.on("whisper")
        def whisper(to: str, text: str) -> None:
            io.to(to).emit("said", text)

        @socket.on("join")
        def join(room: str) -> None:
            socket.join(room)

        @socket.on("tell")
        def tell(room: str, text: str) -> None:
            io.to(room).emit("said", text)

        # Leaving, from the server side.
        @socket.on("bye")
        def bye() -> None:
            socket.disconnect()

        @socket.on("ban")
        def ban() -> None:
            socket.disconnect(close=True)

    admin = io.of("/admin")

    @admin.use
    def check_token(socket: minisio.Socket) -> None:
        if socket.handshake.auth.get("token") != "s3cret":
            raise minisio.ConnectionRefused("not authorized")

    @admin.on("connection")
    def admin_connected(socket: minisio.Socket) -> None:
        @socket.on("count")
        def count() -> int:
            return len(admin.sockets)

    return io


# -- a client that shows every byte -------------------------------------------
# How long "nothing arrives" is watched: 0.2 s, scaled for slow machines but
# kept under half a second: the examples run with a 1 s ping interval, and a
# ping is not silence.
QUIET = min(0.2 * UNIT, 0.5)


class Peer:
    """One TCP connection: raw HTTP requests, then perhaps hand-made WebSocket frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.websocket = False
        # HTTP, one request at a time: the one being written, then its answer.
        self.request: list[str] = []  # request lines written so far
        self.body_due = False  # the head is written; its body line comes next
        self.sent = 0  # line in protocol.md that sent the request being answered; 0: none
        self.head_only = False  # that request was a HEAD: its answer has no body
        self.held_checked = False  # that request was seen held while others acted
        self.head: list[str] | None = None  # head lines of the answer still to check
        self.body: list[str] | None = None  # body lines of the answer still to check
        self.status = 0
        self.length = 0
        self.keep_alive = True  # the last HTTP response left the connection open
        self.closing = 0  # close frames seen, either way
        self.close_code: int | None = None  # of the server's close frame

    async def upgrade(self, address: str) -> None:
        """The standard handshake, for examples that start at the open packet."""
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(_request(address, key).encode())
        head = await self.read_head()
        assert head[0] == "HTTP/1.1 101 Switching Protocols", head
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert f"Sec-WebSocket-Accept: {accept}" in head, head
        self.websocket = True

    async def read_head(self) -> list[str]:
        """The response head, line by line; the blank line ending it comes last."""
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 2 * UNIT)
        return raw.decode("latin-1").split("\r\n")[:-1]

    async def read_body(self) -> list[str]:
        """The response body, in the document's notation, line by line."""
        raw = await asyncio.wait_for(self.reader.readexactly(self.length), 2 * UNIT)
        text = raw.decode()
        assert RS_NOTATION not in text, f"a body the notation cannot show: {text!r}"
        lines = text.replace(RS, RS_NOTATION).split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()  # a final line break is not written (Content-Length counts it)
        return lines

    def answered(self) -> None:
        """The answer to the request sent has been read and checked, to its end."""
        self.sent = 0
        self.head = self.body = None
        self.length = 0

    async def held(self) -> None:
        """A request sent and not answered: while another connection acts, it stays so."""
        if not self.sent or self.head is not None or self.held_checked:
            return
        self.held_checked = True
        with pytest.raises(TimeoutError):
            data = await asyncio.wait_for(self.reader.read(1), QUIET)
            raise AssertionError(
                f"protocol.md:{self.sent}: answered at once ({data!r}...), "
                "not held until the document shows its answer"
            )

    def send_frame(self, opcode: int, data: bytes) -> None:
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(header + mask + masked)

    async def read_frame(self, timeout: float) -> str:
        """The next frame from the server, written in the document's notation."""
        read = self.reader.readexactly
        first, second = await asyncio.wait_for(read(2), timeout * UNIT)
        assert first & 0x80 and not second & 0x80, "fragmented or masked frame from the server"
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await read(8))
        data = await read(n)
        opcode = first & 0x0F
        if opcode == OP_TEXT:
            return data.decode()
        if opcode == OP_BINARY:
            return f"<binary {data.hex(' ')}>"
        if opcode == OP_CLOSE:
            self.closing += 1
            (code,) = struct.unpack("!H", data[:2])
            self.close_code = code
            reason = data[2:].decode()
            return f"<close {code}{' ' + reason if reason else ''}>"
        return f"<opcode {opcode:#x} {data.hex(' ')}>"

    async def quiet(self) -> None:
        """No frame arrives for a while."""
        with pytest.raises(TimeoutError):
            frame = await self.read_frame(QUIET / UNIT)
            raise AssertionError(f"a frame the example does not show: {frame!r}")

    async def at_rest(self) -> None:
        """Nothing more to read; after a closing handshake, the TCP connection ends."""
        assert not self.request, "a request the document does not finish"
        assert not self.sent, f"protocol.md:{self.sent}: a request the document shows no answer to"
        if self.closing >= 2:
            leftover = await asyncio.wait_for(self.reader.read(), 2 * UNIT)
            assert leftover == b"", f"bytes after the closing handshake: {leftover!r}"
        elif self.websocket:
            await self.quiet()
        elif self.keep_alive:
            # Kept alive: nothing more arrives, and the connection stays open.
            with pytest.raises(TimeoutError):
                extra = await asyncio.wait_for(self.reader.read(1), QUIET)
                raise AssertionError(f"bytes after the HTTP response: {extra!r}")
        else:
            leftover = await asyncio.wait_for(self.reader.read(), 2 * UNIT)
            assert leftover == b"", f"bytes after the HTTP response: {leftover!r}"
        self.writer.close()


def canonical(request: list[str], address: str, body: str | None = None) -> list[str]:
    """The request a client sends for this request line, headers in our order.

    The server ignores some header bytes (``Host``, or everything once it
    refuses ``EIO=3``); holding the document to one form makes them count.
    A target carrying a ``sid`` has the official client's order,
    ``EIO=4&transport=...&sid=...``; a POST carries the client's
    ``Content-Type`` and the length of its ``body``; an upgrade, the
    headers of RFC 6455 with the RFC's example key.
    """
    method, target, version = request[0].split(" ")
    first = f"{method} {_client_target(target)} {version}"
    if "Upgrade: websocket" in request:
        return [first, *_request(address, RFC_KEY).split("\r\n")[1:-1]]
    if method == "POST":
        length = len((body or "").encode())
        return [
            first,
            f"Host: {address}",
            f"Content-Type: {POST_TYPE}",
            f"Content-Length: {length}",
            "",
        ]
    return [first, f"Host: {address}", ""]


def _client_target(target: str) -> str:
    """``target`` with its query as the official client writes it once it has a sid."""
    path, _, query = target.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "sid" not in params:
        return target
    eio, transport = params.get("EIO", ""), params.get("transport", "")
    return f"{path}?EIO={eio}&transport={transport}&sid={params['sid']}"


def _request(address: str, key: str) -> str:
    return (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {address}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def _header(request: list[str], name: str) -> str | None:
    prefix = f"{name.lower()}: "
    for line in request[1:]:
        if line.lower().startswith(prefix):
            return line[len(prefix) :]
    return None


# -- replaying ---------------------------------------------------------------
class Replay:
    def __init__(self, address: str) -> None:
        self.address = address
        self.peers: dict[str, Peer] = {}
        self.names: dict[str, str] = {}  # <sid:NAME> -> the id seen
        self.checked = 0
        self.current: str | None = None  # the label of the line last run

    def expand(self, line: Line, *, body: bool = False) -> str:
        """A client line with its placeholders filled in (in a body, ``\\x1e`` too)."""

        def fill(match: re.Match[str]) -> str:
            if match.group(1) == "host":
                return self.address
            name = match.group(2)
            assert name in self.names, f"protocol.md:{line.number}: {match.group(0)} not seen yet"
            return self.names[name]

        payload = PLACEHOLDER.sub(fill, line.payload)
        if body:
            assert "<" not in payload, f"protocol.md:{line.number}: unknown placeholder"
            return payload.replace(RS_NOTATION, RS)
        if payload.startswith("<"):
            assert NOTATION.fullmatch(payload), f"protocol.md:{line.number}: unknown notation"
        else:
            assert "<" not in payload, f"protocol.md:{line.number}: unknown placeholder"
        return payload

    def pattern(self, text: str) -> re.Pattern[str]:
        """A server line as a regex: literal bytes, placeholders as patterns."""
        parts, seen, pos = [], set(), 0
        for match in PLACEHOLDER.finditer(text):
            parts.append(re.escape(text[pos : match.start()]))
            kind, name = match.group(1), match.group(2)
            if kind == "date":
                parts.append(DATE)
            elif kind == "host":
                parts.append(re.escape(self.address))
            elif name is None:
                parts.append(SID)
            elif name in self.names:
                parts.append(re.escape(self.names[name]))
            elif name in seen:
                parts.append(f"(?P={name})")
            else:
                seen.add(name)
                parts.append(f"(?P<{name}>{SID})")
            pos = match.end()
        parts.append(re.escape(text[pos:]))
        return re.compile("".join(parts))

    def check(self, line: Line, actual: str) -> None:
        match = self.pattern(line.payload).fullmatch(actual)
        assert match, (
            f"protocol.md:{line.number}: server sent\n  {actual!r}\nthe document says\n"
            f"  {line.payload!r}"
        )
        for name, value in match.groupdict().items():
            self.names.setdefault(name, value)
        self.checked += 1

    async def peer(self, line: Line) -> Peer:
        peer = self.peers.get(line.client)
        if peer is None:
            host, port = self.address.rsplit(":", 1)
            peer = Peer(*await asyncio.open_connection(host, int(port)))
            self.peers[line.client] = peer
            if not (line.sent and line.payload.startswith(HTTP_METHODS)):
                await peer.upgrade(self.address)
        return peer

    async def run(self, line: Line) -> None:
        if line.client != self.current:
            # Another connection acts: a request still unanswered must stay so.
            self.current = line.client
            others = [p for label, p in self.peers.items() if label != line.client]
            await asyncio.gather(*(peer.held() for peer in others))
        peer = await self.peer(line)
        if not peer.websocket:
            await self.http(peer, line)
        elif line.sent:
            await self.send(peer, line)
        else:
            self.check(line, await peer.read_frame(timeout=5))

    async def http(self, peer: Peer, line: Line) -> None:
        if line.sent:
            self.write_request(peer, line)
        else:
            await self.read_answer(peer, line)

    def write_request(self, peer: Peer, line: Line) -> None:
        where = f"protocol.md:{line.number}"
        assert not peer.sent, f"{where}: a request before the answer to the last one was read"
        assert peer.keep_alive, f"{where}: a request on a connection the server closes"
        if peer.body_due:  # the body, on the line after the head
            request, peer.request, peer.body_due = peer.request, [], False
            self.send_request(peer, line, request, self.expand(line, body=True))
            return
        peer.request.append(self.expand(line))
        if line.payload == "":  # the blank line ends the head
            if _header(peer.request, "Content-Length") not in (None, "0"):
                peer.body_due = True
            else:
                request, peer.request = peer.request, []
                self.send_request(peer, line, request, None)

    def send_request(self, peer: Peer, line: Line, request: list[str], body: str | None) -> None:
        assert request == canonical(request, self.address, body), (
            f"protocol.md:{line.number}: not the request a client sends"
        )
        data = ("\r\n".join(request) + "\r\n").encode()
        peer.writer.write(data if body is None else data + body.encode())
        peer.sent = line.number
        peer.head_only = request[0].startswith("HEAD ")
        peer.held_checked = False
        self.checked += len(request) + (body is not None)

    async def read_answer(self, peer: Peer, line: Line) -> None:
        assert peer.sent, f"protocol.md:{line.number}: a server line, and no request to answer"
        if peer.head is None:
            peer.head = await peer.read_head()
            peer.status = int(peer.head[0].split(" ")[1])
            peer.keep_alive = "Connection: close" not in peer.head
        if peer.head:
            actual = peer.head.pop(0)
            self.check(line, actual)
            if actual.startswith("Content-Length: "):
                peer.length = int(actual.split(": ", 1)[1])
            if not peer.head:  # the blank line that ends the head
                if peer.status == 101:
                    peer.websocket = True
                    peer.answered()
                elif peer.length == 0 or peer.head_only:
                    peer.answered()
            return
        if peer.body is None:
            peer.body = await peer.read_body()
        self.check(line, peer.body.pop(0))
        if not peer.body:
            peer.answered()

    async def send(self, peer: Peer, line: Line) -> None:
        payload = self.expand(line)
        if payload.startswith("<binary ") and payload.endswith(">"):
            peer.send_frame(OP_BINARY, bytes.fromhex(payload[8:-1]))
        elif payload.startswith("<text ") and payload.endswith(">"):
            peer.send_frame(OP_TEXT, bytes.fromhex(payload[6:-1]))
        elif payload.startswith("<close "):
            code = int(payload[7:-1])
            # RFC 6455 5.5.1: the answer to a close frame echoes its status code.
            assert peer.close_code in (None, code), f"protocol.md:{line.number}: not an echo"
            if peer.close_code is None:
                # Closing first: the server must have nothing more to say.
                try:
                    await peer.quiet()
                except AssertionError as exc:
                    raise AssertionError(f"protocol.md:{line.number}: before it, {exc}") from None
            peer.send_frame(OP_CLOSE, struct.pack("!H", code))
            peer.closing += 1
        else:
            peer.send_frame(OP_TEXT, payload.encode())
        self.checked += 1


async def replay(example: Example) -> int:
    """Run one example; return how many of its lines were sent or checked."""
    io = make_app(**example.options)
    async with running(io) as address:
        session = Replay(address)
        try:
            for line in example.lines:
                try:
                    await session.run(line)
                except (TimeoutError, asyncio.IncompleteReadError) as exc:
                    where = f"protocol.md:{line.number}: {line.payload!r}"
                    raise AssertionError(f"{where}: nothing arrived ({exc!r})") from None
            await asyncio.gather(*(peer.at_rest() for peer in session.peers.values()))
        finally:
            for peer in session.peers.values():
                peer.writer.close()
    return session.checked


_RAN: set[str] = set()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
async def test_example(example: Example) -> None:
    assert await replay(example) == len(example.lines)
    _RAN.add(example.name)


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.trace is not None], ids=lambda e: e.name
)
async def test_trace_example(example: Example, caplog: pytest.LogCaptureFixture) -> None:
    assert example.trace is not None
    example.options["trace"] = True
    try:
        with caplog.at_level(logging.INFO, logger="minisio.trace"):
            await replay(example)
    finally:
        del example.options["trace"]
    logged = [r.getMessage() for r in caplog.records if r.name == "minisio.trace"]
    session = Replay("")
    for (number, expected), actual in zip(example.trace, logged, strict=False):
        session.check(Line(number, "", False, expected), actual)
    assert len(logged) == len(example.trace), logged


def test_examples_found() -> None:
    """The parser saw every wire block, and no frame hides outside one."""
    text = DOC.read_text(encoding="utf-8")
    blocks = [f for f in fences(text) if f.info.split()[:1] == ["wire"]]
    assert len(blocks) >= 10
    assert sum(len(e.lines) for e in EXAMPLES) == sum(
        1 for f in blocks for _, raw in f.body if raw.strip() and not raw.startswith("#")
    )
    assert any(e.trace for e in EXAMPLES)
    for fence in fences(text):
        # ```recovery blocks (section 14) are replayed by tests/test_recovery_doc.py.
        if fence.info.split()[:1] not in (["wire"], ["trace"], ["recovery"]):
            for number, raw in fence.body:
                assert not LINE.fullmatch(raw), f"protocol.md:{number}: a frame outside ```wire"


async def test_every_example_ran() -> None:
    """Each example ran: those not selected in this session run now."""
    for example in EXAMPLES:
        if example.name not in _RAN:
            assert await replay(example) == len(example.lines)
            _RAN.add(example.name)

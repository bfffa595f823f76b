"""Hostile input over a real socket: every malformed frame gets a precise reaction.

Each case is one row: what a client sends, and what the server must do about
it (close with a given code and disconnect reason, or answer and stay open).
After every case a control client on the same server must still receive a
broadcast, and nothing of the hostile session may be left behind.

A property-based test then throws random frames at one live server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import threading
import tracemalloc
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.protocol import OPEN

import minisio

from .conftest import UNIT, RawClient, eventually, raw_client, running

MAX_PAYLOAD = 4096
MAX_ATTACHMENTS = 3
MAX_DEPTH = 8
MAX_NAMESPACES = 3


class RawText(bytes):
    """Bytes sent as a *text* frame as they are, valid UTF-8 or not."""


class Fragments(tuple[str, ...]):
    """One text message sent as several WebSocket frames (continuation frames)."""


Frame = str | bytes | Fragments


@dataclass(frozen=True)
class Close:
    """The server closes with ``code``; a joined socket sees ``reason``."""

    code: int
    reason: str = "parse error"


@dataclass(frozen=True)
class Stay:
    """The server answers with ``frames`` (regexes for text) and keeps the session."""

    frames: tuple[str | bytes, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    send: tuple[Frame, ...]
    expect: Close | Stay
    join: bool = True
    extra: tuple[str, ...] = field(default=())  # namespaces joined first


def placeholder(n: object) -> str:
    return '{"_placeholder":true,"num":%s}' % ("null" if n is None else n)


P0 = placeholder(0)
PROTO = Close(1002)
BAD_UTF8 = Close(1007, "transport error")
TOO_BIG = Close(1009, "transport error")

CASES: list[Case] = [
    # -- Engine.IO --------------------------------------------------------
    Case("eio empty text frame", ("",), PROTO),
    Case("eio unknown type 9", ("9",), PROTO),
    Case("eio unknown type letter", ("x",), PROTO),
    Case("eio client ping", ("2",), PROTO),
    Case("eio client ping probe", ("2probe",), PROTO),
    Case("eio upgrade", ("5",), PROTO),
    Case("eio open from client", ("0",), PROTO),
    Case("eio open with payload", ('0{"sid":"x"}',), PROTO),
    Case("eio unsolicited pong is ignored", ("3",), Stay()),
    Case("eio binary frame, no attachment expected", (b"\x01\x02",), PROTO),
    Case("eio empty binary frame", (b"",), PROTO),
    Case("eio close packet", ("1",), Close(1000, "transport close")),
    Case("eio noop is ignored", ("6",), Stay()),
    Case("eio open before joining", ("0",), PROTO, join=False),
    Case("eio binary before joining", (b"x",), PROTO, join=False),
    # -- WebSocket layer -------------------------------------------------
    Case("ws invalid utf-8 text", (RawText(b'42["echo","\xff\xfe"]'),), BAD_UTF8),
    Case("ws truncated utf-8 text", (RawText(b"42\xe2\x82"),), BAD_UTF8),
    Case("ws utf-16 surrogate", (RawText(b"4\xed\xa0\x80"),), BAD_UTF8),
    Case("ws text above max_payload", ("4" + "x" * MAX_PAYLOAD,), TOO_BIG),
    Case("ws binary above max_payload", (b"x" * (MAX_PAYLOAD + 1),), TOO_BIG),
    Case("ws huge frame before joining", ("4" * 100_000,), TOO_BIG, join=False),
    Case(
        "ws fragments above max_payload",
        (Fragments(["42", '["echo","', *["x" * 1000] * 5, '"]']),),
        TOO_BIG,
    ),
    Case(
        "ws fragments within max_payload are fine",
        (Fragments(["42", '1["echo",', '"ab"]']),),
        Stay((re.escape('431["ab"]'),)),
    ),
    # -- Socket.IO: shape ------------------------------------------------
    Case("sio empty message", ("4",), PROTO),
    Case("sio unknown type 7", ("47",), PROTO),
    Case("sio unknown type space", ('4 ["echo"]',), PROTO),
    Case("sio invalid json", ("42{",), PROTO),
    Case("sio truncated json", ('42["echo"',), PROTO),
    Case("sio trailing garbage", ('42["echo"]x',), PROTO),
    Case("sio NaN", ('42["echo",NaN]',), PROTO),
    Case("sio event not array", ('42{"a":1}',), PROTO),
    Case("sio event string", ('42"echo"',), PROTO),
    Case("sio event empty array", ("42[]",), PROTO),
    Case("sio event without payload", ("42",), PROTO),
    Case("sio event name number", ("42[1]",), PROTO),
    Case("sio event name null", ("42[null]",), PROTO),
    Case("sio event name object", ('42[{"a":1}]',), PROTO),
    *[
        Case(f"sio reserved event {name}", (f'42["{name}"]',), PROTO)
        for name in sorted(minisio.sio.RESERVED_EVENTS)
    ],
    Case("sio ack not array", ('431{"a":1}',), PROTO),
    Case("sio ack without payload", ("431",), PROTO),
    Case("sio ack without id", ("43[]",), PROTO),
    Case("sio ack id too long", ("4312345678901234567[]",), PROTO),
    Case("sio ack id 2**53", ("439007199254740992[]",), PROTO),
    Case("sio event ack id 2**53", ('429007199254740992["echo"]',), PROTO),
    Case("sio ack for an unknown id is ignored", ("4399[]",), Stay()),
    Case("sio ack id on CONNECT", ("4012",), PROTO, join=False),
    Case("sio CONNECT payload array", ("40[1]",), PROTO, join=False),
    Case("sio CONNECT payload string", ('40"x"',), PROTO, join=False),
    Case("sio DISCONNECT with payload", ('41{"a":1}',), PROTO),
    Case("sio namespace too long", ("40/" + "a" * 300,), PROTO, join=False),
    Case("sio namespace too long with comma", ("40/" + "a" * 300 + ",",), PROTO, join=False),
    Case("sio JSON deeper than max_depth", ('42["echo",' + "[" * 9 + "]" * 9 + "]",), PROTO),
    Case("sio JSON objects too deep", ('42["echo",' + '{"a":' * 9 + "1" + "}" * 9 + "]",), PROTO),
    Case("sio JSON 2000 deep", ('42["echo",' + "[" * 2000 + "]" * 2000 + "]",), PROTO),
    Case(
        "sio JSON at max_depth is fine",
        ('421["echo",' + "[" * 7 + "]" * 7 + "]",),
        Stay(("431" + re.escape("[" * 8 + "]" * 8),)),
    ),
    # -- Socket.IO: binary attachments ------------------------------------
    Case("bin count not a number", (f'45x-["echo",{P0}]', b"a"), PROTO),
    Case("bin count negative", (f'45-1-["echo",{P0}]', b"a"), PROTO),
    Case("bin count empty", (f'45-["echo",{P0}]', b"a"), PROTO),
    Case("bin count without dash", (f'451["echo",{P0}]', b"a"), PROTO),
    Case("bin count above max_attachments", (f'45{MAX_ATTACHMENTS + 1}-["echo",{P0}]',), PROTO),
    Case("bin count huge", (f'4599999999999-["echo",{P0}]',), PROTO),
    Case("bin count unicode digits", (f'45\u0661-["echo",{P0}]', b"a"), PROTO),
    Case("bin placeholder out of range", (f'451-["echo",{placeholder(1)}]', b"a"), PROTO),
    Case("bin placeholder negative", (f'451-["echo",{placeholder(-1)}]', b"a"), PROTO),
    Case("bin placeholder num string", ('451-["echo",' + placeholder('"0"') + "]", b"a"), PROTO),
    Case("bin placeholder num true", (f'451-["echo",{placeholder("true")}]', b"a"), PROTO),
    Case("bin placeholder num null", (f'451-["echo",{placeholder(None)}]', b"a"), PROTO),
    Case("bin attachment without placeholder", (f'452-["echo",{P0}]', b"a", b"b"), PROTO),
    Case("bin text while waiting", (f'452-["echo",{P0},{placeholder(1)}]', b"a", '42["x"]'), PROTO),
    Case(
        "bin attachments too large in total",
        (
            f'452-["echo",{P0},{placeholder(1)}]',
            b"a" * (MAX_PAYLOAD - 100),
            b"b" * (MAX_PAYLOAD - 100),
        ),
        PROTO,
    ),
    Case("bin ack without id", (f"461-[{P0}]", b"a"), PROTO),
    Case(
        "bin event round trip is fine",
        (f'451-7["echo",{P0}]', b"\x00\xff"),
        Stay((re.escape(f"461-7[{P0}]"), b"\x00\xff")),
    ),
    # -- Socket.IO: state --------------------------------------------------
    Case("state event before CONNECT", ('42["echo"]',), PROTO, join=False),
    Case("state ack before CONNECT", ("431[]",), PROTO, join=False),
    Case("state DISCONNECT before CONNECT", ("41",), PROTO, join=False),
    Case("state packet for a namespace not joined", ('42/admin,["echo"]',), PROTO),
    Case("state namespace without comma", ('42/admin["echo"]',), PROTO),
    Case("state DISCONNECT for a namespace not joined", ("41/admin,",), PROTO),
    Case("state second CONNECT", ("40",), PROTO),
    Case("state second CONNECT with auth", ('40{"token":"x"}',), PROTO),
    Case("state CONNECT_ERROR from a client", ('44{"message":"x"}',), PROTO),
    Case("state CONNECT_ERROR string from a client", ('44"x"',), PROTO),
    Case(
        "state event after leaving",
        ("41", '42["echo"]'),
        Close(1002, "client namespace disconnect"),
    ),
    Case(
        "state CONNECT to an unknown namespace",
        ("40/nope,",),
        Stay((re.escape('44/nope,{"message":"Invalid namespace"}'),)),
    ),
    Case(
        "state too many namespaces",
        ("40/c,",),
        Stay((re.escape('44/c,{"message":"Too many namespaces"}'),)),
        extra=("/admin", "/b"),
    ),
]


# -- harness ---------------------------------------------------------------
def make_server(**limits: object) -> tuple[minisio.Server, dict[str, str]]:
    """A server with tight limits; returns it and a map socket id -> disconnect reason."""
    io = minisio.Server(
        max_payload=MAX_PAYLOAD,
        max_attachments=MAX_ATTACHMENTS,
        max_depth=MAX_DEPTH,
        max_namespaces=MAX_NAMESPACES,
        **limits,  # type: ignore[arg-type]
    )
    reasons: dict[str, str] = {}

    def connection(socket: minisio.Socket) -> None:
        socket.on("echo", lambda *args: tuple(args))
        socket.on("disconnect", lambda reason: reasons.__setitem__(socket.id, reason))

    for name in ("/", "/admin", "/b", "/c"):
        io.of(name).on("connection", connection)
    return io, reasons


async def send_frame(client: RawClient, frame: Frame) -> None:
    if isinstance(frame, RawText):
        # Bypass the client's encoding to put arbitrary bytes in a text frame.
        client.ws.protocol.send_text(bytes(frame))
        client.ws.send_data()
    elif isinstance(frame, Fragments):
        await client.ws.send(iter(frame))
    else:
        await client.send(frame)


async def play(io: minisio.Server, reasons: dict[str, str], address: str, case: Case) -> None:
    """Run one case against a live server that already has a control client."""
    before = len(io._sessions)
    async with raw_client(address) as hostile:
        sid = await hostile.join() if case.join else None
        for namespace in case.extra:
            await hostile.join(namespace)
        for frame in case.send:
            with contextlib.suppress(ConnectionClosed):  # the server may have closed already
                await send_frame(hostile, frame)
        if isinstance(case.expect, Close):
            assert await hostile.closed() == case.expect.code, case.name
            await eventually(lambda: len(io._sessions) == before, interval=0.005)
            if sid is not None:
                assert reasons.pop(sid) == case.expect.reason, case.name
                assert sid not in io.sockets
        else:
            for expected in case.expect.frames:
                frame = await hostile.recv()
                if isinstance(expected, bytes):
                    assert frame == expected, case.name
                else:
                    assert isinstance(frame, str), case.name
                    assert re.fullmatch(expected, frame), (case.name, frame)
            await hostile.expect_nothing()
            assert hostile.ws.protocol.state is OPEN, case.name
            if sid is not None:  # still served
                await hostile.send('4242["echo","alive"]')
                await hostile.expect('4342["alive"]')
    if sid is not None:
        await eventually(lambda: sid not in io.sockets, interval=0.005)
    await eventually(lambda: len(io._sessions) == before, interval=0.005)


async def control_alive(io: minisio.Server, control: RawClient, n: int) -> None:
    """The control client still gets a broadcast and answers an ack."""
    io.emit("check", n)
    await control.expect(f'42["check",{n}]')
    await control.send(f'42{n}["echo",{n}]')
    await control.expect(f"43{n}[{n}]")


@contextlib.asynccontextmanager
async def hostile_server() -> AsyncIterator[tuple[minisio.Server, dict[str, str], str, RawClient]]:
    io, reasons = make_server()
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        yield io, reasons, address, control


def test_case_count() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_hostile_case(case: Case) -> None:
    async with hostile_server() as (io, reasons, address, control):
        await play(io, reasons, address, case)
        await control_alive(io, control, 1)
        assert len(io.sockets) == 1


async def test_every_case_against_one_server() -> None:
    async with hostile_server() as (io, reasons, address, control):
        for n, case in enumerate(CASES):
            await play(io, reasons, address, case)
            await control_alive(io, control, n)
        assert len(io.sockets) == 1
        assert set(io.main.adapter.sids) == set(io.sockets)
        for name in ("/admin", "/b", "/c"):
            assert not io.of(name).sockets and not io.of(name).adapter.rooms


async def test_silent_client_is_cut_by_connect_timeout() -> None:
    io, _ = make_server(connect_timeout=0.2 * UNIT)
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        async with raw_client(address) as silent:
            assert await silent.closed() == 1000
        await eventually(lambda: len(io._sessions) == 1, interval=0.005)
        await control_alive(io, control, 1)


async def test_client_that_stops_answering_pings_is_cut() -> None:
    io, reasons = make_server(ping_interval=0.1 * UNIT, ping_timeout=0.1 * UNIT)
    async with running(io) as address, raw_client(address) as mute:
        sid = await mute.join()
        await mute.expect("2")
        assert await mute.closed() == 1000
        assert reasons[sid] == "ping timeout"


# -- property-based fuzzing ---------------------------------------------------
class ServerThread:
    """A live server on its own event loop, so a sync hypothesis test can drive it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.io, self.reasons = make_server()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.main(),))

    async def main(self) -> None:
        self.stop = asyncio.Event()
        async with running(self.io) as address, raw_client(address) as control:
            self.address = address
            await control.join()
            self.control = control
            self.ready.set()
            await self.stop.wait()

    def run(self, coro: Coroutine[Any, Any, None], timeout: float = 10) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout * UNIT)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(5 * UNIT)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5 * UNIT)
        self.loop.close()


class ErrorLog(logging.Handler):
    """Collects records at ERROR and above from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def errors_logged() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


_prefixes = st.sampled_from(
    ["", "0", "1", "2", "3", "4", "5", "6", "9", "40", "41", "42", "421", "43", "431", "44",
     "45", "451-", "452-", "453-", "46", "461-1", "42/admin,", "40/admin,", "41/admin,", "4"]
)  # fmt: skip
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
).map(lambda value: orjson.dumps(value).decode())
_placeholders = st.integers(-2, 4).map(placeholder)
_texts = st.one_of(
    st.tuples(_prefixes, st.text(max_size=40)).map("".join),
    st.tuples(_prefixes, _json).map("".join),
    st.tuples(_prefixes, st.lists(_json | _placeholders, max_size=4)).map(
        lambda t: t[0] + '["echo",' + ",".join(t[1]) + "]" if t[1] else t[0] + '["echo"]'
    ),
)
_frames = st.one_of(
    _texts,
    st.binary(max_size=64),
    st.binary(max_size=16).map(RawText),
    st.builds(bytes, st.just(MAX_PAYLOAD + 1)),  # one byte over the limit
)


@pytest.fixture(scope="module")
def live() -> Iterator[ServerThread]:
    with ServerThread() as server:
        yield server


_fuzz_round = 0


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(join=st.booleans(), frames=st.lists(_frames, min_size=1, max_size=6))
def test_fuzz_random_frames(live: ServerThread, join: bool, frames: list[Frame]) -> None:
    global _fuzz_round
    _fuzz_round += 1
    n = _fuzz_round

    async def attack() -> None:
        async with raw_client(live.address) as hostile:
            if join:
                await hostile.join()
            for frame in frames:
                if hostile.ws.protocol.state is not OPEN:
                    break
                with contextlib.suppress(minisio.MinisioError, OSError, ConnectionClosed):
                    await send_frame(hostile, frame)
            # Whatever the server answers, the session ends: by it, or by us.
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                while True:
                    await hostile.recv(0.05)
        await eventually(lambda: len(live.io._sessions) == 1, interval=0.005)
        assert len(live.io.sockets) == 1
        await control_alive(live.io, live.control, n)

    with errors_logged() as log:
        live.run(attack())
    assert not log.records, [record.getMessage() for record in log.records]


# 100,000 empty objects: ~0.3 MB of JSON, ~7 MB once decoded. Empty dicts are
# not tracked by the garbage collector, so they hardly ever trigger it.
MANY = ",".join(["{}"] * 100_000)


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(['40{"auth":[' + MANY + "]}"], id="connect auth"),
        pytest.param(
            ["40", '451-["e",[' + MANY + "]," + '{"_placeholder":true,"num":0}]'],
            id="awaiting attachment",
        ),
    ],
)
async def test_a_closed_session_frees_what_it_held_without_the_garbage_collector(
    frames: list[str],
) -> None:
    # Sessions and sockets used to sit in reference cycles (WebSocket <->
    # session, socket <-> handler closures): a peer could open sessions with
    # big payloads, close them, and memory grew until a collection happened.
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("e")
        def e(*args: Any) -> None:
            socket.emit("e")  # a handler that closes over its socket, as most do

    tracemalloc.start()
    gc.collect()
    gc.disable()
    try:
        async with running(io) as address:
            growth = []
            for _ in range(3):
                before = tracemalloc.get_traced_memory()[0]
                async with raw_client(address) as client:
                    for frame in frames:
                        await client.send(frame)
                        if frame.startswith("40"):
                            await client.recv()
                    await asyncio.sleep(0.05 * UNIT)
                await eventually(lambda: not io._sessions, timeout=10)
                growth.append(tracemalloc.get_traced_memory()[0] - before)
        # ~7 MB per session when it stays; a few KB of other state otherwise.
        assert max(growth) < 1_000_000, growth
    finally:
        gc.enable()
        tracemalloc.stop()

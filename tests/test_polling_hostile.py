"""Hostile input over HTTP long-polling: only the offending session pays for it.

Every case runs against a live server that also has a CONTROL client, a
raw WebSocket client joined to "/": after the case it must still receive a
broadcast and answer an ack, and nothing of the hostile session may be left
behind (``io._sessions``, ``io.sockets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import minisio

from .conftest import UNIT, RawClient, eventually, raw_client, running
from .test_polling import (
    CLOSE,
    PHRASES,
    UNKNOWN_SID,
    Http,
    held,
    http,
    join,
    make_server,
    ok,
    poll,
    refusal,
    response,
)
from .test_polling import eio as target
from .test_polling import handshake as open_session

MAX_PAYLOAD = 2**20
PLAIN = ("Content-Type", "text/plain; charset=utf-8")


def http_error(status: int) -> bytes:
    """minisio's answer to a request it cannot read, before it closes the connection."""
    return response(status, (PLAIN, CLOSE), f"{PHRASES[status]}\n".encode())


@dataclass
class PollingClient:
    """A session over polling, joined to "/": POSTs on ``conn``, GETs on ``poller``."""

    sid: str
    socket_id: str
    conn: Http
    poller: Http

    @property
    def url(self) -> str:
        return target(self.sid)


@contextlib.asynccontextmanager
async def polling_client(address: str, **expected: Any) -> AsyncIterator[PollingClient]:
    async with http(address) as conn, http(address) as poller:
        sid = await open_session(conn, max_payload=MAX_PAYLOAD, **expected)
        yield PollingClient(sid, await join(conn, sid), conn, poller)


class Control:
    """The control client: a raw WebSocket client joined to "/" that answers pings itself."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.client.ws:
                if frame == "2":
                    await self.client.send("3")
                else:
                    self.frames.put_nowait(frame)

    @property
    def sid(self) -> str:
        return self.client.open[9:29]

    async def send(self, frame: str) -> None:
        await self.client.send(frame)

    async def expect(self, expected: str) -> None:
        assert await asyncio.wait_for(self.frames.get(), 2 * UNIT) == expected

    def stop(self) -> None:
        self._reader.cancel()


@contextlib.asynccontextmanager
async def hostile_server(
    **options: Any,
) -> AsyncIterator[tuple[minisio.Server, list[Any], str, Control]]:
    io, log = make_server(max_payload=MAX_PAYLOAD, **options)
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        control = Control(client)
        try:
            yield io, log, address, control
        finally:
            control.stop()


async def control_alive(io: minisio.Server, control: Control, n: int) -> None:
    """The control client still gets a broadcast and answers an ack."""
    io.emit("check", n)
    await control.expect(f'42["check",{n}]')
    await control.send(f'42{n}["echo",{n}]')
    await control.expect(f"43{n}[{n}]")


async def control_alone(io: minisio.Server, control: Control, n: int) -> None:
    """The control client is alive, and nothing of any other session is left."""
    await control_alive(io, control, n)
    await eventually(lambda: len(io._sessions) == 1, interval=0.005)
    assert len(io.sockets) == 1
    assert set(io.main.adapter.sids) == set(io.sockets)


async def close_session(address: str, sid: str) -> None:
    """End a session that survived its case, as a client does: POST ``1``."""
    async with http(address) as conn:
        assert await conn.post(target(sid), "1") == ok()
        assert await conn.get(target(sid)) == poll("1")  # the close packet owed to a GET


async def still_served(address: str, sid: str) -> None:
    """The session answers an ack, on fresh connections."""
    async with http(address) as conn:
        assert await conn.post(target(sid), '429["echo","alive"]') == ok()
        assert await conn.get(target(sid)) == poll('439["alive"]')


async def ended(io: minisio.Server, client: PollingClient, log: list[Any], reason: str) -> None:
    """The session is gone with ``reason``; a later request is told its sid is unknown."""
    await eventually(lambda: ("disconnect", reason) in log)
    await eventually(lambda: client.sid not in io._sessions)
    assert client.socket_id not in io.sockets
    async with http(client.conn.address) as late:
        assert await late.get(client.url) == UNKNOWN_SID


# -- malformed payloads in a POST ---------------------------------------------------


@dataclass(frozen=True)
class Payload:
    name: str
    body: bytes
    handled: tuple[Any, ...] = ()  # what the handlers saw before the fault
    reason: str = "parse error"


P0 = '{"_placeholder":true,"num":0}'
PAYLOADS = [
    Payload("unknown packet type 9", b"9"),
    Payload("unknown packet type letter", b"x"),
    Payload("bad base64", b"b!!!"),
    Payload("base64 without its padding", b"bAQI"),
    # (The reference handles the packets before an empty record; minisio
    # refuses the payload as a whole. Either way the session ends.)
    Payload("empty record", b'42["a"]\x1e\x1e'),
    Payload("leading separator", b'\x1e42["a"]'),
    Payload("only separators, a megabyte of them", b"\x1e" * MAX_PAYLOAD),
    Payload("invalid utf-8", b'42["a","\xff\xfe"]'),
    Payload("truncated utf-8", b'42["a","\xe2\x82'),
    Payload("utf-16 surrogate", b'42["a","\xed\xa0\x80"]'),
    Payload("a fault after a good packet", b'42["a",1]\x1e9', handled=(("a", 1),)),
    Payload("client ping", b"2"),  # "transport error" in the reference
    Payload("upgrade packet outside a probe", b"5"),
    Payload("open packet from a client", b'0{"sid":"x"}'),
    Payload("empty Socket.IO message", b"4"),
    Payload("invalid json", b"42{"),
    Payload("binary record nobody waits for", b"bAQID"),
    Payload("attachment count above max", b'4599-["a",' + P0.encode() + b"]"),
    Payload("second CONNECT", b"40"),
    Payload("event for a namespace not joined", b'42/admin,["a"]'),
    Payload("close packet", b"1", reason="transport close"),
]


@pytest.mark.parametrize("case", PAYLOADS, ids=[case.name for case in PAYLOADS])
async def test_malformed_payload_closes_that_session_only(case: Payload) -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            pending = client.poller.start_get(client.url)
            await held(pending, 0.05)
            # The POST is answered "ok" as in the reference (onData, then "ok");
            # the session ends and its held GET gets the close packet.
            assert await client.conn.post(client.url, case.body) == ok()
            assert (await pending).raw == poll("1")
            assert log == [*case.handled, ("disconnect", case.reason)]
            await ended(io, client, log, case.reason)
        await control_alone(io, control, 1)


async def test_every_payload_against_one_server() -> None:
    async with hostile_server() as (io, log, address, control):
        for n, case in enumerate(PAYLOADS):
            async with polling_client(address) as client:
                assert await client.conn.post(client.url, case.body) == ok()
                # No GET was held: the next one gets the close packet, the one
                # after 400. (The reference forgets the sid at once: 400 now.)
                assert await client.poller.get(client.url) == poll("1")
                await ended(io, client, log, case.reason)
            await control_alone(io, control, n)
        assert len(log) == len(PAYLOADS) + sum(len(case.handled) for case in PAYLOADS)


async def test_many_tiny_chunks_cost_linear_time() -> None:
    # The size check of a chunked body used to sum the sizes of every chunk
    # so far at each chunk: 30,000 one-byte chunks took ~10 s of event loop.
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            n = 30_000
            body = b'42["a","' + b"x" * (n - 10) + b'"]'
            assert len(body) == n
            head = client.conn.request("POST", client.url, ("Transfer-Encoding", "chunked"))
            chunks = b"".join(b"1\r\n%c\r\n" % c for c in body)
            loop = asyncio.get_running_loop()
            start = loop.time()
            client.conn.send(head + chunks + b"0\r\n\r\n")
            assert (await client.conn.response()).raw == ok()
            assert loop.time() - start < 1 * UNIT
            assert log == [("a", "x" * (n - 10))]
            await close_session(address, client.sid)
        await control_alone(io, control, 1)


# -- bytes that are not HTTP --------------------------------------------------------


async def test_garbage_after_a_request_head() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            # A held GET with garbage pipelined behind it: the garbage waits its
            # turn, then costs that connection only.
            poller = client.poller
            poller.send(poller.request("GET", client.url) + b"\x00\x01garbage\r\n\r\n")
            pending = asyncio.ensure_future(poller.response())
            await held(pending, 0.05)
            await control_alive(io, control, 1)  # a broadcast: to the held GET too
            assert (await pending).raw == poll('42["check",1]')
            assert (await poller.response()).raw == http_error(400)
            await poller.closed()
            # A body longer than its Content-Length: the rest is read as the next request.
            conn = client.conn
            conn.send(
                conn.request("POST", client.url, ("Content-Length", "7"))
                + b'42["a"]\x1e42["b"]\r\n\r\n'
            )
            assert (await conn.response()).raw == ok()
            assert (await conn.response()).raw == http_error(400)
            await conn.closed()
            assert log == [("a",)]
            await still_served(address, client.sid)
            await close_session(address, client.sid)
        await control_alone(io, control, 2)


def _head(url: str, *lines: str) -> bytes:
    return ("\r\n".join([f"GET {url} HTTP/1.1", "Host: x", *lines]) + "\r\n\r\n").encode()


def _unfinished(prefix: str, size: int) -> bytes:
    """A head of ``size`` bytes that has not ended: exactly what the server must read."""
    data = prefix.encode()
    return data + b"x" * (size - len(data))


MAX_HEAD = 64 * 1024
HUGE_HEADS = [
    # Heads past 64 KiB are sent only up to the byte that passes the limit, so
    # that the server has read all that was sent when it closes (no reset).
    ("a 64 KiB header", lambda url: _unfinished(f"GET {url} HTTP/1.1\r\nX: ", MAX_HEAD + 1), 431),
    ("a 64 KiB request target", lambda url: _unfinished(f"GET {url}&x=", MAX_HEAD + 1), 414),
    ("a header line over 8 KiB", lambda url: _head(url, "X-Long: " + "x" * 9000), 431),
    ("a request target over 8 KiB", lambda url: _head(url + "&x=" + "x" * 9000), 414),
    ("200 header lines", lambda url: _head(url, *(f"X-{i}: x" for i in range(200))), 431),
]


@pytest.mark.parametrize(("name", "build", "status"), HUGE_HEADS, ids=[h[0] for h in HUGE_HEADS])
async def test_huge_headers_are_refused(name: str, build: Any, status: int) -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client, http(address) as bad:
            bad.send(build(client.url))
            assert (await bad.response()).raw == http_error(status)
            await bad.closed()
            # The request never reached the session: it goes on.
            await still_served(address, client.sid)
            assert log == []
            await close_session(address, client.sid)
        await control_alone(io, control, 1)


async def test_a_head_that_never_ends_is_cut_at_handshake_timeout() -> None:
    async with hostile_server(handshake_timeout=0.3 * UNIT) as (io, log, address, control):
        async with http(address) as slow:
            slow.send(f"GET {target()} HTTP/1.1\r\nHost: x\r\n".encode())
            await control_alive(io, control, 1)
            await slow.closed()  # no answer: there was no request to answer
        assert log == []
        await control_alone(io, control, 2)


# -- clients that stop reading, or never poll -----------------------------------------


async def test_a_client_that_stops_polling_is_cut_at_max_buffer() -> None:
    max_buffer = 1_000_000
    async with hostile_server(max_buffer=max_buffer) as (io, log, address, control):
        async with polling_client(address) as client:
            polling = io._sessions[client.sid].transport
            assert isinstance(polling, minisio.polling.Polling)
            chunk = "x" * 10_000
            item = len(f'42["big","{chunk}"]') + 1  # and its separator
            gc.collect()
            gc.disable()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                emits = 0
                while client.sid in io._sessions:
                    assert emits <= max_buffer // item, "not cut at max_buffer"
                    io.to(client.socket_id).emit("big", chunk)
                    emits += 1
                # Cut by the first emit that passed max_buffer, and gone at
                # once: it will never take what it was owed.
                assert emits == max_buffer // item + 1
                assert polling.queue == [] and polling.queued == 0
                assert polling.session is None
                await eventually(lambda: log == [("disconnect", "transport error")])
                growth = tracemalloc.get_traced_memory()[0] - before
                assert growth < max_buffer // 10, growth
            finally:
                tracemalloc.stop()
                gc.enable()
            assert await client.poller.get(client.url) == UNKNOWN_SID
        await control_alone(io, control, 1)


async def test_a_client_that_never_polls_is_dropped_at_its_ping_timeout() -> None:
    options = {"ping_interval": 0.1 * UNIT, "ping_timeout": 0.1 * UNIT}
    ms = round(100 * UNIT)
    async with hostile_server(**options) as (io, log, address, control):
        io.close_timeout = 0.3 * UNIT  # how long the close packet waits for a GET
        async with polling_client(address, ping_interval=ms, ping_timeout=ms) as client:
            await eventually(lambda: ("disconnect", "ping timeout") in log)
            # Its transport keeps the close packet for a GET a while ...
            assert client.sid in io._sessions
            # ... then goes, with no request ever made.
            await eventually(lambda: client.sid not in io._sessions)
            assert await client.poller.get(client.url) == UNKNOWN_SID
        async with polling_client(address, ping_interval=ms, ping_timeout=ms) as late:
            await eventually(lambda: log.count(("disconnect", "ping timeout")) == 2)
            # A GET in time gets what was queued (the ping), and the close packet.
            assert await late.poller.get(late.url) == poll("2\x1e1")
            assert late.sid not in io._sessions
            assert await late.poller.get(late.url) == UNKNOWN_SID
        assert log == [("disconnect", "ping timeout")] * 2
        await control_alone(io, control, 1)  # it answered its pings meanwhile


async def test_a_held_get_whose_connection_is_reset_ends_the_session() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            async with http(address) as doomed:
                pending = doomed.start_get(client.url)
                await held(pending, 0.05)
                pending.cancel()
                # SO_LINGER 0: close() resets the connection instead of a FIN.
                sock = doomed.writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # "poll connection closed prematurely" in the reference.
            await ended(io, client, log, "transport error")
        await control_alone(io, control, 1)


async def test_overlapping_posts_end_the_session() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client, http(address) as other:
            pending = client.poller.start_get(client.url)
            client.conn.send(
                client.conn.request("POST", client.url, ("Content-Length", "100")) + b"42"
            )
            await held(pending, 0.05)
            # "data request overlap from client": a bare 400, and the session closes.
            # (Its body is left unread, so the connection closes too.)
            assert await other.post(client.url, '42["a"]') == response(400, (CLOSE,))
            assert (await pending).raw == poll("1")
            await ended(io, client, log, "transport error")
            assert log == [("disconnect", "transport error")]
        await control_alone(io, control, 1)


async def test_a_binary_post_body_ends_the_session() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client, http(address) as other:
            pending = client.poller.start_get(client.url)
            await held(pending, 0.05)
            # "invalid content" in the reference: Engine.IO v4 payloads are text.
            other.send(
                other.request(
                    "POST",
                    client.url,
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", "2"),
                )
                + b"42"
            )
            assert (await other.response()).raw == response(400, (CLOSE,))
            assert (await pending).raw == poll("1")
            await ended(io, client, log, "transport error")
        await control_alone(io, control, 1)


async def test_requests_for_a_closed_session() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            pending = client.poller.start_get(client.url)
            await held(pending, 0.05)
            assert await client.conn.post(client.url, "1") == ok()
            assert (await pending).raw == poll("1")  # a noop "6" in the reference
            assert log == [("disconnect", "transport close")]
            assert client.sid not in io._sessions
            for _ in range(2):
                assert await client.conn.get(client.url) == UNKNOWN_SID
            assert await client.conn.post(client.url, '42["a"]') == refusal(1, CLOSE)
            assert log == [("disconnect", "transport close")]
        await control_alone(io, control, 1)


# -- the upgrade, abused -----------------------------------------------------------------


def ws_url(address: str, sid: str) -> str:
    return f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"


async def recv(ws: Any) -> Any:
    return await asyncio.wait_for(ws.recv(), 2 * UNIT)


UPGRADE = (
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
)


async def test_an_upgrade_with_another_clients_sid_takes_its_session() -> None:
    # The sid is the session's only credential (120 random bits, sent only in
    # the open packet): whoever holds it may upgrade the session, as in the
    # reference server. Without it, an upgrade is refused.
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as victim, http(address) as guess:
            wrong = target(victim.sid[::-1], "websocket")
            assert (await guess.exchange("GET", wrong, *UPGRADE)).raw == UNKNOWN_SID
            pending = victim.poller.start_get(victim.url)
            await held(pending, 0.05)
            async with connect(ws_url(address, victim.sid)) as thief:
                await thief.send("2probe")
                assert await recv(thief) == "3probe"
                assert (await pending).raw == poll("6")
                await thief.send("5")
                await eventually(lambda: io._sessions[victim.sid].transport.name == "websocket")
                # The session now lives on the thief's WebSocket ...
                io.to(victim.socket_id).emit("secret", 1)
                assert await recv(thief) == '42["secret",1]'
                # ... and the polling client is told it no longer matches.
                assert await victim.poller.get(victim.url) == refusal(3)
                assert log == []
            await ended(io, victim, log, "transport close")
        await control_alone(io, control, 1)


async def test_an_upgrade_for_an_upgraded_session_is_closed() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            pending = client.poller.start_get(client.url)
            async with connect(ws_url(address, client.sid)) as ws:
                await ws.send("2probe")
                assert await recv(ws) == "3probe"
                assert (await pending).raw == poll("6")
                await ws.send("5")
                await eventually(lambda: io._sessions[client.sid].transport.name == "websocket")
                for _ in range(2):
                    # The handshake completes (101), then the server closes it.
                    async with connect(ws_url(address, client.sid)) as second:
                        with pytest.raises(ConnectionClosed):
                            await recv(second)
                        assert second.close_code == 1000
                io.to(client.socket_id).emit("still", 1)
                assert await recv(ws) == '42["still",1]'
                await ws.send('42["a"]')
                await eventually(lambda: log == [("a",)])
            await ended(io, client, log, "transport close")
        await control_alone(io, control, 1)


async def test_a_second_probe_while_one_is_under_way_is_closed() -> None:
    async with hostile_server() as (io, log, address, control):
        async with polling_client(address) as client:
            async with connect(ws_url(address, client.sid)) as first:
                await first.send("2probe")
                assert await recv(first) == "3probe"
                async with connect(ws_url(address, client.sid)) as second:
                    with pytest.raises(ConnectionClosed):
                        await recv(second)
                    assert second.close_code == 1000
                await first.send("5")
                await eventually(lambda: io._sessions[client.sid].transport.name == "websocket")
                await first.send('421["echo",1]')
                assert await recv(first) == "431[1]"
            await ended(io, client, log, "transport close")
        await control_alone(io, control, 1)


async def test_the_control_clients_sid_cannot_be_taken_over() -> None:
    # A session that opened on a WebSocket has nothing to upgrade to: a
    # WebSocket with its sid is accepted and closed; polling is a mismatch.
    async with hostile_server() as (io, _, address, control):
        assert control.sid in io._sessions
        async with connect(ws_url(address, control.sid)) as intruder:
            with pytest.raises(ConnectionClosed):
                await recv(intruder)
            assert intruder.close_code == 1000
        async with http(address) as conn:
            assert await conn.get(target(control.sid)) == refusal(3)
            assert await conn.post(target(control.sid), "1") == refusal(3, CLOSE)
        await control_alone(io, control, 1)


@pytest.mark.parametrize(
    "abandon", ["upgrade before the probe", "another packet", "client closes", "timeout"]
)
async def test_an_abandoned_probe_leaves_the_session_polling(abandon: str) -> None:
    async with hostile_server(upgrade_timeout=0.3 * UNIT) as (io, log, address, control):
        async with polling_client(address) as client:
            async with connect(ws_url(address, client.sid)) as probe:
                if abandon == "upgrade before the probe":
                    await probe.send("5")  # not probed: no upgrade
                else:
                    await probe.send("2probe")
                    assert await recv(probe) == "3probe"
                    # Paused while probing: a GET is answered at once, with a noop.
                    assert await client.poller.get(client.url) == poll("6")
                    if abandon == "another packet":
                        await probe.send('42["a"]')  # anything but "5" ends the probe
                    elif abandon == "client closes":
                        await probe.close()
                if abandon != "client closes":
                    with pytest.raises(ConnectionClosed):
                        await recv(probe)
                    assert probe.close_code == 1000
            session = io._sessions[client.sid]
            await eventually(lambda: session._probe is None)
            # Polling again: a GET is held, and the session serves acks.
            pending = client.poller.start_get(client.url)
            await held(pending, 0.1)
            assert await client.conn.post(client.url, '421["echo",1]') == ok()
            assert (await pending).raw == poll("431[1]")
            assert log == []  # the probe's packets never reached a handler
            assert session.transport.name == "polling"
            await close_session(address, client.sid)
        await control_alone(io, control, 1)

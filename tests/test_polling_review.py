"""Defects found by a hostile review of polling and the upgrade, one test each.

Real sockets against a live server, as in test_polling.py, whose raw client
and expected responses are reused here.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from websockets.asyncio.client import connect

import minisio
from minisio.http11 import RequestReader

from .conftest import UNIT, eventually, masked_frame, running, upgrade_request
from .test_polling import (
    CLOSE,
    UNKNOWN_SID,
    eio,
    handshake,
    held,
    http,
    join,
    make_server,
    ok,
    open_http,
    poll,
)


def ws_upgrade(address: str, sid: str | None, key: str | None = None) -> bytes:
    return upgrade_request(address, key=key, target=eio(sid, "websocket"))


# -- a GET pipelined behind a held GET ------------------------------------------------


@pytest.mark.parametrize("how", ["client close packet", "server disconnect"])
async def test_a_get_pipelined_behind_a_held_get_is_answered_when_the_session_ends(
    how: str,
) -> None:
    # Answering the held GET reads the next request on that connection at
    # once, before the polling transport had settled: the second GET was held
    # by a transport about to be dropped, and never answered; its connection
    # had no deadline and outlived the session (and the server's shutdown).
    io, log = make_server()

    @io.on("connection")
    def bye(socket: minisio.Socket) -> None:
        socket.on("bye", lambda: socket.disconnect(close=True))

    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        await join(conn, sid)
        poller.send(poller.request("GET", eio(sid)) * 2)
        first = asyncio.ensure_future(poller.response())
        await held(first, 0.1)
        if how == "client close packet":
            assert await conn.post(eio(sid), "1") == ok()
            assert (await first).raw == poll("1")
            # The session is gone: the pipelined GET is told so, at once.
            assert (await poller.response()).raw == UNKNOWN_SID
        else:
            assert await conn.post(eio(sid), '42["bye"]') == ok()
            # Socket.IO packets first, then the close packet alone (Polling.end) ...
            assert (await first).raw == poll("41")
            # ... to the GET pipelined behind.
            assert (await poller.response()).raw == poll("1")
        reason = (
            "transport close" if how == "client close packet" else "server namespace disconnect"
        )
        assert log == [("disconnect", reason)]
        assert io._sessions == {}
        # The connection serves on.
        assert await poller.get(eio(sid)) == UNKNOWN_SID


# -- a WebSocket handshake that websockets refuses ------------------------------------


async def closed_for_good(sock: socket.socket, within: float = 2) -> bool:
    """Whether the server closed its end: once it has, what the client sends is reset."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * UNIT
    while loop.time() < deadline:
        try:
            await loop.sock_sendall(sock, b"x")
        except (ConnectionResetError, BrokenPipeError):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("with_sid", [False, True])
async def test_a_refused_websocket_handshake_closes_the_connection(with_sid: bool) -> None:
    # websockets answers a bad handshake (here an invalid key) and half-closes;
    # nobody closed the TCP connection after that, and nothing tracked it: a
    # client that never closed its side kept it open for good.
    io, _ = make_server()
    async with running(io) as address:
        sid = None
        if with_sid:
            async with http(address) as conn:
                sid = await handshake(conn)
        host, port = address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(sock, ws_upgrade(address, sid, key="bad"))
            received = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 4096), 2 * UNIT):
                received += chunk
            assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received
            assert await closed_for_good(sock), "the server kept the connection open"
        finally:
            sock.close()
        if with_sid:
            assert sid in io._sessions  # the polling session is not concerned


# -- a probe whose client pings and never reads ---------------------------------------


async def test_a_probe_that_piles_up_pongs_is_cut_at_max_buffer() -> None:
    # A session's WebSocket is cut once it has more than max_buffer bytes
    # unsent, pongs included; a WebSocket being probed was never checked, and
    # grew without bound (8 MB in 2 s here) until upgrade_timeout.
    io, log = make_server(max_buffer=100_000)
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        await join(conn, sid)
        session = io._sessions[sid]
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(ws_upgrade(address, sid))
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            writer.write(masked_frame(b"2probe"))
            assert await asyncio.wait_for(reader.readexactly(8), 2 * UNIT) == b"\x81\x063probe"
            writer.transport.pause_reading()  # type: ignore[attr-defined]
            pings = masked_frame(b"x" * 125, opcode=0x9) * 500
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3 * UNIT
            while session._probe is not None and not writer.is_closing():
                assert loop.time() < deadline, "the probe was never cut"
                writer.write(pings)
                await asyncio.sleep(0.005)
        finally:
            writer.close()
        await eventually(lambda: session._probe is None)
        # The session goes on over polling, unharmed.
        assert not session.closed and session.transport.name == "polling"
        pending = conn.start_get(eio(sid))
        await held(pending, 0.1)
        async with http(address) as other:
            assert await other.post(eio(sid), '421["echo",1]') == ok()
        assert (await pending).raw == poll("431[1]")
        assert log == []


# -- the polling transport left behind by an upgrade ------------------------------------


async def test_a_post_of_the_old_transport_cut_after_the_upgrade_leaves_the_session() -> None:
    # Once the session is on its WebSocket, the polling transport is not its
    # transport any more: a POST of it whose connection is cut ("poll
    # connection closed prematurely") closed the upgraded session all the same.
    io, log = make_server()
    async with running(io) as address, http(address) as conn, http(address) as slow:
        sid = await handshake(conn)
        await join(conn, sid)
        slow.send(slow.request("POST", eio(sid), ("Content-Length", "10")) + b"42")
        async with connect(f"ws://{address}{eio(sid, 'websocket')}") as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
            await ws.send("5")
            await eventually(lambda: io._sessions[sid].transport.name == "websocket")
            slow.writer.transport.abort()
            await asyncio.sleep(0.1 * UNIT)
            await ws.send('421["echo",1]')
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "431[1]"
            assert log == []
        await eventually(lambda: log == [("disconnect", "transport close")])


# -- the server's shutdown --------------------------------------------------------------


async def test_shutdown_leaves_no_connection_serving_and_no_probe_open() -> None:
    # At shutdown a connection in the middle of a request (a POST body) was
    # left to finish it, then kept alive and served on: a new session could be
    # opened after serve() had returned. A probed WebSocket was left open
    # until upgrade_timeout (10 s), waiting for a "5" nobody would act on.
    io, _ = make_server()
    async with running(io) as address:
        posting = await open_http(address)
        sid = await handshake(posting)
        posting.send(posting.request("POST", eio(sid), ("Content-Length", "2")) + b"4")
        prober = await open_http(address)
        probed_sid = await handshake(prober)
        probe = await connect(f"ws://{address}{eio(probed_sid, 'websocket')}")
        await probe.send("2probe")
        assert await asyncio.wait_for(probe.recv(), 2 * UNIT) == "3probe"
        idle = await open_http(address)
        assert (await idle.exchange("GET", "/nope")).status == 404
        await asyncio.sleep(0.05)
        start = time.monotonic()
    assert time.monotonic() - start < 1 * UNIT
    try:
        await idle.closed()
        # The POST is answered, with the connection closed after it.
        posting.send(b"0")
        assert (await posting.response()).raw == ok(CLOSE)
        await posting.closed()
        await asyncio.wait_for(probe.wait_closed(), 1 * UNIT)
        assert probe.close_code == 1001
        assert not io._http
    finally:
        for conn in (posting, prober, idle):
            conn.close()
        await probe.close()


# -- the request reader ----------------------------------------------------------------


def test_a_head_trickled_byte_by_byte_costs_linear_time() -> None:
    # Each read looked for the blank line from the start of the buffer again:
    # a 64 KiB head sent a byte per TCP segment cost ~2 s of event loop.
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 500) for i in range(120))
    head += b"\r\n"
    reader = RequestReader()
    start = time.perf_counter()
    for i in range(len(head) - 1):
        reader.feed(head[i : i + 1])
        assert reader.next_head() is None
    reader.feed(head[-1:])
    request = reader.next_head()
    assert time.perf_counter() - start < 0.4 * UNIT
    assert request is not None and request.head == head
    assert len(request.headers.items) == 120

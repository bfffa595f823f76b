"""Handlers that take their time, clients that stop reading, and the limits on both."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket as pysocket
from typing import Any

import pytest

import minisio

from .conftest import UNIT, eventually, masked_frame, raw_client, running, upgrade_request


async def test_handlers_awaiting_acks_past_the_limit_still_get_them() -> None:
    # More handlers waiting on the client's ack than max_pending_handlers: the
    # extra events wait in line, but acks must still be read, or every
    # handler would wait on itself.
    io = minisio.Server(max_pending_handlers=2, ping_interval=0.2 * UNIT, ping_timeout=0.2 * UNIT)
    reasons: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.append)

        @socket.on("quiz")
        async def quiz(n: int) -> Any:
            return await socket.emit_with_ack("question", n, timeout=2 * UNIT)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        for n in range(4):
            await client.send(f'42{n}["quiz",{n}]')
        answered: dict[int, int] = {}
        while len(answered) < 4:
            frame = await client.recv()
            assert isinstance(frame, str)
            if frame == "2":
                await client.send("3")
            elif question := re.fullmatch(r'42(\d+)\["question",(\d+)\]', frame):
                ack_id, n = question.groups()
                await client.send(f"43{ack_id}[{int(n) * 10}]")
            else:
                ack = re.fullmatch(r"43(\d+)\[(\d+)\]", frame)
                assert ack, frame
                answered[int(ack.group(1))] = int(ack.group(2))
        assert answered == {0: 0, 1: 10, 2: 20, 3: 30}
        assert reasons == []


async def test_running_handlers_never_exceed_the_limit_and_a_flood_is_cut() -> None:
    io = minisio.Server(max_pending_handlers=4)
    running_now = 0
    peak = 0
    done = asyncio.Event()
    reasons: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.append)

        @socket.on("slow")
        async def slow() -> None:
            nonlocal running_now, peak
            running_now += 1
            peak = max(peak, running_now)
            await done.wait()
            running_now -= 1

        socket.on("echo", lambda x: x)

    async with running(io) as address, raw_client(address) as control:
        await control.join()
        async with raw_client(address) as client:
            await client.join()
            # 4 run, 60 wait (under 4 x 16): nothing is cut.
            for _ in range(64):
                await client.send('42["slow"]')
            await client.send('421["echo","in line"]')
            await eventually(lambda: running_now == 4, timeout=3)
            await asyncio.sleep(0.1)
            assert peak == 4 and reasons == []
            done.set()
            await client.expect('431["in line"]')  # answered once its turn came
            assert peak == 4
            # A flood: far more waiting than the limit allows.
            done.clear()
            for _ in range(4 * 16 + 10):
                await client.send('42["slow"]')
            assert await client.closed() == 1008
        assert reasons == ["transport error"]
        done.set()
        await control.send('421["echo","fine"]')
        await control.expect('431["fine"]')


async def test_a_few_large_waiting_events_are_cut_by_their_bytes() -> None:
    # Four waiting events are far under the count limit (2 x 16), but each
    # is 400 KB: past max_buffer bytes waiting, the connection is cut.
    io = minisio.Server(max_pending_handlers=2, max_buffer=1_000_000)
    done = asyncio.Event()
    reasons: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.append)

        @socket.on("slow")
        async def slow(text: str = "") -> None:
            await done.wait()

    big = "x" * 400_000
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        for _ in range(2):  # the two handler slots
            await client.send('42["slow"]')
        await client.send(f'42["slow","{big}"]')
        await client.send(f'42["slow","{big}"]')  # 800 KB waiting: still fine
        await client.expect_nothing()
        await client.send(f'42["slow","{big}"]')  # 1.2 MB
        assert await client.closed() == 1008
        assert reasons == ["transport error"]
        done.set()


async def test_closing_a_client_that_stopped_reading_is_bounded() -> None:
    # A peer that stops reading keeps websockets' close() waiting on a drain
    # that never comes; minisio bounds the whole close and drops the socket.
    io = minisio.Server(ping_interval=0.3, ping_timeout=0.3, max_buffer=64 * 2**20)
    io.close_timeout = 0.5
    # Bounded itself: without the fix, even the server shutdown below hangs.
    async with asyncio.timeout(10 * UNIT):
        async with running(io) as address:
            host, port = address.rsplit(":", 1)
            sock = pysocket.socket()
            sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(upgrade_request(address) + masked_frame(b"40"))  # CONNECT, masked
            await eventually(lambda: len(io.sockets) == 1, timeout=3)
            # Never read again; fill the path to it until websockets stops writing.
            (conn,) = io._sessions.values()
            while not conn.transport.paused:
                io.emit("fill", "x" * 65536)
                await asyncio.sleep(0)
            # No pong will come: ping timeout, then a close that cannot drain.
            await eventually(lambda: not io._sessions, timeout=0.3 + 0.3 + 0.5 + 2)
            sock.close()


async def test_handlers_add_up_and_the_first_answers_the_ack() -> None:
    io = minisio.Server()
    calls: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("hi", lambda: calls.append("first") or "from first")
        socket.on("hi", lambda: calls.append("second") or "from second")
        socket.on("disconnect", lambda reason: calls.append(f"d1 {reason}"))
        socket.on("disconnect", lambda reason: calls.append(f"d2 {reason}"))

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('421["hi"]')
        await client.expect('431["from first"]')
        await client.expect_nothing()
        await client.send("41")
        await eventually(lambda: len(calls) == 4, timeout=3)
    assert calls == [
        "first",
        "second",
        "d1 client namespace disconnect",
        "d2 client namespace disconnect",
    ]


def test_middleware_and_connection_handlers_take_the_socket_alone() -> None:
    io = minisio.Server()
    with pytest.raises(TypeError, match="fn\\(socket\\)"):
        io.use(lambda socket, next: next())
    with pytest.raises(TypeError, match="fn\\(socket\\)"):
        io.on("connection", lambda: None)
    io.use(lambda socket, extra=None: None)  # a default is fine


@pytest.mark.parametrize(
    "limits",
    [{"max_pending_handlers": 0}, {"max_payload": 0}, {"max_buffer": -1}, {"ping_timeout": 0}],
)
def test_limits_must_be_positive(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        minisio.Server(**limits)  # type: ignore[arg-type]


async def test_disconnect_while_middleware_runs_is_not_accepted_afterwards() -> None:
    io = minisio.Server()
    admin = io.of("/admin")
    release = asyncio.Event()
    connected: list[str] = []

    @admin.use
    async def slow_check(socket: minisio.Socket) -> None:
        await release.wait()

    admin.on("connection", lambda socket: connected.append(socket.id))

    async with running(io) as address, raw_client(address) as client:
        await client.send("40/admin,")
        sessions = io._sessions.values()
        await eventually(lambda: any("/admin" in c.pending for c in sessions), timeout=3)
        await client.send("41/admin,")  # the client gave up before the answer
        await eventually(lambda: not any("/admin" in c.pending for c in sessions), timeout=3)
        release.set()
        await client.expect_nothing()
        assert connected == [] and not admin.sockets
        await client.join("/admin")  # and may try again
        assert len(connected) == 1


async def test_non_string_keys_become_strings_as_in_json_stringify() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.emit("scores", {1: "ada", 2: "grace"})

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('42["scores",{"1":"ada","2":"grace"}]')


async def test_reads_stay_below_the_mmap_threshold_and_large_messages_still_arrive() -> None:
    # asyncio reads 256 KiB at a time, which glibc serves with mmap, mremap
    # and munmap on every read; minisio asks for 16 KiB. A message of
    # nearly max_payload then takes many reads and must still arrive whole.
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("size")
        def size(text: str) -> int:
            return len(text)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        (conn,) = io._sessions.values()
        assert conn.transport.transport.max_size == 16 * 1024  # type: ignore[attr-defined]
        text = "x" * 999_000
        await client.send(f'421["size","{text}"]')
        await client.expect("431[999000]")


async def test_a_peer_that_pings_and_never_reads_is_cut() -> None:
    # websockets answers each WebSocket ping with a pong on its own; a peer
    # that pings without reading must hit max_buffer like any slow reader.
    io = minisio.Server(max_buffer=64 * 1024)
    reasons: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("disconnect")
        def gone(reason: str) -> None:
            reasons.append(reason)

    async with asyncio.timeout(20 * UNIT), running(io) as address:
        host, port = address.rsplit(":", 1)
        sock = pysocket.socket()
        sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, upgrade_request(address) + masked_frame(b"40"))
        await eventually(lambda: len(io.sockets) == 1, timeout=3)
        pings = masked_frame(b"p" * 125, opcode=0x9) * 1000  # 1000 masked pings
        with contextlib.suppress(OSError):  # reset once the server gives up
            for _ in range(400):  # at most ~50 MB of pongs owed
                await loop.sock_sendall(sock, pings)
                if not io._sessions:
                    break
        await eventually(lambda: not io._sessions, timeout=3)
        assert reasons == ["transport error"]
        sock.close()

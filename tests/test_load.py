"""Load, bounded in time: a slow consumer, connection churn and a soak of the four routes.

Numbers worth reading (RSS, counts, rates) are printed; run with ``-s`` to see them.
MINISIO_SOAK_SECONDS lengthens the soak (default 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import orjson

import minisio
from minisio.engine import Session

from .conftest import (
    UNIT,
    RawClient,
    eventually,
    joined_clients,
    raw_client,
    running,
    upgrade_request,
)

SOAK_SECONDS = float(os.environ.get("MINISIO_SOAK_SECONDS", "5"))
MB = 1024 * 1024


def rss(pid: int | str = "self") -> int:
    """Resident set size of a process, in bytes (VmRSS in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- slow consumer ------------------------------------------------------------
SERVER_SCRIPT = """
import asyncio, sys
import minisio

async def main():
    io = minisio.Server(max_buffer=int(sys.argv[1]))
    reasons = {}

    @io.on("connection")
    def connection(socket):
        socket.on("disconnect", lambda reason: reasons.__setitem__(socket.id, reason))
        socket.on("reasons", lambda: reasons)

        @socket.on("stream")
        async def stream(count, size):
            blob = "x" * size
            for i in range(count):
                io.emit("n", i, blob)
                if i % 4 == 3:
                    await asyncio.sleep(0.001)  # a steady stream, not one burst
            return count

    async with io.serve("127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


class StalledClient:
    """A WebSocket client on a plain TCP socket that stops reading once joined.

    Its receive buffer is tiny, so once it stops reading the server's kernel
    buffers fill and every further byte queues in the server process.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5 * UNIT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(upgrade_request(f"127.0.0.1:{port}"))
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert self.read_frame().startswith(b'0{"sid":"')
        self.send_text(b"40")
        reply = self.read_frame()
        match = re.fullmatch(rb'40\{"sid":"([\w-]{20})"\}', reply)
        assert match, reply
        self.sid = match.group(1).decode()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, "server closed"
        return data

    def read_frame(self) -> bytes:
        """One unmasked, unfragmented server frame's payload."""
        while True:
            if len(self.buffer) >= 2:
                length, offset = self.buffer[1] & 0x7F, 2
                if length == 126:
                    (length,), offset = struct.unpack("!H", self.buffer[2:4]), 4
                elif length == 127:
                    (length,), offset = struct.unpack("!Q", self.buffer[2:10]), 10
                if len(self.buffer) >= offset + length:
                    payload = self.buffer[offset : offset + length]
                    self.buffer = self.buffer[offset + length :]
                    return payload
            self.buffer += self._recv()

    def send_text(self, payload: bytes) -> None:
        assert len(payload) < 65536
        length = (
            bytes([0x80 | len(payload)])
            if len(payload) < 126
            else b"\xfe" + struct.pack("!H", len(payload))
        )
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(b"\x81" + length + mask + masked)

    def drain(self) -> int:
        """Read what is left until the server's reset or close; return the byte count."""
        total = len(self.buffer)
        self.sock.settimeout(2 * UNIT)
        with contextlib.suppress(OSError):
            while data := self.sock.recv(1 << 20):
                total += len(data)
        return total


async def test_slow_consumer_is_cut_and_memory_stays_bounded() -> None:
    count, size, max_buffer = 2500, 16 * 1024, 256 * 1024
    stream_bytes = count * size
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(max_buffer)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), 10 * UNIT)
        port = int(line)
        address = f"127.0.0.1:{port}"
        async with contextlib.AsyncExitStack() as stack:
            good = []
            for _ in range(3):
                client = await stack.enter_async_context(raw_client(address))
                await client.join()
                good.append(client)
            slow = await asyncio.to_thread(StalledClient, port)
            await asyncio.sleep(0.2)  # let the server settle before measuring
            before = rss(server.pid)
            peak = before
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling:
                    peak = max(peak, rss(server.pid))
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())

            async def consume(client: RawClient) -> int:
                for i in range(count):  # every message, in order
                    frame = await client.recv(10)
                    assert isinstance(frame, str)
                    prefix = f'42["n",{i},"'
                    assert frame.startswith(prefix), (i, frame[:30])
                    assert len(frame) == len(prefix) + size + 2
                return count

            started = time.monotonic()
            await good[0].send(f'421["stream",{count},{size}]')
            received = await asyncio.gather(*(consume(client) for client in good))
            await good[0].expect(f"431[{count}]", timeout=10)
            elapsed = time.monotonic() - started
            sampling = False
            await sampler
            during = peak

            await good[0].send('422["reasons"]')
            answer = await good[0].recv()
            assert isinstance(answer, str) and answer.startswith("432")
            reasons = orjson.loads(answer[3:])[0]
            assert reasons == {slow.sid: "transport error"}
            delivered = await asyncio.to_thread(slow.drain)
            slow.sock.close()
            after = rss(server.pid)
            # The good ones are still served after the cut.
            for n, client in enumerate(good):
                await client.send(f'42{10 + n}["reasons"]')
                await client.expect_match(rf"43{10 + n}\[\{{.*\}}\]")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    unsent = re.search(r"(\d+) bytes unsent", stderr)
    print(
        f"\nslow consumer: stream {stream_bytes / MB:.1f} MB to 3 readers + 1 stalled in "
        f"{elapsed:.2f}s; max_buffer {max_buffer // 1024} KiB; cut with "
        f"{unsent.group(1) if unsent else '?'} bytes unsent; the stalled one got "
        f"{delivered / MB:.2f} MB; server RSS before {before / MB:.1f} MB, peak "
        f"{during / MB:.1f} MB, after {after / MB:.1f} MB"
    )
    assert received == [count] * 3
    assert unsent, stderr
    assert delivered < stream_bytes // 2
    # Without the high-water mark the stalled client alone would pin ~40 MB.
    assert during - before < 16 * MB


async def test_client_that_floods_and_never_reads_its_answers_is_cut() -> None:
    io = minisio.Server(max_buffer=64 * 1024)
    reasons: dict[str, str] = {}

    @io.on("connection")
    def connection(socket: minisio.Socket) -> None:
        socket.on("echo", lambda text: text)
        socket.on("disconnect", lambda reason: reasons.__setitem__(socket.id, reason))

    async with running(io) as address, raw_client(address) as control:
        await control.join()
        port = int(address.rsplit(":", 1)[1])
        flooder = await asyncio.to_thread(StalledClient, port)
        frame = b'421["echo","' + b"x" * 2000 + b'"]'

        def flood() -> int:
            # 40 MB of events whose acks are never read: the server must cut
            # this client long before, instead of queueing 40 MB of answers.
            sent = 0
            with contextlib.suppress(OSError):
                for _ in range(20_000):
                    flooder.send_text(frame)
                    sent += len(frame)
            return sent

        sent = await asyncio.to_thread(flood)
        flooder.sock.close()
        await eventually(lambda: len(io._sessions) == 1, timeout=5)
        assert reasons == {flooder.sid: "transport error"}
        assert sent < 20_000 * len(frame)
        io.emit("still", 1)
        await control.expect('42["still",1]')
    print(f"\nflooder: cut after {sent / MB:.1f} MB sent")


# -- churn --------------------------------------------------------------------
async def test_churn_leaves_nothing_behind() -> None:
    cycles, workers, budget = 2000, 16, 20 * UNIT
    io = minisio.Server()
    admin = io.of("/admin")

    def joined(socket: minisio.Socket) -> None:
        socket.join("lobby", f"room-{socket.id[:2]}")
        socket.on("echo", lambda *args: tuple(args))

    io.on("connection", joined)
    admin.on("connection", joined)
    kinds = [0] * 8
    done = 0

    async with running(io) as address:
        host, port = address.rsplit(":", 1)
        baseline_tasks = len(asyncio.all_tasks())
        gc.collect()
        rss_before = rss()
        started = time.monotonic()

        async def cycle(kind: int) -> None:
            if kind == 7:  # handshake never finished
                _, writer = await asyncio.open_connection(host, int(port))
                writer.write(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x")
                await asyncio.sleep(0)
                writer.transport.abort()
                return
            async with raw_client(address) as client:
                if kind == 0:  # clean
                    await client.join()
                    await client.send('421["echo",1]')
                    await client.expect("431[1]")
                    await client.ws.close()
                elif kind == 1:  # abrupt TCP abort once joined
                    await client.join()
                    client.ws.transport.abort()
                elif kind == 2:  # abort before joining
                    client.ws.transport.abort()
                elif kind == 3:  # two namespaces, leave one, close
                    await client.join()
                    await client.join("/admin")
                    await client.send("41/admin,")
                    await client.ws.close()
                elif kind == 4:  # protocol error: the server closes
                    await client.join()
                    await client.send("42[]")
                    assert await client.closed() == 1002
                elif kind == 5:  # abort with binary attachments pending
                    await client.join("/admin")
                    await client.send('451-/admin,["echo",{"_placeholder":true,"num":0}]')
                    client.ws.transport.abort()
                else:  # Engine.IO close packet
                    await client.join()
                    await client.send("1")
                    await client.closed()

        async def worker(first: int) -> None:
            nonlocal done
            n = first
            while n < cycles and time.monotonic() - started < budget:
                await cycle(n % 8)
                kinds[n % 8] += 1
                done += 1
                n += workers

        await asyncio.gather(*(worker(i) for i in range(workers)))
        elapsed = time.monotonic() - started
        await eventually(lambda: not io._sessions, timeout=5)
        await eventually(lambda: len(asyncio.all_tasks()) <= baseline_tasks, timeout=5)
        assert not io.sockets and not admin.sockets
        for nsp in (io.main, admin):
            assert nsp.adapter.rooms == {} and nsp.adapter.sids == {}

        def leaked() -> list[object]:
            gc.collect()
            return [o for o in gc.get_objects() if isinstance(o, (Session, minisio.Socket))]

        # A finished task's done callback may still sit in the loop's ready
        # queue for a moment, holding its connection: wait for it, not more.
        await eventually(lambda: leaked() == [], timeout=2)
        rss_after = rss()
    print(
        f"\nchurn: {done} cycles in {elapsed:.1f}s ({done / elapsed:.0f}/s), kinds {kinds}; "
        f"test process RSS before {rss_before / MB:.1f} MB, after {rss_after / MB:.1f} MB"
    )
    assert done == cycles, f"only {done} cycles within the time budget"
    assert rss_after - rss_before < 64 * MB


# -- soak -----------------------------------------------------------------------
ROUTES = ("all", "self", "others", "to")


def soak_server() -> minisio.Server:
    io = minisio.Server(ping_interval=0.5, ping_timeout=2 * UNIT)

    @io.on("connection")
    def connection(socket: minisio.Socket) -> None:
        @socket.on("all")
        def to_all(sender: int, seq: int) -> int:
            io.emit("m", sender, seq, "all")
            return seq

        @socket.on("self")
        def to_self(sender: int, seq: int) -> int:
            socket.emit("m", sender, seq, "self")
            return seq

        @socket.on("others")
        def to_others(sender: int, seq: int) -> int:
            socket.broadcast.emit("m", sender, seq, "others")
            return seq

        @socket.on("to")
        def to_one(sender: int, seq: int, target: str) -> int:
            io.to(target).emit("m", sender, seq, "to")
            return seq

    return io


async def test_soak_four_routes_no_loss_no_duplicate_in_order() -> None:
    n_clients, window = 6, 16
    io = soak_server()
    rng = random.Random(7)
    async with running(io) as address, joined_clients(address, n_clients) as pairs:
        sids = [sid for _, sid in pairs]
        sent: list[list[tuple[int, str, frozenset[int]]]] = [[] for _ in pairs]
        got: list[list[tuple[int, int, str]]] = [[] for _ in pairs]
        pings = [0] * n_clients
        credits = [asyncio.Semaphore(window) for _ in pairs]
        acked = [0] * n_clients
        everyone = frozenset(range(n_clients))

        async def read(k: int, client: RawClient) -> None:
            while True:
                frame = await client.recv(5)
                assert isinstance(frame, str), frame
                if frame == "2":
                    pings[k] += 1
                    await client.send("3")
                elif frame.startswith('42["m",'):
                    _, sender, seq, route = orjson.loads(frame[2:])
                    got[k].append((sender, seq, route))
                elif frame.startswith("43"):
                    seq = int(frame[2 : frame.index("[")])
                    assert frame == f"43{seq}[{seq}]"
                    assert seq == acked[k], "acks out of order"
                    acked[k] += 1
                    credits[k].release()
                elif frame == '42["end"]':
                    return
                else:
                    raise AssertionError(frame)

        async def write(k: int, client: RawClient, until: float) -> None:
            seq = 0
            while time.monotonic() < until:
                await credits[k].acquire()
                route = rng.choice(ROUTES)
                args = f'"{route}",{k},{seq}'
                if route == "all":
                    to = everyone
                elif route == "self":
                    to = frozenset((k,))
                elif route == "others":
                    to = everyone - {k}
                else:
                    target = rng.randrange(n_clients)
                    to = frozenset((target,))
                    args += f',"{sids[target]}"'
                await client.send(f"42{seq}[{args}]")
                sent[k].append((seq, route, to))
                seq += 1
            for _ in range(window):  # every ack back: all its relays were written before
                await credits[k].acquire()

        started = time.monotonic()
        readers = [asyncio.create_task(read(k, c)) for k, (c, _) in enumerate(pairs)]
        until = started + SOAK_SECONDS * UNIT
        await asyncio.gather(*(write(k, c, until) for k, (c, _) in enumerate(pairs)))
        io.emit("end")
        await asyncio.wait_for(asyncio.gather(*readers), 10 * UNIT)
        elapsed = time.monotonic() - started
        assert len(io.sockets) == n_clients  # nobody was cut on the way

    total_sent = sum(map(len, sent))
    total_got = sum(map(len, got))
    for receiver in range(n_clients):
        for sender in range(n_clients):
            expected = [(seq, route) for seq, route, to in sent[sender] if receiver in to]
            actual = [(seq, route) for s, seq, route in got[receiver] if s == sender]
            assert actual == expected, (receiver, sender)
    assert sorted(acked) == sorted(map(len, sent))
    per_route = {r: sum(route == r for s in sent for _, route, _ in s) for r in ROUTES}
    print(
        f"\nsoak: {elapsed:.1f}s, {n_clients} clients, {total_sent} messages sent "
        f"{per_route}, {total_got} delivered ({total_got / elapsed:.0f}/s), "
        f"pings answered {sum(pings)}"
    )
    assert all(per_route.values())
    assert all(pings), "the heartbeat must run during the soak"

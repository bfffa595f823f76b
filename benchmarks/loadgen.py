"""The load generator: its own process, speaking WebSocket, Engine.IO and Socket.IO by hand.

No client library: each client is an ``asyncio.Protocol`` that writes
precomputed frames and parses server frames from bytes, so the generator
stays cheaper than the servers it drives. Client frames are masked with
the all-zero key (legal on the wire, RFC 6455 section 5.3, and it makes
masking free); no extension is offered, so no server compresses.

Scenarios (one per run, the result printed as one JSON line on stdout):

``echo``    C clients in a closed loop: send a small ``echo`` event, wait
            for it to come back, send the next. Messages/s and round-trip time.
``fan``     N receivers and one sender; the sender emits ``fan`` events, the
            server sends each to every socket (the sender's own copy is
            dropped). A window of W events is kept in flight. Deliveries/s and
            send-to-receive latency. With ``--port-b`` there are two nodes of a
            cluster (through Redis): the sender on the first, the receivers
            half on each; the latency is also given per node (``a_``, ``b_``).
``idle``    N clients connect and stay idle. Connect time, and the server's
            RSS growth per connection.
``poll-echo`` as ``echo``, on HTTP long-polling only: each client keeps a
            GET held on one keep-alive connection and POSTs on another, as
            browsers do. Round trips/s and round-trip time (POST to the echo
            on the held GET).
``upgrade`` N sessions one after the other, each from the polling handshake
            to an upgraded WebSocket (``sid``, ``2probe``/``3probe``, the held
            GET released by ``6``, ``5`` sent). Median and p99 time.

CPU use of this process and of the server (``--server-pid``; with two nodes
also ``--server-pid-b``, and ``--redis-pid``) over the measured window is read
from ``getrusage`` and ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
now_ns = time.perf_counter_ns

ECHO = b'42["echo",{"n":1,"text":"hello, this is a small chat message of about 80 bytes"}]'
FAN_PAD = b'"hello everyone, this is a small broadcast chat message"'


def ws_frame(payload: bytes) -> bytes:
    """A client text frame, masked with the zero key (so the payload is as-is)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0xFF)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


OPEN_NAMESPACE = ws_frame(b"40")
PONG = ws_frame(b"3")
ECHO_FRAME = ws_frame(ECHO)


class Client(asyncio.Protocol):
    """One Socket.IO client on the main namespace; ``on_event`` gets each EVENT's text."""

    target = "/socket.io/?EIO=4&transport=websocket"

    def __init__(self, host: str, port: int, on_event: Callable[[Client, bytes], None]) -> None:
        self.host, self.port = host, port
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.t0 = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.target} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        # The common case first: exactly one small unfragmented text frame.
        if self.upgraded and not self.buf and len(data) == data[1] + 2 and data[0] == 0x81:
            payload = data[2:]
            if payload[:2] == b"42":
                self.on_event(self, payload)
            else:
                self.on_text(payload)
            return
        if self.buf:
            data = self.buf + data
            self.buf = b""
        i = 0
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                status = data[: data.find(b"\r\n")].decode(errors="replace")
                if not self.connected.done():
                    self.connected.set_exception(ConnectionError(status))
                return
            self.upgraded = True
            self.on_upgraded()
            i = end + 4
        n = len(data)
        while i + 2 <= n:
            length = data[i + 1] & 0x7F
            head = 2
            if length == 126:
                if i + 4 > n:
                    break
                length = int.from_bytes(data[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if i + 10 > n:
                    break
                length = int.from_bytes(data[i + 2 : i + 10], "big")
                head = 10
            end = i + head + length
            if end > n:
                break
            opcode = data[i] & 0x0F
            payload = data[i + head : end]
            i = end
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9:  # a WebSocket ping: answer with a masked pong
                assert self.transport is not None
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                assert self.transport is not None
                self.transport.close()
        if i < n:
            self.buf = data[i:]

    def on_upgraded(self) -> None:
        pass

    def on_text(self, payload: bytes) -> None:
        kind = payload[:2]
        if kind == b"42":
            self.on_event(self, payload)
        elif kind == b"40":
            if not self.connected.done():
                self.connected.set_result(None)
        elif payload[:1] == b"0":  # Engine.IO open: join the main namespace
            self.send(OPEN_NAMESPACE)
        elif payload == b"2":  # Engine.IO ping
            self.send(PONG)

    def send(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _ignore(client: Client, payload: bytes) -> None:
    pass


async def connect_many(
    host: str, port: int, n: int, on_event: Callable[[Client, bytes], None], concurrency: int = 64
) -> tuple[list[Client], list[int]]:
    """Connect ``n`` clients, ``concurrency`` handshakes at a time; also each one's time (ns)."""
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    times: list[int] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            start = now_ns()
            _, client = await loop.create_connection(
                lambda: Client(host, port, on_event), host, port
            )
            clients.append(client)
            await client.connected
            times.append(now_ns() - start)

    await asyncio.gather(*(one() for _ in range(n)))
    return clients, times


# -- HTTP long-polling ------------------------------------------------------------
EIO_PATH = "/socket.io/?EIO=4&transport=polling"
SEP = b"\x1e"


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of a client: requests written whole, answers
    parsed from bytes in order (Content-Length or chunked); ``on_response(status, body)``."""

    def __init__(self, on_response: Callable[[int, bytes], None]) -> None:
        self.on_response = on_response
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.on_response(0, f"connection lost: {exc}".encode())

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            start = end + 4
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 17)
                stop = start + int(head[i + 17 : j if j >= 0 else end])
                if len(buf) < stop:
                    break
                body = buf[start:stop]
            elif b"chunked" in head:
                parsed = _chunked(buf, start)
                if parsed is None:
                    break
                body, stop = parsed
            else:  # no body (a 204, or a bare 400)
                body, stop = b"", start
            buf = buf[stop:]
            self.on_response(int(head[9:12]), body)
        self.buf = buf

    def request(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _chunked(buf: bytes, i: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``i``: (body, end), or None while incomplete."""
    chunks = []
    while True:
        eol = buf.find(b"\r\n", i)
        if eol < 0:
            return None
        size = int(buf[i:eol].split(b";", 1)[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # no trailers expected: the blank line
            return (b"".join(chunks), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        chunks.append(buf[eol + 2 : eol + 2 + size])
        i = eol + 2 + size + 2


class PollClient:
    """One Socket.IO client on HTTP long-polling only, as a browser's engine.io-client:
    the handshake GET, then a GET held at all times on one keep-alive connection and POSTs
    on another, one at a time (packets sent meanwhile wait and go together)."""

    def __init__(self, host: str, port: int, on_event: Callable[[PollClient, bytes], None]) -> None:
        self.host, self.port = host, port
        self.on_event = on_event
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[bytes] = loop.create_future()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.failed: str | None = None
        self.running = True
        self.out: list[bytes] = []
        self.posting = False
        self.t0 = 0
        self.gets: HttpConn | None = None
        self.posts: HttpConn | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.host, self.port
        _, self.gets = await loop.create_connection(lambda: HttpConn(self._on_get), host, port)
        self.gets.request(self._get_request(EIO_PATH))
        body = await self.opened
        sid = open_sid(body)
        url = f"{EIO_PATH}&sid={sid}"
        self.get_head = self._get_request(url)
        self.post_head = (
            f"POST {url} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: "
        ).encode()
        _, self.posts = await loop.create_connection(lambda: HttpConn(self._on_post), host, port)
        self.send(b"40")
        self.gets.request(self.get_head)
        await self.connected

    def _get_request(self, url: str) -> bytes:
        host = f"{self.host}:{self.port}"
        return f"GET {url} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()

    def _fail(self, why: str) -> None:
        if self.failed is None and self.running:
            self.failed = why
        for future in (self.opened, self.connected):
            if not future.done():
                future.set_exception(ConnectionError(why))

    def _on_get(self, status: int, body: bytes) -> None:
        if status != 200:
            self._fail(f"GET: {status} {body[:200]!r}")
            return
        if not self.opened.done():
            self.opened.set_result(body)
            return
        for record in body.split(SEP) if SEP in body else (body,):
            kind = record[:2]
            if kind == b"42":
                self.on_event(self, record)
            elif kind == b"40":
                if not self.connected.done():
                    self.connected.set_result(None)
            elif record == b"2":
                self.send(b"3")
            elif record[:1] in (b"1", b"4"):  # close, or a CONNECT_ERROR etc.
                self._fail(f"GET: {record[:200]!r}")
                return
        if self.running:
            assert self.gets is not None
            self.gets.request(self.get_head)

    def _on_post(self, status: int, body: bytes) -> None:
        if status != 200 or body.lower() != b"ok":  # python-socketio answers "OK"
            self._fail(f"POST: {status} {body[:200]!r}")
            return
        self.posting = False
        if self.out:
            self._post()

    def send(self, packet: bytes) -> None:
        self.out.append(packet)
        if not self.posting:
            self._post()

    def _post(self) -> None:
        body = SEP.join(self.out) if len(self.out) > 1 else self.out[0]
        self.out = []
        self.posting = True
        assert self.posts is not None
        self.posts.request(b"%s%d\r\n\r\n%s" % (self.post_head, len(body), body))

    def close(self) -> None:
        self.running = False
        for conn in (self.gets, self.posts):
            if conn is not None:
                conn.close()


def open_sid(open_packet: bytes) -> str:
    """The sid of an Engine.IO open packet (``0{...}``)."""
    if open_packet[:1] != b"0":
        raise ConnectionError(f"not an open packet: {open_packet[:200]!r}")
    sid: str = json.loads(open_packet[1:])["sid"]
    return sid


async def connect_polling(
    host: str, port: int, n: int, on_event: Callable[[PollClient, bytes], None]
) -> list[PollClient]:
    gate = asyncio.Semaphore(64)
    clients: list[PollClient] = []

    async def one() -> None:
        async with gate:
            client = PollClient(host, port, on_event)
            clients.append(client)
            await client.open()

    await asyncio.gather(*(one() for _ in range(n)))
    return clients


class ProbeClient(Client):
    """The WebSocket of an upgrade: ``2probe`` once open, then waits for ``3probe``."""

    def __init__(self, host: str, port: int, sid: str) -> None:
        super().__init__(host, port, _ignore)
        self.target = f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
        loop = asyncio.get_running_loop()
        self.probed: asyncio.Future[None] = loop.create_future()

    def on_upgraded(self) -> None:
        self.send(ws_frame(b"2probe"))

    def on_text(self, payload: bytes) -> None:
        if payload == b"3probe":
            if not self.probed.done():
                self.probed.set_result(None)
        elif payload[:2] == b"40":
            if not self.connected.done():
                self.connected.set_result(None)
        elif payload == b"2":
            self.send(PONG)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.probed, self.connected):
            if not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc}"))


# -- measuring --------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cores_busy() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies from /proc/stat."""
    cores = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                ticks = [int(v) for v in values[:8]]
                idle = ticks[3] + ticks[4]  # idle + iowait
                cores[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return cores


class Window:
    """Wall time and CPU over the measured window: this process, the server, each core.

    ``machine_busy`` is the busy fraction of all cores together: when it is
    well above (server + load generator) / cores, something else was running.
    """

    def __init__(self, server_pid: int | None, extra: dict[str, int] | None = None) -> None:
        self.server_pid = server_pid
        #: Other processes of the set-up, by name (a second node, Redis): their CPU is
        #: reported as ``<name>_cpu``, not counted as others'.
        self.extra = {name: pid for name, pid in (extra or {}).items() if pid}

    def start(self) -> None:
        self.t = time.perf_counter()
        self.cpu = self_cpu()
        self.server_cpu = proc_cpu(self.server_pid) if self.server_pid else 0.0
        self.extra_cpu = {name: proc_cpu(pid) for name, pid in self.extra.items()}
        self.cores = cores_busy()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t
        result = {"seconds": wall, "loadgen_cpu": (self_cpu() - self.cpu) / wall}
        if self.server_pid:
            result["server_cpu"] = (proc_cpu(self.server_pid) - self.server_cpu) / wall
        ours = result["loadgen_cpu"] + result.get("server_cpu", 0)
        for name, pid in self.extra.items():
            result[f"{name}_cpu"] = (proc_cpu(pid) - self.extra_cpu[name]) / wall
            ours += result[f"{name}_cpu"]
        cores = cores_busy()
        busy = sum(cores[c][0] - self.cores[c][0] for c in cores)
        total = sum(cores[c][1] - self.cores[c][1] for c in cores)
        # Everyone's CPU but ours, in cores: the noise from other work on the machine.
        result["others_cpu"] = max(0.0, busy / max(total, 1) * len(cores) - ours)
        return result


async def measure(args: argparse.Namespace, state: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then count for ``args.duration`` seconds with CPU accounting."""
    await asyncio.sleep(args.warmup)
    extra = {"server_b": args.server_pid_b, "redis": args.redis_pid}
    window = Window(args.server_pid, extra)
    state["measuring"] = True
    window.start()
    await asyncio.sleep(args.duration)
    state["measuring"] = False
    result = window.stop()
    state["running"] = False
    return result


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    samples_ns.sort()
    n = len(samples_ns)
    return {
        "p50_ms": samples_ns[n // 2] / 1e6,
        "p99_ms": samples_ns[min(n - 1, int(n * 0.99))] / 1e6,
    }


# -- scenarios --------------------------------------------------------------------
async def echo(args: argparse.Namespace) -> dict[str, Any]:
    rtts: list[int] = []
    state = {"measuring": False, "count": 0, "running": True}

    def on_event(client: Client, payload: bytes) -> None:
        t = now_ns()
        if state["measuring"]:
            rtts.append(t - client.t0)
            state["count"] += 1
        if state["running"]:
            client.t0 = now_ns()
            client.send(ECHO_FRAME)

    clients, _ = await connect_many(args.host, args.port, args.clients, on_event)
    for client in clients:
        client.t0 = now_ns()
        client.send(ECHO_FRAME)
    result = await measure(args, state)
    result["messages_per_s"] = state["count"] / result["seconds"]
    result.update(percentiles(rtts))
    for client in clients:
        client.close()
    return result


async def fan(args: argparse.Namespace) -> dict[str, Any]:
    n = args.clients
    sent: dict[int, int] = {}
    left: dict[int, int] = {}
    latencies: list[int] = []
    two = args.port_b is not None  # two nodes: the receivers half on each
    by_node: dict[int, list[int]] = {args.port: [], args.port_b or 0: []}
    state = {"measuring": False, "count": 0, "running": True, "next": 0}
    sender: Client | None = None
    stalled = asyncio.Event()

    def send_one() -> None:
        assert sender is not None
        k = state["next"]
        state["next"] = k + 1
        left[k] = n
        frame = ws_frame(b'42["fan",%d,%s]' % (k, FAN_PAD))
        sent[k] = now_ns()
        sender.send(frame)

    def on_event(client: Client, payload: bytes) -> None:
        t = now_ns()
        k = int(payload[9 : payload.index(b",", 9)])
        if state["measuring"]:
            latencies.append(t - sent[k])
            if two:
                by_node[client.port].append(t - sent[k])
            state["count"] += 1
        remaining = left[k] - 1
        if remaining:
            left[k] = remaining
            return
        del left[k]
        if state["running"]:
            send_one()
        elif not left:
            stalled.set()

    if two:
        on_a, _ = await connect_many(args.host, args.port, n - n // 2, on_event)
        on_b, _ = await connect_many(args.host, args.port_b, n // 2, on_event)
        receivers = on_a + on_b
    else:
        receivers, _ = await connect_many(args.host, args.port, n, on_event)
    senders, _ = await connect_many(args.host, args.port, 1, _ignore)
    sender = senders[0]
    for _ in range(args.window):
        send_one()
    result = await measure(args, state)
    result["deliveries_per_s"] = state["count"] / result["seconds"]
    result["events_per_s"] = result["deliveries_per_s"] / n
    result.update(percentiles(latencies))
    if two:
        result.update({"a_" + k: v for k, v in percentiles(by_node[args.port]).items()})
        result.update({"b_" + k: v for k, v in percentiles(by_node[args.port_b]).items()})
        result["a_receivers"], result["b_receivers"] = n - n // 2, n // 2
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2):
            await stalled.wait()
    for client in [*receivers, sender]:
        client.close()
    return result


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    assert args.server_pid, "idle needs --server-pid"
    first, _ = await connect_many(args.host, args.port, 1, _ignore)  # warm the server up
    await asyncio.sleep(0.3)
    before = proc_rss_kb(args.server_pid)
    start = time.perf_counter()
    clients, times = await connect_many(args.host, args.port, args.clients, _ignore)
    took = time.perf_counter() - start
    await asyncio.sleep(args.settle)
    after = proc_rss_kb(args.server_pid)
    result: dict[str, Any] = {
        "connect_s": took,
        "connects_per_s": args.clients / took,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_per_conn_kb": (after - before) / args.clients,
    }
    result.update({"connect_" + k: v for k, v in percentiles(times).items()})
    for client in [*first, *clients]:
        client.close()
    return result


async def poll_echo(args: argparse.Namespace) -> dict[str, Any]:
    rtts: list[int] = []
    state = {"measuring": False, "count": 0, "running": True}

    def on_event(client: PollClient, payload: bytes) -> None:
        t = now_ns()
        if state["measuring"]:
            rtts.append(t - client.t0)
            state["count"] += 1
        if state["running"]:
            client.t0 = now_ns()
            client.send(ECHO)

    clients = await connect_polling(args.host, args.port, args.clients, on_event)
    for client in clients:
        client.t0 = now_ns()
        client.send(ECHO)
    result = await measure(args, state)
    failed = [c.failed for c in clients if c.failed]
    for client in clients:
        client.close()
    if failed:
        raise ConnectionError(f"{len(failed)} client(s) failed, first: {failed[0]}")
    result["messages_per_s"] = state["count"] / result["seconds"]
    result.update(percentiles(rtts))
    return result


async def upgrade_once(host: str, port: int) -> tuple[int, int]:
    """One session from the handshake GET to ``5`` sent on its WebSocket: (total, to 3probe) ns.

    The HTTP connection is open before the clock starts (a page's connection to its
    origin); the WebSocket's TCP connect is inside. Afterwards, off the clock, a CONNECT
    over the WebSocket checks that the session really moved.
    """
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    _, http = await loop.create_connection(
        lambda: HttpConn(lambda status, body: answers.put_nowait((status, body))), host, port
    )
    ws: ProbeClient | None = None
    try:
        get = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: */*\r\n\r\n"
        start = now_ns()
        http.request((get % (EIO_PATH, host, port)).encode())
        status, body = await answers.get()
        if status != 200:
            raise ConnectionError(f"handshake: {status} {body[:200]!r}")
        sid = open_sid(body)
        if b'"websocket"' not in body:
            raise ConnectionError(f"no upgrade offered: {body[:200]!r}")
        http.request((get % (f"{EIO_PATH}&sid={sid}", host, port)).encode())  # the held GET
        _, ws = await loop.create_connection(lambda: ProbeClient(host, port, sid), host, port)
        await ws.probed
        probed = now_ns()
        status, body = await answers.get()
        if status != 200 or body != b"6":
            raise ConnectionError(f"held GET answered {status} {body[:200]!r}, not 6")
        ws.send(ws_frame(b"5"))
        done = now_ns()
        ws.send(OPEN_NAMESPACE)
        await ws.connected
        return done - start, probed - start
    finally:
        http.close()
        if ws is not None:
            ws.close()


async def upgrade(args: argparse.Namespace) -> dict[str, Any]:
    warm_until = time.perf_counter() + args.warmup
    warm = 0
    while warm < 3 or time.perf_counter() < warm_until:
        await upgrade_once(args.host, args.port)
        warm += 1
    times: list[int] = []
    probes: list[int] = []
    window = Window(args.server_pid)
    window.start()
    for _ in range(args.clients):
        total, probed = await upgrade_once(args.host, args.port)
        times.append(total)
        probes.append(probed)
    result = window.stop()
    result["sessions"] = args.clients
    result["upgrades_per_s"] = args.clients / result["seconds"]
    result["server_cpu_ms"] = result.get("server_cpu", 0) * result["seconds"] / args.clients * 1e3
    result.update({"upgrade_" + k: v for k, v in percentiles(times).items()})
    result.update({"probe_" + k: v for k, v in percentiles(probes).items()})
    return result


SCENARIOS = {"echo": echo, "fan": fan, "idle": idle, "poll-echo": poll_echo, "upgrade": upgrade}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--window", type=int, default=4, help="fan: events in flight")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=1.0, help="idle: wait before RSS")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--port-b", type=int, help="fan: a second node (half the receivers)")
    parser.add_argument("--server-pid-b", type=int, help="the second node's pid (its CPU)")
    parser.add_argument("--redis-pid", type=int, help="Redis's pid (its CPU)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    args = parser.parse_args()
    loop_kind = "asyncio"
    if args.loop != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_kind = "uvloop"
        except ImportError:
            if args.loop == "uvloop":
                raise

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await SCENARIOS[args.scenario](args)

    try:
        result = asyncio.run(bounded())
    except Exception as exc:  # one JSON line either way, so run.py can report it
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["loadgen_loop"] = loop_kind
    print(json.dumps(result), flush=True)
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()

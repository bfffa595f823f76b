"""Shared test harness: real servers on 127.0.0.1, port 0, and a raw client.

Timeouts are multiples of ``UNIT`` seconds; CI on a loaded machine can scale
them with MINISIO_TEST_UNIT.

For the Redis adapter: the ``redis_url`` and ``redis_server`` fixtures (a
throw-away ``redis-server`` of the test's own on a free port, never 6379),
``RedisProcess`` to stop and restart it mid-test, ``cluster_node`` (the official
Node server with @socket.io/redis-adapter, tests/js/cluster_node.mjs) and
``node_emit`` (@socket.io/redis-emitter, tests/js/emitter.mjs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

import minisio

UNIT = float(os.environ.get("MINISIO_TEST_UNIT", "1.0"))

SID = r"[A-Za-z0-9_-]{20}"


@asynccontextmanager
async def running(io: minisio.Server) -> AsyncIterator[str]:
    """Serve ``io`` on an ephemeral port; yield ``host:port``."""
    async with io.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"


class RawClient:
    """A WebSocket client that speaks Engine.IO/Socket.IO frame by frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.open: str = ""

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = 2) -> str | bytes:
        """The next frame (pings included: a test answers them itself)."""
        return await asyncio.wait_for(self.ws.recv(), timeout * UNIT)

    async def expect(self, expected: str | bytes, timeout: float = 2) -> None:
        frame = await self.recv(timeout)
        assert frame == expected

    async def expect_match(self, pattern: str, timeout: float = 2) -> re.Match[str]:
        frame = await self.recv(timeout)
        assert isinstance(frame, str), frame
        match = re.fullmatch(pattern, frame)
        assert match, f"{frame!r} does not match {pattern!r}"
        return match

    async def expect_nothing(self, within: float = 0.2) -> None:
        try:
            frame = await asyncio.wait_for(self.ws.recv(), within * UNIT)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame!r}")

    async def join(self, namespace: str = "/", auth: str = "") -> str:
        """Send CONNECT for ``namespace``; return the socket id from the reply."""
        prefix = "" if namespace == "/" else f"{namespace},"
        await self.send(f"40{prefix}{auth}")
        match = await self.expect_match(rf'40{re.escape(prefix)}\{{"sid":"({SID})"\}}')
        return match.group(1)

    async def closed(self, timeout: float = 2) -> int | None:
        """Wait for the server to close; return the close code."""
        await asyncio.wait_for(self.ws.wait_closed(), timeout * UNIT)
        return self.ws.close_code


@asynccontextmanager
async def raw_client(
    address: str, *, query: str = "EIO=4&transport=websocket", path: str = "/socket.io/", **kw: Any
) -> AsyncIterator[RawClient]:
    """A connected raw client whose open packet was received and checked."""
    async with connect(f"ws://{address}{path}?{query}", **kw) as ws:
        client = RawClient(ws)
        client.open = str(await client.recv())
        assert client.open.startswith('0{"sid":"'), client.open
        yield client


async def eventually(
    predicate: Callable[[], object], timeout: float = 2, interval: float = 0.01
) -> None:
    """Poll ``predicate`` every ``interval`` s; fail if it is still false after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout * UNIT
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(interval)


@asynccontextmanager
async def joined_clients(
    address: str, n: int, namespace: str = "/"
) -> AsyncIterator[list[tuple[RawClient, str]]]:
    """``n`` raw clients, each joined to ``namespace``: ``[(client, socket id), ...]``."""
    async with contextlib.AsyncExitStack() as stack:
        pairs = []
        for _ in range(n):
            client = await stack.enter_async_context(raw_client(address))
            pairs.append((client, await client.join(namespace)))
        yield pairs


def upgrade_request(
    address: str,
    *extra: tuple[str, str],
    key: str | None = None,
    target: str = "/socket.io/?EIO=4&transport=websocket",
) -> bytes:
    """A WebSocket upgrade request for /socket.io/, ``extra`` headers last.

    ``key`` is the Sec-WebSocket-Key, random unless given.
    """
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {address}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, masked client frame with the zero key (the payload stays readable)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def http_get(
    address: str, target: str, headers: tuple[tuple[str, str], ...] = ()
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP/1.1 GET with ``target`` sent verbatim: (status, headers, body).

    Header names come back lowercased. No client library in between, so
    hostile targets such as ``/../x`` reach the server unchanged.
    """
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"GET {target} HTTP/1.1", f"Host: {address}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = await asyncio.wait_for(reader.read(), 2 * UNIT)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), {k.lower(): v for k, v in fields.items()}, body


class HttpClient:
    """One kept-alive HTTP/1.1 connection: exact request bytes out, whole responses in."""

    def __init__(self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.address = address
        self.reader = reader
        self.writer = writer

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        timeout: float = 2,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request; return (status, [(name, value), ...], body)."""
        self.send(method, target, body, headers)
        return await self.response(timeout)

    def send(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.address}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def response(self, timeout: float = 2) -> tuple[int, list[tuple[str, str]], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout * UNIT)
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        fields = [tuple(line.split(": ", 1)) for line in lines]
        length = next((int(v) for k, v in fields if k.lower() == "content-length"), 0)
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout * UNIT)
        return int(status_line.split(" ")[1]), fields, body  # type: ignore[return-value]


@asynccontextmanager
async def http_client(address: str) -> AsyncIterator[HttpClient]:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield HttpClient(address, reader, writer)
    finally:
        writer.close()


POLL = "/socket.io/?EIO=4&transport=polling"


async def polling_handshake(client: HttpClient) -> str:
    """Open a polling session on ``client``; return its sid."""
    status, _, body = await client.request("GET", POLL)
    assert status == 200, body
    match = re.match(rb'0\{"sid":"(' + SID.encode() + rb')"', body)
    assert match, body
    return match.group(1).decode()


# -- Redis -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisError(Exception):
    """An error reply (``-ERR ...``) to ``RedisProcess.command``."""


def _read_reply(stream: Any) -> Any:
    """One RESP2 reply from a binary file object: str, int, None, list, or RedisError."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection closed mid-reply: {line!r}")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = stream.read(int(rest) + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        return None if int(rest) < 0 else [_read_reply(stream) for _ in range(int(rest))]
    raise ConnectionError(f"not a RESP reply: {line!r}")


def redis_command(port: int, *args: str | bytes | int, timeout: float = 2) -> Any:
    """Send one command to Redis on 127.0.0.1:``port`` over a raw socket; return its reply.

    No client library: simple and bulk strings come back as ``str``, integers
    as ``int``, arrays as lists; an error reply raises ``RedisError``.
    """
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(("127.0.0.1", port), timeout * UNIT) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as stream:
            reply = _read_reply(stream)
    if isinstance(reply, RedisError):
        raise reply
    return reply


class RedisProcess:
    """A throw-away ``redis-server`` on 127.0.0.1, no persistence, its own port and directory.

    ``start()`` launches it and returns once it answers PING (about 10 ms);
    ``stop()`` kills it by PID (SIGKILL, a crash; SIGTERM with ``graceful=True``)
    and waits until it is gone. Both can be called again and again: a restart
    keeps the port, and so ``url``, which is what fault tests need. ``close()``
    stops it for good and removes its directory. Also a context manager.
    ``start``/``stop`` block the calling thread for those few milliseconds.
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="minisio-redis-")
        self.log_path = Path(self._dir.name) / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._started = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``, the same across restarts."""
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, *args: str | bytes | int) -> Any:
        """One raw command, e.g. ``command("PUBSUB", "NUMSUB", "socket.io-request#/#")``."""
        return redis_command(self.port, *args)

    def start(self, timeout: float = 5) -> None:
        """Launch the server (no-op when it runs) and wait until it answers PING."""
        if self.running:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed, and the Redis tests need it: install"
                " Debian's redis-server package (`make deps` and .ci/run do)",
                pytrace=False,
            )
        for _ in range(3):
            if self._launch(binary, timeout):
                self._started = True
                return
            if self._fixed_port or self._started:
                break  # the port is the point: do not move
            self.port = free_port()  # lost a race for the port: another one
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        pytest.fail(f"redis-server did not start on port {self.port}:\n{log}", pytrace=False)

    def _launch(self, binary: str, timeout: float) -> bool:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port", str(self.port),
                    "--bind", self.host,
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", self._dir.name,
                    "--daemonize", "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout * UNIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break  # exited: the port was taken, say
            with contextlib.suppress(OSError, RedisError):
                if redis_command(self.port, "PING", timeout=0.5) == "PONG":
                    # Ours, not another server that holds the port.
                    info = redis_command(self.port, "INFO", "server", timeout=0.5)
                    if f"process_id:{self.process.pid}\r" in info:
                        return True
            time.sleep(0.005)
        self.stop()
        return False

    def stop(self, *, graceful: bool = False, timeout: float = 5) -> None:
        """Kill the server by PID and wait for it (no-op when it is not running)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                process.wait(timeout * UNIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """``stop()`` (SIGKILL), then ``start()`` on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A fresh ``redis-server`` for this test alone, killed by PID after it: a ``RedisProcess``."""
    server = RedisProcess()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """``redis://127.0.0.1:<port>`` of this test's own ``redis_server``."""
    return redis_server.url


class NodeServer:
    """A running tests/js/cluster_node.mjs: ``address`` is ``127.0.0.1:<port>``, as ``running``."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.address = f"127.0.0.1:{port}"

    def kill(self) -> None:
        """SIGKILL: the node dies without unsubscribing, as in a crash."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self, timeout: float = 5) -> int:
        """SIGTERM (the node closes cleanly), then wait; SIGKILL if it takes too long."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout * UNIT)
            except TimeoutError:
                self.kill()
        return await self.process.wait()


@asynccontextmanager
async def cluster_node(
    redis_url: str,
    *,
    port: int = 0,
    key: str | None = None,
    requests_timeout: float | None = None,
    name: str | None = None,
) -> AsyncIterator[NodeServer]:
    """The official socket.io server with @socket.io/redis-adapter on ``redis_url``.

    Yields once the node is subscribed and listening; stops it (SIGTERM) after.
    ``key`` is the channel prefix, ``requests_timeout`` the adapter's in seconds.
    Its events are listed at the top of tests/js/cluster_node.mjs; its stderr
    goes to the test's captured output.
    """
    args = [str(JS / "cluster_node.mjs"), redis_url, str(port)]
    if key is not None:
        args += ["--key", key]
    if requests_timeout is not None:
        args += ["--requests-timeout", str(round(requests_timeout * 1000))]
    if name is not None:
        args += ["--name", name]
    process = await asyncio.create_subprocess_exec(
        "node", *args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    node = NodeServer(process, port)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10 * UNIT)
        match = re.fullmatch(rb"listening http://127\.0\.0\.1:(\d+)\s*", line)
        assert match, f"cluster_node.mjs did not start (stdout {line!r}; see its stderr)"
        node.port = int(match.group(1))
        node.address = f"127.0.0.1:{node.port}"
        yield node
    finally:
        await node.stop()


def _node_json(value: object) -> str:
    """JSON for tests/js/emitter.mjs: ``bytes`` become ``{"$bytes": hex}`` (Buffers there)."""

    def spell(item: object) -> object:
        if isinstance(item, bytes | bytearray):
            return {"$bytes": bytes(item).hex()}
        raise TypeError(f"not JSON: {item!r}")

    return json.dumps(value, default=spell)


async def node_emit(
    redis_url: str,
    event: str,
    *args: Any,
    nsp: str = "/",
    to: str | list[str] | None = None,
    except_: str | list[str] | None = None,
    key: str | None = None,
    volatile: bool = False,
) -> None:
    """Publish one message with the official @socket.io/redis-emitter (tests/js/emitter.mjs).

    ``emitter.of(nsp).to(to).except(except_).emit(event, *args)``; returns once
    the message is in Redis. ``event`` may also be ``":socketsJoin"``,
    ``":socketsLeave"``, ``":disconnectSockets"`` or ``":serverSideEmit"`` (see
    the script). ``bytes`` in ``args`` arrive as binary.
    """

    def rooms(value: str | list[str] | None) -> str:
        return "-" if value is None else value if isinstance(value, str) else json.dumps(value)

    argv = [str(JS / "emitter.mjs"), redis_url, nsp, rooms(to), event, _node_json(list(args))]
    if except_ is not None:
        argv += ["--except", rooms(except_)]
    if key is not None:
        argv += ["--key", key]
    if volatile:
        argv.append("--volatile")
    process = await asyncio.create_subprocess_exec(
        "node", *argv, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 10 * UNIT)
    assert process.returncode == 0, f"emitter.mjs failed ({process.returncode}): {stderr.decode()}"

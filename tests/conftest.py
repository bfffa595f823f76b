"""Shared test harness: real servers on 127.0.0.1, port 0, and a raw client.

Timeouts are multiples of ``UNIT`` seconds; CI on a loaded machine can scale
them with MINISIO_TEST_UNIT.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

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


def upgrade_request(address: str, *extra: tuple[str, str], key: str | None = None) -> bytes:
    """A WebSocket upgrade request for /socket.io/, ``extra`` headers last.

    ``key`` is the Sec-WebSocket-Key, random unless given.
    """
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
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

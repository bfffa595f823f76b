"""Hostile HTTP over a raw TCP socket: traversal, methods, oversize heads, Origin, capacity.

Every request is written byte for byte, so nothing normalizes a target such
as ``/%2e%2e/secret`` before the server sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

import minisio

from .conftest import UNIT, eventually, joined_clients, raw_client, running, upgrade_request

SECRET = b"TOP-SECRET-5b1f0c"
INDEX = b"<!doctype html><title>ok</title>"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def request(address: str, head: bytes, *, timeout: float = 2, split: int = 0) -> Reply | None:
    """Send ``head`` as is (in two writes, split there, if asked); read to EOF.

    ``None`` when the server closed without answering.
    """
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        if split:
            writer.write(head[:split])
            await writer.drain()
            await asyncio.sleep(0.05 * UNIT)  # the server reads the first part alone
            head = head[split:]
        writer.write(head)
        raw = await asyncio.wait_for(reader.read(), timeout * UNIT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not raw:
        return None
    top, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split(" ")[1]), headers, body)


def build(
    target: str | bytes, method: str = "GET", headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    if isinstance(target, str):
        target = target.encode()
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Connection: close"]
    lines += [f"{name}: {value}".encode() for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def get(address: str, target: str | bytes, method: str = "GET", **kw: object) -> Reply:
    headers = (("Host", address), *kw.get("headers", ()))  # type: ignore[misc]
    reply = await request(address, build(target, method, headers))
    assert reply is not None, f"no response to {method} {target!r}"
    return reply


async def handshake(address: str, *extra: tuple[str, str]) -> Reply:
    """A WebSocket upgrade request; reads the status line and headers only."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(upgrade_request(address, *extra, key="dGhlIHNhbXBsZSBub25jZQ=="))
        top = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2 * UNIT)
        status_line, *header_lines = top.decode("latin-1").rstrip().split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split(" ")[1])
        body = b""
        if status != 101:
            length = int(headers.get("content-length", "0"))
            body = await asyncio.wait_for(reader.readexactly(length), 2 * UNIT)
        return Reply(status, headers, body)
    finally:
        writer.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static dir with traps: a secret beside it and symlinks pointing out."""
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "sub" / "page.txt").write_bytes(b"inside")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path / "outside", root / "linkdir")
    os.symlink("../secret.txt", root / "sub" / "rel.txt")
    return root


TRAVERSALS = [
    "/../secret.txt",
    "/../../../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub/../../secret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..\\secret.txt",
    "/sub\\..\\..\\secret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/%5C..%5Csecret.txt",
    "//etc/passwd",
    "///etc/passwd",
    "/%2fetc%2fpasswd",
    "/%2f%2e%2e%2fsecret.txt",
    "/etc/passwd",
    "/secret.txt%00.html",
    "/index.html%00",
    "/%00../secret.txt",
    "/link.txt",
    "/linkdir/secret.txt",
    "/sub/rel.txt",
    "/%252e%252e/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/..;/secret.txt",
    "http://127.0.0.1/../secret.txt",
    "/socket.io/../secret.txt",
    "/socket.io/..%2f..%2fsecret.txt",
    "/socket.io/%2e%2e/socket.io.js",
    "*",
]


async def test_static_dir_serves_its_own_files(site: Path) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        index = await get(address, "/")
        assert (index.status, index.body) == (200, INDEX)
        assert index.headers["content-type"].startswith("text/html")
        assert (await get(address, "/sub/page.txt")).body == b"inside"
        assert (await get(address, "/sub/")).status == 404  # no index.html there


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_static_traversal_never_leaks(site: Path, target: str) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        reply = await get(address, target)
        assert 400 <= reply.status < 500, (target, reply.status)
        assert SECRET not in reply.body
        assert b"root:" not in reply.body
        assert (await get(address, "/")).body == INDEX  # still serving


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
@pytest.mark.parametrize("target", ["/", "/index.html", "/nope", "/socket.io/socket.io.js"])
async def test_other_methods_get_405(site: Path, method: str, target: str) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        reply = await get(address, target, method)
        assert reply.status == 405
        assert reply.headers["allow"] == "GET, HEAD"
        assert INDEX not in reply.body


async def test_other_methods_on_the_engine_path_get_bad_handshake_method(site: Path) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        reply = await get(address, "/socket.io/?EIO=4&transport=websocket", "POST")
        assert reply.status == 400
        assert reply.body == b'{"code":2,"message":"Bad handshake method"}'


@pytest.mark.parametrize(
    "target", ["/", "/index.html", "/nope", "/../secret.txt", "/socket.io/socket.io.js"]
)
async def test_head_has_the_headers_of_get_and_no_body(site: Path, target: str) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        as_get = await get(address, target)
        as_head = await get(address, target, "HEAD")
        assert as_head.status == as_get.status
        assert as_head.body == b""
        assert as_head.headers.get("content-length") == str(len(as_get.body))
        assert as_head.headers.get("content-type") == as_get.headers.get("content-type")


@pytest.mark.parametrize("query", ["EIO=4&transport=websocket", "EIO=4&transport=polling"])
async def test_head_on_the_engine_path_is_a_bad_handshake_method_without_body(
    site: Path, query: str
) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        reply = await get(address, f"/socket.io/?{query}", "HEAD")
        assert reply.status == 400
        assert reply.headers["content-type"] == "application/json"
        assert reply.body == b""  # RFC 9110 9.3.2


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("//[x/", 400),  # urlsplit: "Invalid IPv6 URL"
        ("//[::1/socket.io/", 400),
        ("/" + "a" * 300, 404),  # one name longer than NAME_MAX: ENAMETOOLONG
        ("/sub/" + "a" * 300 + "/x", 404),
    ],
)
async def test_targets_that_break_parsing_get_4xx_not_500(
    site: Path, target: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        for method in ("GET", "HEAD"):
            reply = await get(address, target, method)
            assert reply.status == status, (method, target)
            assert SECRET not in reply.body
        assert (await get(address, "/")).body == INDEX
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_oversize_request_heads_are_refused_by_websockets(site: Path) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        long_line = await get(address, "/" + "a" * 10_000)
        assert long_line.status == 414
        many = tuple((f"X-H{i}", "v") for i in range(200))
        assert (await get(address, "/", headers=many)).status == 431
        huge = (("X-Big", "v" * 10_000),)
        assert (await get(address, "/", headers=huge)).status == 431
        io.emit("still", 1)
        await control.expect('42["still",1]')


BODIES = [
    ("POST", (("Content-Length", "5"),), b"hello", 405),
    ("PUT", (("Content-Length", "5"),), b"hello", 405),
    ("GET", (("Content-Length", "5"),), b"hello", 400),
    ("POST", (("Transfer-Encoding", "chunked"),), b"5\r\nhello\r\n0\r\n\r\n", 405),
    ("GET", (("transfer-encoding", "chunked"),), b"0\r\n\r\n", 400),
]


@pytest.mark.parametrize("split", [0, 20], ids=["one write", "head in two writes"])
@pytest.mark.parametrize(("method", "headers", "body", "status"), BODIES)
async def test_request_with_a_body_gets_4xx_and_hurts_no_one(
    site: Path,
    method: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    status: int,
    split: int,
) -> None:
    # websockets reads no request bodies (it would drop the connection
    # unanswered); minisio answers before handing the request to it.
    io = minisio.Server(static_dir=site)
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        head = build("/index.html", method, (("Host", address), *headers)) + body
        reply = await request(address, head, split=split)
        assert reply is not None and reply.status == status
        if status == 405:
            assert reply.headers.get("allow") == "GET, HEAD"
        assert INDEX not in reply.body
        io.emit("still", 1)
        await control.expect('42["still",1]')
        assert (await get(address, "/")).body == INDEX


async def test_content_length_zero_is_no_body(site: Path) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        head = build("/index.html", "GET", (("Host", address), ("Content-Length", "0")))
        reply = await request(address, head)
        assert reply is not None and reply.status == 200 and reply.body == INDEX


@pytest.mark.parametrize(
    "head",
    [
        b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
)
async def test_garbage_requests_do_not_hurt_the_server(site: Path, head: bytes) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        if not head.endswith(b"\r\n\r\n"):
            writer.write_eof()  # an incomplete head would wait for open_timeout
        raw = await asyncio.wait_for(reader.read(), 2 * UNIT)
        writer.close()
        assert raw == b"" or raw.startswith(b"HTTP/1.1 4"), raw[:40]
        io.emit("still", 1)
        await control.expect('42["still",1]')


# -- Origin ---------------------------------------------------------------------
FORBIDDEN = orjson.dumps({"code": 4, "message": "Forbidden"})


async def test_default_origin_policy() -> None:
    io = minisio.Server()
    async with running(io) as address:
        assert (await handshake(address)).status == 101  # not a browser
        assert (await handshake(address, ("Origin", f"http://{address}"))).status == 101
        for origin in (
            "http://evil.example",
            f"http://{address}.evil.example",
            f"http://evil.example/{address}",
            "null",
            f"http://user@{address}x",
        ):
            refused = await handshake(address, ("Origin", origin))
            assert refused.status == 403, origin
            assert refused.body == FORBIDDEN
            assert refused.headers["content-type"] == "application/json"


async def test_any_origin_allowed_with_star() -> None:
    io = minisio.Server(cors_allowed_origins="*")
    async with running(io) as address:
        for origin in ("http://evil.example", "null", f"http://{address}"):
            assert (await handshake(address, ("Origin", origin))).status == 101


async def test_origin_allow_list() -> None:
    allowed = ["https://app.example", "http://localhost:3000"]
    io = minisio.Server(cors_allowed_origins=allowed)
    async with running(io) as address:
        for origin in allowed:
            assert (await handshake(address, ("Origin", origin))).status == 101
        for origin in ("https://app.example.evil", "http://localhost:3001", f"http://{address}"):
            refused = await handshake(address, ("Origin", origin))
            assert (refused.status, refused.body) == (403, FORBIDDEN), origin
        assert (await handshake(address)).status == 101


async def test_single_origin_string() -> None:
    io = minisio.Server(cors_allowed_origins="https://app.example")
    async with running(io) as address:
        assert (await handshake(address, ("Origin", "https://app.example"))).status == 101
        assert (await handshake(address, ("Origin", "https://app"))).status == 403


@pytest.mark.parametrize(
    ("allowed", "status"),
    [(None, 403), (["https://app.example"], 403), ("*", 101)],
    ids=["default", "allow-list", "star"],
)
async def test_a_malformed_origin_is_refused_unless_any_origin_is_allowed(
    allowed: list[str] | str | None, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    io = minisio.Server(cors_allowed_origins=allowed)
    async with running(io) as address:
        for origin in ("http://[", "http://[::1", "http://[x]", f"http://[{address}"):
            reply = await handshake(address, ("Origin", origin))
            assert reply.status == status, origin
            if status == 403:
                assert reply.body == FORBIDDEN
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- capacity -----------------------------------------------------------------
async def test_max_connections_gives_503_and_spares_the_others() -> None:
    io = minisio.Server(max_connections=3)
    async with running(io) as address, joined_clients(address, 3) as pairs:
        three = [client for client, _ in pairs]
        for _ in range(5):
            refused = await handshake(address)
            assert refused.status == 503
        io.emit("still", 1)
        for client in three:
            await client.expect('42["still",1]')
        assert len(io._sessions) == 3
        await three[0].ws.close()
        await asyncio.wait_for(three[0].ws.wait_closed(), 2 * UNIT)
        await eventually(lambda: len(io._sessions) < 3, timeout=3)
        async with joined_clients(address, 1) as ((late, _),):  # the freed slot is usable again
            io.emit("still", 2)
            for client in (*three[1:], late):
                await client.expect('42["still",2]')


async def test_a_burst_of_handshakes_never_passes_max_connections() -> None:
    io = minisio.Server(max_connections=5)
    async with running(io) as address:
        replies = await asyncio.gather(*(handshake(address) for _ in range(40)))
        statuses = sorted(reply.status for reply in replies)
        assert statuses == [101] * 5 + [503] * 35
        assert len(io._sessions) <= 5


@pytest.mark.parametrize(
    "extra",
    [
        (("Origin", "http://evil.example"), ("Origin", "http://{address}")),
        (("Origin", "http://{address}"), ("Origin", "http://{address}")),
        (("Upgrade", "websocket"),),
        (("Host", "evil.example"), ("Origin", "http://{address}")),
    ],
    ids=["two origins", "same origin twice", "two upgrades", "two hosts"],
)
async def test_duplicated_handshake_headers_are_a_bad_request(
    extra: tuple[tuple[str, str], ...], caplog: pytest.LogCaptureFixture
) -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        fields = tuple((name, value.format(address=address)) for name, value in extra)
        refused = await handshake(address, *fields)
        assert (refused.status, refused.body) == (400, b'{"code":3,"message":"Bad request"}')
        io.emit("still", 1)
        await control.expect('42["still",1]')
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_half_sent_request_is_dropped_after_handshake_timeout() -> None:
    io = minisio.Server(handshake_timeout=0.3)
    async with running(io) as address:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 3 * UNIT) == b""  # closed, unanswered
        elapsed = asyncio.get_running_loop().time() - started
        assert 0.25 <= elapsed < 2 * UNIT  # held for handshake_timeout, not less, not much more
        writer.close()

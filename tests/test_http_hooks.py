"""The HTTP side's hooks, over real sockets: allow_request, header hooks, connection_error,
generate_id, clients_count, socket.request, handshake.secure/xdomain, CORS shapes, proxies.

Requests are written byte for byte; refusals and the polling handshake are
compared whole (status line, every header in the order minisio writes it,
Content-Length, body), with the expected bytes written out here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import minisio
from minisio import HttpRequest

from .conftest import UNIT, eventually, raw_client, running, upgrade_request

POLL = "/socket.io/?EIO=4&transport=polling"
OPEN = (
    '0{{"sid":"{}","upgrades":["websocket"],"pingInterval":25000,'
    '"pingTimeout":20000,"maxPayload":1000000}}'
)


def response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The exact bytes minisio writes: headers in order, Content-Length last."""
    phrase = {200: "OK", 400: "Bad Request", 403: "Forbidden"}[status]
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{n}: {v}" for n, v in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def refusal(code: int, message: str, status: int = 403, *, close: bool = True) -> bytes:
    body = f'{{"code":{code},"message":"{message}"}}'.encode()
    headers = [("Content-Type", "application/json")]
    if close:
        headers.append(("Connection", "close"))
    return response(status, headers, body)


async def exchange(address: str, head: str, *, until_eof: bool = True) -> bytes:
    """Send ``head`` as is; everything the server sends until it closes (or one response)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        if until_eof:
            return await asyncio.wait_for(reader.read(), 2 * UNIT)
        top = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2 * UNIT)
        length = 0
        for line in top.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return top + await asyncio.wait_for(reader.readexactly(length), 2 * UNIT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def get(address: str, target: str = POLL, *headers: tuple[str, str], method: str = "GET") -> str:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {address}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return "\r\n".join(lines) + "\r\n\r\n"


def head_fields(raw: bytes) -> list[tuple[str, str]]:
    """The header fields of a response, in order, names lowercased, repeats kept."""
    top = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in top)]


def plain_or_async(fn: Callable[[HttpRequest], Any], kind: str) -> Callable[[HttpRequest], Any]:
    if kind == "plain":
        return fn

    async def wrapped(request: HttpRequest) -> Any:
        await asyncio.sleep(0.01 * UNIT)  # answered later: the request waits for it
        return fn(request)

    return wrapped


# -- allow_request ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_allow_request_refuses_a_polling_handshake(kind: str) -> None:
    io = minisio.Server(allow_request=plain_or_async(lambda request: "no entry", kind))
    async with running(io) as address:
        raw = await exchange(address, get(address))
    assert raw == refusal(4, "no entry")
    assert io.clients_count == 0


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_allow_request_refuses_a_websocket_before_the_101(kind: str) -> None:
    io = minisio.Server(allow_request=plain_or_async(lambda request: "no entry", kind))
    async with running(io) as address:
        raw = await exchange(address, upgrade_request(address).decode(), until_eof=False)
    # The upgrade request did not say "Connection: close": the connection stays.
    assert raw == refusal(4, "no entry", close=False)
    assert io.clients_count == 0


async def test_an_async_allow_request_is_bounded_by_handshake_timeout() -> None:
    async def never(request: HttpRequest) -> bool:
        await asyncio.sleep(10)
        return True

    io = minisio.Server(allow_request=never, handshake_timeout=0.2 * UNIT)
    async with running(io) as address:
        assert await exchange(address, get(address)) == b""  # dropped, unanswered
    assert io.clients_count == 0


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (False, "Forbidden"),
        (None, "Forbidden"),  # a forgotten return refuses, loudly
        ("", "Forbidden"),
        (minisio.ConnectionRefused("banned"), "banned"),
        (RuntimeError("bug"), "Forbidden"),  # logged; fails closed
    ],
    ids=["False", "None", "empty message", "ConnectionRefused", "exception"],
)
@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_allow_request_refusals(answer: Any, message: str, kind: str) -> None:
    def decide(request: HttpRequest) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    io = minisio.Server(allow_request=plain_or_async(decide, kind))
    async with running(io) as address:
        assert await exchange(address, get(address)) == refusal(4, message)


async def test_allow_request_sees_the_request_and_is_not_asked_again() -> None:
    seen: list[HttpRequest] = []

    async def allow(request: HttpRequest) -> bool:
        seen.append(request)
        return request.headers.get("x-token") == "good"

    io = minisio.Server(allow_request=allow, generate_id=lambda request: "s1")
    async with running(io) as address:
        raw = await exchange(address, get(address, POLL + "&a=1&a=2", ("X-Token", "good")))
        assert raw.endswith(OPEN.format("s1").encode())
        post = get(address, POLL + "&sid=s1", ("Content-Length", "2"), method="POST")
        assert (await exchange(address, post + "40")).endswith(b"ok")  # not asked: no token
        assert await exchange(address, get(address)) == refusal(4, "Forbidden")
    assert len(seen) == 2  # the handshakes only, as Node's allowRequest
    request = seen[0]
    assert (request.method, request.path, request.address) == ("GET", "/socket.io/", "127.0.0.1")
    assert request.url == POLL + "&a=1&a=2"
    assert request.query["a"] == "1" and request.query_all["a"] == ["1", "2"]
    assert request.secure is False


async def test_allow_request_refusal_gives_the_official_client_connect_error() -> None:
    """What socket.io-client sees: its polling handshake is answered 403 {"code":4,...}.

    The client turns that into ``connect_error`` (tested in tests/js when Node is
    there); here, the exchange the client makes, with its own query string.
    """
    io = minisio.Server(allow_request=lambda request: "not today")
    async with running(io) as address:
        target = "/socket.io/?EIO=4&transport=polling&t=PQ3xk1A"
        raw = await exchange(address, get(address, target, ("Origin", f"http://{address}")))
    assert raw == refusal(4, "not today")


# -- header hooks ----------------------------------------------------------------------


def header_hooks() -> dict[str, Any]:
    return {
        "handshake_headers": lambda request: [
            ("Set-Cookie", "lb=node-a; Path=/"),
            ("Set-Cookie", "io=1"),
        ],
        "response_headers": lambda request: {"X-Node": "a"},
        "generate_id": lambda request: "sid-1",
    }


async def test_header_hooks_on_polling_responses() -> None:
    io = minisio.Server(**header_hooks())
    async with running(io) as address:
        raw = await exchange(address, get(address))
        assert raw == response(
            200,
            [
                ("Content-Type", "text/plain; charset=UTF-8"),
                ("Cache-Control", "no-store"),
                ("Set-Cookie", "lb=node-a; Path=/"),
                ("Set-Cookie", "io=1"),
                ("X-Node", "a"),
                ("Connection", "close"),
            ],
            OPEN.format("sid-1").encode(),
        )
        # Every later response of the session: response_headers only.
        post = get(address, POLL + "&sid=sid-1", ("Content-Length", "2"), method="POST")
        raw = await exchange(address, post + "40")
        assert raw.endswith(b"ok") and ("x-node", "a") in head_fields(raw)
        raw = await exchange(address, get(address, POLL + "&sid=sid-1"))
        assert b'40{"sid":"' in raw  # the CONNECT reply
        assert [f for f in head_fields(raw) if f[0] in ("set-cookie", "x-node")] == [
            ("x-node", "a")
        ]
        # An error response carries none.
        raw = await exchange(address, get(address, POLL + "&sid=nope"))
        assert raw == refusal(1, "Session ID unknown", 400)


async def test_header_hooks_on_the_101() -> None:
    io = minisio.Server(**header_hooks())
    async with running(io) as address:
        raw = await exchange(address, upgrade_request(address).decode(), until_eof=False)
    assert raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    fields = head_fields(raw)
    assert [f for f in fields if f[0] in ("set-cookie", "x-node")] == [
        ("set-cookie", "lb=node-a; Path=/"),
        ("set-cookie", "io=1"),
        ("x-node", "a"),
    ]


async def test_the_upgrade_101_gets_response_headers_only() -> None:
    io = minisio.Server(**header_hooks())
    async with running(io) as address:
        await exchange(address, get(address))
        head = (
            upgrade_request(address)
            .decode()
            .replace("transport=websocket", "transport=websocket&sid=sid-1")
        )
        raw = await exchange(address, head, until_eof=False)
    assert raw.startswith(b"HTTP/1.1 101 ")
    assert [f for f in head_fields(raw) if f[0] in ("set-cookie", "x-node")] == [("x-node", "a")]


async def test_a_header_hook_that_fails_or_injects_is_left_out(caplog: Any) -> None:
    io = minisio.Server(
        handshake_headers=lambda request: [("X-Bad", "a\r\nInjected: yes")],
        response_headers=lambda request: 1 / 0,
        generate_id=lambda request: "sid-2",
    )
    async with running(io) as address:
        raw = await exchange(address, get(address))
    assert raw.endswith(OPEN.format("sid-2").encode())
    assert b"Injected" not in raw.partition(b"\r\n\r\n")[0]
    assert "a header hook failed" in caplog.text


# -- the official client (Node) -----------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
CLIENT_JS = r"""
import { io } from "socket.io-client";
const [url, deny, transport] = process.argv.slice(1);
const socket = io(url, {
  query: { deny }, transports: [transport], withCredentials: true, reconnection: false,
});
socket.on("connect_error", (err) => {
  const body = err.context?.responseText;
  console.log(JSON.stringify({ error: err.message, description: err.description ?? null, body }));
  socket.close();
});
socket.on("connect", () => {
  socket.emit("hello", () => { console.log(JSON.stringify({ connected: true })); socket.close(); });
});
"""
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").is_dir(),
    reason="needs node and npm ci (the official socket.io-client)",
)


async def official_client(url: str, deny: str, transport: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--input-type=module",
        "-e",
        CLIENT_JS,
        url,
        deny,
        transport,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 10 * UNIT)
    return json.loads(out)


@needs_node
async def test_the_official_client_gets_connect_error_and_keeps_the_cookie() -> None:
    """socket.io-client 4.8: a refused handshake is its ``connect_error`` (as with Node's
    server: "xhr poll error", the status and the body; "websocket error" over a WebSocket);
    an accepted one stores the load balancer's cookie and sends it back on every request."""
    cookies: list[str | None] = []

    def allow(request: HttpRequest) -> Any:
        return "no entry" if request.query.get("deny") == "1" else True

    def every_response(request: HttpRequest) -> list[tuple[str, str]]:
        cookies.append(request.headers.get("cookie"))
        return []

    io = minisio.Server(
        allow_request=allow,
        handshake_headers=lambda request: [("Set-Cookie", "lb=node-a; Path=/")],
        response_headers=every_response,
    )
    io.on("connection", lambda socket: socket.on("hello", lambda: True))
    async with running(io) as address:
        url = f"http://{address}"
        assert await official_client(url, "1", "polling") == {
            "error": "xhr poll error",
            "description": 403,
            "body": '{"code":4,"message":"no entry"}',
        }
        refused = await official_client(url, "1", "websocket")
        assert refused["error"] == "websocket error"
        assert await official_client(url, "0", "polling") == {"connected": True}
    assert cookies[0] is None  # the handshake: no cookie yet
    assert len(cookies) >= 2 and set(cookies[1:]) == {"lb=node-a"}


# -- connection_error ------------------------------------------------------------------


def _upgrade(address: str) -> str:
    return upgrade_request(address).decode()


REFUSALS: list[tuple[str, Callable[[str], str], int, str]] = [
    (
        "unknown transport",
        lambda a: get(a, "/socket.io/?EIO=4&transport=carrier"),
        0,
        "Transport unknown",
    ),
    ("unknown sid", lambda a: get(a, POLL + "&sid=nope"), 1, "Session ID unknown"),
    ("bad handshake method", lambda a: get(a, method="PUT"), 2, "Bad handshake method"),
    (
        "websocket without upgrade",
        lambda a: get(a, "/socket.io/?EIO=4&transport=websocket"),
        3,
        "Bad request",
    ),
    ("foreign origin", lambda a: get(a, POLL, ("Origin", "http://evil.example")), 4, "Forbidden"),
    (
        "old protocol",
        lambda a: get(a, "/socket.io/?EIO=3&transport=polling"),
        5,
        "Unsupported protocol version",
    ),
    ("allow_request", lambda a: get(a, POLL, ("X-Deny", "1")), 4, "denied"),
    (
        "allow_request on a websocket",
        lambda a: _upgrade(a).replace("\r\n\r\n", "\r\nX-Deny: 1\r\n\r\n"),
        4,
        "denied",
    ),
    ("generate_id", lambda a: get(a, POLL, ("X-Bad-Id", "1")), 3, "Bad request"),
]


@pytest.mark.parametrize(
    ("what", "build", "code", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_connection_error_is_told_of_each_refusal(
    what: str, build: Callable[[str], str], code: int, message: str, kind: str
) -> None:
    told: list[tuple[str, int, str]] = []

    def record(request: HttpRequest, code: int, message: str) -> None:
        told.append((request.url, code, message))

    async def record_async(request: HttpRequest, code: int, message: str) -> None:
        await asyncio.sleep(0)
        record(request, code, message)

    io = minisio.Server(
        allow_request=lambda r: "denied" if "x-deny" in r.headers else True,
        generate_id=lambda r: "bad id!" if "x-bad-id" in r.headers else "fine",
        connection_error=record if kind == "plain" else record_async,
    )
    async with running(io) as address:
        head = build(address)
        raw = await exchange(address, head, until_eof="Connection: close" in head)
        assert b'{"code":%d,' % code in raw
        await eventually(lambda: told)
    target = head.split(" ", 2)[1]
    assert told == [(target, code, message)]


async def test_connection_error_that_raises_is_logged(caplog: Any) -> None:
    io = minisio.Server(connection_error=lambda request, code, message: 1 / 0)
    async with running(io) as address:
        raw = await exchange(address, get(address, POLL + "&sid=nope"))
    assert raw == refusal(1, "Session ID unknown", 400)
    assert "connection_error hook failed" in caplog.text


# -- generate_id, clients_count --------------------------------------------------------


async def test_generate_id_names_sessions_over_both_transports() -> None:
    ids = itertools.count(1)
    io = minisio.Server(generate_id=lambda request: f"node-a.{next(ids)}")
    async with running(io) as address:
        raw = await exchange(address, get(address))
        assert raw.endswith(OPEN.format("node-a.1").encode())
        async with raw_client(address) as client:
            assert client.open.startswith('0{"sid":"node-a.2",')
            assert set(io._sessions) == {"node-a.1", "node-a.2"}


async def test_generate_id_refuses_an_id_in_use_or_not_url_safe() -> None:
    answers = iter(["same", "same", "a&b", 42])
    io = minisio.Server(generate_id=lambda request: next(answers))
    async with running(io) as address, raw_client(address):
        for _ in range(3):
            raw = await exchange(address, get(address))
            assert raw == refusal(3, "Bad request", 400)


def test_generate_id_is_a_plain_function() -> None:
    async def make(request: HttpRequest) -> str:
        return "x"

    with pytest.raises(TypeError, match="plain function"):
        minisio.Server(generate_id=make)


async def test_clients_count() -> None:
    io = minisio.Server()
    async with running(io) as address:
        assert io.clients_count == 0
        async with raw_client(address), raw_client(address) as second:
            await exchange(address, get(address))  # a polling session too
            assert io.clients_count == 3
            await second.ws.close()
            await eventually(lambda: io.clients_count == 2)
        await eventually(lambda: io.clients_count == 1)


# -- socket.request, handshake.secure and xdomain --------------------------------------


async def test_socket_request_over_websocket() -> None:
    io = minisio.Server()
    seen: list[minisio.Socket] = []
    io.on("connection", seen.append)
    async with running(io) as address:
        extra = {"additional_headers": [("X-Tag", "a"), ("X-Tag", "b"), ("Cookie", "c=1")]}
        async with raw_client(address, query="EIO=4&transport=websocket&room=7", **extra) as client:
            await client.join()
            await eventually(lambda: seen)
            request = seen[0].request
            handshake = seen[0].handshake
    assert request.method == "GET"
    assert request.url == "/socket.io/?EIO=4&transport=websocket&room=7"
    assert request.path == "/socket.io/"
    assert request.query == {"EIO": "4", "transport": "websocket", "room": "7"}
    assert request.headers.get_all("x-tag") == ["a", "b"]
    assert request.headers["X-TAG"] == "a" and request.headers["cookie"] == "c=1"
    assert ("X-Tag", "b") in request.headers.raw_items()
    assert request.address == "127.0.0.1"
    assert request.secure is False  # minisio serves plain TCP
    assert (handshake.secure, handshake.xdomain) == (False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.method = "POST"  # type: ignore[misc]


async def test_socket_request_over_polling_and_xdomain() -> None:
    io = minisio.Server(cors_allowed_origins="*", generate_id=lambda request: "p1")
    seen: list[minisio.Socket] = []
    io.on("connection", seen.append)
    async with running(io) as address:
        origin = ("Origin", "http://other.example")
        await exchange(address, get(address, POLL, origin))
        post = get(address, POLL + "&sid=p1", origin, ("Content-Length", "2"), method="POST")
        await exchange(address, post + "40")
        await eventually(lambda: seen)
        socket = seen[0]
        assert socket.request.method == "GET"
        assert socket.request.url == POLL  # the handshake, not the POST that joined
        assert socket.request.headers["origin"] == "http://other.example"
        assert (socket.handshake.xdomain, socket.handshake.secure) == (True, False)


@pytest.mark.parametrize(("trust", "secure"), [(False, False), (True, True)])
async def test_secure_only_from_a_trusted_proxy(trust: bool, secure: bool) -> None:
    io = minisio.Server(trust_proxy=trust)
    seen: list[minisio.Socket] = []
    io.on("connection", seen.append)
    async with running(io) as address:
        extra = {"additional_headers": [("X-Forwarded-Proto", "https, http")]}
        async with raw_client(address, **extra) as client:
            await client.join()
            await eventually(lambda: seen)
    assert seen[0].request.secure is secure
    assert seen[0].handshake.secure is secure


# -- cors_allowed_origins --------------------------------------------------------------

GOOD = "http://good.example"
EVIL = "http://evil.example"


def acao(raw: bytes) -> str | None:
    return dict(head_fields(raw)).get("access-control-allow-origin")


@pytest.mark.parametrize(
    ("allowed", "origin", "ok", "cors"),
    [
        ("*", EVIL, True, True),
        ([GOOD, "*"], EVIL, True, True),
        (GOOD, GOOD, True, True),
        ([GOOD], EVIL, False, False),
        (lambda origin: origin.endswith("good.example"), GOOD, True, True),
        (lambda origin: origin.endswith("good.example"), EVIL, False, False),
        ([], EVIL, True, False),  # python-socketio's "no CORS handling"
        (None, EVIL, False, False),  # the same-origin default
    ],
    ids=[
        "star",
        "list with star",
        "one origin",
        "list",
        "function yes",
        "function no",
        "[]",
        "default",
    ],
)
async def test_cors_allowed_origins_shapes(allowed: Any, origin: str, ok: bool, cors: bool) -> None:
    io = minisio.Server(cors_allowed_origins=allowed, generate_id=lambda request: "c1")
    async with running(io) as address:
        raw = await exchange(address, get(address, POLL, ("Origin", origin)))
        preflight = await exchange(
            address,
            get(
                address,
                POLL,
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                method="OPTIONS",
            ),
        )
    if ok:
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(OPEN.format("c1").encode())
    else:
        assert raw == refusal(4, "Forbidden")
    assert acao(raw) == (origin if cors else None)
    if cors:
        assert preflight.startswith(b"HTTP/1.1 204 No Content\r\n") and acao(preflight) == origin
    elif allowed == []:
        # No CORS handling: an OPTIONS is no preflight, just a wrong handshake method.
        assert preflight == refusal(2, "Bad handshake method", 400)
    else:
        assert preflight == refusal(4, "Forbidden")


def test_cors_allowed_origins_of_the_wrong_type() -> None:
    with pytest.raises(TypeError):
        minisio.Server(cors_allowed_origins=[GOOD, 3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("trust", "proto", "ok"),
    [(False, "https", False), (True, "https", True), (True, "http", False)],
    ids=["untrusted", "trusted", "trusted, scheme differs"],
)
async def test_same_origin_behind_a_proxy(trust: bool, proto: str, ok: bool) -> None:
    ids = itertools.count(1)
    io = minisio.Server(trust_proxy=trust, generate_id=lambda request: f"f{next(ids)}")
    async with running(io) as address:
        headers = (
            ("Origin", "https://app.example"),
            ("X-Forwarded-Host", "app.example, 10.0.0.1"),
            ("X-Forwarded-Proto", proto),
        )
        raw = await exchange(address, get(address, POLL, *headers))
        # Without forwarded headers, the Host is the origin either way.
        same = await exchange(address, get(address, POLL, ("Origin", f"http://{address}")))
    if ok:
        assert raw.endswith(OPEN.format("f1").encode())
    else:
        assert raw == refusal(4, "Forbidden")
    assert same.startswith(b"HTTP/1.1 200 OK\r\n")

"""minisio.ASGIApp: what only the ASGI host has, under uvicorn on 127.0.0.1, port 0.

The protocol itself is tested on both hosts by tests/test_asgi_hosts.py (the
standalone suites again); the official client, FastAPI and Chromium by
tests/js/asgi_*.test.mjs. Here: the pass-through to ``other_app`` (requests,
WebSockets, the lifespan protocol), a mount under a sub-path, emits from the
host app's handlers, and hostile clients through uvicorn, where only the
offender's session ends.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket as pysocket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

import minisio

from .asgi_host import asgi_running, uvicorn_running
from .conftest import (
    POLL,
    SID,
    UNIT,
    eventually,
    http_client,
    http_get,
    joined_clients,
    masked_frame,
    polling_handshake,
    raw_client,
    upgrade_request,
)

ROOT = Path(__file__).resolve().parent.parent
Message = dict[str, Any]


def reasons_of(io: minisio.Server) -> list[str]:
    """The disconnect reasons of the main namespace's sockets, in order."""
    reasons: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("disconnect", reasons.append)

    return reasons


class Other:
    """A plain ASGI app (no framework) that says what it got; ``/emit/<room>`` emits there."""

    def __init__(self, io: minisio.Server) -> None:
        self.io = io
        self.seen: list[tuple[str, str]] = []
        self.lifespan: list[str] = []

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.lifespan.append(f"{message['type']} serving={self.io._serving}")
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        self.seen.append((scope["type"], scope["path"]))
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "other app here"})
            await send({"type": "websocket.close"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].startswith("/emit/"):
            self.io.to(scope["path"][len("/emit/") :]).emit("note", body.decode())
        reply = json.dumps(
            {"path": scope["path"], "method": scope["method"], "body": body.decode()}
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply.encode()})


async def call(app: Any, scope: Message, messages: list[Message]) -> list[Message]:
    """Run ``app`` on one scope with ``messages`` to receive; what it sent."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    for message in messages:
        inbox.put_nowait(message)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, inbox.get, send), 2 * UNIT)
    return sent


LIFESPAN = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
COMPLETE = [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


# -- the lifespan protocol ---------------------------------------------------------------


async def test_lifespan_without_other_app_is_answered_by_minisio() -> None:
    io = minisio.Server()
    app = minisio.ASGIApp(io)
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.ensure_future(app({"type": "lifespan"}, inbox.get, send))
    inbox.put_nowait({"type": "lifespan.startup"})
    await eventually(lambda: sent == COMPLETE[:1])
    assert io._serving
    assert io._loop is asyncio.get_running_loop()
    inbox.put_nowait({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 2 * UNIT)
    assert sent == COMPLETE
    assert not io._serving
    assert io._loop is None


async def test_lifespan_passes_through_minisio_starting_first_and_stopping_last() -> None:
    io = minisio.Server()
    other = Other(io)
    sent = await call(minisio.ASGIApp(io, other), {"type": "lifespan"}, LIFESPAN)
    assert sent == COMPLETE
    # The app's startup sees minisio serving, and so does its shutdown.
    assert other.lifespan == ["lifespan.startup serving=True", "lifespan.shutdown serving=True"]
    assert not io._serving


async def test_lifespan_of_an_app_without_lifespan_support_is_answered_by_minisio() -> None:
    io = minisio.Server()

    async def no_lifespan(scope: Message, receive: Any, send: Any) -> None:
        assert scope["type"] != "lifespan", "no lifespan here"

    sent = await call(minisio.ASGIApp(io, no_lifespan), {"type": "lifespan"}, LIFESPAN)
    assert sent == COMPLETE
    assert not io._serving


async def test_uvicorn_runs_the_lifespan_and_its_shutdown_ends_every_session() -> None:
    io = minisio.Server()
    reasons = reasons_of(io)
    other = Other(io)
    server = uvicorn_running(minisio.ASGIApp(io, other))
    address = await server.__aenter__()
    try:
        assert other.lifespan == ["lifespan.startup serving=True"]
        client_cm = raw_client(address)
        client = await client_cm.__aenter__()
        await client.join()
        async with http_client(address) as conn:
            sid = await polling_handshake(conn)
            await conn.request("POST", f"{POLL}&sid={sid}", b"40")
        await eventually(lambda: len(io.sockets) == 2)
    finally:
        await server.__aexit__(None, None, None)  # the client is still connected
    assert await client.closed() == 1012
    await client_cm.__aexit__(None, None, None)
    # uvicorn closes the WebSocket itself (1012) before the lifespan shutdown;
    # minisio's shutdown closes the polling session.
    assert reasons == ["server shutting down", "server shutting down"]
    assert other.lifespan[-1] == "lifespan.shutdown serving=True"
    assert not io._serving
    assert all(session.closed for session in io._sessions.values())  # close packets owed


# -- what is not minisio's goes to other_app -------------------------------------------


async def test_other_requests_and_websockets_go_to_other_app(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>minisio's</p>")
    io = minisio.Server(static_dir=tmp_path)
    other = Other(io)
    async with uvicorn_running(minisio.ASGIApp(io, other)) as address:
        status, _, body = await http_get(address, "/api/users?x=1")
        assert (status, json.loads(body)) == (
            200,
            {"path": "/api/users", "method": "GET", "body": ""},
        )
        async with http_client(address) as conn:
            status, _, body = await conn.request("POST", "/api/users", b'{"name":"ann"}')
        assert json.loads(body) == {
            "path": "/api/users",
            "method": "POST",
            "body": '{"name":"ann"}',
        }
        # Files of the static folder are minisio's; a missing one is the app's to answer.
        assert await http_get(address, "/page.html") == (
            200,
            {
                "content-type": "text/html; charset=utf-8",
                "cache-control": "no-cache",
                "x-content-type-options": "nosniff",
                "content-length": "16",
                "connection": "close",  # http_get asked for it
            },
            b"<p>minisio's</p>",
        )
        assert json.loads((await http_get(address, "/other.html"))[2])["path"] == "/other.html"
        # Under io.path everything is minisio's.
        status, _, body = await http_get(address, "/socket.io/nothing-here")
        assert (status, body) == (404, b"Not Found\n")
        async with connect(f"ws://{address}/live") as ws:
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "other app here"
        # And a session alongside, on the same port.
        async with raw_client(address) as client:
            await client.join()
    assert other.seen == [
        ("http", "/api/users"),
        ("http", "/api/users"),
        ("http", "/other.html"),
        ("websocket", "/live"),
    ]


async def test_without_other_app_the_rest_is_404_as_on_the_standalone_server() -> None:
    io = minisio.Server()
    async with asgi_running(io) as address:
        status, headers, body = await http_get(address, "/api")
        assert (status, headers["content-type"], body) == (
            404,
            "text/plain; charset=utf-8",
            b"Not Found\n",
        )
        async with http_client(address) as conn:
            status, fields, body = await conn.request("DELETE", "/api")
        assert (status, body) == (405, b"Method Not Allowed\n")
        assert ("allow", "GET, HEAD") in fields
        if (ROOT / "node_modules" / "socket.io-client" / "dist").is_dir():
            status, headers, body = await http_get(address, "/socket.io/socket.io.min.js")
            assert status == 200 and headers["content-type"].startswith("text/javascript")
            assert b"io" in body


async def test_emits_from_the_host_apps_handlers_reach_that_rooms_clients_only() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("join", socket.join)

    async with (
        uvicorn_running(minisio.ASGIApp(io, Other(io))) as address,
        joined_clients(address, 3) as clients,
    ):
        for client, _ in clients[:2]:
            await client.send('42["join","blue"]')
        await eventually(lambda: len(io.main.adapter.rooms.get("blue", ())) == 2)
        async with http_client(address) as conn:
            status, _, _ = await conn.request("POST", "/emit/blue", b"from a REST call")
        assert status == 200
        for client, _ in clients[:2]:
            await client.expect('42["note","from a REST call"]')
        await clients[2][0].expect_nothing()


# -- mounted under a sub-path -----------------------------------------------------------


async def test_mounted_under_a_sub_path_with_starlette() -> None:
    import starlette.applications as starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    io = minisio.Server()
    urls: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        urls.append(socket.handshake.url)
        socket.on("echo", lambda value: value)

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("the app's own page")

    app = starlette.Starlette(routes=[Route("/", home), Mount("/rt", app=minisio.ASGIApp(io))])
    async with uvicorn_running(app) as address:
        assert (await http_get(address, "/"))[2] == b"the app's own page"
        async with raw_client(address, path="/rt/socket.io/") as client:
            assert io._serving  # no lifespan reaches a mounted app: started by this request
            await client.join()
            await client.send('421["echo","over /rt"]')
            await client.expect('431["over /rt"]')
        async with http_client(address) as conn:
            status, _, body = await conn.request("GET", "/rt" + POLL)
            assert status == 200 and re.match(rb'0\{"sid":"' + SID.encode(), body)
        status, _, _ = await http_get(address, "/socket.io/?EIO=4&transport=polling")
        assert status == 404  # not mounted there: the app's 404
    assert urls == ["/rt/socket.io/?EIO=4&transport=websocket"]


# -- hostile clients through uvicorn: only the offender's session ends --------------------


async def test_an_oversize_post_is_413_and_ends_only_that_session() -> None:
    io = minisio.Server(max_payload=1000)
    reasons = reasons_of(io)
    async with asgi_running(io) as address, raw_client(address) as control:
        await control.join()
        async with http_client(address) as conn:
            sid = await polling_handshake(conn)
            await conn.request("POST", f"{POLL}&sid={sid}", b"40")
            status, fields, body = await conn.request("POST", f"{POLL}&sid={sid}", b"4" * 1001)
        assert (status, body) == (413, b"Content Too Large\n")
        assert ("connection", "close") in fields
        await eventually(lambda: reasons == ["transport error"])
        assert sid not in io._sessions
        io.emit("still", "here")
        await control.expect('42["still","here"]')


@pytest.mark.parametrize("ws_max_size", [1000, 16 * 2**20], ids=["uvicorn's limit", "minisio's"])
async def test_a_frame_over_max_payload_closes_only_that_connection(ws_max_size: int) -> None:
    # uvicorn's ws_max_size set to max_payload (as asgi_host does) or left
    # larger: either way 1009, and the session ends in "transport error".
    io = minisio.Server(max_payload=1000)
    reasons = reasons_of(io)
    async with (
        asgi_running(io, ws_max_size=ws_max_size) as address,
        raw_client(address) as control,
        raw_client(address) as big,
    ):
        await control.join()
        await big.join()
        await big.send("4" + "x" * 1000)
        assert await big.closed() == 1009
        await eventually(lambda: reasons == ["transport error"])
        io.emit("still", "here")
        await control.expect('42["still","here"]')


async def test_a_client_that_stops_reading_is_cut_alone() -> None:
    # The per-connection queue stands for the standalone write buffer: a
    # client that never reads passes max_buffer and is cut; uvicorn's own
    # buffer stays at its high-water mark.
    io = minisio.Server(max_buffer=256 * 1024)
    reasons = reasons_of(io)
    async with asgi_running(io) as address, raw_client(address) as control:
        await control.join()
        host, port = address.rsplit(":", 1)
        sleeper = pysocket.socket()
        sleeper.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 4096)
        sleeper.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sleeper, (host, int(port)))
        try:
            await loop.sock_sendall(sleeper, upgrade_request(address))
            # The 101 and the open packet, then CONNECT (uvicorn drops frames sent before the 101).
            await asyncio.wait_for(loop.sock_recv(sleeper, 4096), 2 * UNIT)
            await loop.sock_sendall(sleeper, masked_frame(b"40"))
            await eventually(lambda: len(io.sockets) == 2)
            chunk = "y" * 16_000
            received = 0
            for i in range(200):  # 3.2 MB broadcast, the sleeper reads none of it
                io.emit("flood", i, chunk)
                frame = await control.recv()
                assert isinstance(frame, str) and frame.startswith(f'42["flood",{i},'), frame
                received += 1
                if reasons:
                    break
            assert reasons == ["transport error"]
            assert received < 200
            assert len(io._sessions) == 1
            io.emit("still", "here")
            await control.expect('42["still","here"]')
        finally:
            sleeper.close()


async def test_a_post_body_that_never_finishes_ends_the_session_at_handshake_timeout() -> None:
    io = minisio.Server(handshake_timeout=0.3)
    reasons = reasons_of(io)
    async with asgi_running(io) as address, http_client(address) as conn:
        sid = await polling_handshake(conn)
        await conn.request("POST", f"{POLL}&sid={sid}", b"40")
        head = f"POST {POLL}&sid={sid} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 10\r\n\r\n"
        conn.writer.write(head.encode() + b"4")
        status, fields, body = await conn.response(timeout=2)
        # An ASGI app cannot close without an answer: 408, then the connection closes.
        assert (status, body) == (408, b"Request Timeout\n")
        assert ("connection", "close") in fields
        assert reasons == ["transport error"]


async def test_io_close_tells_every_session_at_once_held_gets_included() -> None:
    io = minisio.Server()
    reasons = reasons_of(io)
    async with asgi_running(io) as address, raw_client(address) as client:
        await client.join()
        async with http_client(address) as conn:
            sid = await polling_handshake(conn)
            await conn.request("POST", f"{POLL}&sid={sid}", b"40")
            status, _, body = await conn.request("GET", f"{POLL}&sid={sid}")
            assert body.startswith(b"40")
            conn.send("GET", f"{POLL}&sid={sid}")  # held
            await asyncio.sleep(0.05)
            await io.close()
            status, _, body = await conn.response()
            assert (status, body) == (200, b"1")
        assert await client.closed() == 1001
    assert reasons == ["server shutting down", "server shutting down"]


# -- the package ----------------------------------------------------------------------


def test_import_minisio_needs_no_framework() -> None:
    code = (
        "import sys, minisio; "
        "print(sorted(m for m in ('uvicorn', 'starlette', 'fastapi', 'h11') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_the_readme_example_is_the_fixture_the_tests_run() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- fastapi example -->\n```python\n(.*?)```", readme, re.S)
    assert match, "the README has no FastAPI example block"
    fixture = (ROOT / "tests" / "js" / "asgi_fastapi.py").read_text()
    example = fixture.split("# -- test runner", 1)[0].rstrip() + "\n"
    # The fixture's docstring names the test file; the README's block starts at the imports.
    assert match.group(1) == example[example.index("import contextlib") :]

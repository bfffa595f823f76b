"""HTTP long-polling over real sockets, byte for byte.

Every request goes out as the exact bytes written here, and every response
is compared whole: status line, each header in the order minisio writes it,
Content-Length and body. Expected responses are built by hand (see
:func:`response`), never with minisio's own response builder.

The reference for what is answered is the official Node server, engine.io
6.6 (packages/engine.io/lib/{server,socket,transports/polling}.ts); where
minisio differs on purpose, the test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import minisio

from .conftest import SID, UNIT, eventually, running

# -- expected responses, written out by hand ----------------------------------------

TEXT = ("Content-Type", "text/plain; charset=UTF-8")
HTML = ("Content-Type", "text/html")
JSON = ("Content-Type", "application/json")
NO_STORE = ("Cache-Control", "no-store")
CLOSE = ("Connection", "close")
P0 = '{"_placeholder":true,"num":0}'


# RFC 9110's reason phrases (Python's own differ for 413 and 414 before 3.13).
PHRASES = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


def response(status: int, headers: tuple[tuple[str, str], ...], body: bytes = b"") -> bytes:
    """The exact bytes of a response; Content-Length last, none for a 204."""
    lines = [f"HTTP/1.1 {status} {PHRASES[status]}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if status != 204:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def poll(payload: bytes | str, *extra: tuple[str, str]) -> bytes:
    """The answer to a GET: an Engine.IO payload."""
    if isinstance(payload, str):
        payload = payload.encode()
    return response(200, (TEXT, NO_STORE, *extra), payload)


def ok(*extra: tuple[str, str]) -> bytes:
    """The answer to a POST."""
    return response(200, (HTML, NO_STORE, *extra), b"ok")


def refusal(code: int, *extra: tuple[str, str]) -> bytes:
    """The reference server's ``abortRequest``: 400 (403 for Forbidden) and a JSON body."""
    messages = {
        0: "Transport unknown",
        1: "Session ID unknown",
        2: "Bad handshake method",
        3: "Bad request",
        4: "Forbidden",
        5: "Unsupported protocol version",
    }
    body = f'{{"code":{code},"message":"{messages[code]}"}}'
    return response(403 if code == 4 else 400, (JSON, *extra), body.encode())


UNKNOWN_SID = refusal(1)
BARE_400 = response(400, ())  # "overlap from client": no Content-Type, empty body


def open_packet(
    sid: str,
    upgrades: str = '["websocket"]',
    ping_interval: int = 25000,
    ping_timeout: int = 20000,
    max_payload: int = 1000000,
) -> str:
    return (
        f'0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{ping_interval},'
        f'"pingTimeout":{ping_timeout},"maxPayload":{max_payload}}}'
    )


def eio(sid: str | None = None, transport: str = "polling", extra: str = "") -> str:
    """An Engine.IO request target."""
    target = f"/socket.io/?EIO=4&transport={transport}"
    if sid is not None:
        target += f"&sid={sid}"
    return target + extra


# -- a raw HTTP/1.1 client ----------------------------------------------------------


@dataclass
class Response:
    raw: bytes  # head and body, exactly as received
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Http:
    """One TCP connection: exact request bytes out, responses read by Content-Length."""

    def __init__(
        self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.address = address
        self.reader = reader
        self.writer = writer

    def request(
        self,
        method: str,
        target: str,
        *headers: tuple[str, str],
        body: bytes | None = None,
        version: str = "HTTP/1.1",
    ) -> bytes:
        """The bytes of one request: Host first, ``headers``, then Content-Length for a body."""
        lines = [f"{method} {target} {version}", f"Host: {self.address}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self, timeout: float = 2) -> Response:
        """The next response, whole."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout * UNIT)
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines)]
        lengths = [value for name, value in headers if name.lower() == "content-length"]
        if status == "204":
            assert not lengths, headers
            body = b""
        else:
            assert len(lengths) == 1, headers
            body = await asyncio.wait_for(self.reader.readexactly(int(lengths[0])), timeout * UNIT)
        return Response(head + body, int(status), headers, body)

    async def exchange(
        self, method: str, target: str, *headers: tuple[str, str], body: bytes | None = None
    ) -> Response:
        self.send(self.request(method, target, *headers, body=body))
        return await self.response()

    async def get(self, target: str, *headers: tuple[str, str]) -> bytes:
        return (await self.exchange("GET", target, *headers)).raw

    async def post(self, target: str, body: bytes | str, *headers: tuple[str, str]) -> bytes:
        if isinstance(body, str):
            body = body.encode()
        content_type = ("Content-Type", "text/plain;charset=UTF-8")
        return (await self.exchange("POST", target, content_type, *headers, body=body)).raw

    def start_get(self, target: str, *headers: tuple[str, str]) -> asyncio.Task[Response]:
        """Send a GET and read its answer in the background (a held poll)."""
        self.send(self.request("GET", target, *headers))
        return asyncio.ensure_future(self.response())

    async def closed(self, timeout: float = 2) -> None:
        """The server closes the connection, with nothing more sent."""
        rest = await asyncio.wait_for(self.reader.read(), timeout * UNIT)
        assert rest == b"", rest

    def close(self) -> None:
        self.writer.close()


async def open_http(address: str) -> Http:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    return Http(address, reader, writer)


@contextlib.asynccontextmanager
async def http(address: str) -> AsyncIterator[Http]:
    conn = await open_http(address)
    try:
        yield conn
    finally:
        conn.close()


async def held(task: Awaitable[Any], within: float = 0.2) -> None:
    """``task`` (a poll) is still unanswered after ``within`` units."""
    done, _ = await asyncio.wait({asyncio.ensure_future(task)}, timeout=within * UNIT)
    assert not done, "the poll was answered"


async def handshake(conn: Http, **expected: Any) -> str:
    """Open a session; check the open packet byte for byte; return its sid."""
    got = await conn.exchange("GET", eio(extra="&t=N8hyd6w"))
    match = re.fullmatch(rb'0\{"sid":"(' + SID.encode() + rb')",.*', got.body)
    assert match, got.raw
    sid = match.group(1).decode()
    assert got.raw == poll(open_packet(sid, **expected))
    return sid


async def join(conn: Http, sid: str) -> str:
    """Join "/" over polling: POST ``40``, then a GET gets the CONNECT reply; its socket id."""
    assert await conn.post(eio(sid), "40") == ok()
    got = await conn.exchange("GET", eio(sid))
    match = re.fullmatch(rb'40\{"sid":"(' + SID.encode() + rb')"\}', got.body)
    assert match, got.raw
    assert got.raw == poll(got.body)
    return match.group(1).decode()


def make_server(**options: Any) -> tuple[minisio.Server, list[Any]]:
    """A server whose sockets log what they get; ``echo`` acks its arguments."""
    io = minisio.Server(**options)
    log: list[Any] = []

    @io.on("connection")
    def connection(socket: minisio.Socket) -> None:
        socket.on("echo", lambda *args: args)
        socket.on("a", lambda *args: log.append(("a", *args)))
        socket.on("b", lambda *args: log.append(("b", *args)))
        socket.on("many", lambda: [socket.emit("n", i) for i in range(3)])
        socket.on("bin", lambda: socket.emit("bin", b"\x01\x02\x03"))
        socket.on("disconnect", lambda reason: log.append(("disconnect", reason)))

    return io, log


# -- the handshake ------------------------------------------------------------------


async def test_handshake_opens_a_session_that_may_upgrade() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        assert list(io._sessions) == [sid]
        assert io._sessions[sid].transport.name == "polling"


@pytest.mark.parametrize(
    "options",
    [{"transports": ["polling"]}, {"allow_upgrades": False}],
    ids=["polling only", "upgrades off"],
)
async def test_handshake_offers_no_upgrade(options: dict[str, Any]) -> None:
    io, _ = make_server(**options)
    async with running(io) as address, http(address) as conn:
        await handshake(conn, upgrades="[]")


async def test_handshake_carries_the_server_settings() -> None:
    io, _ = make_server(ping_interval=1.5, ping_timeout=2.25, max_payload=4096)
    async with running(io) as address, http(address) as conn:
        await handshake(conn, ping_interval=1500, ping_timeout=2250, max_payload=4096)


async def test_websocket_only_server_refuses_polling() -> None:
    io, _ = make_server(transports=["websocket"])
    async with running(io) as address, http(address) as conn:
        assert await conn.get(eio(extra="&t=N8hyd6w")) == refusal(0)
        # ... on a connection kept open: the refusal is no reason to close it.
        assert await conn.get(eio()) == refusal(0)
    assert not io._sessions


# -- exchanging packets -------------------------------------------------------------


async def test_a_held_get_is_answered_by_the_connect_reply() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        pending = poller.start_get(eio(sid))
        await held(pending)
        assert await conn.post(eio(sid), "40") == ok()
        got = await pending
        match = re.fullmatch(rb'40\{"sid":"(' + SID.encode() + rb')"\}', got.body)
        assert match, got.raw
        assert got.raw == poll(got.body)
        assert list(io.sockets) == [match.group(1).decode()]
        assert next(iter(io.sockets.values())).transport == "polling"


async def test_the_emits_of_one_handler_go_in_one_payload() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        await join(conn, sid)
        pending = poller.start_get(eio(sid))
        await held(pending, 0.05)
        assert await conn.post(eio(sid), '42["many"]') == ok()
        assert (await pending).raw == poll('42["n",0]\x1e42["n",1]\x1e42["n",2]')
        # Emits made while no GET is held wait, and go in one payload too.
        assert await conn.post(eio(sid), '42["many"]\x1e42["many"]') == ok()
        expected = "\x1e".join(f'42["n",{i}]' for i in (0, 1, 2, 0, 1, 2))
        assert await poller.get(eio(sid)) == poll(expected)


async def test_a_post_of_two_packets_is_handled_in_order() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        await join(conn, sid)
        assert await conn.post(eio(sid), '42["a",1]\x1e42["b",2]\x1e42["a",3]') == ok()
        assert log == [("a", 1), ("b", 2), ("a", 3)]
        # Acks asked in one POST come back in that order, in one payload.
        assert await conn.post(eio(sid), '421["echo","x"]\x1e422["echo","y"]') == ok()
        assert await conn.get(eio(sid)) == poll('431["x"]\x1e432["y"]')


async def test_binary_from_the_server_is_base64_in_the_payload() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        await join(conn, sid)
        assert await conn.post(eio(sid), '42["bin"]') == ok()
        assert await conn.get(eio(sid)) == poll(f'451-["bin",{P0}]\x1ebAQID')


async def test_binary_from_the_client_reaches_the_handler_as_bytes() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        await join(conn, sid)
        assert await conn.post(eio(sid), f'451-["a",{P0}]\x1ebAP8=') == ok()
        assert log == [("a", b"\x00\xff")]
        # The same bytes, acked back: a binary ack, its attachment in base64.
        assert await conn.post(eio(sid), f'451-7["echo",{P0}]\x1ebAQID') == ok()
        assert await conn.get(eio(sid)) == poll(f"461-7[{P0}]\x1ebAQID")


async def test_pings_go_to_the_held_get_and_pongs_keep_the_session() -> None:
    io, log = make_server(ping_interval=0.2 * UNIT, ping_timeout=0.4 * UNIT)
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn, ping_interval=round(200 * UNIT), ping_timeout=round(400 * UNIT))
        await join(conn, sid)
        for _ in range(4):
            pending = poller.start_get(eio(sid))
            await held(pending, 0.1)  # the next ping is an interval after the pong
            assert (await pending).raw == poll("2")
            assert await conn.post(eio(sid), "3") == ok()
        # Four intervals and a half on, still served.
        assert await conn.post(eio(sid), '421["echo","alive"]') == ok()
        assert await poller.get(eio(sid)) == poll('431["alive"]')
        assert log == []


async def test_no_pong_closes_the_session() -> None:
    io, log = make_server(ping_interval=0.1 * UNIT, ping_timeout=0.2 * UNIT)
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn, ping_interval=round(100 * UNIT), ping_timeout=round(200 * UNIT))
        await join(conn, sid)
        assert await poller.get(eio(sid)) == poll("2")
        # The client polls on but never answers: its held GET gets the close packet.
        pending = poller.start_get(eio(sid))
        await held(pending, 0.1)
        assert (await pending).raw == poll("1")
        assert log == [("disconnect", "ping timeout")]
        assert sid not in io._sessions
        assert await poller.get(eio(sid)) == UNKNOWN_SID
        assert await conn.post(eio(sid), "3") == refusal(1, CLOSE)  # its body unread


# -- keep-alive and pipelining ------------------------------------------------------


async def test_one_session_on_one_connection() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        socket_id = await join(conn, sid)
        assert await conn.post(eio(sid), '42["a","one"]') == ok()
        assert await conn.post(eio(sid), '421["echo","two"]') == ok()
        assert await conn.get(eio(sid)) == poll('431["two"]')
        assert log == [("a", "one")]
        assert list(io.sockets) == [socket_id]


async def test_two_sessions_on_one_connection() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        first = await handshake(conn)
        second = await handshake(conn)
        assert first != second
        one = await join(conn, first)
        two = await join(conn, second)
        assert one != two
        assert await conn.post(eio(second), '421["echo",2]') == ok()
        assert await conn.post(eio(first), '421["echo",1]') == ok()
        assert await conn.get(eio(first)) == poll("431[1]")
        assert await conn.get(eio(second)) == poll("431[2]")
        assert set(io._sessions) == {first, second}


async def test_http_1_0_closes_unless_kept_alive() -> None:
    io, _ = make_server(transports=["websocket"])
    async with running(io) as address:
        async with http(address) as conn:
            conn.send(conn.request("GET", eio(), version="HTTP/1.0"))
            assert (await conn.response()).raw == refusal(0, CLOSE)
            await conn.closed()
        async with http(address) as conn:
            keep = ("Connection", "keep-alive")
            for _ in range(2):
                conn.send(conn.request("GET", eio(), keep, version="HTTP/1.0"))
                assert (await conn.response()).raw == refusal(0, keep)


async def test_http_1_0_polling_handshake() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        conn.send(conn.request("GET", eio(), version="HTTP/1.0"))
        got = await conn.response()
        sid = got.body[9:29].decode()
        assert got.raw == poll(open_packet(sid), CLOSE)
        await conn.closed()
        assert sid in io._sessions  # the session does not depend on that connection


async def test_connection_close_from_the_client_is_honoured() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        # A request pipelined behind "Connection: close" is never answered.
        conn.send(conn.request("POST", eio(sid), CLOSE, body=b"40") + conn.request("GET", eio(sid)))
        assert (await conn.response()).raw == ok(CLOSE)
        await conn.closed()
        async with http(address) as other:
            assert (await other.exchange("GET", eio(sid), CLOSE)).body.startswith(b'40{"sid":"')
            await other.closed()


async def test_a_half_closed_connection_still_gets_its_held_get() -> None:
    # minisio's choice: a FIN only says the client sends nothing more, so the
    # held GET is answered, and the connection closed after it. (The Node
    # server, without httpAllowHalfOpen, aborts the request and closes the
    # session with "transport error".)
    io, log = make_server()
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        await join(conn, sid)
        pending = poller.start_get(eio(sid))
        poller.writer.write_eof()
        await held(pending)
        assert await conn.post(eio(sid), '421["echo",1]') == ok()
        assert (await pending).raw == poll("431[1]", CLOSE)
        await poller.closed()
        assert log == []
        assert sid in io._sessions


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"A\n")
    (tmp_path / "b.txt").write_bytes(b"BB\n")
    io, _ = make_server(static_dir=tmp_path)
    static = (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    )
    async with running(io) as address, http(address) as conn:
        conn.send(
            conn.request("GET", "/b.txt")
            + conn.request("GET", "/a.txt")
            + conn.request("GET", eio())
            + conn.request("GET", "/b.txt")
        )
        assert (await conn.response()).raw == response(200, static, b"BB\n")
        assert (await conn.response()).raw == response(200, static, b"A\n")
        opened = await conn.response()
        assert opened.raw == poll(open_packet(opened.body[9:29].decode()))
        assert (await conn.response()).raw == response(200, static, b"BB\n")


async def test_a_post_pipelined_behind_a_held_get_waits_for_it() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn, http(address) as other:
        sid = await handshake(conn)
        await join(conn, sid)
        conn.send(conn.request("GET", eio(sid)) + conn.request("POST", eio(sid), body=b'42["a"]'))
        first = asyncio.ensure_future(conn.response())
        await held(first)
        assert log == []  # the POST is not even read while the GET is held
        io.emit("tick")
        assert (await first).raw == poll('42["tick"]')
        assert (await conn.response()).raw == ok()
        assert log == [("a",)]
        # Meanwhile another connection of the same session was never blocked.
        assert await other.post(eio(sid), '42["b"]') == ok()
        assert log == [("a",), ("b",)]


# -- request bodies -----------------------------------------------------------------


async def test_a_chunked_post() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        head = conn.request("POST", eio(sid), ("Transfer-Encoding", "chunked"))
        conn.send(head + b"2\r\n40\r\n")
        await asyncio.sleep(0.05 * UNIT)  # the body comes in pieces
        conn.send(b'7;ext=1\r\n\x1e42["a"\r\nB\r\n,"chunked"]\r\n0\r\n\r\n')
        assert (await conn.response()).raw == ok()
        assert log == [("a", "chunked")]
        got = await conn.exchange("GET", eio(sid))
        assert got.body.startswith(b'40{"sid":"')


async def test_a_post_of_exactly_max_payload_bytes() -> None:
    io, log = make_server(max_payload=1000)
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn, max_payload=1000)
        await join(conn, sid)
        filler = "x" * (1000 - len('42["a",""]'))
        assert await conn.post(eio(sid), f'42["a","{filler}"]') == ok()
        assert log == [("a", filler)]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_oversize_post_is_413_and_ends_the_session(framing: str) -> None:
    # The reference answers 413 and leaves it to the client, which closes the
    # session on any non-200 POST; minisio closes it at once.
    io, log = make_server(max_payload=1000)
    async with (
        running(io) as address,
        http(address) as conn,
        http(address) as poller,
        http(address) as big,
    ):
        sid = await handshake(conn, max_payload=1000)
        await join(conn, sid)
        pending = poller.start_get(eio(sid))
        await held(pending, 0.05)
        if framing == "content-length":
            # Refused by its head: the body is never read.
            big.send(big.request("POST", eio(sid), ("Content-Length", "1001")))
        else:
            head = big.request("POST", eio(sid), ("Transfer-Encoding", "chunked"))
            big.send(head + b"258\r\n" + b"x" * 600 + b"\r\n258\r\n")
        assert (await big.response()).raw == response(
            413,
            (("Content-Type", "text/plain; charset=utf-8"), CLOSE),
            b"Content Too Large\n",
        )
        await big.closed()
        assert (await pending).raw == poll("1")
        assert log == [("disconnect", "transport error")]
        assert await conn.get(eio(sid)) == UNKNOWN_SID
        assert sid not in io._sessions


async def test_a_post_that_never_finishes_is_cut_at_handshake_timeout() -> None:
    io, log = make_server(handshake_timeout=0.3 * UNIT)
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        await join(conn, sid)
        pending = poller.start_get(eio(sid))
        loop = asyncio.get_running_loop()
        start = loop.time()
        slow = await open_http(address)  # the clock starts with the connection
        slow.send(slow.request("POST", eio(sid), ("Content-Length", "100")) + b'42["a",')

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.05 * UNIT)
                    slow.send(b"x")
                    await slow.writer.drain()

        trickling = asyncio.ensure_future(trickle())
        try:
            await slow.closed()  # no answer at all, only the close
        finally:
            trickling.cancel()
            slow.close()
        assert 0.25 * UNIT <= loop.time() - start < 1 * UNIT
        assert (await pending).raw == poll("1")
        assert log == [("disconnect", "transport error")]
        # (An idle kept-alive connection is closed at handshake_timeout too.)
        async with http(address) as late:
            assert await late.get(eio(sid)) == UNKNOWN_SID


# -- refusals -----------------------------------------------------------------------


async def test_unknown_sid() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        assert await conn.get(eio("lv_VI97HAXpY6yYWAAAC")) == UNKNOWN_SID
        # A refused POST's body is not read: the connection closes after the answer.
        assert await conn.post(eio("lv_VI97HAXpY6yYWAAAC"), "40") == refusal(1, CLOSE)
        await conn.closed()


async def test_methods_the_reference_refuses() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        # Polling.onRequest: neither GET nor POST is a bare 500; the session stays.
        assert (await conn.exchange("PUT", eio(sid))).raw == response(500, ())
        assert (await conn.exchange("DELETE", eio(sid))).raw == response(500, ())
        assert (await conn.exchange("OPTIONS", eio(sid))).raw == response(500, ())
        # Without a sid, anything but GET is a bad handshake method.
        assert (await conn.exchange("OPTIONS", eio())).raw == refusal(2)
        assert (await conn.exchange("POST", eio(), body=b"")).raw == refusal(2)
        assert await conn.post(eio(), "40") == refusal(2, CLOSE)
        await conn.closed()
    assert log == []
    assert list(io._sessions) == [sid]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=3&transport=polling", 5),
        ("transport=polling", 5),
        ("EIO=5&transport=polling", 5),
        ("EIO=4&transport=flashsocket", 0),
        ("EIO=4", 0),
        ("EIO=4&transport=Polling", 0),
    ],
)
async def test_handshake_refusals(query: str, code: int) -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        assert await conn.get(f"/socket.io/?{query}") == refusal(code)
    assert not io._sessions


# -- the upgrade to WebSocket -------------------------------------------------------


async def upgrade(address: str, sid: str, pending: asyncio.Task[Response]) -> Any:
    """Probe and upgrade ``sid``'s session with a raw WebSocket; the held GET gets a noop."""
    ws = await connect(f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}")
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
    assert (await pending).raw == poll("6")
    await ws.send("5")
    return ws


async def test_polling_after_the_upgrade_is_a_bad_request() -> None:
    io, log = make_server()
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        await join(conn, sid)
        ws = await upgrade(address, sid, poller.start_get(eio(sid)))
        try:
            await eventually(lambda: io._sessions[sid].transport.name == "websocket")
            assert next(iter(io.sockets.values())).transport == "websocket"
            io.emit("over", "ws")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == '42["over","ws"]'
            await ws.send('421["echo","back"]')
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == '431["back"]'
            # TRANSPORT_MISMATCH: refused, and the session is not closed for it.
            assert await poller.get(eio(sid)) == refusal(3)
            assert await conn.post(eio(sid), '42["a"]') == refusal(3, CLOSE)
            await ws.send('42["b"]')
            await eventually(lambda: log == [("b",)])
        finally:
            await ws.close()
        await eventually(lambda: sid not in io._sessions)
        assert log == [("b",), ("disconnect", "transport close")]


async def test_packets_queued_for_polling_move_to_the_websocket() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        sid = await handshake(conn)
        await join(conn, sid)
        ws = await connect(f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}")
        try:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
            # Paused: a GET is answered at once, with a noop when nothing waits.
            assert await conn.get(eio(sid)) == poll("6")
            assert await conn.post(eio(sid), '42["bin"]\x1e421["echo",1]') == ok()
            await ws.send("5")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == f'451-["bin",{P0}]'
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == b"\x01\x02\x03"
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "431[1]"
        finally:
            await ws.close()


async def test_a_second_websocket_for_an_upgraded_session_is_closed() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn, http(address) as poller:
        sid = await handshake(conn)
        await join(conn, sid)
        ws = await upgrade(address, sid, poller.start_get(eio(sid)))
        try:
            await eventually(lambda: io._sessions[sid].transport.name == "websocket")
            url = f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"
            async with connect(url) as second:  # the handshake completes (101) ...
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(second.recv(), 2 * UNIT)  # ... then it closes
                assert second.close_code == 1000
            io.emit("still", 1)
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == '42["still",1]'
        finally:
            await ws.close()


async def test_an_upgrade_with_an_unknown_sid_is_refused() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        key = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        upgrade_headers = (
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            key,
            ("Sec-WebSocket-Version", "13"),
        )
        got = await conn.exchange("GET", eio("lv_VI97HAXpY6yYWAAAC", "websocket"), *upgrade_headers)
        # The same JSON refusal as over plain HTTP (the reference's abortUpgrade
        # writes the message as text/html and closes).
        assert got.raw == UNKNOWN_SID
    assert not io._sessions


# -- two GETs at once -----------------------------------------------------------------


async def test_concurrent_gets_end_the_session() -> None:
    io, log = make_server()
    async with (
        running(io) as address,
        http(address) as conn,
        http(address) as first,
        http(address) as second,
    ):
        sid = await handshake(conn)
        await join(conn, sid)
        pending = first.start_get(eio(sid))
        await held(pending, 0.05)
        # "overlap from client": the second gets a bare 400, the first the close packet.
        assert await second.get(eio(sid)) == BARE_400
        assert (await pending).raw == poll("1")
        assert log == [("disconnect", "transport error")]
        assert await conn.get(eio(sid)) == UNKNOWN_SID
        assert sid not in io._sessions


# -- CORS ---------------------------------------------------------------------------

ORIGIN = "https://a.example"
ALLOWED = (("Access-Control-Allow-Origin", ORIGIN), ("Vary", "Origin"))
CREDENTIALS = ("Access-Control-Allow-Credentials", "true")
METHODS = ("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")


async def test_cors_headers_for_an_allowed_origin() -> None:
    io, _ = make_server(cors_allowed_origins=[ORIGIN])
    origin = ("Origin", ORIGIN)
    async with running(io) as address, http(address) as conn:
        got = await conn.exchange("GET", eio(), origin)
        sid = got.body[9:29].decode()
        assert got.raw == poll(open_packet(sid), *ALLOWED)
        # On every answer of the session, refusals included.
        assert await conn.post(eio(sid), "40", origin) == ok(*ALLOWED)
        got = await conn.exchange("GET", eio(sid), origin)
        assert got.raw == poll(got.body, *ALLOWED)
        assert await conn.get(eio("lv_VI97HAXpY6yYWAAAC"), origin) == refusal(1, *ALLOWED)
        # No Origin (not a browser): no CORS headers.
        assert await conn.post(eio(sid), '42["a"]') == ok()


async def test_cors_credentials() -> None:
    io, _ = make_server(cors_allowed_origins=[ORIGIN], cors_credentials=True)
    origin = ("Origin", ORIGIN)
    async with running(io) as address, http(address) as conn:
        got = await conn.exchange("GET", eio(), origin)
        sid = got.body[9:29].decode()
        assert got.raw == poll(open_packet(sid), *ALLOWED, CREDENTIALS)
        assert await conn.post(eio(sid), "40", origin) == ok(*ALLOWED, CREDENTIALS)
        preflight = await conn.exchange("OPTIONS", eio(sid), origin)
        assert preflight.raw == response(
            204, (("Access-Control-Allow-Origin", ORIGIN), CREDENTIALS, METHODS, ("Vary", "Origin"))
        )


async def test_cors_preflight() -> None:
    # The npm cors package sends the same headers (in another order, and with
    # "Content-Length: 0"); a 204 has no Content-Length here (RFC 9110 8.6).
    io, _ = make_server(cors_allowed_origins=[ORIGIN])
    async with running(io) as address, http(address) as conn:
        got = await conn.exchange(
            "OPTIONS",
            eio(),
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type,x-custom"),
        )
        assert got.raw == response(
            204,
            (
                ("Access-Control-Allow-Origin", ORIGIN),
                METHODS,
                ("Access-Control-Allow-Headers", "content-type,x-custom"),
                ("Vary", "Origin, Access-Control-Request-Headers"),
            ),
        )
        # The connection carries on after a 204.
        got = await conn.exchange("OPTIONS", eio(), ("Origin", ORIGIN))
        assert got.raw == response(
            204, (("Access-Control-Allow-Origin", ORIGIN), METHODS, ("Vary", "Origin"))
        )
    assert not io._sessions


async def test_cors_refuses_another_origin() -> None:
    # The reference's cors middleware only leaves the CORS headers out and lets
    # the browser refuse; minisio refuses it itself (as python-socketio does).
    io, _ = make_server(cors_allowed_origins=[ORIGIN])
    evil = ("Origin", "https://b.example")
    async with running(io) as address, http(address) as conn:
        assert await conn.get(eio(), evil) == refusal(4)
        assert (await conn.exchange("OPTIONS", eio(), evil)).raw == refusal(4)
        assert (await conn.exchange("OPTIONS", eio())).raw == refusal(4)  # no Origin at all
        # An allowed origin's session is refused to another origin too.
        got = await conn.exchange("GET", eio(), ("Origin", ORIGIN))
        sid = got.body[9:29].decode()
        assert await conn.get(eio(sid), evil) == refusal(4)
        assert list(io._sessions) == [sid]


async def test_default_server_allows_same_origin_only() -> None:
    io, _ = make_server()
    async with running(io) as address, http(address) as conn:
        assert await conn.get(eio(), ("Origin", "https://a.example")) == refusal(4)
        assert not io._sessions
        got = await conn.exchange("GET", eio(), ("Origin", f"http://{address}"))
        sid = got.body[9:29].decode()
        assert got.raw == poll(open_packet(sid))  # no CORS headers
        assert await conn.post(eio(sid), "40", ("Origin", f"http://{address}")) == ok()
        assert await conn.post(eio(sid), "40", ("Origin", "http://evil.example")) == refusal(
            4, CLOSE
        )

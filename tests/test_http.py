"""The HTTP side over real sockets: Engine.IO handshake errors and static files.

Requests go out as raw bytes (``http_get``) or through the websockets client,
whose ``InvalidStatus`` keeps the refused response with its body.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import minisio

from .conftest import http_get, raw_client, running

STATIC = Path(__file__).resolve().parent.parent / "static"


def _error(code: int, message: str) -> bytes:
    return orjson.dumps({"code": code, "message": message})


# -- Engine.IO handshake errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "body"),
    [
        # The official client's first request, to a server that offers WebSocket only.
        ("EIO=4&transport=polling&t=N8hyd6w", _error(0, "Transport unknown")),
        ("EIO=4", _error(0, "Transport unknown")),
        ("EIO=4&transport=webtransport", _error(0, "Transport unknown")),
        ("EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", _error(1, "Session ID unknown")),
        ("EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", _error(0, "Transport unknown")),
        # transport=websocket in a request that is no WebSocket upgrade.
        ("EIO=4&transport=websocket", _error(3, "Bad request")),
    ],
)
async def test_engine_io_errors_over_plain_http(query: str, body: bytes) -> None:
    io = minisio.Server(transports=["websocket"])
    async with running(io) as address:
        status, headers, got = await http_get(address, f"/socket.io/?{query}")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert got == body


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("EIO=3&transport=websocket", 400, _error(5, "Unsupported protocol version")),
        ("transport=websocket", 400, _error(5, "Unsupported protocol version")),
        ("EIO=5&transport=websocket", 400, _error(5, "Unsupported protocol version")),
        ("EIO=4&transport=websocket&sid=abc", 400, _error(1, "Session ID unknown")),
        ("EIO=4&transport=polling", 400, _error(0, "Transport unknown")),
    ],
)
async def test_engine_io_errors_refuse_the_websocket_handshake(
    query: str, status: int, body: bytes
) -> None:
    io = minisio.Server(transports=["websocket"])
    async with running(io) as address:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://{address}/socket.io/?{query}"):
                pass
    response = caught.value.response
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.body == body
    assert not io._sessions


async def test_foreign_origin_is_forbidden_unless_allowed() -> None:
    url_query = "/socket.io/?EIO=4&transport=websocket"
    io = minisio.Server()
    async with running(io) as address:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://{address}{url_query}", origin="http://evil.example"):
                pass
        assert caught.value.response.status_code == 403
        assert caught.value.response.body == _error(4, "Forbidden")
        # Same origin, and no Origin at all (not a browser), are fine.
        async with raw_client(address, origin=f"http://{address}") as client:
            await client.join()
    io = minisio.Server(cors_allowed_origins=["http://good.example"])
    async with running(io) as address:
        async with raw_client(address, origin="http://good.example") as client:
            await client.join()
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://{address}{url_query}", origin="http://evil.example"):
                pass


async def test_custom_path() -> None:
    io = minisio.Server(path="/io")
    async with running(io) as address:
        async with raw_client(address, path="/io/") as client:
            await client.join()
        status, _, _ = await http_get(address, "/socket.io/?EIO=4&transport=websocket")
        assert status == 404
        status, _, body = await http_get(address, "/io/?EIO=4&transport=webtransport")
        assert (status, body) == (400, _error(0, "Transport unknown"))
        status, _, body = await http_get(address, "/io/?EIO=4&transport=polling")
        assert status == 200 and body.startswith(b'0{"sid":"')


async def test_unknown_file_under_the_engine_io_path_is_404() -> None:
    io = minisio.Server(serve_client=False)
    async with running(io) as address:
        for target in ("/socket.io/nope", "/socket.io/socket.io.js", "/socket.io/x/?EIO=4"):
            status, _, _ = await http_get(address, target)
            assert status == 404, target


# -- static files -----------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>home</title>")
    (root / "style.css").write_text("p { color: red }")
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


async def test_static_files(site: Path) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        for target in ("/", "/index.html", "/?v=1"):
            status, headers, body = await http_get(address, target)
            assert status == 200, target
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert body == b"<!doctype html><title>home</title>"
        status, headers, body = await http_get(address, "/style.css")
        assert (status, headers["content-type"], body) == (
            200,
            "text/css; charset=utf-8",
            b"p { color: red }",
        )
        status, _, body = await http_get(address, "/sub/")
        assert (status, body) == (200, b"<p>sub</p>")
        for target in ("/missing.html", "/sub/missing", "/index.html/x"):
            status, _, _ = await http_get(address, target)
            assert status == 404, target


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/../../secret.txt",
        "/..%2fsecret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..\\secret.txt",
    ],
)
async def test_static_traversal_is_refused(site: Path, target: str) -> None:
    io = minisio.Server(static_dir=site)
    async with running(io) as address:
        status, _, body = await http_get(address, target)
    assert status in (400, 404)
    assert b"SECRET" not in body


async def test_the_chat_page_is_served_at_root() -> None:
    io = minisio.Server(static_dir=STATIC)
    async with running(io) as address:
        status, headers, body = await http_get(address, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body == (STATIC / "index.html").read_bytes()


async def test_no_static_dir_means_404() -> None:
    io = minisio.Server()
    async with running(io) as address:
        status, _, _ = await http_get(address, "/")
    assert status == 404


async def test_max_connections_answers_503() -> None:
    io = minisio.Server(max_connections=1)
    async with running(io) as address, raw_client(address) as first:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://{address}/socket.io/?EIO=4&transport=websocket"):
                pass
        assert caught.value.response.status_code == 503
        await first.join()

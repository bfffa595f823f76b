"""The HTTP/1.1 request reader and response writer, bytes in and bytes out (no sockets)."""

from __future__ import annotations

import pytest

from minisio.http11 import HttpError, RequestReader, response


def read_all(data: bytes, limit: int = 1_000_000, step: int = 0) -> list[tuple[str, str, bytes]]:
    """Feed ``data`` (in pieces of ``step`` bytes, 0: at once); return (method, target, body)."""
    reader = RequestReader()
    out = []
    pieces = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    request = None
    for piece in pieces:
        reader.feed(piece)
        while True:
            if request is None:
                request = reader.next_head()
                if request is None:
                    break
            if not reader.read_body(request, limit):
                break
            out.append((request.method, request.target, request.body))
            request = None
    return out


PIPELINE = (
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
    b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n"
)
EXPECTED = [
    ("GET", "/a", b""),
    ("POST", "/b", b"hello"),
    ("POST", "/c", b"abcde"),
    ("GET", "/d", b""),
]


@pytest.mark.parametrize("step", [0, 1, 7, 64])
def test_pipelined_requests_come_out_whole_and_in_order(step: int) -> None:
    assert read_all(PIPELINE, step=step) == EXPECTED


def test_the_head_is_kept_byte_for_byte_and_the_rest_left_in_the_buffer() -> None:
    reader = RequestReader()
    head = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    reader.feed(head + b"\x81\x82frame")
    request = reader.next_head()
    assert request is not None
    assert request.head == head
    assert request.headers.get("upgrade") == "websocket"
    assert reader.take_rest() == b"\x81\x82frame"
    assert reader.buffered == 0


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_the_connection_header(
    head: bytes, keep_alive: bool
) -> None:
    reader = RequestReader()
    reader.feed(head)
    request = reader.next_head()
    assert request is not None and request.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nName : v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-H: v\r\n" * 129 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"v" * 70_000, 431),
        (b"GET /" + b"a" * 70_000, 414),
    ],
)
def test_unreadable_requests_raise_the_status_to_answer(data: bytes, status: int) -> None:
    with pytest.raises(HttpError) as caught:
        read_all(data)
    assert caught.value.status == status


def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 1000001\r\n\r\n")
    request = reader.next_head()
    assert request is not None
    with pytest.raises(HttpError) as caught:
        reader.read_body(request, 1_000_000)
    assert caught.value.status == 413


def test_chunks_over_the_limit_are_refused_as_soon_as_announced() -> None:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n")
    request = reader.next_head()
    assert request is not None
    assert reader.read_body(request, 10) is False  # 6 of at most 10: more may come
    reader.feed(b"5\r\n")
    with pytest.raises(HttpError) as caught:
        reader.read_body(request, 10)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("status", "headers", "body", "head_only", "wire"),
    [
        (
            200,
            [("Content-Type", "text/plain; charset=UTF-8")],
            b"ok",
            False,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            b"Content-Length: 2\r\n\r\nok",
        ),
        (200, [], b"abc", True, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"),
        (204, [("Vary", "Origin")], b"", False, b"HTTP/1.1 204 No Content\r\nVary: Origin\r\n\r\n"),
        (400, [], b"", False, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ],
)
def test_responses_byte_for_byte(
    status: int, headers: list[tuple[str, str]], body: bytes, head_only: bool, wire: bytes
) -> None:
    assert response(status, headers, body, head_only=head_only) == wire

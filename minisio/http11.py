"""HTTP/1.1 requests from bytes, and responses to bytes. Pure: no I/O.

Sans-I/O in the manner of h11: :class:`RequestReader` is fed the bytes of
one TCP connection and hands back whole requests, in order; the caller
decides what to answer and writes :func:`response` itself. A connection
carries any number of requests one after the other (keep-alive, RFC 9112
9.3); pipelined ones stay in the buffer until the caller asks for the next.

What is refused, with the status the caller should answer before closing:

* a head over ``max_head`` bytes (431), a malformed request line or header
  line (400), a version other than HTTP/1.0 and HTTP/1.1 (400);
* a body framed two ways, or by a Content-Length that is not one number
  (400: RFC 9112 6.3 calls both "unrecoverable", and guessing would open
  the door to request smuggling), a transfer coding other than ``chunked``
  (501), a body over the limit the caller sets for that request (413).
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import ProtocolError

__all__ = ["Headers", "HttpError", "Request", "RequestReader", "phrase", "response"]

# RFC 9110 5.6.2: a header name (and a method) is a "token".
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field values: visible characters, spaces and tabs, and obs-text (RFC 9110 5.5).
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")
_MAX_TRAILERS = 4096
# websockets' limits for a request head, kept now that minisio reads heads itself.
MAX_LINE = 8192
MAX_HEADERS = 128


class HttpError(ProtocolError):
    """The peer sent a request this server cannot read; answer ``status``, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """Header fields in the order received; names compared without case."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``."""
        name = name.lower()
        for key, value in self.items:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``."""
        name = name.lower()
        return [value for key, value in self.items if key.lower() == name]

    def raw_items(self) -> list[tuple[str, str]]:
        """The fields as received (the same call as websockets' ``Headers``)."""
        return self.items


@dataclass(slots=True)
class Request:
    """One request. ``head`` is its bytes up to the blank line, kept for a WebSocket handoff."""

    method: str
    target: str
    version: str
    headers: Headers
    head: bytes
    body: bytes = b""
    # How the body is framed: its length, -1 for chunked, 0 for none.
    length: int = 0
    _chunks: list[bytes] = field(default_factory=list)
    _received: int = 0  # bytes in _chunks, kept so a chunk does not cost a sum over all of them

    @property
    def path(self) -> str:
        """The request target (the name websockets' ``Request`` has)."""
        return self.target

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection carry another request (RFC 9112 9.3)."""
        values = self.headers.get_all("Connection")
        tokens = {t.strip().lower() for v in values for t in v.split(",")}
        if self.version == "HTTP/1.1":
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def has_body(self) -> bool:
        return self.length != 0


class RequestReader:
    """Bytes in (:meth:`feed`), requests out (:meth:`next_head`, then :meth:`read_body`)."""

    __slots__ = ("_buffer", "_chunk_left", "_in_trailers", "_scanned", "max_head")

    def __init__(self, max_head: int = 64 * 1024) -> None:
        self.max_head = max_head
        self._buffer = bytearray()
        self._chunk_left = -1  # bytes left in the current chunk (+2 for its CRLF); -1: a size line
        self._in_trailers = False
        # Where the search for the end of a head resumes: the bytes before have
        # been searched already (a head sent a byte at a time costs linear time).
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        """Bytes received from the peer."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not consumed yet."""
        return len(self._buffer)

    def take_rest(self) -> bytes:
        """Everything received after the last request read (for a WebSocket handoff)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return rest

    def next_head(self) -> Request | None:
        """The next request's head, or None until all of it has arrived."""
        buffer = self._buffer
        # One blank line before a request line is ignored (RFC 9112 2.2).
        if buffer[:2] == b"\r\n":
            del buffer[:2]
            self._scanned = max(0, self._scanned - 2)
            if buffer[:2] == b"\r\n":
                raise HttpError(400, "no request line")
        end = buffer.find(b"\r\n\r\n", self._scanned, self.max_head + 4)
        if end < 0:
            if len(buffer) > self.max_head:
                first = buffer.find(b"\r\n", 0, MAX_LINE + 2)
                raise HttpError(414 if first < 0 else 431, "request head too large")
            self._scanned = max(0, len(buffer) - 3)
            return None
        self._scanned = 0
        head = bytes(buffer[: end + 4])
        del buffer[: end + 4]
        request = _parse_head(head)
        request.length = _body_length(request.headers)
        return request

    def read_body(self, request: Request, limit: int) -> bool:
        """Move the body of ``request`` from the buffer into ``request.body``.

        Returns True once it is whole, False while more must come. Raises
        :class:`HttpError` 413 as soon as the body is known to pass ``limit``
        (by its Content-Length, before any of it is read).
        """
        if request.length > 0:
            if request.length > limit:
                raise HttpError(413, "request body too large")
            if len(self._buffer) < request.length:
                return False
            request.body = bytes(self._buffer[: request.length])
            del self._buffer[: request.length]
            return True
        if request.length == 0:
            return True
        return self._read_chunked(request, limit)

    def _read_chunked(self, request: Request, limit: int) -> bool:
        buffer = self._buffer
        while True:
            if self._in_trailers:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > _MAX_TRAILERS:
                        raise HttpError(400, "trailer section too large")
                    return False
                del buffer[: end + 2]
                if end == 0:  # the blank line that ends the message
                    self._in_trailers = False
                    self._chunk_left = -1
                    request.body = b"".join(request._chunks)
                    request._chunks = []
                    return True
                continue
            if self._chunk_left < 0:
                end = buffer.find(b"\r\n", 0, 1024)
                if end < 0:
                    if len(buffer) > 1024:
                        raise HttpError(400, "chunk size line too long")
                    return False
                match = _CHUNK_SIZE.fullmatch(buffer, 0, end)
                if match is None:
                    raise HttpError(400, "malformed chunk size")
                size = int(match.group(1), 16)
                del buffer[: end + 2]
                if size == 0:
                    self._in_trailers = True
                    continue
                if request._received + size > limit:
                    raise HttpError(413, "request body too large")
                self._chunk_left = size + 2
            if len(buffer) < self._chunk_left:
                return False
            data_end = self._chunk_left - 2
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise HttpError(400, "chunk not followed by CRLF")
            request._chunks.append(bytes(buffer[:data_end]))
            request._received += data_end
            del buffer[: self._chunk_left]
            self._chunk_left = -1


def _parse_head(head: bytes) -> Request:
    lines = head[:-4].split(b"\r\n")
    if len(lines[0]) > MAX_LINE:
        raise HttpError(414, "request target too long")
    if len(lines) > MAX_HEADERS + 1 or any(len(line) > MAX_LINE for line in lines):
        raise HttpError(431, "request header fields too large")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(400, "unsupported HTTP version")
    if any(c < 0x21 or c >= 0x7F for c in target):  # RFC 3986: ASCII only
        raise HttpError(400, "malformed request target")
    items = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # RFC 9112 5.1: no whitespace between name and colon; 5.2: obs-fold is refused.
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(400, "malformed header line")
        value = value.strip(b" \t")
        if not _VALUE.fullmatch(value):
            raise HttpError(400, "invalid character in a header value")
        items.append((name.decode("ascii"), value.decode("latin-1")))
    return Request(
        method.decode("ascii"), target.decode("ascii"), version.decode(), Headers(items), head
    )


def _body_length(headers: Headers) -> int:
    """How the body is framed: its length, -1 for chunked, 0 for none (RFC 9112 6.3)."""
    codings = headers.get_all("Transfer-Encoding")
    lengths = headers.get_all("Content-Length")
    if codings:
        if lengths:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if [c.strip().lower() for v in codings for c in v.split(",")] != ["chunked"]:
            raise HttpError(501, "unsupported transfer coding")
        return -1
    if not lengths:
        return 0
    values = {v.strip() for value in lengths for v in value.split(",")}
    if len(values) != 1:
        raise HttpError(400, "conflicting Content-Length values")
    (value,) = values
    if not value.isdigit() or not value.isascii() or len(value) > 18:
        raise HttpError(400, "invalid Content-Length")
    return int(value)


def response(
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes = b"",
    *,
    head_only: bool = False,
) -> bytes:
    """One response as bytes; ``Content-Length`` is added, and the body left out for HEAD.

    A 204 has neither (RFC 9110 8.6: no Content-Length in a 204).
    """
    lines = [f"HTTP/1.1 {status} {phrase(status)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if status != 204:
        lines.append(f"Content-Length: {len(body)}")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out if head_only else out + body


# RFC 9110's names where Python's differ before 3.13, so that the bytes do not
# depend on the Python version.
_PHRASES = {413: "Content Too Large", 414: "URI Too Long"}


def phrase(status: int) -> str:
    """The reason phrase of ``status``, e.g. "Not Found" (RFC 9110 15)."""
    return _PHRASES.get(status) or http.HTTPStatus(status).phrase

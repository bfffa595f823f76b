"""The HTTP request an application sees: ``socket.request``, and what the HTTP hooks get.

A read-only view of the request that opened an Engine.IO session (or of
the one being decided, for ``allow_request`` and the header hooks), built
only when asked for: idle sessions keep the parsed head they have anyway.
Pure: no I/O.

minisio serves plain TCP, never TLS itself, so ``secure`` is False unless a
proxy the server was told to trust (``Server(trust_proxy=True)``) says
``X-Forwarded-Proto: https``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

__all__ = ["HttpRequest", "RequestHeaders", "forwarded"]


class RequestHeaders(Mapping[str, str]):
    """The header fields, in order, repeated ones kept; names compared without case.

    As a mapping, ``headers["cookie"]`` is the first value; :meth:`get_all`
    has every one, :meth:`raw_items` the fields as received.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = tuple(items)

    def __getitem__(self, name: str) -> str:
        name = name.lower()
        for key, value in self._items:
            if key.lower() == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for key, _ in self._items:
            seen.setdefault(key.lower())
        return iter(seen)

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self._items})

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in the order received."""
        name = name.lower()
        return [value for key, value in self._items if key.lower() == name]

    def raw_items(self) -> tuple[tuple[str, str], ...]:
        """The fields as received: original names, repeats included."""
        return self._items

    def __repr__(self) -> str:
        return f"RequestHeaders({list(self._items)!r})"


def forwarded(value: str | None) -> str | None:
    """The first value of a proxy's ``X-Forwarded-*`` header (the client's side of the chain)."""
    if value is None:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request, read-only (Node's ``socket.request``, in the parts apps use).

    ``url`` is the target as sent, query included; ``path`` is without the
    query; ``query`` maps each parameter to its first value (``query_all``:
    every value). ``address`` is the peer's IP address (the proxy's, behind
    one). ``secure`` is whether the client reached the server over TLS.
    """

    method: str
    url: str
    headers: RequestHeaders
    address: str
    secure: bool = False

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return {name: values[0] for name, values in self.query_all.items()}

    @property
    def query_all(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query, keep_blank_values=True)

    @classmethod
    def of(
        cls, method: str, url: str, items: Iterable[tuple[str, str]], address: str, trust: bool
    ) -> HttpRequest:
        """Build one; ``trust``: believe ``X-Forwarded-Proto`` about TLS."""
        headers = RequestHeaders(items)
        proto = forwarded(headers.get("x-forwarded-proto")) if trust else None
        secure = proto is not None and proto.lower() == "https"
        return cls(method, url, headers, address, secure)

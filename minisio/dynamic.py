"""Dynamic namespaces: ``io.of(re.compile(...))`` and ``io.of(fn(name, auth))``.

As socket.io's ``ParentNamespace`` (packages/socket.io/lib/parent-namespace.ts)
and ``Server._checkNamespace`` (index.ts): a client's CONNECT to a namespace
that does not exist asks each parent in the order they were made; the first
that accepts the name makes it a child namespace, which gets a copy of the
parent's ``connection`` handlers and middleware as they are then. A parent's
``emit``, ``to()`` and room operations reach every child. With
``Server(cleanup_empty_child_namespaces=True)`` a child is forgotten once its
last socket leaves (and made again by the next client).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Set
from typing import TYPE_CHECKING, Any

from . import sio
from .adapter import Adapter, Flags
from .server import Namespace, _spawn

if TYPE_CHECKING:
    from .server import Server
    from .socket import Socket

__all__ = ["NamespaceCheck", "ParentNamespace", "find_child"]

logger = logging.getLogger("minisio")

# fn(name, auth) -> bool, or a coroutine function returning one.
NamespaceCheck = Callable[[str, dict[str, Any]], "bool | Awaitable[bool]"]


class ParentNamespace(Namespace):
    """The namespaces one regular expression or function accepts (Node's ``ParentNamespace``).

    Its name is ``/_0``, ``/_1``, ... as in Node; no client connects to it.
    ``on("connection")`` and ``use()`` apply to the children made after them.
    """

    def __init__(self, server: Server, check: re.Pattern[str] | NamespaceCheck, index: int) -> None:
        if not isinstance(check, re.Pattern) and not callable(check):
            raise TypeError("of() takes a name, a compiled regular expression or a function")
        self.check = check
        self.children: set[Namespace] = set()
        super().__init__(server, f"/_{index}")

    def __repr__(self) -> str:
        return f"<ParentNamespace {self.name} {self.check!r}>"

    def _new_adapter(self) -> Adapter:
        return _ParentAdapter(self)

    def matches(self, name: str) -> bool:
        """Whether ``of(name)`` makes a child here: a regular expression that matches."""
        return isinstance(self.check, re.Pattern) and self.check.search(name) is not None

    def accepts(self, name: str, auth: dict[str, Any]) -> bool | Awaitable[bool]:
        """Whether a client connecting to ``name`` makes it a child here."""
        if isinstance(self.check, re.Pattern):
            return self.check.search(name) is not None
        return self.check(name, auth)

    def _create_child(self, name: str) -> Namespace:
        """``createChild()``: a namespace with this one's handlers and middleware."""
        child = Namespace(self.server, name)
        child._parent = self
        child._middlewares = list(self._middlewares)
        child._async_middleware = self._async_middleware
        child._connection_handlers = list(self._connection_handlers)
        self.children.add(child)
        return self.server._add_namespace(child)

    def _emptied(self, child: Namespace) -> None:
        """``child`` lost its last socket (or refused its only one)."""
        server = self.server
        if not server.cleanup_empty_child_namespaces:
            return
        self.children.discard(child)
        if server._namespaces.get(child.name) is child:
            del server._namespaces[child.name]
        _spawn(child.adapter.close())

    async def fetch_sockets(self) -> list[Socket]:
        """Not on a parent, as in Node: a child may exist on one node and not on another."""
        raise NotImplementedError("fetch_sockets() is not supported on parent namespaces")


class _ParentAdapter(Adapter):
    """Node's ``ParentBroadcastAdapter``: broadcasts and room operations go to each child."""

    __slots__ = ()

    def _children(self) -> list[Namespace]:
        assert isinstance(self.nsp, ParentNamespace)
        return list(self.nsp.children)

    def broadcast(
        self, packet: sio.Packet, rooms: Set[str], exclude: Set[str], flags: Flags | None = None
    ) -> None:
        for child in self._children():
            # Each child's packet carries the child's name (Node passes the parent's on).
            own = sio.Packet(packet.type, packet.data, child.name, packet.id)
            child.adapter.broadcast(own, rooms, exclude, flags)

    def broadcast_with_ack(self, *args: Any, **kwargs: Any) -> Callable[[], None]:
        raise NotImplementedError("emit_with_ack() is not supported on parent namespaces")

    def add_sockets(
        self, rooms: Set[str], exclude: Set[str], join: Iterable[str], flags: Flags | None = None
    ) -> None:
        join = list(join)
        for child in self._children():
            child.adapter.add_sockets(rooms, exclude, join, flags)

    def del_sockets(
        self, rooms: Set[str], exclude: Set[str], leave: Iterable[str], flags: Flags | None = None
    ) -> None:
        leave = list(leave)
        for child in self._children():
            child.adapter.del_sockets(rooms, exclude, leave, flags)

    def disconnect_sockets(
        self, rooms: Set[str], exclude: Set[str], close: bool, flags: Flags | None = None
    ) -> None:
        for child in self._children():
            child.adapter.disconnect_sockets(rooms, exclude, close, flags)


def find_child(
    server: Server, name: str, auth: dict[str, Any]
) -> Namespace | Awaitable[Namespace | None] | None:
    """``_checkNamespace``: the child a client's CONNECT to unknown ``name`` makes, if any.

    Asks the parents in order; the first that accepts makes the child. An
    async check turns the answer into an awaitable. A check that raises
    counts as a refusal (Node: ``next(err)``), and is logged.
    """
    for index, parent in enumerate(server._parents):
        verdict = _ask(parent, name, auth)
        if inspect.isawaitable(verdict):
            return _find_async(server, name, auth, index, verdict)
        if verdict:
            return _child(server, parent, name)
    return None


async def _find_async(
    server: Server,
    name: str,
    auth: dict[str, Any],
    index: int,
    verdict: bool | Awaitable[bool],
) -> Namespace | None:
    parents = server._parents
    for parent in parents[index:]:
        if parent is not parents[index]:
            verdict = _ask(parent, name, auth)
        try:
            allowed = await verdict if inspect.isawaitable(verdict) else verdict
        except Exception:
            logger.exception("namespace check of %s failed for %r", parent.name, name)
            allowed = False
        if allowed:
            return _child(server, parent, name)
    return None


def _ask(parent: ParentNamespace, name: str, auth: dict[str, Any]) -> bool | Awaitable[bool]:
    try:
        return parent.accepts(name, auth)
    except Exception:
        logger.exception("namespace check of %s failed for %r", parent.name, name)
        return False


def _child(server: Server, parent: ParentNamespace, name: str) -> Namespace | None:
    # Made meanwhile (another client's async check): that one, as in Node.
    # (Not ``get() or ...``: an empty namespace is falsy, as an empty mapping.)
    existing = server._namespaces.get(name)
    if existing is not None:
        return existing
    if sum(len(p.children) for p in server._parents) >= server.max_child_namespaces:
        logger.warning(
            "refused a CONNECT to %r: max_child_namespaces (%d) reached",
            name,
            server.max_child_namespaces,
        )
        return None
    return parent._create_child(name)

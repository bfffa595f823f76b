"""Routing: to()/except_()/emit() as immutable values.

The four routes of the classroom chat are four uses of one operator::

    io.emit(...)                 all sockets of the namespace
    socket.emit(...)             one socket (its own connection, no index needed)
    socket.broadcast.emit(...)   all, except the room named by the sender's id
    io.to(sid).emit(...)         the room named by one socket's id

Each ``to()``/``except_()`` returns a new operator, so nothing has to be
reset after an emit; so do the flags, ``volatile``, ``compress(False)`` and
``local``, carried to the adapter as socket.io-adapter carries
``{rooms, except, flags}``. What the operator does, it asks of the
namespace's adapter (:mod:`minisio.adapter`), the one place that knows where
sockets are.

Emits and room operations may be called from any thread: from a thread
other than the one running the server's loop, the call is handed to the
loop (``call_soon_threadsafe``), in order; see ``Server.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from threading import get_ident
from typing import TYPE_CHECKING, Any

from . import sio
from .adapter import Flags
from .engine import send_flagged
from .errors import AckTimeout
from .handlers import EMITTED, Emitted

if TYPE_CHECKING:
    from .server import Namespace
    from .socket import Socket

__all__ = ["BroadcastOperator", "FlaggedSocket", "room_names"]

RoomNames = str | Iterable[str]


def room_names(rooms: tuple[RoomNames, ...]) -> frozenset[str]:
    """Room names given as Node takes them: ``to("a", "b")``, ``to(["a", "b"])``, or both."""
    names: set[str] = set()
    for room in rooms:
        if isinstance(room, str):
            names.add(room)
            continue
        if not isinstance(room, list | tuple | set | frozenset):
            raise TypeError(f"a room is a str, or a list, tuple or set of them, not {room!r}")
        for name in room:
            if not isinstance(name, str):
                raise TypeError(f"room names are str, not {name!r}")
            names.add(name)
    return frozenset(names)


def _flag(flags: Flags | None, **changes: bool) -> Flags:
    return replace(flags or Flags(), **changes)


@dataclass(frozen=True, slots=True)
class BroadcastOperator:
    """A selection of sockets in one namespace: rooms to include, rooms to leave out."""

    namespace: Namespace
    rooms: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    ack_timeout: float | None = None  # seconds, for emit_with_ack
    flags: Flags | None = None  # None: no flag set, the usual case

    def to(self, *rooms: RoomNames) -> BroadcastOperator:
        """Also target these rooms (a socket id is a room); names or lists of names."""
        return replace(self, rooms=self.rooms.union(room_names(rooms)))

    in_ = to

    def except_(self, *rooms: RoomNames) -> BroadcastOperator:
        """Leave out the sockets in these rooms; names or lists of names."""
        return replace(self, exclude=self.exclude.union(room_names(rooms)))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for a client not ready for it rather than queue it (Node's
        ``volatile``): a WebSocket with data still unsent, a polling client with
        packets waiting. Never the reason a client is cut."""
        return replace(self, flags=_flag(self.flags, volatile=True))

    def compress(self, compress: bool) -> BroadcastOperator:
        """``compress(False)``: send uncompressed to clients with permessage-deflate on
        (``Server(compression=True)``); polling is never compressed."""
        return replace(self, flags=_flag(self.flags, compress=bool(compress)))

    @property
    def local(self) -> BroadcastOperator:
        """This node's sockets only: a cluster adapter does not tell the other nodes."""
        return replace(self, flags=_flag(self.flags, local=True))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """How long :meth:`emit_with_ack` waits for every answer (``timeout()`` in Node)."""
        if not seconds > 0:
            raise ValueError("timeout must be positive")
        return replace(self, ack_timeout=seconds)

    def emit(self, event: str, *args: Any) -> Emitted:
        """Send an event to every selected socket; encoded once, written to each.

        From another thread, the emit is handed to the server's loop.
        """
        _check_event(event)
        nsp = self.namespace
        server = nsp.server
        if server._loop_thread != get_ident() and server._loop is not None:
            server._loop.call_soon_threadsafe(self.emit, event, *args)
            return EMITTED
        packet = sio.Packet(sio.PacketType.EVENT, [event, *args], nsp.name)
        if self.flags is None:
            nsp.adapter.broadcast(packet, self.rooms, self.exclude)
        else:
            nsp.adapter.broadcast(packet, self.rooms, self.exclude, self.flags)
        return EMITTED

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Send an event to every selected socket, on every node, and gather their acks.

        Needs :meth:`timeout` first. Returns one answer per socket reached
        (the first argument of its ack, as in Node), in arrival order.
        Raises :class:`~minisio.AckTimeout` when some did not answer in
        time; its ``results`` holds the answers that came.
        """
        _check_event(event)
        wait = self.ack_timeout
        if wait is None:
            raise TypeError("set a timeout first: .timeout(seconds).emit_with_ack(...)")
        packet = sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name)
        gather = _Gathering()
        adapter = self.namespace.adapter
        cleanup = adapter.broadcast_with_ack(
            packet, self.rooms, self.exclude, wait, gather.count, gather.answer, self.flags
        )
        try:
            local = self.flags is not None and self.flags.local
            gather.servers = 1 if local else await adapter.server_count()
            gather.check()
            async with asyncio.timeout(wait):
                await gather.done
        except TimeoutError:
            got, of = len(gather.answers), gather.clients
            raise AckTimeout(
                f"{got} of {of} acks for {event!r} within {wait}s", list(gather.answers)
            ) from None
        finally:
            cleanup()
        return gather.answers

    async def fetch_sockets(self) -> list[Socket]:
        """The selected sockets (``fetchSockets()`` in Node)."""
        return await self.namespace.adapter.fetch_sockets(self.rooms, self.exclude, self.flags)

    def sockets_join(self, *rooms: RoomNames) -> None:
        """Make every selected socket join ``rooms`` (``socketsJoin()``)."""
        names = room_names(rooms)
        if self._elsewhere(self.sockets_join, names):
            return
        self.namespace.adapter.add_sockets(self.rooms, self.exclude, names, self.flags)

    def sockets_leave(self, *rooms: RoomNames) -> None:
        """Make every selected socket leave ``rooms`` (``socketsLeave()``)."""
        names = room_names(rooms)
        if self._elsewhere(self.sockets_leave, names):
            return
        self.namespace.adapter.del_sockets(self.rooms, self.exclude, names, self.flags)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every selected socket (``disconnectSockets()``; ``close``: the
        connections too)."""
        if self._elsewhere(self.disconnect_sockets, close):
            return
        self.namespace.adapter.disconnect_sockets(self.rooms, self.exclude, close, self.flags)

    def _elsewhere(self, method: Any, *args: Any) -> bool:
        """Called from a thread other than the loop's: hand the call to the loop."""
        server = self.namespace.server
        if server._loop_thread == get_ident() or server._loop is None:
            return False
        server._loop.call_soon_threadsafe(method, *args)
        return True


@dataclass(frozen=True, slots=True)
class FlaggedSocket:
    """One socket with flags, for ``socket.volatile.emit(...)`` and ``socket.compress(False)``.

    Immutable like the operators: the socket itself keeps no per-emit flag.
    """

    socket: Socket
    flags: Flags

    @property
    def volatile(self) -> FlaggedSocket:
        """See :attr:`BroadcastOperator.volatile`."""
        return replace(self, flags=_flag(self.flags, volatile=True))

    def compress(self, compress: bool) -> FlaggedSocket:
        """See :meth:`BroadcastOperator.compress`."""
        return replace(self, flags=_flag(self.flags, compress=bool(compress)))

    def emit(self, event: str, *args: Any) -> Emitted:
        """Send an event to this socket only, with the flags."""
        _check_event(event)
        socket = self.socket
        if socket._elsewhere(self.emit, event, *args):
            return EMITTED
        if not socket.connected:
            return EMITTED
        packet = sio.Packet(sio.PacketType.EVENT, [event, *args], socket.namespace.name)
        if socket._pid is not None and not self.flags.volatile:
            # Connection state recovery: kept for replay, as the socket's own emits.
            own = frozenset((socket.id,))
            socket.namespace.adapter.broadcast(packet, own, frozenset(), self.flags)
            return EMITTED
        if socket._any_out is not None:
            socket._sent(packet.data)
        send_flagged([socket._conn], sio.encode(packet), self.flags.volatile, self.flags.compress)
        return EMITTED

    def _operator(self, rooms: frozenset[str], exclude: frozenset[str]) -> BroadcastOperator:
        return BroadcastOperator(self.socket.namespace, rooms, exclude, flags=self.flags)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace except this socket, with the flags."""
        return self._operator(frozenset(), frozenset((self.socket.id,)))

    @property
    def local(self) -> BroadcastOperator:
        """As :attr:`broadcast`, on this node only (Node's ``socket.local``)."""
        return replace(self, flags=_flag(self.flags, local=True)).broadcast

    def to(self, *rooms: RoomNames) -> BroadcastOperator:
        """The sockets in ``rooms`` except this one, with the flags."""
        return self._operator(room_names(rooms), frozenset((self.socket.id,)))

    in_ = to

    def except_(self, *rooms: RoomNames) -> BroadcastOperator:
        """Everyone but this socket and those in ``rooms``, with the flags."""
        return self._operator(frozenset(), room_names(rooms) | {self.socket.id})


class _Gathering:
    """The answers to one broadcast with acks: complete when every node has said how
    many sockets it reached and every one of them has answered."""

    __slots__ = ("answers", "clients", "counted", "done", "servers")

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.clients = 0  # sockets reached, as the nodes counted so far
        self.counted = 0  # nodes that counted
        self.servers: int | None = None  # nodes in the cluster, once known
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def count(self, clients: int) -> None:
        self.clients += clients
        self.counted += 1
        self.check()

    def answer(self, value: Any) -> None:
        self.answers.append(value)
        self.check()

    def check(self) -> None:
        if (
            self.counted == self.servers
            and len(self.answers) >= self.clients
            and not self.done.done()
        ):
            self.done.set_result(None)


def _check_event(event: str) -> None:
    if not isinstance(event, str):
        raise TypeError("event name must be a str")
    if event in sio.RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")

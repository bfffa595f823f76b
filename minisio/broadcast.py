"""Routing: to()/except_()/emit() as immutable values.

The four routes of the classroom chat are four uses of one operator::

    io.emit(...)                 all sockets of the namespace
    socket.emit(...)             one socket (its own connection, no index needed)
    socket.broadcast.emit(...)   all, except the room named by the sender's id
    io.to(sid).emit(...)         the room named by one socket's id

Each ``to()``/``except_()`` returns a new operator, so nothing has to be
reset after an emit. What the operator does, it asks of the namespace's
adapter (:mod:`minisio.adapter`), the one place that knows where sockets are.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import sio
from .errors import AckTimeout

if TYPE_CHECKING:
    from .server import Namespace
    from .socket import Socket

__all__ = ["BroadcastOperator"]


@dataclass(frozen=True, slots=True)
class BroadcastOperator:
    """A selection of sockets in one namespace: rooms to include, rooms to leave out."""

    namespace: Namespace
    rooms: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    ack_timeout: float | None = None  # seconds, for emit_with_ack

    def to(self, *rooms: str) -> BroadcastOperator:
        """Also target these rooms (a socket id is a room)."""
        return replace(self, rooms=self.rooms.union(rooms))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Leave out the sockets in these rooms."""
        return replace(self, exclude=self.exclude.union(rooms))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """How long :meth:`emit_with_ack` waits for every answer (``timeout()`` in Node)."""
        if not seconds > 0:
            raise ValueError("timeout must be positive")
        return replace(self, ack_timeout=seconds)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every selected socket; encoded once, written to each."""
        _check_event(event)
        packet = sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name)
        self.namespace.adapter.broadcast(packet, self.rooms, self.exclude)

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
            packet, self.rooms, self.exclude, wait, gather.count, gather.answer
        )
        try:
            gather.servers = await adapter.server_count()
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
        return await self.namespace.adapter.fetch_sockets(self.rooms, self.exclude)

    def sockets_join(self, *rooms: str) -> None:
        """Make every selected socket join ``rooms`` (``socketsJoin()``)."""
        self.namespace.adapter.add_sockets(self.rooms, self.exclude, rooms)

    def sockets_leave(self, *rooms: str) -> None:
        """Make every selected socket leave ``rooms`` (``socketsLeave()``)."""
        self.namespace.adapter.del_sockets(self.rooms, self.exclude, rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every selected socket (``disconnectSockets()``; ``close``: the
        connections too)."""
        self.namespace.adapter.disconnect_sockets(self.rooms, self.exclude, close)


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

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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import sio

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

    def to(self, *rooms: str) -> BroadcastOperator:
        """Also target these rooms (a socket id is a room)."""
        return BroadcastOperator(self.namespace, self.rooms.union(rooms), self.exclude)

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Leave out the sockets in these rooms."""
        return BroadcastOperator(self.namespace, self.rooms, self.exclude.union(rooms))

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every selected socket; encoded once, written to each."""
        _check_event(event)
        packet = sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name)
        self.namespace.adapter.broadcast(packet, self.rooms, self.exclude)

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


def _check_event(event: str) -> None:
    if not isinstance(event, str):
        raise TypeError("event name must be a str")
    if event in sio.RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")

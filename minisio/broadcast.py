"""Routing: to()/except_()/emit() as immutable values.

The four routes of the classroom chat are four uses of one operator::

    io.emit(...)                 all sockets of the namespace
    socket.emit(...)             one socket (its own connection, no index needed)
    socket.broadcast.emit(...)   all, except the room named by the sender's id
    io.to(sid).emit(...)         the room named by one socket's id

Each ``to()``/``except_()`` returns a new operator, so nothing has to be
reset after an emit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import sio
from .engine import send_many

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

    @property
    def sockets(self) -> list[Socket]:
        """The sockets this operator would reach right now."""
        ns = self.namespace
        if not self.rooms and not self.exclude:
            return list(ns.sockets.values())
        chosen = ns.adapter.select(self.rooms, self.exclude)
        return [ns.sockets[sid] for sid in chosen if sid in ns.sockets]

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every selected socket; encoded once, written to each."""
        _check_event(event)
        frames = sio.encode(sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name))
        send_many([socket._conn for socket in self.sockets], frames)

    def disconnect(self, close: bool = False) -> None:
        """Disconnect every selected socket (server-side kick)."""
        for socket in self.sockets:
            socket.disconnect(close)

    def join(self, *rooms: str) -> None:
        """Make every selected socket join ``rooms``."""
        for socket in self.sockets:
            socket.join(*rooms)

    def leave(self, room: str) -> None:
        """Make every selected socket leave ``room``."""
        for socket in self.sockets:
            socket.leave(room)


def _check_event(event: str) -> None:
    if not isinstance(event, str):
        raise TypeError("event name must be a str")
    if event in sio.RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")

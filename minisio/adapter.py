"""The adapter: where a namespace's broadcasts and room operations go.

Every route and every room operation of a namespace goes through its
adapter, as in socket.io-adapter: joining and leaving rooms, a broadcast
to rooms except others, and the operations on a selection of sockets
(fetch them, make them join or leave rooms, disconnect them). The
:class:`Adapter` here is the default: one node and its own sockets, kept
in a :class:`~minisio.rooms.Rooms` index. A cluster adapter subclasses it:
it does the same for its local sockets and also tells the other nodes.

A broadcast encodes its packet once and writes the same bytes to every
recipient's transport, with no ``await`` in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import sio
from .engine import ready_for, send_flagged, send_many, wire_size
from .rooms import Rooms

if TYPE_CHECKING:
    from .server import Namespace
    from .socket import Socket

__all__ = ["Adapter", "Flags"]


@dataclass(frozen=True, slots=True)
class Flags:
    """How a broadcast or a room operation goes (``BroadcastFlags`` in socket.io-adapter).

    The operators pass ``None`` when no flag is set, so that the usual
    broadcast costs one ``is None`` test and nothing more.

    ``volatile``: the packet is dropped, not queued, for a client that is
    not ready for it (see :func:`~minisio.engine.send_flagged`).
    ``compress``: False sends the packet uncompressed when permessage-deflate
    is on. ``local``: this node's sockets only; a cluster adapter does not
    tell the other nodes.
    """

    volatile: bool = False
    compress: bool = True
    local: bool = False

    def wire(self) -> dict[str, bool]:
        """The flags a cluster message carries (``opts.flags``), as the Node adapter writes them."""
        out: dict[str, bool] = {}
        if self.volatile:
            out["volatile"] = True
        if not self.compress:
            out["compress"] = False
        return out

    @staticmethod
    def from_wire(flags: Any) -> Flags | None:
        """The delivery flags of a broadcast from another node (``local`` means nothing there)."""
        if not isinstance(flags, dict):
            return None
        volatile, compress = flags.get("volatile") is True, flags.get("compress") is not False
        return Flags(volatile, compress) if volatile or not compress else None


class Adapter(Rooms):
    """The in-memory adapter of one namespace: its room index and local delivery.

    ``rooms`` and ``exclude`` select sockets as everywhere in minisio: the
    sockets in any of ``rooms`` (every socket when it is empty), minus those
    in any of ``exclude``. A socket id names a room of one.
    """

    __slots__ = ("nsp",)

    def __init__(self, nsp: Namespace) -> None:
        super().__init__()
        self.nsp = nsp

    async def init(self) -> None:
        """Called when the server starts serving (or the namespace is made while it serves)."""

    async def close(self) -> None:
        """Called when the server stops."""

    def sockets(self, rooms: Set[str], exclude: Set[str]) -> list[Socket]:
        """The local sockets selected."""
        local = self.nsp.sockets
        if not rooms and not exclude:
            return list(local.values())
        return [local[sid] for sid in self.select(rooms, exclude) if sid in local]

    def broadcast(
        self, packet: sio.Packet, rooms: Set[str], exclude: Set[str], flags: Flags | None = None
    ) -> None:
        """Send ``packet`` to the sockets selected: encoded once, written to each."""
        sockets = self.sockets(rooms, exclude)
        if self.nsp._outgoing:  # some socket of the namespace has on_any_outgoing listeners
            _notify_outgoing(sockets, packet)
        conns = [socket._conn for socket in sockets]
        if flags is None:
            send_many(conns, sio.encode(packet))
        else:
            send_flagged(conns, sio.encode(packet), flags.volatile, flags.compress)

    def broadcast_with_ack(
        self,
        packet: sio.Packet,
        rooms: Set[str],
        exclude: Set[str],
        timeout: float,
        on_count: Callable[[int], None],
        on_ack: Callable[[Any], None],
        flags: Flags | None = None,
    ) -> Callable[[], None]:
        """Broadcast ``packet`` asking each socket for an ack, under one ack id.

        ``on_count`` gets the number of sockets reached (once per node),
        ``on_ack`` each socket's answer (its first argument). Returns what
        forgets the acks still awaited, for when the caller stops waiting.
        ``flags``: ``local`` matters to a cluster adapter. A socket that a
        volatile packet skips is not counted, so nobody waits for its answer
        (the Node adapter counts it, and the broadcast then times out).
        """
        packet.id = self.nsp._next_ack_id()
        ack_id = packet.id
        sockets = self.sockets(rooms, exclude)
        frames = sio.encode(packet)
        if flags is not None and flags.volatile:
            size = wire_size(frames)
            sockets = [socket for socket in sockets if ready_for(socket._conn, size)]

        def answered(args: list[Any]) -> None:
            on_ack(args[0] if args else None)

        for socket in sockets:
            socket._expect_ack(ack_id, answered)
        if self.nsp._outgoing:
            _notify_outgoing(sockets, packet)
        conns = [socket._conn for socket in sockets]
        if flags is None or flags.compress:
            send_many(conns, frames)
        else:
            send_flagged(conns, frames, False, False)
        on_count(len(sockets))

        def cleanup() -> None:
            for socket in sockets:
                socket._forget_ack(ack_id)

        return cleanup

    async def fetch_sockets(
        self, rooms: Set[str], exclude: Set[str], flags: Flags | None = None
    ) -> list[Socket]:
        """The sockets selected (on every node, for a cluster adapter)."""
        return self.sockets(rooms, exclude)

    def add_sockets(
        self, rooms: Set[str], exclude: Set[str], join: Iterable[str], flags: Flags | None = None
    ) -> None:
        """Make the sockets selected join ``join``."""
        join = list(join)
        for socket in self.sockets(rooms, exclude):
            socket.join(*join)

    def del_sockets(
        self, rooms: Set[str], exclude: Set[str], leave: Iterable[str], flags: Flags | None = None
    ) -> None:
        """Make the sockets selected leave ``leave``."""
        leave = list(leave)
        for socket in self.sockets(rooms, exclude):
            for room in leave:
                socket.leave(room)

    def disconnect_sockets(
        self, rooms: Set[str], exclude: Set[str], close: bool, flags: Flags | None = None
    ) -> None:
        """Disconnect the sockets selected (``close``: their connections too)."""
        for socket in self.sockets(rooms, exclude):
            socket.disconnect(close)

    async def server_count(self) -> int:
        """How many nodes share this namespace: one, for the in-memory adapter."""
        return 1

    def server_side_emit(self, data: list[Any]) -> None:
        """Send ``[event, *args]`` to the server-side handlers of the other nodes: none here."""

    async def server_side_emit_with_ack(self, data: list[Any]) -> list[Any]:
        """The same, gathering one answer per other node: none here."""
        return []


def _notify_outgoing(sockets: list[Socket], packet: sio.Packet) -> None:
    """Call the ``on_any_outgoing`` listeners of the recipients that have some."""
    for socket in sockets:
        if socket._any_out is not None:
            socket._sent(packet.data)

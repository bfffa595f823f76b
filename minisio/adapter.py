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

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import sio
from .engine import ready_for, send_flagged, send_many, wire_size
from .recovery import KeptSession, PacketLog, Recovery, SessionStore, parse_offset
from .rooms import Rooms

if TYPE_CHECKING:
    from .server import Namespace
    from .socket import Socket

__all__ = ["Adapter", "Flags", "SessionAwareAdapter"]

logger = logging.getLogger("minisio")


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

    #: Whether this adapter keeps sessions and packets for connection state
    #: recovery (:class:`SessionAwareAdapter`). This one does not: with it, a
    #: server with ``connection_state_recovery`` behaves as without.
    recovers = False

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


class SessionAwareAdapter(Adapter):
    """The in-memory adapter with connection state recovery (socket.io-adapter's own).

    Every event broadcast without an ack and not ``volatile`` gets the next
    offset as its last argument and is kept, encoded, with its route, in
    :class:`~minisio.recovery.PacketLog`; the sockets that disconnect for a
    reason that allows it are kept in :class:`~minisio.recovery.SessionStore`.
    Both are bounded and expire after ``max_disconnection_duration``; one
    timer per namespace, set for the oldest kept session, tells the
    namespace's ``session_expired`` handlers when a session is gone for good.
    """

    __slots__ = ("_timer", "limits", "log", "store")

    recovers = True

    def __init__(self, nsp: Namespace) -> None:
        super().__init__(nsp)
        limits = nsp.server._recovery or Recovery()
        self.limits = limits
        self.store = SessionStore(limits)
        self.log = PacketLog(limits)
        self._timer: asyncio.TimerHandle | None = None

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def broadcast(
        self, packet: sio.Packet, rooms: Set[str], exclude: Set[str], flags: Flags | None = None
    ) -> None:
        """As :meth:`Adapter.broadcast`, keeping the packet for replay with its offset."""
        # Not with an ack (an ack callback cannot be restored), not volatile:
        # as socket.io-adapter, which also appends the offset last so that
        # the client sees it as one more argument.
        if packet.id is None and (flags is None or not flags.volatile):
            frames = self.keep(packet, frozenset(rooms), frozenset(exclude))
        else:
            frames = sio.encode(packet)
        # Adapter.broadcast's delivery, with the frames already encoded.
        sockets = self.sockets(rooms, exclude)
        if self.nsp._outgoing:
            _notify_outgoing(sockets, packet)
        conns = [socket._conn for socket in sockets]
        if flags is None:
            send_many(conns, frames)
        else:
            send_flagged(conns, frames, flags.volatile, flags.compress)

    def keep(self, packet: sio.Packet, rooms: Set[str], exclude: Set[str]) -> list[bytes]:
        """Give ``packet`` the next offset, encode it and keep it: its frames."""
        log = self.log
        counter, offset = log.next_offset()
        packet.data.append(offset)
        frames = sio.encode(packet)
        log.append(counter, frames, rooms, exclude, time.monotonic())
        return frames

    def last_counter(self) -> int:
        """The counter of the last packet kept: a new socket has seen none after it."""
        return self.log.last

    def persist_session(self, session: KeptSession) -> None:
        """Keep a disconnected socket's session (Node's ``persistSession``)."""
        self._expire()
        for dropped in self.store.put(session):
            self.nsp._session_expired(dropped)
        self._schedule()

    def restore_session(
        self, pid: str, offset: object
    ) -> tuple[KeptSession, list[list[bytes]]] | None:
        """The session ``pid`` and the frames it missed after ``offset``, or None.

        None: unknown or expired pid, or an offset this log cannot replay
        from (forged, from the future, or older than what is kept); the
        client then starts a new session. A session found is taken out of the
        store whatever the offset: it can be restored once only, and a
        failed attempt ends it (its ``session_expired`` handlers run).
        ``offset`` None: the client never got an offset; what it missed is
        everything since the socket first connected.
        """
        self._expire()
        session = self.store.take(pid, time.monotonic())
        if session is None:
            return None
        after = session.start if offset is None else parse_offset(offset)
        missed = None if after is None else self.log.since(after, session.rooms)
        if missed is None:
            logger.info("session of %s not recovered: offset not replayable", session.id)
            self.nsp._session_expired(session)
            return None
        return session, missed

    def missed_since(self, after: int, rooms: Set[str]) -> list[list[bytes]] | None:
        """The frames after counter ``after`` that reach ``rooms`` (None: not all kept)."""
        return self.log.since(after, rooms)

    def _expire(self) -> None:
        now = time.monotonic()
        self.log.expire(now)
        for dropped in self.store.expire(now):
            self.nsp._session_expired(dropped)

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        due = self.store.next_expiry()
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving: expired on the next persist or restore
            return
        # A little past the deadline, so that the session has expired by then.
        self._timer = loop.call_later(max(0.0, due - time.monotonic()) + 0.01, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._expire()
        self._schedule()


def _notify_outgoing(sockets: list[Socket], packet: sio.Packet) -> None:
    """Call the ``on_any_outgoing`` listeners of the recipients that have some."""
    for socket in sockets:
        if socket._any_out is not None:
            socket._sent(packet.data)

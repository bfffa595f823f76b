"""The room index of one namespace on one node. Pure: no I/O.

Rooms exist only on the server; they never appear on the wire. Every socket
is in the room named by its own id, so "send to one socket" and "send to a
room" are the same operation (socket.io ``Socket._onconnect`` does the same).
The adapter (:mod:`minisio.adapter`) keeps one of these for its local sockets.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

__all__ = ["Rooms"]


class Rooms:
    """Two maps kept in step: room -> socket ids, socket id -> rooms."""

    __slots__ = ("rooms", "sids")

    def __init__(self) -> None:
        self.rooms: dict[str, set[str]] = {}
        self.sids: dict[str, set[str]] = {}

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        """Put socket ``sid`` in ``rooms``."""
        mine = self.sids.setdefault(sid, set())
        for room in rooms:
            mine.add(room)
            self.rooms.setdefault(room, set()).add(sid)

    def delete(self, sid: str, room: str) -> None:
        """Take socket ``sid`` out of ``room``; an emptied room is forgotten."""
        mine = self.sids.get(sid)
        if mine is not None:
            mine.discard(room)
        self._drop(room, sid)

    def delete_all(self, sid: str) -> None:
        """Take socket ``sid`` out of every room (it disconnected)."""
        for room in self.sids.pop(sid, ()):
            self._drop(room, sid)

    def _drop(self, room: str, sid: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self.rooms[room]  # empty rooms must not accumulate

    def socket_rooms(self, sid: str) -> Set[str]:
        """The rooms socket ``sid`` is in."""
        return self.sids.get(sid, frozenset())

    def select(self, rooms: Set[str], exclude: Set[str]) -> set[str]:
        """Socket ids in any of ``rooms`` (all when empty), minus ``exclude``'s members."""
        if rooms:
            chosen: set[str] = set()
            for room in rooms:
                chosen.update(self.rooms.get(room, ()))
        else:
            chosen = set(self.sids)
        for room in exclude:
            chosen.difference_update(self.rooms.get(room, ()))
        return chosen

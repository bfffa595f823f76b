"""Connection state recovery: the options, the kept sessions and the replay log. Pure: no I/O.

A client that loses its connection for a moment comes back as the same
socket (socket.io 4.6+, ``connectionStateRecovery``): the CONNECT reply
gives it a private session id (``pid``), every packet the server stores for
replay carries its offset as the last argument, and a CONNECT carrying
``pid`` and the last ``offset`` seen, within the window, restores the
socket id, its rooms and ``data``, and replays what it missed.

Two stores per namespace, both bounded in count, bytes and time, both
dropping the oldest first:

:class:`SessionStore`
    the sessions of disconnected clients, by ``pid``, in disconnect order;
:class:`PacketLog`
    the packets broadcast in the last window, with their offsets and routes.

An offset is a counter of the log, in lower-case hex. The counter starts at
a random value, so that a string an application happens to send last
(``"ok"``, ``"1"``) is very unlikely to pass for one; a log can thus answer
"what came after offset N" by arithmetic, even when packet N itself has
expired, as long as every later one is still kept.

The adapter (:class:`~minisio.adapter.SessionAwareAdapter`) does the I/O:
it owns one store and one log, writes the packets and runs the timer that
expires sessions.
"""

from __future__ import annotations

import collections
import itertools
import re
import secrets
import warnings
from collections.abc import Mapping, Set
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

__all__ = [
    "RECOVERABLE_REASONS",
    "KeptSession",
    "PacketLog",
    "Recovery",
    "SessionStore",
]

#: Disconnect reasons after which a session is kept (socket.io ``RECOVERABLE_DISCONNECT_REASONS``).
#: A client or the server leaving on purpose ("client namespace disconnect",
#: "server namespace disconnect") and a protocol fault ("parse error") end it.
RECOVERABLE_REASONS = frozenset(
    (
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    )
)

_OFFSET = re.compile(r"[1-9a-f][0-9a-f]{0,15}")
# What a kept session costs beyond its rooms and data, and what a session
# whose data is not JSON is counted as (see SessionStore.put).
_SESSION_OVERHEAD = 200
_OPAQUE_DATA = 1024


@dataclass(frozen=True, slots=True)
class Recovery:
    """The options of ``Server(connection_state_recovery=...)``, in seconds and bytes.

    ``max_disconnection_duration`` and ``skip_middlewares`` are Node's
    (``maxDisconnectionDuration``, ``skipMiddlewares``). The bounds are
    minisio's, per namespace: past any of them the oldest session (or
    packet) goes first. A packet's bytes are its encoded frames; a
    session's, its rooms and its ``data`` as JSON.
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    # Limits, per namespace
    max_sessions: int = 10_000
    max_session_bytes: int = 16_000_000
    max_packets: int = 10_000
    max_packet_bytes: int = 16_000_000

    def __post_init__(self) -> None:
        if not self.max_disconnection_duration > 0:
            raise ValueError("max_disconnection_duration must be positive (seconds)")
        if self.max_disconnection_duration > 86_400:
            warnings.warn(
                f"max_disconnection_duration={self.max_disconnection_duration!r} is in "
                "seconds here, not milliseconds as in Node",
                stacklevel=4,
            )
        limits = (self.max_sessions, self.max_session_bytes, self.max_packets)
        if min(*limits, self.max_packet_bytes) < 1:
            raise ValueError("recovery limits must be positive")

    @staticmethod
    def of(value: Recovery | Mapping[str, Any] | bool | None) -> Recovery | None:
        """``connection_state_recovery`` as given: None/False (off), True, a dict or a Recovery."""
        if value is None or value is False:
            return None
        if value is True:
            return Recovery()
        if isinstance(value, Recovery):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(Recovery)}
            unknown = set(value) - known
            if unknown:
                raise TypeError(
                    f"unknown connection_state_recovery option(s) {sorted(unknown)}; "
                    f"known: {sorted(known)}"
                )
            return Recovery(**value)
        raise TypeError("connection_state_recovery is a dict, a Recovery, True or None")


def format_offset(counter: int) -> str:
    """The offset a packet carries on the wire."""
    return format(counter, "x")


def parse_offset(offset: object) -> int | None:
    """The counter of an offset a client sent, or None if it is not one of ours."""
    if type(offset) is not str or not _OFFSET.fullmatch(offset):
        return None
    return int(offset, 16)


@dataclass(slots=True)
class KeptSession:
    """What is kept of a disconnected socket (Node's ``SessionToPersist``, plus bookkeeping).

    ``id``, ``rooms`` and ``data`` are what a recovered socket gets back;
    ``start`` is the log's last counter when the socket first connected
    (what to replay from for a client that never got an offset).
    """

    id: str
    pid: str
    rooms: frozenset[str]
    data: dict[str, Any] | None
    start: int
    disconnected_at: float
    size: int = field(default=0, compare=False)


class SessionStore:
    """Disconnected sessions by ``pid``, oldest first, bounded in count, bytes and time."""

    __slots__ = ("bytes", "limits", "sessions")

    def __init__(self, limits: Recovery) -> None:
        self.limits = limits
        # Insertion order is disconnect order: the first is the oldest.
        self.sessions: dict[str, KeptSession] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.sessions)

    def put(self, session: KeptSession) -> list[KeptSession]:
        """Keep ``session``; return the sessions dropped to make room (oldest first)."""
        session.size = _session_size(session)
        old = self.sessions.pop(session.pid, None)
        if old is not None:  # a pid is never kept twice; should it be, the new one wins
            self.bytes -= old.size
        self.sessions[session.pid] = session
        self.bytes += session.size
        dropped = []
        limits = self.limits
        while len(self.sessions) > limits.max_sessions or (
            self.bytes > limits.max_session_bytes and len(self.sessions) > 1
        ):
            dropped.append(self._pop_oldest())
        if self.bytes > limits.max_session_bytes:  # one session alone is too big to keep
            dropped.append(self._pop_oldest())
        return dropped

    def take(self, pid: str, now: float) -> KeptSession | None:
        """Remove and return the session ``pid`` if it is kept and not expired."""
        session = self.sessions.pop(pid, None)
        if session is None:
            return None
        self.bytes -= session.size
        if session.disconnected_at + self.limits.max_disconnection_duration < now:
            return None  # expired; the caller's next expire() would have said so
        return session

    def expire(self, now: float) -> list[KeptSession]:
        """Drop the sessions disconnected longer than the window ago (oldest first)."""
        threshold = now - self.limits.max_disconnection_duration
        dropped = []
        for session in self.sessions.values():
            if session.disconnected_at >= threshold:
                break
            dropped.append(session)
        for session in dropped:
            del self.sessions[session.pid]
            self.bytes -= session.size
        return dropped

    def next_expiry(self) -> float | None:
        """When the oldest session expires (None when none is kept)."""
        for session in self.sessions.values():
            return session.disconnected_at + self.limits.max_disconnection_duration
        return None

    def _pop_oldest(self) -> KeptSession:
        pid = next(iter(self.sessions))
        session = self.sessions.pop(pid)
        self.bytes -= session.size
        return session


def _session_size(session: KeptSession) -> int:
    size = _SESSION_OVERHEAD + sum(len(room) for room in session.rooms)
    if session.data:
        try:
            size += len(orjson.dumps(session.data))
        except TypeError:  # not JSON: counted as a fixed guess
            size += _OPAQUE_DATA
    return size


#: One packet kept for replay, a plain tuple (built on every broadcast):
#: (counter, encoded frames, rooms, except, emitted at, size in bytes).
StoredPacket = tuple[int, list[bytes], Set[str], Set[str], float, int]


class PacketLog:
    """The packets of one namespace's last window, in order, with their offsets."""

    __slots__ = ("bytes", "last", "max_bytes", "max_packets", "packets", "window")

    def __init__(self, limits: Recovery, start: int | None = None) -> None:
        self.max_packets = limits.max_packets
        self.max_bytes = limits.max_packet_bytes
        self.window = limits.max_disconnection_duration
        self.packets: collections.deque[StoredPacket] = collections.deque()
        self.bytes = 0
        # The counter of the last packet ever stored; the next gets last + 1.
        self.last = secrets.randbits(28) + (1 << 28) if start is None else start

    def __len__(self) -> int:
        return len(self.packets)

    def next_offset(self) -> tuple[int, str]:
        """The counter and offset of the packet about to be stored."""
        self.last += 1
        return self.last, format(self.last, "x")

    def append(
        self, counter: int, frames: list[bytes], rooms: Set[str], exclude: Set[str], now: float
    ) -> None:
        """Keep the packet numbered ``counter`` (from :meth:`next_offset`); drop the oldest
        past the bounds and the window."""
        size = len(frames[0]) if len(frames) == 1 else sum(map(len, frames))
        packets = self.packets
        packets.append((counter, frames, rooms, exclude, now, size))
        self.bytes += size
        if (
            len(packets) > self.max_packets
            or self.bytes > self.max_bytes
            or packets[0][4] < now - self.window
        ):
            self._trim(now)

    def _trim(self, now: float) -> None:
        packets = self.packets
        threshold = now - self.window
        while packets and (
            len(packets) > self.max_packets
            or self.bytes > self.max_bytes
            or packets[0][4] < threshold
        ):
            self.bytes -= packets.popleft()[5]

    def expire(self, now: float) -> None:
        """Drop the packets older than the window."""
        threshold = now - self.window
        packets = self.packets
        while packets and packets[0][4] < threshold:
            self.bytes -= packets.popleft()[5]

    def since(self, after: int, rooms: Set[str]) -> list[list[bytes]] | None:
        """The frames of every packet after counter ``after`` that reaches ``rooms``, in order.

        None when that cannot be told: ``after`` is in the future, or
        packets after it were dropped already.
        """
        first = self.packets[0][0] if self.packets else self.last + 1
        if not first - 1 <= after <= self.last:
            return None
        skip = after - first + 1
        return [
            frames
            for _, frames, to, exclude, _, _ in itertools.islice(self.packets, skip, None)
            if reaches(rooms, to, exclude)
        ]


def reaches(session_rooms: Set[str], rooms: Set[str], exclude: Set[str]) -> bool:
    """Whether a broadcast to ``rooms`` except ``exclude`` reaches a socket in ``session_rooms``.

    (socket.io-adapter ``shouldIncludePacket``.) The rooms are the socket's
    when it disconnected, not when each packet was sent.
    """
    if rooms and rooms.isdisjoint(session_rooms):
        return False
    return not exclude or exclude.isdisjoint(session_rooms)

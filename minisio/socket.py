"""Socket: one client's connection to one namespace, as the handlers see it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import sio
from .broadcast import BroadcastOperator, _check_event
from .errors import AckTimeout, Disconnected
from .handlers import Handler, ack_args, ack_result

if TYPE_CHECKING:
    from .engine import Session
    from .server import Namespace

__all__ = ["Handshake", "Socket"]

logger = logging.getLogger("minisio")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client sent when it connected (``socket.handshake`` in Node).

    ``headers`` has lower-case names; ``time`` is when the WebSocket opened,
    ``issued`` the same in milliseconds since the epoch; ``url`` is the
    request target, query included.
    """

    headers: dict[str, str]
    query: dict[str, str]
    auth: dict[str, Any]
    address: str
    time: str
    issued: int
    url: str


class Socket:
    """One client in one namespace.

    ``id`` is random and unguessable, distinct from the Engine.IO session id.
    Emits are plain calls: the frames are queued on the connection at once,
    in order, and the call returns without waiting.
    """

    __slots__ = (
        "_acks",
        "_auth",
        "_conn",
        "_data",
        "_early_rooms",
        "_handlers",
        "_handshake",
        "connected",
        "id",
        "namespace",
    )

    def __init__(self, namespace: Namespace, conn: Session, sid: str, auth: dict[str, Any]) -> None:
        self.id = sid
        self.namespace = namespace
        self._auth = auth
        self._handshake: Handshake | None = None
        self.connected = False
        # Idle sockets are most sockets: what most never use is made on first use.
        self._data: dict[str, Any] | None = None
        self._conn = conn
        # Rooms joined by middleware, before the socket is in the adapter; None once accepted.
        self._early_rooms: set[str] | None = set()
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        # Ack id -> what waits for the answer: a future (emit_with_ack) or a
        # callback (a broadcast with acks, whose one id all recipients share).
        self._acks: dict[int, asyncio.Future[Any] | Callable[[list[Any]], None]] | None = None

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.namespace.name}>"

    @property
    def data(self) -> dict[str, Any]:
        """A dict free for the application, like ``socket.data`` in Node."""
        if self._data is None:
            self._data = {}
        return self._data

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``: what carries the connection now (it may upgrade)."""
        return self._conn.transport.name

    @property
    def handshake(self) -> Handshake:
        """Headers, query, auth payload, address and time of the connection.

        Built on first use from the HTTP request websockets keeps anyway, so
        an idle socket does not pay for a copy of its headers.
        """
        if self._handshake is None:
            self._handshake = self._conn.handshake(self._auth)
        return self._handshake

    # -- handlers --------------------------------------------------------
    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> Any:
        """Add ``handler`` for ``event``; usable as ``@socket.on("event")``.

        The handler gets the event's arguments. If the client asked for an
        ack, the handler's return value answers it (a tuple answers with
        several arguments). Handlers add up, as listeners do in Node: all of
        them run, in order, and the first one registered answers the ack.
        ``"disconnect"`` handlers get the reason string; ``"disconnecting"``
        handlers run while the socket is still in its rooms (a coroutine
        handler's body runs later, once it has left them).
        """

        def register(fn: F) -> F:
            self._handlers[event] = (*self._handlers.get(event, ()), Handler(fn))
            return fn

        return register if handler is None else register(handler)

    # -- sending ---------------------------------------------------------
    def emit(self, event: str, *args: Any) -> None:
        """Send an event to this socket only."""
        _check_event(event)
        self._send(sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name))

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Send an event and wait for the client's ack.

        Returns ``None``, the single value, or a tuple when the client answers
        with several values. Raises :class:`AckTimeout` after ``timeout``
        seconds and :class:`Disconnected` if the socket goes away first.
        """
        _check_event(event)
        if not self.connected:
            raise Disconnected("socket is disconnected")
        ack_id = self.namespace._next_ack_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._acks is None:
            self._acks = {}
        self._acks[ack_id] = future
        self._send(sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name, ack_id))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise AckTimeout(f"no ack for {event!r} within {timeout}s") from None
        finally:
            if self._acks is not None:
                self._acks.pop(ack_id, None)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace except this socket."""
        return BroadcastOperator(self.namespace, frozenset(), frozenset((self.id,)))

    def to(self, *rooms: str) -> BroadcastOperator:
        """The sockets in ``rooms``, except this one (as ``socket.to()`` in Node)."""
        return BroadcastOperator(self.namespace, frozenset(rooms), frozenset((self.id,)))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Everyone but this socket and the sockets in ``rooms``."""
        return BroadcastOperator(self.namespace, frozenset(), frozenset((self.id, *rooms)))

    # -- rooms -----------------------------------------------------------
    @property
    def rooms(self) -> Set[str]:
        """The rooms this socket is in, its own id included (not yet in middleware)."""
        if self._early_rooms is not None:
            return frozenset(self._early_rooms)
        return frozenset(self.namespace.adapter.socket_rooms(self.id))

    def join(self, *rooms: str) -> None:
        """Join ``rooms``; in middleware, they are joined once the connection is accepted."""
        for room in rooms:
            if not isinstance(room, str):
                raise TypeError("room names are str")
        if self.connected:
            self.namespace.adapter.add_all(self.id, rooms)
        elif self._early_rooms is not None:  # in middleware: joined when accepted, as in Node
            self._early_rooms.update(rooms)

    def leave(self, room: str) -> None:
        """Leave ``room`` (leaving the room named by the socket's own id is allowed)."""
        if self._early_rooms:
            self._early_rooms.discard(room)
        self.namespace.adapter.delete(self.id, room)

    # -- disconnecting ---------------------------------------------------
    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace; ``close=True`` also closes the connection.

        The client gets ``DISCONNECT`` and its ``disconnect`` reason is
        "io server disconnect"; it does not reconnect by itself. A socket that
        already left does nothing, not even with ``close=True`` (as in Node).
        """
        if not self.connected:
            return
        if close:
            self._conn.kick()
        else:
            self._send(sio.Packet(sio.PacketType.DISCONNECT, None, self.namespace.name))
            self._conn.forget(self)
            self._onclose("server namespace disconnect")

    # -- called by the connection ----------------------------------------
    def _send(self, packet: sio.Packet) -> None:
        self._conn.send(sio.encode(packet))

    def _on_event(self, data: list[Any], ack_id: int | None) -> None:
        handlers = self._handlers.get(data[0])
        if handlers is None:
            return
        args = data[1:]
        for handler in handlers:
            self._run(handler, data[0], args, ack_id)
            ack_id = None  # the first handler answers the ack

    def _run(self, handler: Handler, event: str, args: list[Any], ack_id: int | None) -> None:
        args = handler.fit(args)
        if handler.is_async:
            self._conn.spawn(self._run_async(handler, event, args, ack_id))
            return
        try:
            result = handler.fn(*args)
        except Exception:
            logger.exception("handler for %r failed (socket %s)", event, self.id)
            return
        if ack_id is not None:
            self._ack(ack_id, result)

    async def _run_async(
        self, handler: Handler, event: str, args: list[Any], ack_id: int | None
    ) -> None:
        try:
            result = await handler.fn(*args)
        except Exception:
            logger.exception("handler for %r failed (socket %s)", event, self.id)
            return
        if ack_id is not None:
            self._ack(ack_id, result)

    def _ack(self, ack_id: int, result: Any) -> None:
        if not self.connected:
            return
        packet = sio.Packet(sio.PacketType.ACK, ack_args(result), self.namespace.name, ack_id)
        try:
            frames = sio.encode(packet)
        except TypeError:
            logger.exception("an ack value of socket %s is not JSON-serializable", self.id)
            return
        self._conn.send(frames)

    def _on_ack(self, ack_id: int, data: list[Any]) -> None:
        waiting = self._acks.pop(ack_id, None) if self._acks is not None else None
        if isinstance(waiting, asyncio.Future):
            if not waiting.done():
                waiting.set_result(ack_result(data))
        elif waiting is not None:
            waiting(data)

    def _expect_ack(self, ack_id: int, callback: Callable[[list[Any]], None]) -> None:
        """Call ``callback`` with the arguments of this socket's ack ``ack_id`` (a broadcast's)."""
        if self._acks is None:
            self._acks = {}
        self._acks[ack_id] = callback

    def _forget_ack(self, ack_id: int) -> None:
        if self._acks is not None:
            self._acks.pop(ack_id, None)

    def _call(self, event: str, *args: Any) -> None:
        """Run the lifecycle handlers ("disconnect", "disconnecting")."""
        for handler in self._handlers.get(event, ()):
            self._run(handler, event, list(args), None)

    def _onclose(self, reason: str) -> None:
        if not self.connected:
            return
        self._call("disconnecting", reason)
        self.connected = False
        self.namespace._remove(self)
        acks, self._acks = self._acks, None
        for waiting in (acks or {}).values():
            if isinstance(waiting, asyncio.Future) and not waiting.done():
                waiting.set_exception(Disconnected(reason))
        self._call("disconnect", reason)
        # Handlers usually close over their socket: drop them, so that the
        # socket and what it holds (auth, data) go now, not at the next
        # garbage collection. A socket that has left gets no more events.
        self._handlers = {}

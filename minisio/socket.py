"""Socket: one client's connection to one namespace, as the handlers see it."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Set
from dataclasses import dataclass
from threading import get_ident
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import sio
from .adapter import Flags, SessionAwareAdapter
from .broadcast import BroadcastOperator, FlaggedSocket, RoomNames, _check_event, room_names
from .errors import AckTimeout, Disconnected
from .handlers import EMITTED, Emitted, Handler, ack_args, ack_result, refuse_callback_parameter
from .recovery import RECOVERABLE_REASONS, KeptSession

if TYPE_CHECKING:
    from .engine import Session
    from .request import HttpRequest
    from .server import Namespace

__all__ = ["Handshake", "RecoverableSocket", "Socket", "recoverable_socket"]

logger = logging.getLogger("minisio")

_EVENT = sio.PacketType.EVENT
_RESERVED = sio.RESERVED_EVENTS
_NOBODY: frozenset[str] = frozenset()

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client sent when it connected (``socket.handshake`` in Node).

    ``headers`` has lower-case names; ``time`` is when the WebSocket opened,
    ``issued`` the same in milliseconds since the epoch; ``url`` is the
    request target, query included. ``secure``: the client came over TLS
    (minisio serves plain TCP: only a trusted proxy's ``X-Forwarded-Proto:
    https`` makes it True); ``xdomain``: the request had an ``Origin`` (Node's).
    """

    headers: dict[str, str]
    query: dict[str, str]
    auth: dict[str, Any]
    address: str
    time: str
    issued: int
    url: str
    secure: bool = False
    xdomain: bool = False


class Socket:
    """One client in one namespace.

    ``id`` is random and unguessable, distinct from the Engine.IO session id.
    Emits are plain calls: the frames are queued on the connection at once,
    in order, and the call returns without waiting.
    """

    __slots__ = (
        "_acks",
        "_any_out",
        "_auth",
        "_conn",
        "_data",
        "_early_rooms",
        "_handlers",
        "_handshake",
        "_inbound",
        "_thread",
        "connected",
        "id",
        "namespace",
    )

    #: Whether this socket is a disconnected one come back: same ``id``, rooms
    #: and ``data``, missed packets replayed (``socket.recovered`` in Node;
    #: see ``Server(connection_state_recovery=...)``).
    recovered: bool = False
    # The private session id sent in the CONNECT reply; None without recovery.
    _pid: str | None = None

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
        # Catch-all listeners and packet middleware for what the client sends,
        # and outgoing catch-all listeners: None until used, so that an event
        # pays one test each way.
        self._inbound: _Inbound | None = None
        self._any_out: list[Handler] | None = None
        # The thread the socket lives on (the server loop's): an emit or a room
        # change from any other thread is handed over to it. The server's own
        # int when it is the same, rather than one more int object per socket.
        thread = namespace.server._loop_thread
        self._thread = thread if thread == get_ident() else get_ident()
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

    @property
    def request(self) -> HttpRequest:
        """The HTTP request that opened the connection, read-only (Node's ``socket.request``).

        Method, url, path, query, headers (repeated ones kept), the peer's
        address and ``secure`` (see :class:`~minisio.HttpRequest`); a new view
        each time, built from the head the session keeps anyway.
        """
        return self._conn.http_request()

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
        handler's body runs later, once it has left them); ``"error"``
        handlers get the exception a packet middleware (:meth:`use`) raised.

        A handler whose last parameter is named ``callback``, ``cb``, ``ack``
        or ``fn`` is refused with ``TypeError``: that is Node's ack function,
        and here the return value answers the ack.
        """

        def register(fn: F) -> F:
            self._listen(event, Handler(fn))
            return fn

        return register if handler is None else register(handler)

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, handler: F) -> F: ...
    def once(self, event: str, handler: F | None = None) -> Any:
        """As :meth:`on`, for the next ``event`` only: the handler is removed before it runs."""

        def register(fn: F) -> F:
            self._listen(event, Handler(fn, once=True))
            return fn

        return register if handler is None else register(handler)

    def event(self, handler: F) -> F:
        """``@socket.event``: :meth:`on` for the event named as the function (python-socketio)."""
        return self.on(handler.__name__, handler)

    def off(self, event: str, handler: Callable[..., Any]) -> None:
        """Remove ``handler`` from ``event``'s handlers (the last one added, if twice; as Node)."""
        handlers = self._handlers.get(event, ())
        for i in range(len(handlers) - 1, -1, -1):
            if handlers[i].fn == handler:
                self._set_handlers(event, handlers[:i] + handlers[i + 1 :])
                return

    def remove_all_listeners(self, event: str | None = None) -> None:
        """Remove every handler of ``event``, or of every event (``disconnect`` included)."""
        if event is None:
            self._handlers = {}
        else:
            self._handlers.pop(event, None)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        """The handlers of ``event``, in the order they run (a copy)."""
        return [handler.fn for handler in self._handlers.get(event, ())]

    def _listen(self, event: str, handler: Handler) -> None:
        if not isinstance(event, str):
            raise TypeError("event name must be a str")
        refuse_callback_parameter(handler, event)
        self._handlers[event] = (*self._handlers.get(event, ()), handler)

    def _drop(self, event: str, handler: Handler) -> None:
        """Remove a ``once`` handler before it runs."""
        self._set_handlers(
            event, tuple(h for h in self._handlers.get(event, ()) if h is not handler)
        )

    def _set_handlers(self, event: str, handlers: tuple[Handler, ...]) -> None:
        if handlers:
            self._handlers[event] = handlers
        else:
            self._handlers.pop(event, None)

    # -- catch-all listeners ---------------------------------------------
    def on_any(self, listener: F) -> F:
        """Call ``listener(event, *args)`` for every event the client sends (``onAny``).

        Plain or coroutine; usable as a decorator. It runs before the packet
        middleware (as in Node), so it also sees events a middleware drops;
        binary arguments arrive as ``bytes``. Its return value answers nothing.
        """
        inbound = self._inbound_hooks()
        inbound.any = [*inbound.any, Handler(listener)]
        return listener

    def prepend_any(self, listener: F) -> F:
        """As :meth:`on_any`, run before the catch-all listeners already there."""
        inbound = self._inbound_hooks()
        inbound.any = [Handler(listener), *inbound.any]
        return listener

    def off_any(self, listener: Callable[..., Any] | None = None) -> None:
        """Remove ``listener`` from the catch-all listeners, or all of them."""
        if self._inbound is not None:
            self._inbound.any = _without(self._inbound.any, listener) or []

    def listeners_any(self) -> list[Callable[..., Any]]:
        """The catch-all listeners, in order (a copy)."""
        return [handler.fn for handler in self._inbound.any] if self._inbound else []

    def on_any_outgoing(self, listener: F) -> F:
        """Call ``listener(event, *args)`` for every event sent to this client (``onAnyOutgoing``).

        Emits to this socket and broadcasts that reach it alike, before the
        frames are written; acks are not included (as in Node). A socket
        without such listeners costs a broadcast nothing.
        """
        self._watch_outgoing([*(self._any_out or ()), Handler(listener)])
        return listener

    def prepend_any_outgoing(self, listener: F) -> F:
        """As :meth:`on_any_outgoing`, run before the ones already there."""
        self._watch_outgoing([Handler(listener), *(self._any_out or ())])
        return listener

    def off_any_outgoing(self, listener: Callable[..., Any] | None = None) -> None:
        """Remove ``listener`` from the outgoing catch-all listeners, or all of them."""
        self._watch_outgoing(_without(self._any_out, listener))

    def listeners_any_outgoing(self) -> list[Callable[..., Any]]:
        """The outgoing catch-all listeners, in order (a copy)."""
        return [handler.fn for handler in self._any_out or ()]

    def _watch_outgoing(self, listeners: list[Handler] | None) -> None:
        # The namespace keeps the sockets that have some, so that a broadcast
        # asks one question, not one per recipient.
        self._any_out = listeners or None
        if self._any_out is not None and self.connected:  # else: when accepted (Namespace._add)
            self.namespace._outgoing.add(self)
        else:
            self.namespace._outgoing.discard(self)

    # -- packet middleware -----------------------------------------------
    def use(self, middleware: F) -> F:
        """Run ``middleware(event, args)`` on every event from the client, before its handlers.

        Plain or coroutine, run in the order added; ``args`` is the list the
        handlers will get, which a middleware may change in place. Raising
        drops the packet and passes the exception to the socket's ``"error"``
        handlers (Node's ``next(err)``); the connection stays open.
        """
        handler = Handler(middleware)
        if handler.min_args > 2 or (handler.max_args is not None and handler.max_args < 2):
            raise TypeError("packet middleware is called as fn(event, args)")
        if handler.last_param == "next":
            raise TypeError(
                "packet middleware is called as fn(event, args), with no next(): "
                "return to let the packet through, raise to drop it"
            )
        inbound = self._inbound_hooks()
        inbound.uses = [*inbound.uses, handler]
        inbound.uses_async = inbound.uses_async or handler.is_async
        return middleware

    def _inbound_hooks(self) -> _Inbound:
        if self._inbound is None:
            self._inbound = _Inbound()
        return self._inbound

    def _elsewhere(self, method: Callable[..., Any], *args: Any) -> bool:
        """From a thread other than the server loop's: hand the call over, True."""
        if self._thread == get_ident():
            return False
        loop = self.namespace.server._loop
        if loop is not None:
            loop.call_soon_threadsafe(method, *args)
            return True
        return False

    # -- sending ---------------------------------------------------------
    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> Emitted:
        """Send an event to this socket only.

        ``callback`` asks the client for an ack and is called with the ack's
        arguments when it comes (plain or coroutine; never, if the client does
        not answer). ``await socket.emit_with_ack(...)`` is the same, awaited.
        From another thread, the emit is handed to the server's loop.
        """
        # The common case (a plain emit on the loop's thread) takes the first
        # branch: one test for the name, one for the thread, no extra call.
        if (
            event.__class__ is str
            and event not in _RESERVED
            and callback is None
            and self._any_out is None
            and self._thread == get_ident()
        ):
            packet = sio.Packet(_EVENT, [event, *args], self.namespace.name)
            self._conn.send(sio.encode(packet))
            return EMITTED
        _check_event(event)
        if self._thread != get_ident() and self.namespace.server._loop is not None:
            emit = functools.partial(self.emit, event, *args, callback=callback)
            self.namespace.server._loop.call_soon_threadsafe(emit)
            return EMITTED
        packet = sio.Packet(_EVENT, [event, *args], self.namespace.name)
        if callback is not None:
            if not self.connected:
                return EMITTED
            answer = Handler(callback)
            packet.id = self.namespace._next_ack_id()
            self._expect_ack(packet.id, lambda data: self._run(answer, event, data, None))
        if self._any_out is not None:
            self._sent(packet.data)
        self._send(packet)
        return EMITTED

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Emitted:
        """Emit the ``message`` event (``socket.send()`` in Node and python-socketio)."""
        return self.emit("message", *args, callback=callback)

    def timeout(self, seconds: float) -> None:
        """Not here: ``await socket.emit_with_ack(event, *args, timeout=seconds)`` is the one way.

        Raises ``TypeError`` saying so, for Node's ``socket.timeout(ms).emitWithAck()``.
        """
        raise TypeError(
            "a single socket's ack timeout is a keyword: "
            f"await socket.emit_with_ack(event, *args, timeout={seconds!r}) (in seconds)"
        )

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
        packet = sio.Packet(sio.PacketType.EVENT, [event, *args], self.namespace.name, ack_id)
        if self._any_out is not None:
            self._sent(packet.data)
        self._send(packet)
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

    def to(self, *rooms: RoomNames) -> BroadcastOperator:
        """The sockets in ``rooms``, except this one (as ``socket.to()`` in Node)."""
        return BroadcastOperator(self.namespace, room_names(rooms), frozenset((self.id,)))

    in_ = to

    def except_(self, *rooms: RoomNames) -> BroadcastOperator:
        """Everyone but this socket and the sockets in ``rooms``."""
        return BroadcastOperator(self.namespace, frozenset(), room_names(rooms) | {self.id})

    @property
    def volatile(self) -> FlaggedSocket:
        """``socket.volatile.emit(...)``: dropped if this client is not ready for it
        (see :attr:`BroadcastOperator.volatile`); also ``.broadcast``, ``.to()``."""
        return FlaggedSocket(self, Flags(volatile=True))

    def compress(self, compress: bool) -> FlaggedSocket:
        """``socket.compress(False).emit(...)``: see :meth:`BroadcastOperator.compress`."""
        return FlaggedSocket(self, Flags(compress=bool(compress)))

    @property
    def local(self) -> BroadcastOperator:
        """Everyone in the namespace on this node except this socket (Node's ``socket.local``)."""
        return BroadcastOperator(
            self.namespace, frozenset(), frozenset((self.id,)), flags=Flags(local=True)
        )

    # -- rooms -----------------------------------------------------------
    @property
    def rooms(self) -> Set[str]:
        """The rooms this socket is in, its own id included (not yet in middleware)."""
        if self._early_rooms is not None:
            return frozenset(self._early_rooms)
        return frozenset(self.namespace.adapter.socket_rooms(self.id))

    def join(self, *rooms: RoomNames) -> None:
        """Join ``rooms`` (names, or lists of names); in middleware, they are joined
        once the connection is accepted."""
        if self._elsewhere(self.join, *rooms):
            return
        names = room_names(rooms)
        if self.connected:
            admin = self.namespace.server._admin
            if admin is not None:  # the admin UI is told of rooms joined (instrument())
                admin.joining(self, names)
            self.namespace.adapter.add_all(self.id, names)
        elif self._early_rooms is not None:  # in middleware: joined when accepted, as in Node
            self._early_rooms.update(names)

    def leave(self, room: str) -> None:
        """Leave ``room`` (leaving the room named by the socket's own id is allowed)."""
        if self._elsewhere(self.leave, room):
            return
        if self._early_rooms:
            self._early_rooms.discard(room)
        admin = self.namespace.server._admin
        if admin is not None and self.connected:
            admin.leaving(self, room)
        self.namespace.adapter.delete(self.id, room)

    # -- disconnecting ---------------------------------------------------
    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace; ``close=True`` also closes the connection.

        The client gets ``DISCONNECT`` and its ``disconnect`` reason is
        "io server disconnect"; it does not reconnect by itself. A socket that
        already left does nothing, not even with ``close=True`` (as in Node).
        From another thread, the call is handed to the server's loop.
        """
        if self._elsewhere(self.disconnect, close):
            return
        if not self.connected:
            return
        if close:
            self._conn.kick()
        else:
            self._send(sio.Packet(sio.PacketType.DISCONNECT, None, self.namespace.name))
            self._conn.forget(self)
            self._onclose("server namespace disconnect")

    # -- called by the connection ----------------------------------------
    def _not_accepted(self, refused: bool) -> None:
        """The connection was refused by middleware, or its client left first."""

    def _replay(self) -> None:
        """Accepted: write what a recovered socket missed (see RecoverableSocket)."""

    def _send(self, packet: sio.Packet) -> None:
        self._conn.send(sio.encode(packet))

    def _on_event(self, data: list[Any], ack_id: int | None) -> None:
        # As Node's onevent() and dispatch(): catch-all listeners, then the
        # packet middleware, then the handlers.
        if self._inbound is not None:
            self._on_event_hooked(self._inbound, data, ack_id)
            return
        # _dispatch(), inlined: this runs for every event a client sends.
        event = data[0]
        handlers = self._handlers.get(event)
        if handlers is None or event == "error":
            return  # "error" handlers get middleware errors, not what a client names so
        args = data[1:]
        for handler in handlers:
            if handler.once:
                self._drop(event, handler)
            self._run(handler, event, args, ack_id)
            ack_id = None  # the first handler answers the ack

    def _dispatch(
        self, handlers: tuple[Handler, ...], event: str, args: list[Any], ack_id: int | None
    ) -> None:
        if event == "error":
            return  # "error" handlers get middleware errors, not what a client names so
        for handler in handlers:
            if handler.once:
                self._drop(event, handler)
            self._run(handler, event, args, ack_id)
            ack_id = None  # the first handler answers the ack

    def _on_event_hooked(self, inbound: _Inbound, data: list[Any], ack_id: int | None) -> None:
        """An event for a socket with catch-all listeners or packet middleware."""
        if inbound.any:
            self._notify(inbound.any, data)
        if inbound.uses:
            self._filter(inbound, data[0], data[1:], ack_id)
            return
        handlers = self._handlers.get(data[0])
        if handlers is not None:
            self._dispatch(handlers, data[0], data[1:], ack_id)

    def _filter(self, inbound: _Inbound, event: str, args: list[Any], ack_id: int | None) -> None:
        """Run the packet middleware, then the handlers unless one raised."""
        if inbound.uses_async:
            self._conn.spawn(self._filter_async(inbound.uses, event, args, ack_id))
            return
        try:
            for middleware in inbound.uses:
                middleware.fn(event, args)
        except Exception as exc:
            self._refused(event, exc)
            return
        handlers = self._handlers.get(event)
        if handlers is not None:
            self._dispatch(handlers, event, args, ack_id)

    async def _filter_async(
        self, uses: list[Handler], event: str, args: list[Any], ack_id: int | None
    ) -> None:
        try:
            for middleware in uses:
                result = middleware.fn(event, args)
                if middleware.is_async:
                    await result
        except Exception as exc:
            self._refused(event, exc)
            return
        handlers = self._handlers.get(event)
        if handlers is not None and self.connected:  # as Node: not after a disconnect
            self._dispatch(handlers, event, args, ack_id)

    def _refused(self, event: str, exc: Exception) -> None:
        if "error" in self._handlers:
            self._call("error", exc)
        else:
            logger.warning(
                "event %r of socket %s dropped by its middleware (no 'error' handler)",
                event,
                self.id,
                exc_info=exc,
            )

    def _notify(self, listeners: list[Handler], data: list[Any]) -> None:
        """Call catch-all listeners with ``event, *args``; they answer no ack."""
        for listener in listeners:
            self._run(listener, data[0], data, None)

    def _sent(self, data: list[Any]) -> None:
        """An event is about to be written to this socket: tell the outgoing listeners."""
        if self._any_out is not None:
            self._notify(self._any_out, data)

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
        """Run the lifecycle handlers ("disconnect", "disconnecting", "error")."""
        for handler in self._handlers.get(event, ()):
            if handler.once:
                self._drop(event, handler)
            self._run(handler, event, list(args), None)

    def _onclose(self, reason: str) -> None:
        if not self.connected:
            return
        self._call("disconnecting", reason)
        self.connected = False
        self.namespace._remove(self)
        self.namespace._outgoing.discard(self)
        acks, self._acks = self._acks, None
        for waiting in (acks or {}).values():
            if isinstance(waiting, asyncio.Future) and not waiting.done():
                waiting.set_exception(Disconnected(reason))
        self._call("disconnect", reason)
        # Handlers usually close over their socket: drop them, so that the
        # socket and what it holds (auth, data) go now, not at the next
        # garbage collection. A socket that has left gets no more events.
        self._handlers = {}
        self._inbound = self._any_out = None


class _Inbound:
    """A socket's catch-all listeners and packet middleware, made on first use.

    Each list is replaced, never changed in place, so that one running
    while a listener is added or removed finishes as it started.
    """

    __slots__ = ("any", "uses", "uses_async")

    def __init__(self) -> None:
        self.any: list[Handler] = []
        self.uses: list[Handler] = []
        self.uses_async = False


class RecoverableSocket(Socket):
    """A socket of a namespace whose adapter keeps sessions (connection state recovery).

    It has a private session id, sent in the CONNECT reply; its emits go
    through the adapter, as in Node, so that they get an offset and are kept
    for replay too; and when it disconnects for a reason that allows it, its
    id, rooms and ``data`` are kept for ``max_disconnection_duration``.
    """

    __slots__ = ("_missed", "_own", "_pid", "_resume_at", "_start", "recovered")

    def __init__(
        self,
        namespace: Namespace,
        conn: Session,
        sid: str,
        auth: dict[str, Any],
        pid: str,
        start: int,
        recovered: bool = False,
    ) -> None:
        super().__init__(namespace, conn, sid, auth)
        self._own = frozenset((sid,))  # its own room, as a route
        self._pid = pid
        self._start = start  # the log's last counter when this session began
        self.recovered = recovered
        # A recovered socket's missed frames, replayed right after the CONNECT
        # reply, and the log's last counter when they were gathered.
        self._missed: list[list[bytes]] | None = None
        self._resume_at = start

    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> Emitted:
        """As :meth:`Socket.emit`; without ``callback`` the event is kept for replay,
        also when emitted while the client is away."""
        if (
            event.__class__ is str
            and event not in _RESERVED
            and callback is None
            and self._early_rooms is None  # accepted (not in middleware)
            and self._thread == get_ident()
        ):
            packet = sio.Packet(_EVENT, [event, *args], self.namespace.name)
            adapter = self.namespace.adapter
            if not self.connected:
                # Away, or replaced by its recovered self: as socket.io, a
                # broadcast to its own room, kept and given to whoever has it.
                adapter.broadcast(packet, self._own, _NOBODY)
                return EMITTED
            # Connected: the adapter's broadcast to its own room, without the
            # lookup of who is in it (this socket alone).
            assert isinstance(adapter, SessionAwareAdapter)
            frames = adapter.keep(packet, self._own, _NOBODY)
            if self._any_out is not None:
                self._sent(packet.data)
            self._conn.send(frames)
            return EMITTED
        return super().emit(event, *args, callback=callback)

    def _replay(self) -> None:
        """Write the packets this socket missed, in order (after the CONNECT reply)."""
        missed, self._missed = self._missed or [], None
        adapter = self.namespace.adapter
        assert isinstance(adapter, SessionAwareAdapter)
        if adapter.last_counter() != self._resume_at:  # broadcasts while middleware ran
            later = adapter.missed_since(self._resume_at, self.rooms)
            if later is None:
                logger.warning(
                    "socket %s recovered without some packets: dropped meanwhile", self.id
                )
            else:
                missed.extend(later)
        conn = self._conn
        for frames in missed:
            conn.send(frames)

    def _not_accepted(self, refused: bool) -> None:
        """A recovered socket refused by middleware (its session ends: ``session_expired``),
        or whose client left while the middleware ran (its session is kept again)."""
        if not self.recovered:
            return
        pid = self._pid
        assert pid is not None
        rooms = frozenset((self.id, *(self._early_rooms or ())))
        kept = KeptSession(self.id, pid, rooms, self._data, self._start, time.monotonic())
        adapter = self.namespace.adapter
        assert isinstance(adapter, SessionAwareAdapter)
        if refused:
            self.namespace._session_expired(kept)
        else:
            adapter.persist_session(kept)

    def _onclose(self, reason: str) -> None:
        if not self.connected:
            return
        kept = None
        pid = self._pid
        if reason in RECOVERABLE_REASONS and pid is not None:
            rooms = frozenset(self.rooms)
            kept = KeptSession(self.id, pid, rooms, self._data, self._start, time.monotonic())
        super()._onclose(reason)
        if kept is not None:
            adapter = self.namespace.adapter
            assert isinstance(adapter, SessionAwareAdapter)
            adapter.persist_session(kept)


def recoverable_socket(namespace: Namespace, conn: Session, auth: dict[str, Any]) -> Socket:
    """The socket for a CONNECT to a namespace that recovers: a kept one if ``auth``
    has the ``pid`` (and ``offset``) of one, else a new one with a new pid."""
    from .engine import new_id

    adapter = namespace.adapter
    assert isinstance(adapter, SessionAwareAdapter)
    pid = auth.get("pid")
    if type(pid) is str:
        found = adapter.restore_session(pid, auth.get("offset"))
        if found is not None and found[0].id not in namespace.sockets:
            kept, missed = found
            socket = RecoverableSocket(
                namespace, conn, kept.id, auth, kept.pid, kept.start, recovered=True
            )
            socket._data = kept.data
            socket._early_rooms = set(kept.rooms)
            socket._early_rooms.discard(kept.id)
            socket._missed = missed
            socket._resume_at = adapter.last_counter()
            return socket
    return RecoverableSocket(namespace, conn, new_id(), auth, new_id(), adapter.last_counter())


def _without(
    listeners: list[Handler] | None, fn: Callable[..., Any] | None
) -> list[Handler] | None:
    """``listeners`` less the first one that calls ``fn`` (all of them when ``fn`` is None)."""
    if fn is None or not listeners:
        return None
    for i, handler in enumerate(listeners):
        if handler.fn == fn:
            return listeners[:i] + listeners[i + 1 :] or None
    return listeners

"""Class-based namespaces, for code written for python-socketio's ``Namespace``.

::

    class Chat(minisio.ClassNamespace):
        def on_connect(self, socket): ...
        def on_disconnect(self, socket, reason): ...
        def on_message(self, socket, text):
            return "got it"          # answers the client's ack

    io.register_namespace(Chat("/chat"))

It is sugar over the functions API: registering makes one ``connection``
handler that gives each new socket one handler per ``on_<event>`` method,
with the socket bound as the first argument. Signatures are read once, at
registration, as for every handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .handlers import Emitted, Handler, refuse_callback_parameter

if TYPE_CHECKING:
    from .broadcast import BroadcastOperator
    from .server import Namespace, Server
    from .socket import Socket

__all__ = ["ClassNamespace"]

# Methods that are not client events: the socket's own lifecycle.
_LIFECYCLE = {"on_connect", "on_disconnect", "on_disconnecting"}


class ClassNamespace:
    """Handlers of one namespace as methods: ``on_<event>(self, socket, *args)``.

    ``on_connect(socket)`` runs once the socket is accepted (as a
    ``connection`` handler: to refuse, raise :class:`~minisio.ConnectionRefused`
    in a middleware, ``io.of(name).use(...)``); ``on_disconnect(socket, reason)``
    when it leaves; ``on_disconnecting(socket, reason)`` while it is still in
    its rooms. Every other ``on_<event>`` method handles the client event
    ``<event>``, the name taken verbatim; its return value answers the ack.
    Plain or coroutine methods alike.
    """

    def __init__(self, namespace: str = "/") -> None:
        self.namespace = namespace
        self.server: Server | None = None  # set by Server.register_namespace

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.namespace}>"

    # -- the namespace, from the methods -----------------------------------
    @property
    def nsp(self) -> Namespace:
        """The :class:`~minisio.Namespace` served (once registered)."""
        if self.server is None:
            raise RuntimeError(f"{self!r} is not registered: io.register_namespace(...)")
        return self.server.of(self.namespace)

    def emit(self, event: str, *args: Any) -> Emitted:
        """Send an event to every socket of this namespace."""
        return self.nsp.emit(event, *args)

    def to(self, *rooms: str) -> BroadcastOperator:
        """The sockets of this namespace in ``rooms``."""
        return self.nsp.to(*rooms)

    # -- registration ------------------------------------------------------
    def _register(self, server: Server) -> Namespace:
        if self.server is not None:
            raise ValueError(f"{self!r} is already registered")
        nsp = server.of(self.namespace)
        events: list[tuple[str, Handler]] = []
        lifecycle: dict[str, Handler] = {}
        for attr in dir(type(self)):
            if not attr.startswith("on_") or not callable(getattr(type(self), attr)):
                continue
            method = getattr(self, attr)
            handler = Handler(method)
            if handler.max_args == 0:
                raise TypeError(f"{attr} is called with the socket first: {attr}(socket, ...)")
            if attr in _LIFECYCLE:
                # on_connect(socket); on_disconnect(socket, reason) and
                # on_disconnecting(socket, reason). python-socketio's
                # on_connect(sid, environ[, auth]) would fail at every connect.
                most = 1 if attr == "on_connect" else 2
                if handler.min_args > most:
                    called = "socket" if most == 1 else "socket, reason"
                    raise TypeError(
                        f"{attr} is called as {attr}({called}): the request is "
                        "socket.request, the auth socket.handshake.auth"
                    )
                lifecycle[attr] = handler
            else:
                refuse_callback_parameter(handler, attr[3:])
                events.append((attr[3:], handler))
        self.server = server
        connect = lifecycle.get("on_connect")

        def attach(socket: Socket) -> Any:
            for event, handler in events:
                socket._listen(event, handler.bind(socket))
            for attr, name in (
                ("on_disconnecting", "disconnecting"),
                ("on_disconnect", "disconnect"),
            ):
                if attr in lifecycle:
                    socket._listen(name, lifecycle[attr].bind(socket))
            if connect is not None:
                return connect.fn(socket)  # a coroutine is awaited as a connection handler's
            return None

        if connect is not None and connect.is_async:

            async def attach_async(socket: Socket) -> None:
                await attach(socket)

            nsp.on("connection", attach_async)
        else:
            nsp.on("connection", attach)
        return nsp

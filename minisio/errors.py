"""The exceptions minisio raises, split by whose fault it was.

::

    MinisioError
    ├── ProtocolError        the peer sent something the protocol forbids
    ├── ConnectionRefused    raised by middleware to refuse a namespace connection
    ├── AckTimeout           the peer did not answer an ack in time
    ├── Disconnected         the socket went away while we waited on it
    └── ClusterError         other nodes could not be asked, or did not all answer in time

Mistakes by the caller (a bad argument, an unserializable value) are the
standard ``TypeError`` and ``ValueError``: they are bugs to fix, not events to
handle.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckTimeout",
    "ClusterError",
    "ConnectionRefused",
    "Disconnected",
    "MinisioError",
    "ProtocolError",
]


class MinisioError(Exception):
    """Base class of every exception minisio raises on purpose."""


class ProtocolError(MinisioError):
    """The peer broke the Engine.IO or Socket.IO protocol.

    The codec raises only this. The message names the problem and never
    repeats the offending payload, so it is safe to log.
    """


class ConnectionRefused(MinisioError):
    """Refuse a namespace connection: raise it in a middleware (``use()``).

    The client receives ``CONNECT_ERROR`` with ``{"message": message}`` and,
    when ``data`` is given, ``"data": data`` as well (as ``err.data`` does in
    the Node server). A ``connection`` handler runs after the CONNECT reply
    went out, too late to refuse: there it is logged like any other error.
    """

    def __init__(self, message: str = "not authorized", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(MinisioError):
    """The peer did not acknowledge an event within the timeout.

    For a broadcast with acks, ``results`` holds the answers that came.
    """

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results if results is not None else []


class Disconnected(MinisioError):
    """The socket was disconnected before the awaited answer arrived."""


class ClusterError(MinisioError):
    """A call on every node did not complete: Redis unreachable, or a node silent.

    ``results`` holds what did arrive (for ``fetch_sockets``, the sockets
    found so far, this node's first).
    """

    def __init__(self, message: str, results: list[Any]) -> None:
        super().__init__(message)
        self.results = results

"""minisio: a small, fast Socket.IO server on websockets and orjson.

Engine.IO v4 and Socket.IO v5 over the WebSocket transport, written by hand;
served on a port of its own (``Server.serve``) or by an ASGI server (``ASGIApp``).
"""

from .asgi import ASGIApp
from .broadcast import BroadcastOperator
from .classns import ClassNamespace
from .errors import (
    AckTimeout,
    ClusterError,
    ConnectionRefused,
    Disconnected,
    MinisioError,
    ProtocolError,
)
from .recovery import KeptSession, Recovery
from .request import HttpRequest, RequestHeaders
from .server import Namespace, Server
from .socket import Handshake, Socket

#: The one place the version is written: pyproject.toml reads it from here.
__version__ = "0.2.0"

__all__ = [
    "ASGIApp",
    "AckTimeout",
    "BroadcastOperator",
    "ClassNamespace",
    "ClusterError",
    "ConnectionRefused",
    "Disconnected",
    "Handshake",
    "HttpRequest",
    "KeptSession",
    "MinisioError",
    "Namespace",
    "ProtocolError",
    "Recovery",
    "RequestHeaders",
    "Server",
    "Socket",
]

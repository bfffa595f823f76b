"""The HTTP long-polling transport ("Transports / HTTP long-polling").

The client holds one ``GET`` open at a time; the server answers it when it
has something to send (packets joined by ``\\x1e``, see :mod:`minisio.eio`),
so a GET waits at most until the next ping. The client sends with ``POST``,
answered ``ok``. Between two GETs the packets wait in a queue bounded by
``max_buffer``: a client that stops polling is cut once it passes that, or
at its ping timeout, whichever comes first.

This module only keeps the queue and decides; the HTTP exchange itself
(reading requests, writing responses) is :mod:`minisio.http`'s, which calls
:meth:`Polling.get` and :meth:`Polling.post` and is called back through the
small :class:`Exchange` interface.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from . import eio
from .errors import ProtocolError

if TYPE_CHECKING:
    from .engine import Session

__all__ = ["Exchange", "Polling"]

logger = logging.getLogger("minisio")

_CLOSE = b"1"
_NOOP = b"6"
_MESSAGE = b"4"


class Exchange(Protocol):
    """One HTTP request waiting for its answer."""

    def answer(self, body: bytes) -> None:
        """200 with ``body`` as the Engine.IO payload."""

    def refuse(self) -> None:
        """400 with an empty body, as the reference answers a request that overlaps another."""

    def drop(self) -> None:
        """Close the TCP connection without an answer."""


class Polling:
    """The polling transport of one session: its queue and its pending GET."""

    name = "polling"
    polling = True
    __slots__ = (
        "_close_owed",
        "_close_timer",
        "_flush_handle",
        "closing",
        "discarded",
        "paused",
        "pending",
        "posting",
        "queue",
        "queued",
        "session",
    )

    def __init__(self) -> None:
        self.session: Session | None = None
        self.queue: list[bytes] = []  # payload items, each one packet with its attachments
        self.queued = 0  # bytes in the queue
        self.pending: Exchange | None = None  # the GET held open
        self.posting: Exchange | None = None  # a POST whose body is still coming
        self.paused = False  # an upgrade is being probed: answer GETs at once
        self.closing = False  # the session ended: the next GET gets the close packet
        self.discarded = False  # the session moved to a WebSocket
        self._flush_handle: asyncio.Handle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._close_owed = False  # the close packet waits for the answer after this one

    # -- the transport interface of a session ------------------------------
    def push(self, item: bytes) -> None:
        """Queue one payload item; the pending GET, if any, is answered soon.

        "Soon" is the end of this turn of the event loop, so that the emits
        of one handler go out in one response.
        """
        if self.closing or self.discarded:
            return
        session = self.session
        assert session is not None
        self.queue.append(item)
        self.queued += len(item) + 1
        if self.queued > session.server.max_buffer:
            session._overflow()
        elif self.pending is not None and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def buffered(self) -> int:
        return self.queued

    def end(self, code: int, message: str) -> None:
        """The session ended: what is queued and the close packet go to the next GET.

        Not in one answer when Socket.IO packets are queued: socket.io-client
        acts on a payload's close packet at once, but on its Socket.IO packets
        a tick later (``Manager.ondecoded``), by when they are dropped: an ack
        rejected, a ``DISCONNECT`` seen as "transport close". They go first,
        the close packet alone to the GET after, as the reference server does
        (it drains its buffer before closing). A ping may share the answer.
        If no GET comes within ``close_timeout``, the transport is gone anyway.
        """
        if self.closing or self.discarded:
            return
        self.closing = True
        if any(item[:1] == _MESSAGE for item in self.queue):
            self._close_owed = True
        else:
            self.queue.append(_CLOSE)
        if self.pending is not None:
            self._flush()
        if self.session is not None:  # still waiting for a GET
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.session.server.close_timeout, self._gone)

    def abort(self) -> None:
        self.queue.clear()
        self.queued = 0
        for exchange in (self.pending, self.posting):
            if exchange is not None:
                exchange.drop()
        self.pending = self.posting = None
        self._gone()

    def pause(self) -> None:
        """An upgrade probe succeeded: release the pending GET and answer any new one at once."""
        self.paused = True
        if self.pending is not None:
            self._flush()

    def resume(self) -> None:
        """The upgrade was abandoned: hold GETs again."""
        self.paused = False

    def discard(self) -> list[str | bytes]:
        """The session moved to a WebSocket: give up the queue, as WebSocket items."""
        self.discarded = True
        items = eio.decode_payload(eio.encode_payload(self.queue).decode()) if self.queue else []
        self.queue.clear()
        self.queued = 0
        if self.pending is not None:  # a client that did not pause first
            exchange, self.pending = self.pending, None
            exchange.answer(_NOOP)
        return items

    # -- called by the HTTP side -------------------------------------------
    def get(self, exchange: Exchange) -> None:
        """A GET: answer it now if there is something to send, else hold it."""
        session = self.session
        assert session is not None
        if self.pending is not None:
            # One GET at a time: the reference closes the session, answers the
            # first GET with the close packet and this one with a bare 400.
            logger.info("closing %s: overlapping GET requests", session.sid)
            session.close("transport error")
            exchange.refuse()
            return
        self.pending = exchange
        if self.queue or self.paused or self.closing:
            self._flush()

    def begin_post(self, exchange: Exchange) -> bool:
        """A POST head arrived; False (and the session closed) if another one is under way."""
        session = self.session
        assert session is not None
        if self.posting is not None:
            logger.info("closing %s: overlapping POST requests", session.sid)
            session.close("transport error")
            exchange.refuse()
            return False
        self.posting = exchange
        return True

    def post(self, exchange: Exchange, body: bytes) -> None:
        """The whole body of a POST: hand its packets to the session, then answer ``ok``."""
        session = self.session
        assert session is not None
        if self.posting is exchange:
            self.posting = None
        try:
            items = eio.decode_payload(body.decode())
        except (UnicodeDecodeError, ProtocolError) as exc:
            logger.info("closing %s: %s", session.sid, _reason(exc))
            session.close("parse error")
            items = []
        for item in items:
            if session.closed:
                break
            session.receive(item)
        exchange.answer(b"ok")

    def lost(self, exchange: Exchange) -> None:
        """The TCP connection of a held GET or of an unfinished POST closed."""
        if exchange is self.pending:
            self.pending = None
        elif exchange is self.posting:
            self.posting = None
        else:
            return
        session = self.session
        # (After the upgrade this transport is the session's no more: the
        # reference has dropped its listeners.)
        if session is not None and not session.closed and not self.discarded:
            # "poll connection closed prematurely" in the reference server.
            logger.info("closing %s: a polling request was cut", session.sid)
            session.close("transport error")
        if self.closing:
            self._gone()

    # -- internals ---------------------------------------------------------
    def _flush(self) -> None:
        self._flush_handle = None
        exchange = self.pending
        if exchange is None:
            return
        if self.queue:
            body = eio.encode_payload(self.queue)
            self.queue = []
            self.queued = 0
        elif self.paused:
            body = _NOOP
        else:
            return
        self.pending = None
        # Settled before the answer: answering reads the next request pipelined
        # on that connection at once, maybe a GET of this session.
        if self._close_owed:  # what was queued went first; the close packet waits for a GET
            self._close_owed = False
            self.queue.append(_CLOSE)
        elif self.closing:
            self._gone()
        exchange.answer(body)

    def _gone(self) -> None:
        for handle in (self._flush_handle, self._close_timer):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._close_timer = None
        session, self.session = self.session, None
        if session is not None:
            session.transport_gone(self)


def payload_item(text: bytes, attachments: list[bytes]) -> bytes:
    """One packet and its attachments as they go in a payload (attachments in base64)."""
    if not attachments:
        return text
    return eio.encode_payload([text, *(eio.payload_item(binary=a) for a in attachments)])


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8 in a polling payload"
    return str(exc)

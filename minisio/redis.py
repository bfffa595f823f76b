"""The Redis adapter: many nodes as one server, wire-compatible with ``@socket.io/redis-adapter``.

Needs the ``redis`` extra (``pip install minisio[redis]``: redis-py's
asyncio client and msgpack); nothing else in minisio imports this module.
Use it as::

    io = minisio.Server(adapter=redis_adapter("redis://127.0.0.1:6379"))

Each namespace gets a :class:`RedisAdapter`, which does everything the
in-memory adapter does for the node's own sockets and also tells the other
nodes, over Redis pub/sub, in the format of the Node package (8.3, the
classic ``createAdapter``), so minisio and Node nodes can share one cluster:

* a broadcast is published, msgpack-encoded, as ``[uid, packet, opts]`` on
  ``<key>#<nsp>#`` (or ``<key>#<nsp>#<room>#`` for exactly one room); each
  node delivers it to its own sockets;
* the cluster calls (fetch sockets, make them join, leave or disconnect,
  server-side emits and their acks, the room list) are JSON requests on
  ``<key>-request#<nsp>#``, answered on ``<key>-response#<nsp>#``.

protocol.md, "The Redis adapter", shows the messages byte by byte. Nothing
read from Redis is executed: messages are msgpack or JSON, checked for the
shape they must have, and anything else is dropped and logged at a bounded
rate. Redis being down never stops local delivery: what would be published
meanwhile is dropped and counted (``RedisLink.dropped``), and the link
reconnects and subscribes again by itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Set
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import sio
from .adapter import Adapter, Flags
from .errors import ClusterError
from .socket import Handshake

if TYPE_CHECKING:
    from .server import Namespace
    from .socket import Socket

__all__ = ["Emitter", "RedisAdapter", "RedisLink", "RemoteSocket", "redis_adapter"]

logger = logging.getLogger("minisio.redis")

# RequestType of @socket.io/redis-adapter (lib/index.ts).
_SOCKETS, _ALL_ROOMS, _REMOTE_JOIN, _REMOTE_LEAVE, _REMOTE_DISCONNECT = 0, 1, 2, 3, 4
_REMOTE_FETCH, _SERVER_SIDE_EMIT = 5, 6
_BROADCAST, _BROADCAST_CLIENT_COUNT, _BROADCAST_ACK = 7, 8, 9
_UID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Messages waiting to be published while Redis is slow or down; past this they are dropped.
_MAX_OUTBOX = 10_000
# What redis-py's pubsub calls Redis's answers to SUBSCRIBE and PSUBSCRIBE.
_CONFIRMATIONS = frozenset({"subscribe", "psubscribe", b"subscribe", b"psubscribe"})
_LOG_EVERY = 10.0  # seconds between two log lines about bad or dropped messages


def uid6() -> str:
    """A node or request id as the Node adapter makes them (uid2(6): 6 characters)."""
    return "".join(_UID_CHARS[b % 64] for b in os.urandom(6))


def _jsonable(value: Any) -> Any:
    """What msgpack cannot pack, as orjson would write it (datetimes, dataclasses, ...)."""
    return orjson.loads(orjson.dumps(value))


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, default=_jsonable)  # type: ignore[no-any-return]


def _rooms(value: Any) -> set[str]:
    """Room names from the wire: strings (a Node node may send numbers)."""
    if not isinstance(value, list):
        raise ValueError("rooms is not a list")
    return {room if isinstance(room, str) else str(room) for room in value}


def redis_adapter(
    url: str = "redis://127.0.0.1:6379",
    *,
    key: str = "socket.io",
    requests_timeout: float = 5.0,
) -> Callable[[Namespace], RedisAdapter]:
    """An adapter factory for ``Server(adapter=...)``: every namespace on one Redis link.

    ``key`` prefixes every channel (the Node adapter's ``key`` option);
    ``requests_timeout`` bounds each cluster call, in seconds.
    """
    link = RedisLink(url, key=key, requests_timeout=requests_timeout)

    def make(nsp: Namespace) -> RedisAdapter:
        return RedisAdapter(nsp, link)

    return make


class _Limiter:
    """Log a kind of trouble at most once per ``_LOG_EVERY`` seconds, with a count."""

    def __init__(self) -> None:
        self.count = 0
        self._last = 0.0
        self._since = 0

    def __call__(self, message: str, *args: Any) -> None:
        self.count += 1
        self._since += 1
        now = time.monotonic()
        if now - self._last >= _LOG_EVERY:
            logger.warning(message + " (%d since the last report)", *args, self._since)
            self._last = now
            self._since = 0


class RedisLink:
    """One node's connections to Redis, shared by the adapters of its namespaces.

    A publisher task sends what the adapters hand to :meth:`publish`, in
    order and pipelined; a reader task holds the subscriptions and hands
    each message to the adapter of its namespace. Both survive Redis going
    away: they log it, wait, connect again and subscribe again.
    """

    def __init__(self, url: str, *, key: str, requests_timeout: float) -> None:
        self.url = url
        self.key = key
        self.requests_timeout = requests_timeout
        self.adapters: dict[str, RedisAdapter] = {}
        self.dropped = 0  # messages not published: Redis down or the outbox full
        self.client: aioredis.Redis | None = None
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._users = 0
        self._subscribed = asyncio.Event()
        self._pubsub: Any = None  # the reader's live subscription connection
        self._unconfirmed = 0  # (P)SUBSCRIBEs sent and not yet confirmed
        self._bad = _Limiter()
        self._lost = _Limiter()

    # -- lifecycle -----------------------------------------------------------
    async def start(self, adapter: RedisAdapter) -> None:
        """Serve ``adapter``'s namespace; the first one starts the tasks."""
        self.adapters[adapter.nsp.name] = adapter
        self._users += 1
        if self.client is None:
            self.client = aioredis.Redis.from_url(self.url, decode_responses=False)
            self._tasks = [
                asyncio.ensure_future(self._publisher()),
                asyncio.ensure_future(self._reader()),
            ]
        elif self._pubsub is not None:
            # Subscribe on the live connection: restarting the reader would
            # leave every namespace unsubscribed for a moment (messages lost).
            pubsub = self._pubsub
            self._unconfirmed += 1 + len(adapter.request_channels)
            self._subscribed.clear()
            try:
                await pubsub.psubscribe(adapter.channel + "*")
                await pubsub.subscribe(*adapter.request_channels)
            except (RedisError, OSError):
                pass  # the reader notices too, and subscribes to everything again
        try:
            async with asyncio.timeout(self.requests_timeout):
                await self._subscribed.wait()
        except TimeoutError:
            logger.warning("Redis at %s not reachable yet; serving locally meanwhile", self.url)

    async def stop(self, adapter: RedisAdapter) -> None:
        self.adapters.pop(adapter.nsp.name, None)
        self._users -= 1
        if self._users > 0 or self.client is None:
            return
        if self._outbox:  # what was emitted last still goes out, within a bound
            self._wake.set()
            with_timeout = asyncio.timeout(1.0)
            try:
                async with with_timeout:
                    while self._outbox:
                        await asyncio.sleep(0.005)
            except TimeoutError:
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        client, self.client = self.client, None
        await client.aclose()

    # -- publishing ------------------------------------------------------------
    def publish(self, channel: str, data: bytes) -> None:
        """Queue a message for Redis; never waits, never raises."""
        if len(self._outbox) >= _MAX_OUTBOX:
            self.dropped += 1
            self._lost("dropped a message for Redis: %d waiting already", len(self._outbox))
            return
        self._outbox.append((channel, data))
        self._wake.set()

    async def _publisher(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = list(self._outbox)
                self._outbox.clear()
                try:
                    assert self.client is not None
                    async with self.client.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                    backoff = 0.1
                except (RedisError, OSError) as exc:
                    self.dropped += len(batch)
                    self._lost("Redis unreachable, %d messages dropped: %s", len(batch), exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)

    async def numsub(self, channel: str) -> int:
        """How many clients subscribe to ``channel`` (PUBSUB NUMSUB), this node included."""
        assert self.client is not None
        result = await self.client.pubsub_numsub(channel)
        return int(result[0][1]) if result else 0

    # -- receiving ---------------------------------------------------------------
    async def _reader(self) -> None:
        backoff = 0.1
        lost = False
        while True:
            assert self.client is not None
            pubsub = self.client.pubsub()
            try:
                patterns = [a.channel + "*" for a in self.adapters.values()]
                channels = [c for a in self.adapters.values() for c in a.request_channels]
                # Subscribed once Redis confirmed every (P)SUBSCRIBE, not once they were sent.
                self._unconfirmed = len(patterns) + len(channels)
                if patterns:
                    await pubsub.psubscribe(*patterns)
                    await pubsub.subscribe(*channels)
                self._pubsub = pubsub
                if lost:
                    logger.warning("Redis at %s reachable again; subscribed again", self.url)
                lost = False
                backoff = 0.1
                if not self._unconfirmed:
                    self._subscribed.set()
                async for message in pubsub.listen():
                    if self._unconfirmed and message.get("type") in _CONFIRMATIONS:
                        self._unconfirmed -= 1
                        if not self._unconfirmed:
                            self._subscribed.set()
                    self._dispatch(message)
            except (RedisError, OSError) as exc:
                self._pubsub = None
                if not lost:
                    logger.warning("Redis at %s lost: %s; local delivery goes on", self.url, exc)
                lost = True
                self._subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in (b"pmessage", b"message", "pmessage", "message"):
            return  # subscribe confirmations
        channel = message["channel"]
        data = message["data"]
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        name = channel.decode("utf-8", "replace")
        for adapter in self.adapters.values():
            try:
                if name.startswith(adapter.channel):
                    adapter.on_broadcast(name, data)
                    return
                if name in adapter.request_channels:
                    adapter.on_request(name, data)
                    return
            except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
                self._bad(
                    "ignored a message on %s that does not parse: %s", name, type(exc).__name__
                )
                return
            except Exception:
                logger.exception("handling a Redis message on %s failed", name)
                return

    def bad(self, channel: str, why: str) -> None:
        self._bad("ignored a message on %s: %s", channel, why)


class _Pending:
    """A cluster request waiting for the other nodes' answers."""

    __slots__ = ("done", "expected", "kind", "results")

    def __init__(self, kind: int, expected: int) -> None:
        self.kind = kind
        self.expected = expected
        self.results: list[Any] = []
        self.done = asyncio.get_running_loop().create_future()

    def add(self, result: Any) -> None:
        self.results.append(result)
        if len(self.results) >= self.expected and not self.done.done():
            self.done.set_result(None)


class RedisAdapter(Adapter):
    """The adapter of one namespace on a node of a Redis cluster."""

    __slots__ = (
        "ack_requests",
        "channel",
        "link",
        "request_channel",
        "request_channels",
        "requests",
        "response_channel",
        "uid",
    )

    def __init__(self, nsp: Namespace, link: RedisLink) -> None:
        super().__init__(nsp)
        self.link = link
        self.uid = uid6()
        key, name = link.key, nsp.name
        self.channel = f"{key}#{name}#"
        self.request_channel = f"{key}-request#{name}#"
        self.response_channel = f"{key}-response#{name}#"
        # The Node adapter also listens on a response channel of its own.
        specific = f"{self.response_channel}{self.uid}#"
        self.request_channels = (self.request_channel, self.response_channel, specific)
        self.requests: dict[str, _Pending] = {}
        # Broadcasts with acks sent from here: request id -> (on_count, on_ack).
        self.ack_requests: dict[str, tuple[Callable[[int], None], Callable[[Any], None]]] = {}

    async def init(self) -> None:
        await self.link.start(self)

    async def close(self) -> None:
        for pending in self.requests.values():
            if not pending.done.done():
                pending.done.cancel()
        await self.link.stop(self)

    # -- broadcasts --------------------------------------------------------------
    def broadcast(
        self, packet: sio.Packet, rooms: Set[str], exclude: Set[str], flags: Flags | None = None
    ) -> None:
        """Publish to the other nodes (not with ``local``: Node's ``flags.local``), then
        deliver here."""
        if flags is not None and flags.local:
            super().broadcast(packet, rooms, exclude, flags)
            return
        wire = {"type": 2, "data": packet.data, "nsp": self.nsp.name}
        wire_flags = {} if flags is None else flags.wire()
        opts = {"rooms": list(rooms), "except": list(exclude), "flags": wire_flags}
        channel = self.channel
        if len(rooms) == 1:
            channel += next(iter(rooms)) + "#"
        self.link.publish(channel, _pack([self.uid, wire, opts]))
        super().broadcast(packet, rooms, exclude, flags)

    def on_broadcast(self, channel: str, data: bytes) -> None:
        """A broadcast published by another node (or an emitter)."""
        room = channel[len(self.channel) : -1]
        if room and room not in self.rooms:
            return  # a room with no member here: not even decoded
        message = msgpack.unpackb(data, raw=False)
        if not isinstance(message, list) or len(message) < 3:
            raise ValueError("not [uid, packet, opts]")
        uid, packet, opts = message[:3]
        if uid == self.uid:
            return
        if not isinstance(packet, dict) or not isinstance(opts, dict):
            raise ValueError("packet or opts is not a map")
        if packet.get("nsp", "/") != self.nsp.name:
            return
        args = packet.get("data")
        if packet.get("type") not in (2, 5) or not isinstance(args, list) or not args:
            raise ValueError("not an event")
        if not isinstance(args[0], str):
            raise ValueError("event name is not a string")
        rooms = _rooms(opts.get("rooms", []))
        exclude = _rooms(opts.get("except", []))
        local = sio.Packet(sio.PacketType.EVENT, args, self.nsp.name)
        super().broadcast(local, rooms, exclude, Flags.from_wire(opts.get("flags")))

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
        """Ask every node to broadcast and count; their counts and acks come back here."""
        if flags is not None and flags.local:
            return super().broadcast_with_ack(
                packet, rooms, exclude, timeout, on_count, on_ack, flags
            )
        request_id = uid6()
        wire = {"type": 2, "data": packet.data, "nsp": self.nsp.name}
        wire_flags = flags.wire() if flags is not None else {}
        opts = {**_opts(rooms, exclude), "flags": {**wire_flags, "timeout": round(timeout * 1000)}}
        request = {"uid": self.uid, "requestId": request_id, "type": _BROADCAST}
        self.link.publish(self.request_channel, _pack({**request, "packet": wire, "opts": opts}))
        self.ack_requests[request_id] = (on_count, on_ack)
        local_cleanup = super().broadcast_with_ack(
            packet, rooms, exclude, timeout, on_count, on_ack, flags
        )

        def cleanup() -> None:
            self.ack_requests.pop(request_id, None)
            local_cleanup()

        return cleanup

    def _on_broadcast_request(self, request: dict[str, Any]) -> None:
        """Another node's broadcast with acks: deliver here, answer the count and each ack."""
        request_id = request.get("requestId")
        packet, opts = request.get("packet"), request.get("opts")
        if not isinstance(request_id, str) or not isinstance(packet, dict):
            return self.link.bad(self.request_channel, "a broadcast request without a packet")
        if not isinstance(opts, dict):
            return self.link.bad(self.request_channel, "a broadcast request without opts")
        args = packet.get("data")
        if not isinstance(args, list) or not args or not isinstance(args[0], str):
            return self.link.bad(self.request_channel, "a broadcast request without an event")
        flags = opts.get("flags") if isinstance(opts.get("flags"), dict) else {}
        assert isinstance(flags, dict)
        wait = flags.get("timeout")
        seconds = wait / 1000 if isinstance(wait, int | float) and wait > 0 else None
        seconds = seconds or self.link.requests_timeout

        def on_count(clients: int) -> None:
            count = {"type": _BROADCAST_CLIENT_COUNT, "requestId": request_id}
            self._respond({**count, "clientCount": clients})

        def on_ack(value: Any) -> None:
            answer = {"type": _BROADCAST_ACK, "requestId": request_id, "packet": value}
            self.link.publish(self.response_channel, _pack(answer))

        local = sio.Packet(sio.PacketType.EVENT, args, self.nsp.name)
        rooms = _rooms(opts.get("rooms", []))
        exclude = _rooms(opts.get("except", []))
        cleanup = Adapter.broadcast_with_ack(
            self, local, rooms, exclude, seconds, on_count, on_ack, Flags.from_wire(flags)
        )
        asyncio.get_running_loop().call_later(seconds, cleanup)

    # -- operations on sockets of every node ---------------------------------------
    # With ``local`` (flags.local), the operations below stay on this node.
    def add_sockets(
        self, rooms: Set[str], exclude: Set[str], join: Iterable[str], flags: Flags | None = None
    ) -> None:
        join = list(join)
        super().add_sockets(rooms, exclude, join)
        if flags is None or not flags.local:
            self._request({"type": _REMOTE_JOIN, "opts": _opts(rooms, exclude), "rooms": join})

    def del_sockets(
        self, rooms: Set[str], exclude: Set[str], leave: Iterable[str], flags: Flags | None = None
    ) -> None:
        leave = list(leave)
        super().del_sockets(rooms, exclude, leave)
        if flags is None or not flags.local:
            self._request({"type": _REMOTE_LEAVE, "opts": _opts(rooms, exclude), "rooms": leave})

    def disconnect_sockets(
        self, rooms: Set[str], exclude: Set[str], close: bool, flags: Flags | None = None
    ) -> None:
        super().disconnect_sockets(rooms, exclude, close)
        if flags is None or not flags.local:
            request = {"type": _REMOTE_DISCONNECT, "opts": _opts(rooms, exclude), "close": close}
            self._request(request)

    async def fetch_sockets(
        self, rooms: Set[str], exclude: Set[str], flags: Flags | None = None
    ) -> list[Any]:
        """The sockets selected on every node: local sockets, then :class:`RemoteSocket` s.

        Raises :class:`~minisio.ClusterError` when Redis cannot be asked or
        some node does not answer within ``requests_timeout``; its
        ``results`` holds the sockets that did answer. With ``local``: this
        node's sockets only.
        """
        found: list[Any] = list(self.sockets(rooms, exclude))
        if flags is not None and flags.local:
            return found
        try:
            answers = await self._ask(_REMOTE_FETCH, {"opts": _opts(rooms, exclude)})
        except ClusterError as exc:
            found += [RemoteSocket(self, d) for answer in exc.results for d in answer]
            raise ClusterError(str(exc), found) from None
        return found + [RemoteSocket(self, d) for answer in answers for d in answer]

    async def server_count(self) -> int:
        """Nodes on this namespace's request channel (PUBSUB NUMSUB), this one included."""
        try:
            return max(1, await self.link.numsub(self.request_channel))
        except (RedisError, OSError) as exc:
            raise ClusterError(f"Redis unreachable: {exc}", []) from None

    def server_side_emit(self, data: list[Any]) -> None:
        self._request({"type": _SERVER_SIDE_EMIT, "data": data})

    async def server_side_emit_with_ack(self, data: list[Any]) -> list[Any]:
        return await self._ask(_SERVER_SIDE_EMIT, {"data": data})

    async def _ask(self, kind: int, fields: dict[str, Any]) -> list[Any]:
        """Send a request that every other node answers; their answers, in arrival order."""
        nodes = await self.server_count()
        if nodes <= 1:
            return []
        request_id = uid6()
        pending = self.requests[request_id] = _Pending(kind, nodes - 1)
        self._request({"type": kind, "requestId": request_id, **fields})
        try:
            async with asyncio.timeout(self.link.requests_timeout):
                await pending.done
        except TimeoutError:
            got = len(pending.results)
            message = f"timeout reached: only {got} responses received out of {nodes - 1}"
            raise ClusterError(message, pending.results) from None
        finally:
            self.requests.pop(request_id, None)
        return pending.results

    def _request(self, request: dict[str, Any]) -> None:
        self.link.publish(self.request_channel, orjson.dumps({"uid": self.uid, **request}))

    # -- requests from other nodes ------------------------------------------------
    def on_request(self, channel: str, data: bytes) -> None:
        request = orjson.loads(data) if data[:1] == b"{" else msgpack.unpackb(data, raw=False)
        if not isinstance(request, dict):
            raise ValueError("a request is a map")
        if channel != self.request_channel:
            self._on_response(request)
            return
        kind = request.get("type")
        mine = request.get("uid") == self.uid
        if kind in (_REMOTE_JOIN, _REMOTE_LEAVE, _REMOTE_DISCONNECT):
            if mine:
                return  # done here already, when it was sent
            opts = request.get("opts")
            if not isinstance(opts, dict):
                return self.link.bad(channel, "a room request without opts")
            rooms, exclude = _rooms(opts.get("rooms", [])), _rooms(opts.get("except", []))
            if kind == _REMOTE_DISCONNECT:
                Adapter.disconnect_sockets(self, rooms, exclude, bool(request.get("close")))
            else:
                names = _rooms(request.get("rooms", []))
                if kind == _REMOTE_JOIN:
                    Adapter.add_sockets(self, rooms, exclude, names)
                else:
                    Adapter.del_sockets(self, rooms, exclude, names)
        elif kind == _REMOTE_FETCH:
            if mine:
                return
            opts = request.get("opts")
            if not isinstance(opts, dict):
                return self.link.bad(channel, "a fetch without opts")
            rooms, exclude = _rooms(opts.get("rooms", [])), _rooms(opts.get("except", []))
            sockets = [_describe(socket) for socket in self.sockets(rooms, exclude)]
            self._respond({"requestId": request.get("requestId"), "sockets": sockets})
        elif kind == _ALL_ROOMS:
            if not mine:
                self._respond({"requestId": request.get("requestId"), "rooms": list(self.rooms)})
        elif kind == _SERVER_SIDE_EMIT and not mine:
            self._on_server_side_emit(request)
        elif kind == _BROADCAST and request.get("requestId") not in self.ack_requests:
            self._on_broadcast_request(request)
        # SOCKETS (0) is no longer sent by 8.x.

    def _on_server_side_emit(self, request: dict[str, Any]) -> None:
        data = request.get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return self.link.bad(self.request_channel, "a server-side emit without an event")
        request_id = request.get("requestId")
        reply: Callable[[Any], None] | None = None
        if isinstance(request_id, str):

            def reply(value: Any) -> None:
                body = {"type": _SERVER_SIDE_EMIT, "requestId": request_id, "data": value}
                self._respond(body)

        self.nsp._on_server_side_emit(data[0], data[1:], reply)

    def _respond(self, response: dict[str, Any]) -> None:
        try:
            body = orjson.dumps(response)
        except TypeError:
            logger.exception("a cluster answer is not JSON-serializable")
            return
        self.link.publish(self.response_channel, body)

    def _on_response(self, response: dict[str, Any]) -> None:
        callbacks = self.ack_requests.get(response.get("requestId"))  # type: ignore[arg-type]
        if callbacks is not None:
            on_count, on_ack = callbacks
            kind = response.get("type")
            if kind == _BROADCAST_CLIENT_COUNT and isinstance(response.get("clientCount"), int):
                on_count(response["clientCount"])
            elif kind == _BROADCAST_ACK:
                on_ack(response.get("packet"))
            return
        pending = self.requests.get(response.get("requestId"))  # type: ignore[arg-type]
        if pending is None:
            return  # another node's request, or one that timed out
        if pending.kind == _REMOTE_FETCH:
            sockets = response.get("sockets")
            if isinstance(sockets, list):
                pending.add([s for s in sockets if isinstance(s, dict) and "id" in s])
        elif pending.kind == _SERVER_SIDE_EMIT:
            pending.add(response.get("data"))


def _opts(rooms: Set[str], exclude: Set[str]) -> dict[str, list[str]]:
    return {"rooms": list(rooms), "except": list(exclude)}


def _describe(socket: Socket) -> dict[str, Any]:
    """A local socket as a fetch answer describes it (the Node adapter's shape)."""
    hs = socket.handshake
    handshake = {
        "headers": hs.headers,
        "time": hs.time,
        "address": hs.address,
        "xdomain": "origin" in hs.headers,
        "secure": False,
        "issued": hs.issued,
        "url": hs.url,
        "query": hs.query,
        "auth": hs.auth,
    }
    data = socket.data
    try:
        orjson.dumps(data)
    except TypeError:
        logger.warning("socket.data of %s is not JSON-serializable: fetched as {}", socket.id)
        data = {}
    return {"id": socket.id, "handshake": handshake, "rooms": sorted(socket.rooms), "data": data}


class RemoteSocket:
    """A socket on another node, as :meth:`RedisAdapter.fetch_sockets` returns it.

    ``id``, ``handshake``, ``rooms`` and ``data`` are a copy taken when it
    was fetched; ``emit``, ``join``, ``leave`` and ``disconnect`` reach the
    socket wherever it lives, through its room.
    """

    __slots__ = ("_adapter", "data", "handshake", "id", "rooms")

    def __init__(self, adapter: RedisAdapter, details: dict[str, Any]) -> None:
        self._adapter = adapter
        self.id: str = str(details["id"])
        hs = details.get("handshake") if isinstance(details.get("handshake"), dict) else {}
        assert isinstance(hs, dict)
        self.handshake = Handshake(
            headers=dict(hs.get("headers") or {}),
            query=dict(hs.get("query") or {}),
            auth=dict(hs.get("auth") or {}),
            address=str(hs.get("address", "")),
            time=str(hs.get("time", "")),
            issued=int(hs.get("issued") or 0),
            url=str(hs.get("url", "")),
        )
        rooms = details.get("rooms")
        self.rooms = frozenset(str(r) for r in rooms) if isinstance(rooms, list) else frozenset()
        data = details.get("data")
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.id} {self._adapter.nsp.name}>"

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to this socket, on its node."""
        self._adapter.nsp.to(self.id).emit(event, *args)

    def join(self, *rooms: str) -> None:
        self._adapter.nsp.to(self.id).sockets_join(*rooms)

    def leave(self, room: str) -> None:
        self._adapter.nsp.to(self.id).sockets_leave(room)

    def disconnect(self, close: bool = False) -> None:
        self._adapter.nsp.to(self.id).disconnect_sockets(close)


class Emitter:
    """Emit to a cluster's clients from a process that is no Socket.IO server.

    A web view or a job worker publishes what a node's broadcast would, in
    the format of ``@socket.io/redis-emitter`` (uid ``"emitter"``), and the
    nodes deliver it to their own sockets, minisio and Node nodes alike::

        emitter = Emitter("redis://127.0.0.1:6379")
        await emitter.to("lobby").emit("notice", "maintenance at noon")
        await emitter.of("/admin").sockets_join("alerts")

    Like the operators, ``of``/``to``/``in_``/``except_`` return new emitters.
    """

    __slots__ = ("_client", "_owned", "exclude", "key", "nsp", "rooms")

    def __init__(
        self,
        client: aioredis.Redis | str = "redis://127.0.0.1:6379",
        *,
        key: str = "socket.io",
        nsp: str = "/",
        rooms: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        self._owned = isinstance(client, str)
        if isinstance(client, str):
            client = aioredis.Redis.from_url(client, decode_responses=False)
        self._client = client
        self.key, self.nsp, self.rooms, self.exclude = key, nsp, rooms, exclude

    def _with(self, **changes: Any) -> Emitter:
        fields = {"key": self.key, "nsp": self.nsp, "rooms": self.rooms, "exclude": self.exclude}
        emitter = Emitter(self._client, **{**fields, **changes})
        emitter._owned = False  # the first one closes the connection
        return emitter

    def of(self, nsp: str) -> Emitter:
        """The same Redis, another namespace (``"chat"`` means ``"/chat"``)."""
        return self._with(nsp=nsp if nsp.startswith("/") else "/" + nsp, rooms=frozenset())

    def to(self, *rooms: str) -> Emitter:
        """Also target these rooms (a socket id is a room)."""
        return self._with(rooms=self.rooms.union(rooms))

    in_ = to

    def except_(self, *rooms: str) -> Emitter:
        """Leave out the sockets in these rooms."""
        return self._with(exclude=self.exclude.union(rooms))

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to the selected sockets of every node."""
        if not isinstance(event, str) or event in sio.RESERVED_EVENTS:
            raise ValueError(f"{event!r} cannot be emitted")
        packet = {"type": 2, "data": [event, *args], "nsp": self.nsp}
        opts = {"rooms": list(self.rooms), "flags": {}, "except": list(self.exclude)}
        channel = f"{self.key}#{self.nsp}#"
        if len(self.rooms) == 1:
            channel += next(iter(self.rooms)) + "#"
        await self._client.publish(channel, _pack(["emitter", packet, opts]))

    async def sockets_join(self, *rooms: str) -> None:
        """Make the selected sockets of every node join ``rooms``."""
        await self._request({"type": _REMOTE_JOIN, "opts": self._opts(), "rooms": list(rooms)})

    async def sockets_leave(self, *rooms: str) -> None:
        """Make the selected sockets of every node leave ``rooms``."""
        await self._request({"type": _REMOTE_LEAVE, "opts": self._opts(), "rooms": list(rooms)})

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the selected sockets of every node."""
        await self._request({"type": _REMOTE_DISCONNECT, "opts": self._opts(), "close": close})

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Run every node's ``on(event)`` handlers of this namespace (no acks, as in Node)."""
        await self._request({"uid": "emitter", "type": _SERVER_SIDE_EMIT, "data": [event, *args]})

    def _opts(self) -> dict[str, list[str]]:
        return _opts(self.rooms, self.exclude)

    async def _request(self, request: dict[str, Any]) -> None:
        await self._client.publish(f"{self.key}-request#{self.nsp}#", orjson.dumps(request))

    async def aclose(self) -> None:
        """Close the Redis connection this emitter made (not one it was given)."""
        if self._owned:
            await self._client.aclose()

"""Listeners and packet middleware of a socket, over real sockets, frame by frame.

Catch-all listeners in and out (``on_any``, ``on_any_outgoing``), ``once``,
``off``, ``remove_all_listeners``, ``listeners``, ``@socket.event``, packet
middleware (``socket.use``) and its ``error`` handlers, an emit with a
``callback``, ``send()``, and class-based namespaces.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import minisio

from .conftest import SID, eventually, joined_clients, raw_client, running


def _placeholder(num: int) -> str:
    return f'{{"_placeholder":true,"num":{num}}}'


# -- catch-all listeners, incoming -----------------------------------------------


async def test_on_any_sees_every_event_binary_as_bytes_and_the_handler_still_acks() -> None:
    io = minisio.Server()
    seen: list[tuple[Any, ...]] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on_any
        def log(event: str, *args: Any) -> None:
            seen.append((event, *args))

        @socket.on("sum")
        def add(a: int, b: int) -> int:
            return a + b

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('421["sum",1,2]')
        await client.expect("431[3]")
        await client.send(f'451-["file",{{"name":"a","data":{_placeholder(0)}}}]')
        await client.send(b"\x00\xff")
        await client.send('42["nobody listens",null]')
        await eventually(lambda: len(seen) == 3)
        assert seen == [
            ("sum", 1, 2),
            ("file", {"name": "a", "data": b"\x00\xff"}),
            ("nobody listens", None),
        ]
        assert type(seen[1][1]["data"]) is bytes
        await client.expect_nothing()  # a catch-all listener answers no ack


async def test_prepend_any_off_any_and_listeners_any() -> None:
    io = minisio.Server()
    order: list[str] = []
    sockets: list[minisio.Socket] = []

    def first(event: str) -> None:
        order.append("first")

    def second(event: str) -> None:
        order.append("second")

    async def third(event: str, value: int) -> None:
        order.append(f"third {value}")

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on_any(second)
        socket.prepend_any(first)
        socket.on_any(third)
        sockets.append(socket)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        socket = sockets[0]
        assert socket.listeners_any() == [first, second, third]
        await client.send('42["x",1]')
        await eventually(lambda: len(order) == 3)
        assert order == ["first", "second", "third 1"]
        socket.off_any(first)
        assert socket.listeners_any() == [second, third]
        await client.send('42["x",2]')
        await eventually(lambda: len(order) == 5)
        assert order[3:] == ["second", "third 2"]
        socket.off_any()
        assert socket.listeners_any() == []
        await client.send('42["x",3]')
        await client.send('42["x",4]')
        await asyncio.sleep(0.05)
        assert len(order) == 5


# -- catch-all listeners, outgoing -----------------------------------------------


async def test_on_any_outgoing_sees_emits_and_broadcasts_but_not_acks() -> None:
    io = minisio.Server()
    sent: list[tuple[Any, ...]] = []

    async with running(io) as address, joined_clients(address, 2) as [(a, sid_a), (b, sid_b)]:
        watched = io.sockets[sid_a]
        watched.on_any_outgoing(lambda event, *args: sent.append((event, *args)))
        other = io.sockets[sid_b]

        @watched.on("ping me")
        def answer() -> str:
            return "pong"

        watched.emit("direct", 1)
        io.emit("everyone", b"\x01")
        other.broadcast.emit("from b", {"x": 2})
        io.to(sid_a).emit("to a")
        io.to(sid_b).emit("to b only")  # not to the watched socket
        watched.volatile.emit("volatile")
        await a.expect('42["direct",1]')
        await a.expect(f'451-["everyone",{_placeholder(0)}]')
        await a.expect(b"\x01")
        await a.expect('42["from b",{"x":2}]')
        await a.expect('42["to a"]')
        await a.expect('42["volatile"]')
        await a.send('421["ping me"]')
        await a.expect('431["pong"]')
        assert sent == [
            ("direct", 1),
            ("everyone", b"\x01"),
            ("from b", {"x": 2}),
            ("to a",),
            ("volatile",),
        ]
        await b.expect(f'451-["everyone",{_placeholder(0)}]')
        await b.expect(b"\x01")
        await b.expect('42["to b only"]')
        await b.expect_nothing()


async def test_outgoing_listeners_see_emits_with_acks_broadcasts_with_acks_and_callbacks() -> None:
    io = minisio.Server()
    sent: list[str] = []

    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        socket = io.sockets[sid]
        socket.on_any_outgoing(lambda event, *args: sent.append(event))
        asking = asyncio.ensure_future(socket.emit_with_ack("question", timeout=2))
        await client.expect('420["question"]')
        await client.send("430[42]")
        assert await asking == 42
        everyone = asyncio.ensure_future(io.timeout(2).emit_with_ack("poll"))
        await client.expect('421["poll"]')
        await client.send('431["yes"]')
        assert await everyone == ["yes"]
        socket.emit("tell", callback=lambda *args: None)
        await client.expect('422["tell"]')
        assert sent == ["question", "poll", "tell"]


async def test_outgoing_listener_order_off_and_the_namespace_index() -> None:
    io = minisio.Server()
    calls: list[str] = []

    def first(event: str) -> None:
        calls.append("first")

    def second(event: str) -> None:
        calls.append("second")

    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        socket = io.sockets[sid]
        assert not io.main._outgoing  # nothing registered: a broadcast asks nothing
        socket.on_any_outgoing(second)
        socket.prepend_any_outgoing(first)
        assert socket.listeners_any_outgoing() == [first, second]
        assert io.main._outgoing == {socket}
        io.emit("a")
        await client.expect('42["a"]')
        assert calls == ["first", "second"]
        socket.off_any_outgoing(first)
        io.emit("b")
        await client.expect('42["b"]')
        assert calls == ["first", "second", "second"]
        socket.off_any_outgoing()
        assert socket.listeners_any_outgoing() == []
        assert not io.main._outgoing
        io.emit("c")
        await client.expect('42["c"]')
        assert len(calls) == 3
        socket.on_any_outgoing(first)
        await client.send("41")
        await eventually(lambda: not socket.connected)
        assert not io.main._outgoing  # a socket that left is forgotten


async def test_outgoing_listener_added_in_middleware_sees_the_first_broadcast() -> None:
    io = minisio.Server()
    sent: list[str] = []

    @io.use
    def watch(socket: minisio.Socket) -> None:
        socket.on_any_outgoing(lambda event, *args: sent.append(event))

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        io.emit("hello")

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('42["hello"]')
        assert sent == ["hello"]


# -- once, off, remove_all_listeners, listeners, @socket.event -------------------


async def test_once_runs_for_the_next_event_only_and_answers_its_ack() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.once("claim")
        def claim(what: str) -> str:
            return f"yours: {what}"

        socket.once("disconnect", lambda reason: None)

    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        assert len(io.sockets[sid].listeners("claim")) == 1
        await client.send('421["claim","a"]')
        await client.expect('431["yours: a"]')
        assert io.sockets[sid].listeners("claim") == []
        await client.send('422["claim","b"]')
        await client.expect_nothing()


async def test_off_remove_all_listeners_and_listeners() -> None:
    io = minisio.Server()
    calls: list[str] = []
    sockets: list[minisio.Socket] = []

    def one(x: int) -> None:
        calls.append(f"one {x}")

    def two(x: int) -> None:
        calls.append(f"two {x}")

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("x", one)
        socket.on("x", two)
        socket.on("y", one)
        sockets.append(socket)

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        socket = sockets[0]
        assert socket.listeners("x") == [one, two]
        socket.off("x", one)
        socket.off("x", print)  # not there: nothing happens
        assert socket.listeners("x") == [two]
        await client.send('42["x",1]')
        await eventually(lambda: calls == ["two 1"])
        socket.remove_all_listeners("x")
        assert socket.listeners("x") == []
        assert socket.listeners("y") == [one]
        socket.remove_all_listeners()
        assert socket.listeners("y") == []
        await client.send('42["x",2]')
        await client.send('42["y",3]')
        await asyncio.sleep(0.05)
        assert calls == ["two 1"]


async def test_event_decorator_takes_the_name_of_the_function() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.event
        def shout(text: str) -> str:
            return text.upper()

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('421["shout","hey"]')
        await client.expect('431["HEY"]')


# -- packet middleware ----------------------------------------------------------


async def test_middleware_runs_in_order_and_may_change_the_arguments() -> None:
    io = minisio.Server()
    order: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.use
        def first(event: str, args: list[Any]) -> None:
            order.append(f"first {event}")
            args[0] = args[0] * 10

        @socket.use
        async def second(event: str, args: list[Any]) -> None:
            await asyncio.sleep(0)
            order.append("second")
            args.append("added")

        @socket.on("echo")
        def echo(*args: Any) -> tuple[Any, ...]:
            order.append("handler")
            return args

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('421["echo",4]')
        await client.expect('431[40,"added"]')
        assert order == ["first echo", "second", "handler"]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_middleware_that_raises_drops_the_packet_and_tells_the_error_handlers(
    asynchronous: bool,
) -> None:
    io = minisio.Server()
    errors: list[Exception] = []
    seen: list[str] = []
    ran: list[str] = []

    def check(event: str, args: list[Any]) -> None:
        if event == "admin":
            raise PermissionError("not for you")

    async def check_async(event: str, args: list[Any]) -> None:
        check(event, args)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on_any(lambda event, *args: seen.append(event))
        socket.use(check_async if asynchronous else check)
        socket.on("error", errors.append)
        socket.on("admin", lambda: ran.append("admin") or "secret")
        socket.on("hello", lambda: "hi")

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('421["admin"]')
        await client.expect_nothing()  # no event, no ack, no close
        assert ran == []
        assert [type(e) for e in errors] == [PermissionError]
        assert str(errors[0]) == "not for you"
        await client.send('422["hello"]')
        await client.expect('432["hi"]')  # the connection goes on
        assert seen == ["admin", "hello"]  # as in Node: catch-all listeners come first


async def test_dropped_packet_without_error_handler_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io = minisio.Server()

    def refuse(event: str, args: list[Any]) -> None:
        if event == "x":
            raise ValueError("nope")

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.use(refuse)
        socket.on("y", lambda: "still here")

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        with caplog.at_level(logging.WARNING, "minisio"):
            await client.send('42["x"]')
            await eventually(lambda: "dropped by its middleware" in caplog.text)
        await client.send('421["y"]')
        await client.expect('431["still here"]')


async def test_client_event_named_error_is_kept_from_error_handlers() -> None:
    io = minisio.Server()
    errors: list[Any] = []
    seen: list[str] = []

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("error", errors.append)
        socket.on_any(lambda event, *args: seen.append(event))

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.send('42["error","fake"]')
        await eventually(lambda: seen == ["error"])
        await asyncio.sleep(0.05)
        assert errors == []


def test_middleware_shapes_are_checked_when_added() -> None:
    io = minisio.Server()
    socket = minisio.Socket(io.main, None, "x" * 20, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no next"):
        socket.use(lambda packet, next: None)
    with pytest.raises(TypeError, match=r"fn\(event, args\)"):
        socket.use(lambda packet: None)
    socket.use(lambda event, args: None)
    socket.use(lambda *packet: None)


# -- a single socket's emit with a callback, send() ------------------------------


async def test_emit_with_callback_gets_the_ack_arguments_binary_included() -> None:
    io = minisio.Server()
    answers: list[tuple[Any, ...]] = []

    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        socket = io.sockets[sid]
        result = socket.emit("ask", 1, callback=lambda *args: answers.append(args))
        assert result is not None  # the Emitted marker, not a future
        await client.expect('420["ask",1]')

        async def later(value: bytes) -> None:
            answers.append(("async", value))

        socket.emit("ask", 2, callback=later)
        await client.expect('421["ask",2]')
        await client.send('430["a",{"b":1}]')
        await client.send(f"461-1[{_placeholder(0)}]")
        await client.send(b"\x07")
        await eventually(lambda: len(answers) == 2)
        assert answers == [("a", {"b": 1}), ("async", b"\x07")]


async def test_send_emits_message_on_a_socket_and_on_the_server() -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        io.sockets[sid].send("hi", 1)
        await client.expect('42["message","hi",1]')
        io.send("all")
        await client.expect('42["message","all"]')
        io.of("/").send()
        await client.expect('42["message"]')


async def test_socket_timeout_points_to_the_keyword() -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        with pytest.raises(TypeError, match=r"emit_with_ack\(event, \*args, timeout=5\)"):
            io.sockets[sid].timeout(5)


# -- class-based namespaces -------------------------------------------------------


class Chat(minisio.ClassNamespace):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.log: list[str] = []

    def on_connect(self, socket: minisio.Socket) -> None:
        self.log.append("connect")
        socket.emit("welcome", socket.id)

    def on_message(self, socket: minisio.Socket, text: str) -> str:
        self.log.append(f"message {text}")
        return f"got {text}"

    async def on_slow_sum(self, socket: minisio.Socket, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def on_shout(self, socket: minisio.Socket, text: str) -> None:
        self.emit("shouted", text.upper())

    def on_disconnect(self, socket: minisio.Socket, reason: str) -> None:
        self.log.append(f"disconnect {reason}")


async def test_class_namespace_methods_handle_events_and_answer_acks() -> None:
    io = minisio.Server()
    chat = Chat("/chat")
    assert io.register_namespace(chat) is io.of("/chat")
    assert chat.server is io
    async with running(io) as address, raw_client(address) as client:
        await client.send("40/chat,")
        sid = (await client.expect_match(rf'40/chat,\{{"sid":"({SID})"\}}')).group(1)
        await client.expect(f'42/chat,["welcome","{sid}"]')
        await client.send('42/chat,1["message","hi"]')
        await client.expect('43/chat,1["got hi"]')
        await client.send('42/chat,2["slow_sum",2,3]')
        await client.expect("43/chat,2[5]")
        await client.send('42/chat,["shout","hey"]')
        await client.expect('42/chat,["shouted","HEY"]')
        await client.send("41/chat,")
        await eventually(lambda: chat.log[-1:] == ["disconnect client namespace disconnect"])
        assert chat.log == ["connect", "message hi", "disconnect client namespace disconnect"]


async def test_class_namespace_async_on_connect_and_double_registration() -> None:
    io = minisio.Server()

    class Lobby(minisio.ClassNamespace):
        async def on_connect(self, socket: minisio.Socket) -> None:
            await asyncio.sleep(0)
            socket.join("lobby")
            socket.emit("in", sorted(socket.rooms - {socket.id}))

    lobby = Lobby()
    io.register_namespace(lobby)
    with pytest.raises(ValueError, match="already registered"):
        io.register_namespace(lobby)
    async with running(io) as address, raw_client(address) as client:
        await client.join()
        await client.expect('42["in",["lobby"]]')


def test_class_namespace_methods_must_take_the_socket() -> None:
    class Broken(minisio.ClassNamespace):
        def on_ping(self) -> None: ...

    with pytest.raises(TypeError, match="socket first"):
        minisio.Server().register_namespace(Broken("/b"))

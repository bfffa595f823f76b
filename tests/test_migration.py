"""Migration guards: python-socketio and Node idioms that used to go silently wrong.

Each test shows the old silent behaviour is gone: the idiom now works, or
fails at once with a message that says what to write instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import minisio

from .conftest import SID, raw_client, running

# -- a middleware returning False refuses --------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_middleware_returning_false_refuses(asynchronous: bool) -> None:
    io = minisio.Server()
    admin = io.of("/admin")
    accepted: list[str] = []

    def check(socket: minisio.Socket) -> bool:
        return socket.handshake.auth.get("token") == "secret"

    async def check_async(socket: minisio.Socket) -> bool:
        return check(socket)

    admin.use(check_async if asynchronous else check)
    admin.on("connection", lambda socket: accepted.append(socket.id))
    async with running(io) as address, raw_client(address) as client:
        await client.send("40/admin,")  # used to be accepted: False was ignored
        await client.expect('44/admin,{"message":"Connection rejected by server"}')
        await client.send('40/admin,{"token":"secret"}')
        await client.expect_match(rf'40/admin,\{{"sid":"{SID}"\}}')
        assert len(accepted) == 1


async def test_middleware_returning_none_or_true_accepts() -> None:
    io = minisio.Server()
    io.use(lambda socket: None)
    io.use(lambda socket: True)
    async with running(io) as address, raw_client(address) as client:
        await client.join()


# -- the built-in ConnectionRefusedError refuses with its message ------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("not authorized",), '{"message":"not authorized"}'),
        (("banned", {"until": 5}), '{"message":"banned","data":{"until":5}}'),
        ((), '{"message":"Connection rejected by server"}'),
    ],
)
async def test_builtin_connection_refused_error_refuses_with_its_message(
    args: tuple[Any, ...], expected: str
) -> None:
    io = minisio.Server()

    @io.use
    def check(socket: minisio.Socket) -> None:
        raise ConnectionRefusedError(*args)  # used to answer "Internal server error"

    async with running(io) as address, raw_client(address) as client:
        await client.send("40")
        await client.expect(f"44{expected}")


# -- a Node-style callback parameter is refused at registration --------------------


@pytest.mark.parametrize("name", ["callback", "cb", "ack", "fn"])
def test_a_handler_with_a_node_callback_parameter_is_refused(name: str) -> None:
    socket = minisio.Socket(minisio.Server().main, None, "x" * 20, {})  # type: ignore[arg-type]
    namespace: dict[str, Any] = {}
    exec(f"def handler(data, {name}): {name}(data)", namespace)
    handler = namespace["handler"]
    # It used to get None for the callback, and the ack never came.
    with pytest.raises(TypeError, match="return the answer instead"):
        socket.on("save", handler)
    with pytest.raises(TypeError, match="return the answer instead"):
        socket.once("save", handler)
    assert socket.listeners("save") == []


def test_other_parameter_names_and_star_args_are_fine() -> None:
    socket = minisio.Socket(minisio.Server().main, None, "x" * 20, {})  # type: ignore[arg-type]
    socket.on("a", lambda data, callback_url: None)
    socket.on("b", lambda *args: None)
    socket.on("c", lambda callback, data: None)  # only the last parameter is Node's place
    assert len(socket.listeners("a") + socket.listeners("b") + socket.listeners("c")) == 3


def test_a_class_namespace_method_with_a_callback_parameter_is_refused() -> None:
    class Chat(minisio.ClassNamespace):
        def on_save(self, socket: minisio.Socket, data: Any, callback: Any) -> None: ...

    with pytest.raises(TypeError, match="'save' takes a 'callback' parameter"):
        minisio.Server().register_namespace(Chat("/chat"))


# -- await io.emit(...) says emits are plain calls -------------------------------


async def test_awaiting_an_emit_says_emits_are_plain_calls() -> None:
    io = minisio.Server()
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join()
        socket = io.sockets[sid]
        # It used to be "object NoneType can't be used in 'await' expression".
        with pytest.raises(TypeError, match="emits are plain calls"):
            await io.emit("a", 1)
        with pytest.raises(TypeError, match="emits are plain calls"):
            await io.of("/").emit("b")
        with pytest.raises(TypeError, match="emits are plain calls"):
            await socket.emit("c")
        with pytest.raises(TypeError, match="emits are plain calls"):
            await socket.send("d")
        with pytest.raises(TypeError, match="emits are plain calls"):
            await io.to(sid).emit("e")
        # The events went out all the same, once each.
        await client.expect('42["a",1]')
        await client.expect('42["b"]')
        await client.expect('42["c"]')
        await client.expect('42["message","d"]')
        await client.expect('42["e"]')
        await client.expect_nothing()


# -- timeouts given in milliseconds warn ------------------------------------------


@pytest.mark.parametrize(
    "option",
    ["ping_interval", "ping_timeout", "connect_timeout", "handshake_timeout", "upgrade_timeout"],
)
def test_a_timeout_in_milliseconds_warns(option: str) -> None:
    with pytest.warns(UserWarning, match=rf"{option}=25000 is in seconds.*{option}=25\?"):
        minisio.Server(**{option: 25000})


def test_timeouts_in_seconds_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minisio.Server(ping_interval=25, ping_timeout=20, connect_timeout=1000)

"""Defects found by a hostile review of the issue 13 API, each with a failing test first."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest
from websockets.sync.client import connect as sync_connect

import minisio

from .conftest import UNIT, eventually, raw_client, running


async def test_a_child_whose_only_client_leaves_during_async_middleware_is_cleaned_up() -> None:
    io = minisio.Server(cleanup_empty_child_namespaces=True)
    parent = io.of(re.compile(r"^/dyn-\d+$"))
    entered = asyncio.Event()

    @parent.use
    async def slow(socket: minisio.Socket) -> None:
        entered.set()
        await asyncio.sleep(0.3 * UNIT)

    async with running(io) as address:
        async with raw_client(address) as client:
            await client.send("40/dyn-1,")
            await asyncio.wait_for(entered.wait(), 2 * UNIT)
            assert "/dyn-1" in io._namespaces
        # The client left before its middleware answered: nothing holds the child.
        await asyncio.sleep(0.5 * UNIT)
        await eventually(lambda: "/dyn-1" not in io._namespaces and not parent.children)


async def test_a_child_made_by_an_async_check_for_a_client_that_left_is_cleaned_up() -> None:
    io = minisio.Server(cleanup_empty_child_namespaces=True)
    entered = asyncio.Event()

    async def check(name: str, auth: dict) -> bool:
        entered.set()
        await asyncio.sleep(0.3 * UNIT)
        return True

    parent = io.of(check)
    async with running(io) as address:
        async with raw_client(address) as client:
            await client.send("40/late,")
            await asyncio.wait_for(entered.wait(), 2 * UNIT)
        await asyncio.sleep(0.5 * UNIT)
        await eventually(lambda: "/late" not in io._namespaces and not parent.children)


async def test_a_client_accepted_after_another_was_refused_is_in_the_registered_child() -> None:
    io = minisio.Server(cleanup_empty_child_namespaces=True)
    parent = io.of(re.compile(r"^/dyn-\d+$"))

    @parent.use
    async def gate(socket: minisio.Socket) -> None:
        if socket.handshake.auth.get("slow"):
            await asyncio.sleep(0.3 * UNIT)
        if socket.handshake.auth.get("bad"):
            raise minisio.ConnectionRefused("no")

    async with running(io) as address, raw_client(address) as slow, raw_client(address) as bad:
        await slow.send('40/dyn-1,{"slow":1}')
        await asyncio.sleep(0.05 * UNIT)
        await bad.send('40/dyn-1,{"bad":1}')
        await bad.expect('44/dyn-1,{"message":"no"}')
        await slow.expect_match(r'40/dyn-1,\{"sid":"(.+)"\}')
        # The socket is in the namespace the server routes to.
        io.of("/dyn-1").emit("hi")
        await slow.expect('42/dyn-1,["hi"]')


async def test_server_side_emit_from_another_thread_runs_on_the_loop() -> None:
    threads: list[int] = []

    class Recording(minisio.adapter.Adapter):
        __slots__ = ()

        def server_side_emit(self, data: list) -> None:
            threads.append(threading.get_ident())

    io = minisio.Server(adapter=Recording)
    async with running(io):
        loop_thread = threading.get_ident()
        await asyncio.to_thread(io.server_side_emit, "tick", 1)
        await asyncio.to_thread(io.of("/admin").server_side_emit, "tick", 2)
        await eventually(lambda: len(threads) == 2)
        assert threads == [loop_thread, loop_thread]


async def test_a_namespace_first_named_from_another_thread_starts_its_adapter_on_the_loop() -> None:
    started: list[tuple[str, int]] = []

    class Recording(minisio.adapter.Adapter):
        __slots__ = ()

        async def init(self) -> None:
            started.append((self.nsp.name, threading.get_ident()))

    io = minisio.Server(adapter=Recording)
    async with running(io) as address:
        loop_thread = threading.get_ident()
        # A worker thread's first word to a namespace: of() makes it, emit() is handed over.
        await asyncio.to_thread(lambda: io.of("/fresh").emit("hi"))
        await eventually(lambda: ("/fresh", loop_thread) in started)
        async with raw_client(address) as client:
            await client.join("/fresh")
            await asyncio.to_thread(lambda: io.of("/fresh").emit("again"))
            await client.expect('42/fresh,["again"]')


# -- a second hostile review ------------------------------------------------------------


def test_run_returns_after_close_while_a_plain_background_task_loops() -> None:
    # python-socketio's background thread: a plain function that never returns.
    # In asyncio.to_thread's executor it kept asyncio.run(), so io.run(), from
    # returning after io.close() (or Ctrl-C).
    io = minisio.Server()
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            io.emit("tick")
            time.sleep(0.02)

    @io.on("connection")
    def started(socket: minisio.Socket) -> None:
        io.start_background_task(ticker)

    runner = threading.Thread(target=io.run, args=("127.0.0.1", 0), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 2 * UNIT
        while io._listener is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        port = io._listener.sockets[0].getsockname()[1]
        with sync_connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket") as ws:
            assert ws.recv(timeout=2 * UNIT).startswith("0{")
            ws.send("40")
            assert ws.recv(timeout=2 * UNIT).startswith("40{")
            assert ws.recv(timeout=2 * UNIT) == '42["tick"]'
            io.close()
            runner.join(3 * UNIT)
            assert not runner.is_alive(), "io.run() did not return after io.close()"
    finally:
        stop.set()
        runner.join(5 * UNIT)


async def test_a_plain_background_task_reports_its_result_and_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io = minisio.Server()

    def fails() -> None:
        raise ValueError("boom")

    async with running(io):
        assert await io.start_background_task(lambda: threading.get_ident()) != (
            threading.get_ident()
        )
        with pytest.raises(ValueError, match="boom"):
            await io.start_background_task(fails)
    assert "background task failed" in caplog.text


async def test_withdrawn_connects_count_towards_max_namespaces_until_their_runs_end() -> None:
    # CONNECT then DISCONNECT before the reply: the middleware run goes on.
    # Each one still counts, so a loop of them cannot pile up runs and auths.
    io = minisio.Server(max_namespaces=4)
    running_now = most = 0

    @io.use
    async def slow_auth(socket: minisio.Socket) -> None:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        try:
            await asyncio.sleep(0.4 * UNIT)
        finally:
            running_now -= 1

    async with running(io) as address, raw_client(address) as client:
        auth = '{"token":"' + "x" * 1000 + '"}'
        for _ in range(4):
            await client.send("40" + auth)
            await client.send("41")
        await client.send("40" + auth)
        await client.expect('44{"message":"Too many namespaces"}')
        await asyncio.sleep(0.6 * UNIT)  # the four runs ended, unanswered
        await client.expect_nothing(0.05)
        await client.send("40" + auth)
        await client.expect_match(r'40\{"sid":"[\w-]{20}"\}', timeout=2 * UNIT)
        assert most == 4


@pytest.mark.parametrize("refuse_alice", [False, True])
async def test_a_connect_after_a_withdrawn_one_is_answered_for_its_own_auth(
    refuse_alice: bool,
) -> None:
    io = minisio.Server()
    users: list[str] = []

    @io.use
    async def auth(socket: minisio.Socket) -> None:
        user = socket.handshake.auth["user"]
        await asyncio.sleep((0.2 if user == "alice" else 0.4) * UNIT)
        if refuse_alice and user == "alice":
            raise minisio.ConnectionRefused("not alice")

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        users.append(socket.handshake.auth["user"])

    async with running(io) as address, raw_client(address) as client:
        await client.send('40{"user":"alice"}')
        await client.send("41")
        await asyncio.sleep(0.05 * UNIT)
        await client.send('40{"user":"bob"}')
        # Alice's run ends first, withdrawn: it answers nothing.
        await client.expect_match(r'40\{"sid":"[\w-]{20}"\}', timeout=2 * UNIT)
        await client.expect_nothing()
    assert users == ["bob"]


def test_a_class_namespace_with_python_socketios_on_connect_is_refused_at_registration() -> None:
    io = minisio.Server()

    class Chat(minisio.ClassNamespace):
        def on_connect(self, sid: object, environ: object) -> None:
            pass

    with pytest.raises(TypeError, match=r"on_connect\(socket\)"):
        io.register_namespace(Chat("/chat"))

    class Leaving(minisio.ClassNamespace):
        def on_disconnect(self, socket: object, reason: object, extra: object) -> None:
            pass

    with pytest.raises(TypeError, match=r"on_disconnect\(socket, reason\)"):
        io.register_namespace(Leaving("/leaving"))


async def test_socket_local_is_everyone_else_on_this_node() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("hi", lambda: socket.local.emit("hi"))
        socket.on("hush", lambda: socket.volatile.local.emit("hush"))

    async with running(io) as address, raw_client(address) as a, raw_client(address) as b:
        await a.join()
        await b.join()
        await a.send('42["hi"]')
        await b.expect('42["hi"]')
        await a.send('42["hush"]')
        await b.expect('42["hush"]')
        await a.expect_nothing()


async def test_awaiting_a_flagged_socket_emit_says_emits_are_plain_calls() -> None:
    io = minisio.Server()
    messages: list[str] = []

    @io.on("connection")
    async def joined(socket: minisio.Socket) -> None:
        for emit in (socket.emit, socket.volatile.emit, socket.compress(False).emit):
            try:
                await emit("x")
            except TypeError as exc:
                messages.append(str(exc))

    async with running(io) as address, raw_client(address) as client:
        await client.join()
        for _ in range(3):
            await client.expect('42["x"]')
        await eventually(lambda: len(messages) == 3)
    assert all("plain calls" in m for m in messages), messages

"""Defects found by a hostile review of the issue 13 API, each with a failing test first."""

from __future__ import annotations

import asyncio
import re
import threading

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

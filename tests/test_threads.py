"""Emitting from another thread (issue 13, item 7), and python-socketio's task helpers.

An emit or a room operation called from a thread other than the one
running the server's loop is handed to the loop, in call order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import minisio
from minisio.adapter import Adapter

from .conftest import UNIT, RawClient, joined_clients, running

N = 10_000


async def test_a_thread_emitting_10000_events_while_the_loop_serves_clients() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("sum", lambda a, b: a + b)

    async with running(io) as address, joined_clients(address, 3) as clients:
        _, (_, sid_b), (c, _) = clients

        def pump() -> None:
            for i in range(N):
                io.emit("n", i, f"payload {i} \u00e9\u20ac")
                if i % 1000 == 0:
                    io.to(sid_b).emit("b", i)  # another route, same order guarantees
            io.emit("done")

        async def read(client: RawClient) -> list[str | bytes]:
            got: list[str | bytes] = []
            while (frame := await client.recv(timeout=10)) != '42["done"]':
                if frame == "2":
                    await client.send("3")
                else:
                    got.append(frame)
            return got

        async def ask() -> int:
            # The loop keeps serving while the thread emits: c asks for acks all along.
            for k in range(50):
                await c.send(f'421["sum",{k},1]')
                await asyncio.sleep(0.002)
            return 50

        readers = [asyncio.ensure_future(read(client)) for client, _ in clients]
        thread = threading.Thread(target=pump)
        thread.start()
        asked = await ask()
        got_a, got_b, got_c = await asyncio.gather(*readers)
        thread.join(5 * UNIT)
        assert not thread.is_alive()

        expected = [f'42["n",{i},"payload {i} \u00e9\u20ac"]' for i in range(N)]
        assert got_a == expected
        with_b = [*expected]
        for i in range(N - N % 1000 if N % 1000 else N - 1000, -1, -1000):
            with_b.insert(i + 1, f'42["b",{i}]')
        assert got_b == with_b
        assert [f for f in got_c if not str(f).startswith("431[")] == expected
        while sum(str(f).startswith("431[") for f in got_c) < asked:  # acks after "done"
            got_c.append(await c.recv())
        assert [f for f in got_c if str(f).startswith("431[")] == [
            f"431[{k + 1}]" for k in range(asked)
        ]


async def test_socket_emits_and_room_operations_from_a_thread_keep_their_order() -> None:
    io = minisio.Server()
    async with running(io) as address, joined_clients(address, 2) as clients:
        (a, sid_a), (b, _) = clients

        def work() -> None:
            socket = io.sockets[sid_a]
            socket.emit("direct", 1)
            io.to(sid_a).sockets_join(["t"])  # joined before the next emit runs
            io.to("t").emit("room", 2)
            socket.volatile.emit("vol", 3)
            io.to("t").sockets_leave("t")
            io.to("t").emit("nobody", 4)
            io.except_(sid_a).emit("b only", 5)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(5 * UNIT)
        await a.expect('42["direct",1]')
        await a.expect('42["room",2]')
        await a.expect('42["vol",3]')
        await b.expect('42["b only",5]')
        await a.expect_nothing()


async def test_call_soon_threadsafe_and_run_coroutine_threadsafe() -> None:
    io = minisio.Server()
    with pytest.raises(RuntimeError, match="not serving"):
        io.call_soon_threadsafe(print)
    ran_on: list[int] = []
    async with running(io) as address, joined_clients(address, 1) as [(_, sid)]:
        loop_thread = threading.get_ident()
        result: list[object] = []

        def work() -> None:
            io.call_soon_threadsafe(lambda: ran_on.append(threading.get_ident()))
            future = io.run_coroutine_threadsafe(io.fetch_sockets())
            result.append([s.id for s in future.result(timeout=5 * UNIT)])

        thread = threading.Thread(target=work)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        assert ran_on == [loop_thread]
        assert result == [[sid]]
        io.call_soon_threadsafe(ran_on.append, 0)  # on the loop: run now
        assert ran_on == [loop_thread, 0]


async def test_start_background_task_and_sleep() -> None:
    io = minisio.Server()
    seen: list[str] = []

    async def ticker(name: str) -> str:
        await io.sleep(0.01)
        seen.append(name)
        return name

    def blocking(name: str) -> int:
        time.sleep(0.01)  # a sync library: runs in a thread, not on the loop
        seen.append(name)
        return threading.get_ident()

    async with running(io):
        task = io.start_background_task(ticker, "async")
        thread_task = io.start_background_task(blocking, "sync")
        assert await task == "async"
        assert await thread_task != threading.get_ident()
        assert sorted(seen) == ["async", "sync"]


def test_emit_before_serving_from_any_thread_is_a_no_op() -> None:
    io = minisio.Server()
    io.emit("nobody")  # no loop yet: nothing to hand it to, and no socket to reach
    thread = threading.Thread(target=io.emit, args=("nobody",))
    thread.start()
    thread.join()


async def test_a_sockets_own_join_leave_and_disconnect_from_a_thread_run_on_the_loop() -> None:
    seen: list[int] = []  # the threads that touched the room index

    class Watching(Adapter):
        def add_all(self, sid: str, rooms: Any) -> None:
            seen.append(threading.get_ident())
            super().add_all(sid, rooms)

    io = minisio.Server(adapter=Watching)
    async with running(io) as address, joined_clients(address, 1) as clients:
        ((a, sid_a),) = clients
        socket = io.sockets[sid_a]
        loop_thread = threading.get_ident()
        seen.clear()  # the joins of connecting

        def work() -> None:
            socket.join("t", ["u"])
            io.to("t").emit("in t", 1)
            socket.leave("t")
            io.to("t").emit("nobody", 2)
            io.to("u").emit("in u", 3)
            socket.disconnect()

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(5 * UNIT)
        await a.expect('42["in t",1]')
        await a.expect('42["in u",3]')
        await a.expect("41")
        assert seen == [loop_thread]  # the room index was only touched on the loop
        assert not io.sockets

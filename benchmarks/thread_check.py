"""What the other-thread check costs an emit (issue 13, item 7). Prints numbers; asserts nothing.

Times, on the server's loop with one WebSocket client connected:
the check alone (``server._loop_thread != get_ident() and server._loop is not None``),
``io.to(sid).emit(...)`` and ``socket.emit(...)`` as shipped, and the same emit with the
check taken out (the operator's emit body without its first three lines).

    .venv/bin/python benchmarks/thread_check.py
"""

from __future__ import annotations

import asyncio
import timeit
from threading import get_ident
from typing import Any

from websockets.asyncio.client import connect

import minisio
from minisio import sio
from minisio.broadcast import BroadcastOperator, _check_event

N = 200_000


def emit_without_check(self: BroadcastOperator, event: str, *args: Any) -> None:
    _check_event(event)
    nsp = self.namespace
    packet = sio.Packet(sio.PacketType.EVENT, [event, *args], nsp.name)
    if self.flags is None:
        nsp.adapter.broadcast(packet, self.rooms, self.exclude)
    else:
        nsp.adapter.broadcast(packet, self.rooms, self.exclude, self.flags)


def per_call(fn: Any, n: int = N) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e9


async def main() -> None:
    io = minisio.Server(max_buffer=10**10)
    async with io.serve("127.0.0.1", 0) as listener:
        port = listener.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        async with connect(url, max_queue=None) as ws:
            await ws.recv()
            await ws.send("40")
            sid = str(await ws.recv())[10:-2]
            socket = io.sockets[sid]
            server = io

            empty = per_call(lambda: None)
            check = per_call(
                lambda: server._loop_thread != get_ident() and server._loop is not None
            )
            op = io.to(sid)
            shipped, bare, sock = [], [], []
            for _ in range(3):  # alternated: the transport's buffer grows as it goes
                bare.append(per_call(lambda: emit_without_check(op, "x", 1), N // 10))
                shipped.append(per_call(lambda: op.emit("x", 1), N // 10))
                sock.append(per_call(lambda: socket.emit("x", 1), N // 10))
            print(f"empty lambda (overhead):     {empty:7.1f} ns")
            print(f"check alone, with overhead:  {check:7.1f} ns")
            print(f"io.to(sid).emit, no check:   {min(bare):7.1f} ns")
            print(f"io.to(sid).emit, as shipped: {min(shipped):7.1f} ns")
            print(f"socket.emit, as shipped:     {min(sock):7.1f} ns")


if __name__ == "__main__":
    asyncio.run(main())

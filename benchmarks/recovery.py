"""What connection state recovery costs: per broadcast, per disconnected client, per packet kept.

    .venv/bin/python benchmarks/recovery.py [--clients 1000] [--packets 10000] [--size 100]

Prints three figures, measured on a real server on 127.0.0.1 (port 0) with
real WebSocket clients where a client is involved:

* the time one broadcast takes with recovery off and on, sent to a room
  nobody is in, so that only the work recovery adds is measured (the offset,
  encoding it, keeping the packet): delivery to each recipient is the same
  code either way. The minimum of ``--runs`` interleaved runs of ``--reps``
  broadcasts each.
* the memory a disconnected client's kept session holds: ``--clients``
  clients connect (each with ``socket.data["name"]`` and one room besides
  its own, as the demo chat's), drop their WebSocket, and the memory the
  session store holds is measured with tracemalloc (the store emptied
  gives the baseline).
* the memory one kept packet holds: ``--packets`` broadcasts of a chat
  message of ``--size`` characters, and the store of packets emptied again.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minisio
from minisio.adapter import SessionAwareAdapter


def broadcast_costs(reps: int, runs: int, size: int) -> tuple[float, float]:
    """Microseconds per broadcast to an empty room, recovery off and on: the minimum
    over ``runs`` interleaved runs (the one least disturbed by the rest of the machine)."""
    message = {"from": "abcdefghij0123456789", "text": "x" * size}
    servers = [minisio.Server(connection_state_recovery=on) for on in (False, True)]
    operators = [io.to("nobody-here") for io in servers]
    best = [float("inf"), float("inf")]
    for _ in range(runs):
        for i, operator in enumerate(operators):
            start = time.perf_counter()
            for _ in range(reps):
                operator.emit("chat", message)
            best[i] = min(best[i], (time.perf_counter() - start) / reps * 1e6)
    return best[0], best[1]


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def session_memory(clients: int) -> tuple[float, int]:
    """Bytes per kept session, measured through real connections and drops."""
    io = minisio.Server(connection_state_recovery={"max_sessions": clients})

    @io.on("connection")
    def connected(socket: minisio.Socket) -> None:
        socket.data["name"] = f"guest-{socket.id[:4]}"
        socket.join("lobby")

    async with io.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        for _ in range(clients):
            async with connect(url) as ws:
                await ws.recv()  # open
                await ws.send("40")
                await ws.recv()  # CONNECT reply
        adapter = io.main.adapter
        assert isinstance(adapter, SessionAwareAdapter)
        while len(adapter.store) < clients or io._sessions:
            await asyncio.sleep(0.01)
        kept = traced()
        adapter.store.sessions.clear()
        adapter.store.bytes = 0
        empty = traced()
    return (kept - empty) / clients, clients


def packet_memory(packets: int, size: int) -> float:
    """Bytes per kept packet of a chat message of ``size`` characters."""
    io = minisio.Server(connection_state_recovery={"max_packets": packets})
    adapter = io.main.adapter
    assert isinstance(adapter, SessionAwareAdapter)
    operator = io.to("nobody-here")
    message = {"from": "abcdefghij0123456789", "text": "x" * size}
    before = traced()
    for _ in range(packets):
        operator.emit("chat", message)
    kept = traced()
    assert len(adapter.log) == packets
    adapter.log.packets.clear()
    return (kept - before) / packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--packets", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100, help="characters of chat text")
    parser.add_argument("--reps", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    off, on = broadcast_costs(args.reps, args.runs, args.size)
    encoded = len(b'42["chat",{"from":"abcdefghij0123456789","text":""},"12345678"]') + args.size
    print(f"broadcast of a {encoded}-byte chat event to an empty room (min of {args.runs} runs):")
    print(f"  recovery off  {off:6.2f} us")
    print(f"  recovery on   {on:6.2f} us   ({on - off:+.2f} us per broadcast)")

    tracemalloc.start()
    per_session, clients = asyncio.run(session_memory(args.clients))
    per_packet = packet_memory(args.packets, args.size)
    tracemalloc.stop()
    print(f"memory per disconnected client kept ({clients} sessions, data with a name, 2 rooms):")
    print(f"  {per_session:,.0f} bytes")
    print(f"memory per packet kept ({args.packets} packets of {encoded} bytes as sent):")
    print(f"  {per_packet:,.0f} bytes ({per_packet - encoded:,.0f} beyond the frame itself)")


if __name__ == "__main__":
    main()

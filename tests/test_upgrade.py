"""The upgrade from long-polling to WebSocket, frame by frame, with raw clients.

A client polls with HTTP requests, opens a WebSocket with the same sid,
probes it (``2probe`` / ``3probe``), stops polling once its held GET has
come back (the server releases it with a noop, ``6``), then sends ``5`` on
the WebSocket. These tests play that client by hand and check what the
server does at every step, and that no packet is lost, doubled or
reordered across the switch while the server emits all along.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import connect

import minisio

from .conftest import POLL, UNIT, eventually, http_client, polling_handshake, running

COUNT = 400


def make_server(**options: Any) -> minisio.Server:
    io = minisio.Server(**options)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("count")
        async def count(n: int) -> None:
            # Numbered events, a few per turn of the loop, while the upgrade happens.
            for i in range(n):
                socket.emit("n", i)
                if i % 4 == 3:
                    await asyncio.sleep(0.001)

        socket.on("where", lambda: socket.transport)

    return io


def numbers(payload: str) -> list[int]:
    """The ``n`` events in a polling payload or a frame; noops and pings are skipped."""
    found = []
    for record in payload.split("\x1e"):
        if record.startswith('42["n",'):
            found.append(orjson.loads(record[2:])[1])
        else:
            assert record in ("6", "2"), record
    return found


async def test_no_packet_is_lost_doubled_or_reordered_across_the_upgrade() -> None:
    io = make_server()
    async with running(io) as address, http_client(address) as get, http_client(address) as post:
        sid = await polling_handshake(get)
        await post.request("POST", f"{POLL}&sid={sid}", b"40")
        status, _, body = await get.request("GET", f"{POLL}&sid={sid}")
        assert status == 200 and body.startswith(b'40{"sid":"')
        assert await post.request("POST", f"{POLL}&sid={sid}", b'42["count",400]') == (
            200,
            [("Content-Type", "text/html"), ("Cache-Control", "no-store"), ("Content-Length", "2")],
            b"ok",
        )
        seen: list[int] = []
        probed = asyncio.Event()

        async def poll() -> None:
            # Poll until the probe has been answered, as the client does, then
            # finish the GET under way and stop.
            while True:
                status, _, body = await get.request("GET", f"{POLL}&sid={sid}", timeout=5)
                assert status == 200
                seen.extend(numbers(body.decode()))
                if probed.is_set():
                    return

        poller = asyncio.create_task(poll())
        await asyncio.sleep(0.01)  # some packets go out over polling first
        url = f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        async with connect(url) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
            probed.set()
            await asyncio.wait_for(poller, 5 * UNIT)
            before = len(seen)
            await ws.send("5")
            while len(seen) < COUNT:
                frame = await asyncio.wait_for(ws.recv(), 2 * UNIT)
                assert isinstance(frame, str)
                seen.extend(numbers(frame))
            await ws.send('421["where"]')
            while (frame := await asyncio.wait_for(ws.recv(), 2 * UNIT)) == "2":
                pass
            assert frame == '431["websocket"]'
        assert seen == list(range(COUNT))
        assert 0 < before < COUNT, "both transports carried some of them"


async def test_after_the_upgrade_polling_is_refused_and_the_session_lives_on() -> None:
    io = make_server()
    async with running(io) as address, http_client(address) as get:
        sid = await polling_handshake(get)
        url = f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        async with connect(url) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
            # Nothing queued: a GET now is released at once with a noop.
            assert (await get.request("GET", f"{POLL}&sid={sid}"))[2] == b"6"
            await ws.send("5")
            await ws.send("40")
            assert (await asyncio.wait_for(ws.recv(), 2 * UNIT)).startswith('40{"sid":"')
            status, _, body = await get.request("GET", f"{POLL}&sid={sid}")
            assert (status, body) == (400, b'{"code":3,"message":"Bad request"}')
            # A second WebSocket for the sid is accepted, then closed at once.
            async with connect(url) as second:
                await asyncio.wait_for(second.wait_closed(), 2 * UNIT)
            await ws.send('421["where"]')
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == '431["websocket"]'
            assert len(io._sessions) == 1


async def test_an_upgrade_not_finished_in_time_is_dropped_and_polling_goes_on() -> None:
    io = make_server(upgrade_timeout=0.3 * UNIT)
    async with running(io) as address, http_client(address) as get, http_client(address) as post:
        sid = await polling_handshake(get)
        await post.request("POST", f"{POLL}&sid={sid}", b"40")
        assert (await get.request("GET", f"{POLL}&sid={sid}"))[2].startswith(b'40{"sid"')
        url = f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        async with connect(url) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
            await asyncio.wait_for(ws.wait_closed(), 2 * UNIT)  # no "5" in time
        # Polling again holds the GET until there is something to send.
        held = asyncio.create_task(get.request("GET", f"{POLL}&sid={sid}"))
        await asyncio.sleep(0.1 * UNIT)
        assert not held.done()
        await post.request("POST", f"{POLL}&sid={sid}", b'421["where"]')
        assert (await held)[2] == b'431["polling"]'


async def test_anything_but_the_probe_on_the_new_websocket_abandons_the_upgrade() -> None:
    io = make_server()
    async with running(io) as address, http_client(address) as get, http_client(address) as post:
        sid = await polling_handshake(get)
        await post.request("POST", f"{POLL}&sid={sid}", b"40")
        assert (await get.request("GET", f"{POLL}&sid={sid}"))[2].startswith(b'40{"sid"')
        url = f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        for first in ("5", '42["where"]', "3"):
            async with connect(url) as ws:
                await ws.send(first)  # no "2probe" first
                await asyncio.wait_for(ws.wait_closed(), 2 * UNIT)
            await post.request("POST", f"{POLL}&sid={sid}", b'421["where"]')
            assert (await get.request("GET", f"{POLL}&sid={sid}"))[2] == b'431["polling"]'
        await eventually(lambda: all(s._probe is None for s in io._sessions.values()))

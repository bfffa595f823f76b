"""The shortest end-to-end path: open, CONNECT, an event with an ack."""

from __future__ import annotations

import minisio

from .conftest import raw_client, running


async def test_open_connect_event_ack() -> None:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        @socket.on("sum")
        def add(a: int, b: int) -> int:
            return a + b

    async with running(io) as address, raw_client(address) as client:
        assert client.open.endswith(
            '","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
        )
        sid = await client.join()
        assert len(sid) == 20 and sid in io.sockets
        await client.send('421["sum",1,2]')
        await client.expect("431[3]")

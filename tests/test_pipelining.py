"""Frames pipelined behind the handshake request, before the session starts.

minisio hands WebSocket messages to the session straight from
``data_received``; frames that arrive in the same TCP segment as the
upgrade request are parsed before the session exists. They must be kept
and handled in order once it starts, and a client that piles up more of
them than any real client would is cut off.
"""

from __future__ import annotations

import asyncio

import minisio

from .conftest import UNIT, masked_frame, raw_client, running, upgrade_request


async def read_frame(reader: asyncio.StreamReader) -> str:
    head = await asyncio.wait_for(reader.readexactly(2), 2 * UNIT)
    assert head[0] == 0x81, head  # FIN + text
    length = head[1]
    assert length < 126
    return (await reader.readexactly(length)).decode()


def make_server() -> minisio.Server:
    io = minisio.Server()

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.on("echo", lambda text: text)

    return io


async def test_frames_sent_with_the_handshake_are_handled_in_order() -> None:
    io = make_server()
    async with running(io) as address:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        pipelined = [
            masked_frame(b"40"),
            masked_frame(b'421["echo","a"]'),
            masked_frame(b'422["echo","b"]'),
        ]
        writer.write(upgrade_request(address) + b"".join(pipelined))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2 * UNIT)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert (await read_frame(reader)).startswith('0{"sid":"')
        assert (await read_frame(reader)).startswith('40{"sid":"')
        assert await read_frame(reader) == '431["a"]'
        assert await read_frame(reader) == '432["b"]'
        writer.close()


async def test_too_many_pipelined_frames_cut_that_client_only() -> None:
    io = make_server()
    async with running(io) as address, raw_client(address) as control:
        await control.join()
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(upgrade_request(address) + masked_frame(b"6") * 40)
        received = await asyncio.wait_for(reader.read(), 2 * UNIT)  # until EOF
        assert b'0{"sid":"' not in received  # cut before its session started
        writer.close()
        await control.send('421["echo","still here"]')
        await control.expect('431["still here"]')

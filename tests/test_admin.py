"""The admin UI's protocol (``@socket.io/admin-ui`` 0.5), frame by frame on real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import socket as _socket
from typing import Any

import pytest
from websockets.asyncio.client import connect

import minisio
from tests.conftest import (
    POLL,
    SID,
    UNIT,
    RawClient,
    eventually,
    http_client,
    http_get,
    polling_handshake,
    raw_client,
    running,
)

AUTH = {"username": "admin", "password": "s3cret"}
LOGIN = '40/admin,{"username":"admin","password":"s3cret"}'
TS = r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"'  # a JavaScript Date in JSON
ALL_FEATURES = (
    '["EMIT","JOIN","LEAVE","DISCONNECT","MJOIN","MLEAVE","MDISCONNECT",'
    '"AGGREGATED_EVENTS","ALL_EVENTS"]'
)


def chat_server(**options: Any) -> minisio.Server:
    """A small app: joins "lobby" on connect, echoes "say" to the sender, "hop" moves rooms."""
    io = minisio.Server(**options)

    @io.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.join("lobby")

        @socket.on("say")
        def say(text: str) -> None:
            socket.emit("said", text)

        @socket.on("hop")
        def hop() -> None:
            socket.leave("lobby")
            socket.join("attic")

    return io


def event(frame: str | bytes, namespace: str = "/admin") -> list[Any]:
    """The JSON array of an EVENT frame of ``namespace``."""
    assert isinstance(frame, str), frame
    prefix = f"42{namespace},"
    assert frame.startswith(prefix), frame
    data = json.loads(frame[len(prefix) :])
    assert isinstance(data, list)
    return data


async def next_event(client: RawClient, name: str, timeout: float = 2) -> list[Any]:
    """The next admin event called ``name`` (pings answered, other events skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * UNIT
    while True:
        frame = await client.recv(max(0.01, (deadline - loop.time()) / UNIT))
        if frame == "2":
            await client.send("3")
            continue
        if isinstance(frame, str) and frame.startswith("42/admin,"):
            data = event(frame)
            if data[0] == name:
                return data


async def login(client: RawClient, frame: str = LOGIN) -> tuple[str, str]:
    """Log in; check the frames up to ``config``; return (admin socket id, session id)."""
    await client.send(frame)
    admin_id = (await client.expect_match(rf'40/admin,\{{"sid":"({SID})"\}}')).group(1)
    connected = event(await client.recv())
    assert connected[0] == "socket_connected" and connected[1]["id"] == admin_id
    assert connected[1]["nsp"] == "/admin"
    session = (await client.expect_match(r'42/admin,\["session","([0-9a-f]{16})"\]')).group(1)
    await client.expect('42/admin,["config",{"supportedFeatures":' + ALL_FEATURES + "}]")
    return admin_id, session


async def test_login_config_and_every_socket() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    async with running(io) as address, raw_client(address) as chat:
        chat_id = await chat.join()
        async with raw_client(address) as admin:
            admin_id, _ = await login(admin)
            kind, sockets = event(await admin.recv())
            assert kind == "all_sockets"
            by_id = {s["id"]: s for s in sockets}
            assert set(by_id) == {chat_id, admin_id}
            mine = by_id[chat_id]
            assert mine["nsp"] == "/" and mine["transport"] == "websocket"
            assert mine["rooms"] == sorted([chat_id, "lobby"])
            assert mine["data"] == {}
            assert len(mine["clientId"]) == 12
            handshake = mine["handshake"]
            assert handshake["address"] == "127.0.0.1"
            assert handshake["url"].startswith("/socket.io/?EIO=4&transport=websocket")
            assert handshake["query"] == {"EIO": "4", "transport": "websocket"}
            assert handshake["headers"]["host"] == address
            assert handshake["secure"] is False and handshake["xdomain"] is False
            assert isinstance(handshake["issued"], int) and "auth" not in handshake
            assert by_id[admin_id]["nsp"] == "/admin"


@pytest.mark.parametrize(
    "connect",
    [
        '40/admin,{"username":"admin","password":"wrong"}',
        '40/admin,{"username":"root","password":"s3cret"}',
        '40/admin,{"username":"admin"}',
        '40/admin,{"username":"admin","password":["s3cret"]}',
        "40/admin,",
        '40/admin,{"sessionId":"0123456789abcdef"}',
    ],
)
async def test_wrong_credentials_are_refused(connect: str) -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    async with running(io) as address, raw_client(address) as chat:
        chat_id = await chat.join()
        async with raw_client(address) as intruder:
            await intruder.send(connect)
            await intruder.expect('44/admin,{"message":"invalid credentials"}')
            assert io.of("/admin").sockets == {}
            # Not in the namespace: an action anyway is a packet for a namespace
            # not joined, and ends that session only (as the reference server).
            await intruder.send('42/admin,["_disconnect","/",false]')
            assert await intruder.closed() == 1002
        await chat.expect_nothing(0.2)
        assert chat_id in io.sockets


async def test_a_session_id_logs_in_again_and_a_login_is_per_server() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    async with running(io) as address:
        async with raw_client(address) as admin:
            _, session = await login(admin)
        async with raw_client(address) as again:
            await again.send(f'40/admin,{{"sessionId":"{session}"}}')
            await again.expect_match(rf'40/admin,\{{"sid":"{SID}"\}}')
            assert event(await again.recv())[0] == "socket_connected"
            # A session that came back gets no new session id: config comes next.
            await again.expect('42/admin,["config",{"supportedFeatures":' + ALL_FEATURES + "}]")
    other = chat_server()
    other.instrument(auth=AUTH, ui=False)
    async with running(other) as address, raw_client(address) as stranger:
        await stranger.send(f'40/admin,{{"sessionId":"{session}"}}')
        await stranger.expect('44/admin,{"message":"invalid credentials"}')


async def test_auth_function_and_no_auth() -> None:
    seen: list[dict[str, Any]] = []

    async def check(auth: dict[str, Any]) -> bool:
        seen.append(auth)
        return auth.get("token") == "t0k"

    io = chat_server()
    io.instrument(auth=check, ui=False)
    async with running(io) as address, raw_client(address) as admin:
        await admin.send('40/admin,{"token":"nope"}')
        await admin.expect('44/admin,{"message":"invalid credentials"}')
        await admin.send('40/admin,{"token":"t0k"}')
        await admin.expect_match(rf'40/admin,\{{"sid":"{SID}"\}}')
        assert seen == [{"token": "nope"}, {"token": "t0k"}]
    open_io = chat_server()
    open_io.instrument(auth=False, ui=False)
    async with running(open_io) as address, raw_client(address) as admin:
        await admin.send("40/admin,")
        await admin.expect_match(rf'40/admin,\{{"sid":"{SID}"\}}')
        assert event(await admin.recv())[0] == "socket_connected"
        # No login, no session id.
        await admin.expect('42/admin,["config",{"supportedFeatures":' + ALL_FEATURES + "}]")


def test_auth_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="bcrypt"):
        minisio.Server().instrument(
            auth={"username": "a", "password": "$2b$10$abcdefghijklmnopqrstuuv"}, ui=False
        )
    for bad in (None, {}, {"username": "a"}, [], ["a:b"], {"username": "a", "password": ""}):
        with pytest.raises(TypeError):
            minisio.Server().instrument(auth=bad, ui=False)
    with pytest.raises(ValueError, match="mode"):
        minisio.Server().instrument(auth=AUTH, mode="dev", ui=False)
    io = minisio.Server()
    io.instrument(auth=AUTH, ui=False)
    with pytest.raises(RuntimeError):
        io.instrument(auth=AUTH, ui=False)


async def test_sockets_rooms_and_events_are_reported() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    async with running(io) as address, raw_client(address) as admin:
        await login(admin)
        assert event(await admin.recv())[0] == "all_sockets"
        async with raw_client(address) as chat:
            await chat.send("40")
            chat_id = (await chat.expect_match(rf'40\{{"sid":"({SID})"\}}')).group(1)
            kind, serialized, stamp = event(await admin.recv())
            assert kind == "socket_connected" and serialized["id"] == chat_id
            assert re.fullmatch(TS, json.dumps(stamp))
            # The connection handler's join, after socket_connected (its rooms then: its id).
            assert serialized["rooms"] == [chat_id]
            await admin.expect_match(rf'42/admin,\["room_joined","/","lobby","{chat_id}",{TS}\]')
            await chat.send('42["say","hi"]')
            await admin.expect_match(
                rf'42/admin,\["event_received","/","{chat_id}",\["say","hi"\],{TS}\]'
            )
            await admin.expect_match(
                rf'42/admin,\["event_sent","/","{chat_id}",\["said","hi"\],{TS}\]'
            )
            await chat.expect('42["said","hi"]')
            await chat.send('42["hop"]')
            await admin.expect_match(
                rf'42/admin,\["event_received","/","{chat_id}",\["hop"\],{TS}\]'
            )
            await admin.expect_match(rf'42/admin,\["room_left","/","lobby","{chat_id}",{TS}\]')
            await admin.expect_match(rf'42/admin,\["room_joined","/","attic","{chat_id}",{TS}\]')
            # A broadcast reaches the watched socket: event_sent for it.
            io.to("attic").emit("news", 1)
            await admin.expect_match(
                rf'42/admin,\["event_sent","/","{chat_id}",\["news",1\],{TS}\]'
            )
            await chat.send("41")
        await admin.expect_match(
            rf'42/admin,\["socket_disconnected","/","{chat_id}",'
            rf'"client namespace disconnect",{TS}\]'
        )


async def test_the_ui_actions() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    async with running(io) as address, raw_client(address) as admin:
        await login(admin)
        await admin.recv()  # all_sockets
        async with raw_client(address) as a, raw_client(address) as b:
            a_id, b_id = await a.join(), await b.join()
            await admin.send(f'42/admin,["join","/","vip","{a_id}"]')
            await eventually(lambda: "vip" in io.sockets[a_id].rooms)
            assert "vip" not in io.sockets[b_id].rooms
            await admin.send('42/admin,["emit","/","vip","hello",1,{"x":2}]')
            await a.expect('42["hello",1,{"x":2}]')
            await admin.send('42/admin,["emit","/",null,"all"]')
            await a.expect('42["all"]')
            await b.expect('42["all"]')
            await admin.send('42/admin,["leave","/","vip"]')
            await eventually(lambda: "vip" not in io.sockets[a_id].rooms)
            # Hostile or mistaken input does nothing, and the admin stays connected.
            for frame in (
                '42/admin,["join",5,{},null]',
                '42/admin,["join","/nowhere","x"]',
                '42/admin,["emit","/",null,7]',
                '42/admin,["leave"]',
                '42/admin,["_disconnect",null]',
            ):
                await admin.send(frame)
            assert "/nowhere" not in io._namespaces
            await admin.send(f'42/admin,["_disconnect","/",false,"{b_id}"]')
            await b.expect("41")
            await a.expect_nothing(0.2)
            assert a_id in io.sockets and b_id not in io.sockets
            await admin.send('42/admin,["_disconnect","/",true]')
            await a.expect("41")
            assert await a.closed() is not None
            assert len(io.of("/admin").sockets) == 1


async def test_read_only_refuses_the_actions() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, read_only=True, ui=False)
    async with running(io) as address, raw_client(address) as chat:
        chat_id = await chat.join()
        async with raw_client(address) as admin:
            await admin.send(LOGIN)
            await admin.expect_match(rf'40/admin,\{{"sid":"{SID}"\}}')
            await next_event(admin, "session")
            await admin.expect(
                '42/admin,["config",{"supportedFeatures":["AGGREGATED_EVENTS","ALL_EVENTS"]}]'
            )
            await admin.send(f'42/admin,["_disconnect","/",true,"{chat_id}"]')
            await admin.send('42/admin,["emit","/",null,"x"]')
            await chat.expect_nothing(0.3)
            assert chat_id in io.sockets


async def stats_until(admin: RawClient, done: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """Read server_stats until ``done(totals)``: (the last stats, the aggregated counts summed)."""
    totals: dict[str, int] = {}
    while True:
        stats = (await next_event(admin, "server_stats"))[1]
        for item in stats["aggregatedEvents"]:
            assert isinstance(item["timestamp"], int)
            totals[item["type"]] = totals.get(item["type"], 0) + item["count"]
        if done(totals):
            return stats, totals


async def test_server_stats() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False, server_stats_interval=0.1, server_id="node-1")
    async with running(io) as address, raw_client(address) as admin:
        await login(admin)
        await stats_until(admin, lambda totals: True)  # what came before this client watched
        async with raw_client(address) as chat:
            await chat.send("40")
            await chat.send('42["say","hello"]')
            await chat.expect_match(rf'40\{{"sid":"{SID}"\}}')
            await chat.expect('42["said","hello"]')
            stats, totals = await stats_until(admin, lambda t: t.get("packetsIn", 0) >= 2)
            assert stats["serverId"] == "node-1"
            assert stats["hostname"] == _socket.gethostname()
            assert isinstance(stats["pid"], int) and stats["uptime"] > 0
            assert stats["clientsCount"] == 2 and stats["pollingClientsCount"] == 0
            assert {"name": "/", "socketsCount": 1} in stats["namespaces"]
            assert {"name": "/admin", "socketsCount": 1} in stats["namespaces"]
            # Exactly the chat's two frames in, "40" and the event: 2 + 17 bytes.
            assert totals["rawConnection"] == 1
            assert (totals["packetsIn"], totals["bytesIn"]) == (2, 19)
            assert totals["packetsOut"] >= 3 and totals["bytesOut"] > 0
        _, totals = await stats_until(admin, lambda t: "rawDisconnection" in t)
        assert totals["rawDisconnection"] == 1


async def test_production_mode_sends_stats_only() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, mode="production", ui=False, server_stats_interval=0.2)
    async with running(io) as address, raw_client(address) as admin:
        await admin.send(LOGIN)
        await admin.expect_match(rf'40/admin,\{{"sid":"{SID}"\}}')
        await admin.expect_match(r'42/admin,\["session","[0-9a-f]{16}"\]')
        features = ALL_FEATURES.replace(',"ALL_EVENTS"', "")
        await admin.expect('42/admin,["config",{"supportedFeatures":' + features + "}]")
        async with raw_client(address) as chat:
            await chat.join()
            await chat.send('42["say","hi"]')
            await chat.expect('42["said","hi"]')
            assert event(await admin.recv())[0] == "server_stats"
        assert io.sockets.sockets == {}


async def test_namespaces_made_later_are_watched() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    late = io.of("/late")
    parent = io.of(re.compile(r"^/room-\d+$"))
    async with running(io) as address, raw_client(address) as admin:
        await login(admin)
        await admin.recv()
        async with raw_client(address) as chat:
            late_id = await chat.join("/late")
            assert (await next_event(admin, "socket_connected"))[1]["id"] == late_id
            child_id = await chat.join("/room-7")
            serialized = (await next_event(admin, "socket_connected"))[1]
            assert serialized["id"] == child_id and serialized["nsp"] == "/room-7"
            assert io.of("/room-7")._connection_handlers.count(io._admin._on_socket) == 1  # type: ignore[union-attr]
    assert late.sockets == {} and parent is not None


async def test_the_ui_is_served_at_its_own_path(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>ui</title>")
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "app.js").write_text("console.log(1)")
    io = chat_server()
    admin = io.instrument(auth=AUTH, ui=tmp_path)
    assert admin.ui_dir == tmp_path.resolve()
    async with running(io) as address:
        status, headers, body = await http_get(address, "/admin")
        assert (status, headers["location"], body) == (308, "/admin/", b"")
        status, headers, body = await http_get(address, "/admin/")
        assert status == 200 and body == b"<!doctype html><title>ui</title>"
        assert headers["content-type"] == "text/html; charset=utf-8"
        status, headers, body = await http_get(address, "/admin/js/app.js")
        assert status == 200 and body == b"console.log(1)"
        for target in ("/admin/../pyproject.toml", "/admin/%2e%2e/x", "/admin/nope.js"):
            assert (await http_get(address, target))[0] in (400, 404)


def test_the_installed_ui_is_found() -> None:
    admin = minisio.Server().instrument(auth=AUTH)
    assert admin.ui_dir is not None
    assert admin.ui_dir.parts[-5:] == ("node_modules", "@socket.io", "admin-ui", "ui", "dist")
    assert (admin.ui_dir / "index.html").is_file()


async def test_off_it_installs_nothing() -> None:
    io = chat_server()
    assert io._tap is None and io._admin is None and io._mounts == {}
    async with running(io) as address, raw_client(address) as chat:
        chat_id = await chat.join()
        socket = io.sockets[chat_id]
        assert socket._conn.trace is None
        assert socket._inbound is None and socket._any_out is None
        assert not io.sockets._outgoing


async def test_an_upgrade_is_reported_as_socket_updated() -> None:
    io = chat_server()
    io.instrument(auth=AUTH, ui=False)
    async with running(io) as address, raw_client(address) as admin:
        await login(admin)
        await admin.recv()  # all_sockets
        async with http_client(address) as get:
            sid = await polling_handshake(get)
            status, _, _ = await get.request("POST", f"{POLL}&sid={sid}", b"40")
            assert status == 200
            _, _, body = await get.request("GET", f"{POLL}&sid={sid}")
            chat_id = re.fullmatch(rb'40\{"sid":"(' + SID.encode() + rb')"\}', body)
            assert chat_id, body
            connected = (await next_event(admin, "socket_connected"))[1]
            assert connected["id"] == chat_id.group(1).decode()
            assert connected["transport"] == "polling"
            url = f"ws://{address}/socket.io/?EIO=4&transport=websocket&sid={sid}"
            async with connect(url) as ws:
                await ws.send("2probe")
                assert await asyncio.wait_for(ws.recv(), 2 * UNIT) == "3probe"
                await get.request("GET", f"{POLL}&sid={sid}")  # released with a noop
                await ws.send("5")
                updated = await next_event(admin, "socket_updated")
                assert updated == [
                    "socket_updated",
                    {"id": connected["id"], "nsp": "/", "transport": "websocket"},
                ]


async def test_the_ui_is_found_through_a_symlinked_node_modules(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "elsewhere" / "@socket.io" / "admin-ui" / "ui" / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>ui</title>")
    here = tmp_path / "here"
    here.mkdir()
    (here / "node_modules").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    monkeypatch.chdir(here)  # find_ui() looks in ./node_modules first
    io = chat_server()
    admin = io.instrument(auth=AUTH)
    assert admin.ui_dir == dist.resolve()
    async with running(io) as address:
        status, _, body = await http_get(address, "/admin/")
        assert (status, body) == (200, b"<!doctype html><title>ui</title>")

"""Dynamic namespaces (issue 13, item 5): io.of(regex) and io.of(fn(name, auth)), on the wire.

As socket.io's ParentNamespace: a CONNECT to an unknown namespace that a
parent accepts makes a child with the parent's connection handlers and
middleware; anything else is "Invalid namespace", as before.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import minisio
from minisio.dynamic import ParentNamespace

from .conftest import UNIT, eventually, raw_client, running

INVALID = '{"message":"Invalid namespace"}'


def teams(**options: Any) -> tuple[minisio.Server, ParentNamespace]:
    io = minisio.Server(**options)
    parent = io.of(re.compile(r"^/team-\d+$"))

    @parent.use
    def check(socket: minisio.Socket) -> None:
        if socket.handshake.auth.get("token") == "bad":
            raise minisio.ConnectionRefused("no")

    @parent.on("connection")
    def joined(socket: minisio.Socket) -> None:
        socket.emit("welcome", socket.namespace.name)
        socket.on("join", socket.join)

    return io, parent


async def test_a_regex_makes_a_child_on_first_connect_with_the_parents_handlers() -> None:
    io, parent = teams()
    assert isinstance(parent, ParentNamespace) and parent.name == "/_0"
    async with running(io) as address, raw_client(address) as client:
        sid = await client.join("/team-42")
        await client.expect('42/team-42,["welcome","/team-42"]')
        child = io.of("/team-42")
        assert child in parent.children and child._parent is parent
        assert list(child.sockets) == [sid]

        await client.send("40/other,")
        await client.expect(f"44/other,{INVALID}")
        await client.send("40/team-x,")
        await client.expect(f"44/team-x,{INVALID}")
        await client.send("40/_0,")  # the parent itself is no namespace a client joins
        await client.expect(f"44/_0,{INVALID}")
        await client.send('40/team-7,{"token":"bad"}')  # the parent's middleware
        await client.expect('44/team-7,{"message":"no"}')


async def test_the_parent_emits_to_every_child_with_the_childs_name() -> None:
    io, parent = teams()
    async with running(io) as address, raw_client(address) as a, raw_client(address) as b:
        sid_a = await a.join("/team-1")
        await a.expect('42/team-1,["welcome","/team-1"]')
        await b.join("/team-2")
        await b.expect('42/team-2,["welcome","/team-2"]')

        parent.emit("all", 1)
        await a.expect('42/team-1,["all",1]')
        await b.expect('42/team-2,["all",1]')
        await a.send('42/team-1,["join","red"]')
        await eventually(lambda: "red" in io.of("/team-1").sockets[sid_a].rooms)
        parent.to("red").emit("red", 2)
        await a.expect('42/team-1,["red",2]')
        parent.except_(["red"]).emit("not red", 3)
        await b.expect('42/team-2,["not red",3]')
        parent.sockets_join("everyone")
        assert "everyone" in io.of("/team-2").adapter.rooms
        with pytest.raises(NotImplementedError):
            await parent.fetch_sockets()
        await a.expect_nothing()
        await b.expect_nothing()


async def test_of_a_name_a_regex_matches_is_its_child() -> None:
    io, parent = teams()
    child = io.of("team-9")
    assert child._parent is parent and child.name == "/team-9"
    assert io.of("/other")._parent is None
    async with running(io) as address, raw_client(address) as client:
        await client.join("/team-9")
        await client.expect('42/team-9,["welcome","/team-9"]')


async def test_a_function_of_name_and_auth_plain_or_async() -> None:
    io = minisio.Server()
    seen: list[tuple[str, dict[str, Any]]] = []

    def by_key(name: str, auth: dict[str, Any]) -> bool:
        seen.append((name, auth))
        return name.startswith("/org-") and auth.get("key") == "k"

    async def slow(name: str, auth: dict[str, Any]) -> bool:
        await asyncio.sleep(0.01)
        return name == "/later"

    def broken(name: str, auth: dict[str, Any]) -> bool:
        raise RuntimeError("a bug in the check")

    io.of(broken)  # raising counts as a refusal; the next parent is asked
    io.of(by_key).on("connection", lambda socket: socket.emit("org", socket.namespace.name))
    io.of(slow).on("connection", lambda socket: socket.emit("late"))
    async with running(io) as address, raw_client(address) as client:
        await client.join("/org-1", auth='{"key":"k"}')
        await client.expect('42/org-1,["org","/org-1"]')
        assert ("/org-1", {"key": "k"}) in seen
        await client.send('40/org-2,{"key":"wrong"}')
        await client.expect(f"44/org-2,{INVALID}")
        await client.join("/later")
        await client.expect('42/later,["late"]')
        await client.send("40/never,")
        await client.expect(f"44/never,{INVALID}", timeout=2)
        with pytest.raises(TypeError):
            io.of(42)  # type: ignore[call-overload]


async def test_children_are_removed_when_empty_if_asked() -> None:
    io, parent = teams(cleanup_empty_child_namespaces=True)
    async with running(io) as address, raw_client(address) as client:
        await client.join("/team-5")
        await client.expect('42/team-5,["welcome","/team-5"]')
        assert "/team-5" in io._namespaces
        await client.send("41/team-5,")
        await eventually(lambda: "/team-5" not in io._namespaces)
        assert not parent.children
        # The next client makes it again, with the handlers.
        await client.join("/team-5")
        await client.expect('42/team-5,["welcome","/team-5"]')
        # A child made for a client its middleware refuses goes too.
        await client.send('40/team-6,{"token":"bad"}')
        await client.expect('44/team-6,{"message":"no"}')
        assert "/team-6" not in io._namespaces


async def test_children_stay_by_default() -> None:
    io, parent = teams()
    async with running(io) as address, raw_client(address) as client:
        await client.join("/team-5")
        await client.expect('42/team-5,["welcome","/team-5"]')
        await client.send("41/team-5,")
        await asyncio.sleep(0.05 * UNIT)
        assert "/team-5" in io._namespaces and io.of("/team-5") in parent.children


@pytest.mark.parametrize("cleanup", [False, True])
async def test_max_child_namespaces_bounds_what_clients_can_make(
    cleanup: bool, caplog: pytest.LogCaptureFixture
) -> None:
    io, parent = teams(max_child_namespaces=3, cleanup_empty_child_namespaces=cleanup)
    async with running(io) as address, raw_client(address) as a, raw_client(address) as b:
        for n in (1, 2, 3):
            await a.join(f"/team-{n}")
            await a.expect(f'42/team-{n},["welcome","/team-{n}"]')
        await b.send("40/team-4,")  # one more would be made: refused, as an unknown name
        await b.expect(f"44/team-4,{INVALID}")
        assert "max_child_namespaces (3) reached" in caplog.text
        await b.join("/team-2")  # the ones made are still there for everyone
        await b.expect('42/team-2,["welcome","/team-2"]')
        assert len(parent.children) == 3

        await a.send("41/team-1,")  # team-1 is empty now
        await b.send("40/team-5,")
        if cleanup:  # forgotten, so there is room for another
            await b.expect_match(r'40/team-5,\{"sid":"' + "[A-Za-z0-9_-]{20}" + r'"\}')
            await b.expect('42/team-5,["welcome","/team-5"]')
            assert {c.name for c in parent.children} == {"/team-2", "/team-3", "/team-5"}
        else:  # kept, as in Node: still full
            await b.expect(f"44/team-5,{INVALID}")
            assert len(parent.children) == 3


def test_max_child_namespaces_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        minisio.Server(max_child_namespaces=0)

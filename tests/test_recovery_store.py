"""The pure parts of connection state recovery: offsets, the session store, the packet log.

No server, no loop: time is a number passed in.
"""

from __future__ import annotations

import pytest

from minisio.recovery import (
    KeptSession,
    PacketLog,
    Recovery,
    SessionStore,
    format_offset,
    parse_offset,
    reaches,
)


def session(pid: str, at: float, data: dict[str, object] | None = None) -> KeptSession:
    return KeptSession(f"sid-{pid}", pid, frozenset((f"sid-{pid}", "lobby")), data, 0, at)


@pytest.mark.parametrize(
    ("offset", "counter"),
    [("1", 1), ("ff", 255), ("10000000000", 1 << 40), ("ffffffffffffffff", (1 << 64) - 1)],
)
def test_offsets_both_ways(offset: str, counter: int) -> None:
    assert parse_offset(offset) == counter
    assert format_offset(counter) == offset


@pytest.mark.parametrize(
    "offset",
    ["", "0", "01", "FF", "0x1f", " 1", "1_0", "-1", "+1", "g", "1" * 17, 255, None, ["1"]],
)
def test_what_is_not_an_offset(offset: object) -> None:
    assert parse_offset(offset) is None


def test_sessions_are_taken_once_and_expire_on_time() -> None:
    store = SessionStore(Recovery(max_disconnection_duration=10))
    assert store.put(session("a", 0.0)) == []
    assert store.put(session("b", 5.0)) == []
    assert store.next_expiry() == 10.0
    kept = store.take("a", 9.0)
    assert kept is not None and kept.id == "sid-a"
    assert store.take("a", 9.0) is None  # once only
    assert [s.pid for s in store.expire(15.1)] == ["b"]
    assert len(store) == 0 and store.bytes == 0 and store.next_expiry() is None


def test_an_expired_session_is_not_given_back_even_before_expire_runs() -> None:
    store = SessionStore(Recovery(max_disconnection_duration=10))
    store.put(session("a", 0.0))
    assert store.take("a", 10.5) is None
    assert len(store) == 0


def test_thousands_of_sessions_stay_within_the_count_oldest_first() -> None:
    store = SessionStore(Recovery(max_sessions=1000))
    dropped: list[str] = []
    for i in range(5000):
        dropped += [s.pid for s in store.put(session(str(i), float(i)))]
    assert len(store) == 1000
    assert dropped == [str(i) for i in range(4000)]
    assert list(store.sessions) == [str(i) for i in range(4000, 5000)]


def test_sessions_stay_within_their_bytes() -> None:
    limits = Recovery(max_session_bytes=10_000)
    store = SessionStore(limits)
    for i in range(200):
        store.put(session(str(i), float(i), {"name": "x" * 100}))
        assert store.bytes <= limits.max_session_bytes
    assert 0 < len(store) < 200
    assert store.bytes == sum(s.size for s in store.sessions.values())
    # One session larger than the whole budget is not kept at all.
    dropped = store.put(session("huge", 999.0, {"blob": "x" * 20_000}))
    assert dropped[-1].pid == "huge"
    assert "huge" not in store.sessions


def test_data_that_is_not_json_is_counted_as_a_guess() -> None:
    store = SessionStore(Recovery())
    store.put(session("a", 0.0, {"socket": object()}))
    assert store.bytes > 1024


def test_the_log_replays_what_came_after_an_offset_for_the_rooms_of_the_session() -> None:
    log = PacketLog(Recovery(), start=100)
    rooms = frozenset(("me", "red"))
    routes = [
        (frozenset(), frozenset()),  # everyone
        (frozenset({"red"}), frozenset()),  # a room it is in
        (frozenset({"blue"}), frozenset()),  # a room it is not in
        (frozenset(), frozenset({"me"})),  # everyone but it (its broadcast)
        (frozenset({"red", "blue"}), frozenset({"blue"})),
    ]
    for i, (to, exclude) in enumerate(routes):
        counter, offset = log.next_offset()
        assert (counter, offset) == (101 + i, format_offset(101 + i))
        log.append(counter, [f"p{i}".encode()], to, exclude, float(i))
    assert log.since(100, rooms) == [[b"p0"], [b"p1"], [b"p4"]]
    assert log.since(102, rooms) == [[b"p4"]]
    assert log.since(105, rooms) == []  # up to date
    assert log.since(106, rooms) is None  # from the future
    assert log.since(99, rooms) is None  # before anything this log kept


def test_the_log_drops_the_oldest_past_its_count_bytes_and_window() -> None:
    log = PacketLog(Recovery(max_packets=3, max_packet_bytes=25, max_disconnection_duration=60))
    for i in range(5):
        counter, _ = log.next_offset()
        log.append(counter, [b"x" * 5], frozenset(), frozenset(), float(i))
    assert len(log) == 3
    first = log.packets[0][0]
    assert log.since(first - 2, frozenset()) is None  # its successor is gone
    assert log.since(first - 1, frozenset()) == [[b"x" * 5]] * 3
    counter, _ = log.next_offset()
    log.append(counter, [b"y" * 20], frozenset(), frozenset(), 5.0)
    assert log.bytes <= 25 and len(log) == 2
    log.expire(70.0)  # everything older than the window
    assert len(log) == 0 and log.bytes == 0
    # Nothing kept, but an offset up to date is still one to resume from.
    assert log.since(log.last, frozenset()) == []
    assert log.since(log.last - 1, frozenset()) is None


def test_the_log_starts_at_a_random_counter() -> None:
    starts = {PacketLog(Recovery()).last for _ in range(20)}
    assert len(starts) == 20
    assert all(parse_offset(format_offset(s + 1)) == s + 1 for s in starts)


@pytest.mark.parametrize(
    ("to", "exclude", "expected"),
    [
        ((), (), True),
        (("a",), (), True),
        (("z",), (), False),
        ((), ("a",), False),
        (("a",), ("b",), False),
        (("z", "a"), ("y",), True),
    ],
)
def test_reaches(to: tuple[str, ...], exclude: tuple[str, ...], expected: bool) -> None:
    assert reaches(frozenset(("a", "b")), frozenset(to), frozenset(exclude)) is expected

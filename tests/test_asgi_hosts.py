"""The protocol tests again, with the server hosted by uvicorn as ``minisio.ASGIApp``.

Each module in ``MODULES`` is collected a second time here, its tests named
``test_<module>__<test>``, with ``running(io)`` (conftest's standalone
server) replaced by ``asgi_host.asgi_running(io)`` for the length of each
test: the same raw clients, frames and HTTP exchanges, asserted the same
way, against the other host. A test that checks something the ASGI server
decides instead (how it parses HTTP, its own limits and headers) is left out
with the reason, in ``NOT_HERE``; the README's ASGI section lists the
differences.
"""

from __future__ import annotations

import http
import importlib
import os
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from . import asgi_host, conftest

#: Modules whose tests run against both hosts, and for some the only tests that do
#: (None: all of them). MINISIO_ASGI_ALL=1 runs every test of ALL_MODULES instead (about
#: two minutes more; all of them pass there too, save those in NOT_HERE).
MODULES: dict[str, set[str] | None] = {
    "test_routes": None,
    "test_polling": None,
    "test_polling_hostile": None,
    "test_upgrade": None,
    "test_http_hooks": None,
    "test_hostile": {"test_every_case_against_one_server", "test_fuzz_random_frames"},
}
ALL_MODULES = (
    *MODULES,
    "test_namespaces",
    "test_server",
    "test_heartbeat",
    "test_polling_review",
    "test_backpressure",
    "test_operators",
    "test_listeners",
    "test_dynamic_namespaces",
    "test_migration",
    "test_http",
    "test_review_api",
    "test_threads",
    "test_adapter",
    "test_trace",
)
if os.environ.get("MINISIO_ASGI_ALL") == "1":
    MODULES = dict.fromkeys(ALL_MODULES)

_PARSER = "uvicorn (h11) parses HTTP itself: its own limits, refusals and keep-alive rules"
_WS_REFUSAL = "uvicorn writes the HTTP refusal of a WebSocket handshake itself (a Date header)"
_NO_SILENT_CLOSE = (
    "an ASGI app cannot close a connection without an answer: 408 Request Timeout instead"
)
_OWN_PINGS = "uvicorn answers WebSocket pings itself, into a buffer minisio does not see"

#: "module::test" -> why it does not run under uvicorn (the README's ASGI section says more).
NOT_HERE: dict[str, str] = {
    "test_heartbeat::test_server_shutting_down": (
        "uvicorn closes WebSockets itself at shutdown, with 1012 (the sockets see"
        ' "server shutting down" all the same)'
    ),
    "test_polling::test_http_1_0_closes_unless_kept_alive": _PARSER,
    "test_polling::test_a_half_closed_connection_still_gets_its_held_get": (
        "uvicorn takes a half-closed connection for a disconnect"
    ),
    "test_polling::test_an_oversize_post_is_413_and_ends_the_session": (
        "uvicorn de-chunks bodies: a chunk is seen as it arrives, not by its announced size"
        " (the Content-Length case is tested in test_asgi.py)"
    ),
    "test_polling::test_a_post_that_never_finishes_is_cut_at_handshake_timeout": _NO_SILENT_CLOSE,
    "test_polling::test_an_upgrade_with_an_unknown_sid_is_refused": _WS_REFUSAL,
    "test_polling_hostile::test_garbage_after_a_request_head": _PARSER,
    "test_polling_hostile::test_huge_headers_are_refused": _PARSER,
    "test_polling_hostile::test_a_head_that_never_ends_is_cut_at_handshake_timeout": (
        "the request head is uvicorn's to read: it has no deadline for it"
    ),
    "test_polling_hostile::test_an_upgrade_with_another_clients_sid_takes_its_session": (
        _WS_REFUSAL
    ),
    "test_polling_review::test_a_probe_that_piles_up_pongs_is_cut_at_max_buffer": _OWN_PINGS,
    "test_polling_review::test_shutdown_leaves_no_connection_serving_and_no_probe_open": (
        "uvicorn's graceful shutdown waits for requests under way (timeout_graceful_shutdown)"
    ),
    "test_backpressure::test_closing_a_client_that_stopped_reading_is_bounded": (
        "reads the standalone transport's write buffer (test_asgi.py has the ASGI case)"
    ),
    "test_backpressure::test_reads_stay_below_the_mmap_threshold_and_large_messages_still_arrive": (
        "the standalone server's read size; uvicorn reads with its own"
    ),
    "test_backpressure::test_a_peer_that_pings_and_never_reads_is_cut": _OWN_PINGS,
    "test_operators::test_compress_false_sends_that_packet_uncompressed_with_permessage_deflate": (
        "compression is uvicorn's (ws_per_message_deflate), not Server(compression=...)"
    ),
    "test_operators::test_await_close_disconnects_everyone_and_stops_listening": (
        "the listening socket is uvicorn's: io.close() ends every session, not the listener"
    ),
    "test_http_hooks::test_allow_request_refuses_a_websocket_before_the_101": _WS_REFUSAL,
    "test_http_hooks::test_an_async_allow_request_is_bounded_by_handshake_timeout": (
        _NO_SILENT_CLOSE
    ),
    "test_http_hooks::test_socket_request_over_websocket": (
        "ASGI lowercases request header names: socket.request.headers.raw_items() has them so"
    ),
}

_modules: list[ModuleType] = []


def _collect() -> None:
    here = globals()
    for name in MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        _modules.append(module)
        short = name.removeprefix("test_")
        for attr, value in vars(module).items():
            if not attr.startswith(("test_", "Test")) or getattr(value, "__module__", None) != (
                module.__name__
            ):
                continue
            why = NOT_HERE.get(f"{name}::{attr}")
            only = MODULES[name]
            if why is not None or (only is not None and attr not in only):
                continue
            alias = f"test_{short}__{attr.removeprefix('test_')}"
            if attr.startswith("Test"):
                alias = f"Test_{short}__{attr.removeprefix('Test')}"
            here[alias] = value
        # The module's own fixtures, under their own names (a test asks for them so).
        for attr, value in vars(module).items():
            if type(value).__name__ == "FixtureFunctionDefinition" and attr not in here:
                here[attr] = value


_collect()


def lower_head(raw: bytes) -> bytes:
    """An expected response as ASGI has it written: the header names lowercased.

    (ASGI hands the server lowercased names; uvicorn's own Date and Server
    headers are off in ``asgi_host``, so the rest is minisio's, byte for byte.)
    """
    if not raw.startswith(b"HTTP/1."):
        return raw  # nothing, or not a response
    head, sep, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    code = int(status.split(b" ")[1])  # uvicorn's reason phrases are Python's
    status = b"HTTP/1.1 %d %s" % (code, http.HTTPStatus(code).phrase.encode())
    lines = [name.lower() + b":" + value for name, _, value in (ln.partition(b":") for ln in lines)]
    # Where Connection goes is h11's choice (last, when the client asked to close).
    lines.sort(key=lambda line: line.startswith(b"connection:"))
    return b"\r\n".join([status, *lines]) + sep + body


def _titled(name: str) -> str:
    """minisio's spelling of a header name that ASGI lowercased (Content-Type, ...)."""
    return "-".join(part.capitalize() for part in name.split("-"))


def _lowered(build: Callable[..., bytes]) -> Callable[..., bytes]:
    return lambda *args, **kwargs: lower_head(build(*args, **kwargs))


def _lowered_async(read: Callable[..., Awaitable[bytes]]) -> Callable[..., Awaitable[bytes]]:
    async def lowered(*args: Any, **kwargs: Any) -> bytes:
        return lower_head(await read(*args, **kwargs))

    return lowered


#: The modules' builders of expected responses, and the responses they built at import.
_EXPECTED = ("response",)
_BUILT = ("UNKNOWN_SID", "BARE_400")


@pytest.fixture(autouse=True)
def _on_uvicorn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``running(io)`` of the borrowed tests serves ``io`` through uvicorn."""
    response = conftest.HttpClient.response

    async def titled(self: conftest.HttpClient, timeout: float = 2) -> Any:
        status, fields, body = await response(self, timeout)
        return status, [(_titled(name), value) for name, value in fields], body

    monkeypatch.setattr(conftest.HttpClient, "response", titled)
    # The raw clients' responses, as lower_head() writes the expected ones.
    polling = importlib.import_module(f"{__package__}.test_polling")
    raw_response = polling.Http.response

    async def lowered(self: Any, timeout: float = 2) -> Any:
        got = await raw_response(self, timeout)
        got.raw = lower_head(got.raw)
        return got

    monkeypatch.setattr(polling.Http, "response", lowered)
    hooks = importlib.import_module(f"{__package__}.test_http_hooks")
    monkeypatch.setattr(hooks, "exchange", _lowered_async(hooks.exchange))
    for module in _modules:
        if hasattr(module, "running"):
            monkeypatch.setattr(module, "running", asgi_host.asgi_running)
        for name in _EXPECTED:
            if callable(getattr(module, name, None)):
                monkeypatch.setattr(module, name, _lowered(getattr(module, name)))
        for name in _BUILT:
            if isinstance(getattr(module, name, None), bytes):
                monkeypatch.setattr(module, name, lower_head(getattr(module, name)))
    yield

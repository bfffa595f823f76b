"""What every Python bench server shares: arguments, the event loop, the ready line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

# Run from a checkout without installing: minisio is the package beside benchmarks/, or the
# one in the checkout MINISIO_SRC names (run.py --baseline: the same server, older code).
sys.path.insert(0, os.environ.get("MINISIO_SRC") or str(Path(__file__).resolve().parents[2]))

#: The one frame-size limit of every server, minisio's default max_payload.
MAX_SIZE = 1_000_000


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio")
    parser.add_argument("--profile", help="write a cProfile of the serving time to this file")
    parser.add_argument(
        "--redis", metavar="URL", help="minisio only: a cluster node, the Redis adapter on URL"
    )
    parser.add_argument(
        "--admin",
        choices=("development", "production"),
        help="minisio only: instrument() for the admin UI, one admin client watching",
    )
    return parser.parse_args()


def ready(port: int) -> None:
    """Tell run.py the port: the one line it waits for on stdout."""
    print(f"PORT {port}", flush=True)


def run(args: argparse.Namespace, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` on the chosen loop until SIGTERM/SIGINT; profile it if asked."""
    if args.uvloop:
        uvloop = importlib.import_module("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def until_signal() -> None:
        import signal

        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        task = asyncio.ensure_future(main())
        await asyncio.wait([stop, task], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()

    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(until_signal())
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        asyncio.run(until_signal())

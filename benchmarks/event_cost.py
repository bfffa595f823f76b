"""What one event costs inside the server, counted rather than timed. Prints numbers only.

    .venv/bin/python benchmarks/event_cost.py [--baseline DIR] [--events N]

An in-process echo with no network: a polling session is fed
``42["echo",{...}]`` records through ``Session.receive``; the handler answers
with ``socket.emit("echo", x)`` into the polling queue. For the code here and,
with ``--baseline``, another checkout (``git worktree add`` or ``git archive``
of an older commit), it prints:

- Python bytecodes executed per echo, per function (``sys.settrace`` with
  opcode events): exact and repeatable, whatever else the machine runs;
- machine instructions per echo, from ``valgrind --tool=callgrind`` when
  valgrind is installed (two runs of different lengths, so that start-up
  cancels out): repeatable to a fraction of a percent;
- wall time per echo (min of 30 short runs): the only one of the three that
  the noise of a shared machine moves.

Use it for a change to the per-event path, next to ``run.py``'s end-to-end
numbers, which on a busy machine move by more than such a change does.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRAME = '42["echo",{"text":"hello world","n":1}]'


class _Headers:
    @staticmethod
    def raw_items() -> list[tuple[str, str]]:
        return [("host", "127.0.0.1")]


class _Request:
    path = "/socket.io/?EIO=4&transport=polling"
    headers = _Headers()


async def _echo(events: int, mode: str) -> dict[str, Any]:
    import minisio
    from minisio import engine, polling

    io = minisio.Server()

    @io.on("connection")
    def connection(socket: minisio.Socket) -> None:
        @socket.on("echo")
        def echo(x: Any) -> None:
            socket.emit("echo", x)

    transport = polling.Polling()
    session = engine.Session(io, transport, _Request(), "127.0.0.1")
    transport.session = session
    session.open(("websocket",))
    session.receive("40")
    await asyncio.sleep(0)

    def run(n: int) -> None:
        for _ in range(n):
            session.receive(FRAME)
            if len(transport.queue) > 100:
                transport.queue.clear()
                transport.queued = 0

    run(10)  # the handler exists, the caches are warm
    result: dict[str, Any] = {"minisio": str(Path(minisio.__file__).parent)}
    if mode == "opcodes":
        counts: collections.Counter[str] = collections.Counter()

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            frame.f_trace_opcodes = True
            code = frame.f_code
            key = f"{Path(code.co_filename).name}:{code.co_name}"

            def local(frame: Any, event: str, arg: Any) -> Any:
                if event == "opcode":
                    counts[key] += 1
                return local

            return local

        sys.settrace(tracer)
        run(events)
        sys.settrace(None)
        result["opcodes"] = {k: v / events for k, v in counts.items()}
    elif mode == "wall":
        times = []
        for _ in range(30):
            started = time.perf_counter()
            run(events)
            times.append((time.perf_counter() - started) / events * 1e6)
        result["us"] = min(times)
    else:  # "plain": for valgrind
        run(events)
    session.close("server shutting down")
    return result


def _child(src: Path, mode: str, events: int, valgrind: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--child", mode, "--events", str(events)]
    if valgrind:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    return done.stdout + done.stderr


def _instructions(src: Path, events: int) -> float:
    def total(n: int) -> int:
        out = _child(src, "plain", n, valgrind=True)
        match = re.search(r"Collected : (\d+)", out)
        if match is None:
            raise RuntimeError(f"no count from callgrind:\n{out}")
        return int(match.group(1))

    return (total(events + 1000) - total(1000)) / events


def _measure(src: Path, events: int) -> dict[str, Any]:
    ops = json.loads(_child(src, "opcodes", 10).splitlines()[-1])
    wall = json.loads(_child(src, "wall", events).splitlines()[-1])
    result = {"minisio": ops["minisio"], "opcodes": ops["opcodes"], "us": wall["us"]}
    if shutil.which("valgrind"):
        result["instructions"] = _instructions(src, events)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout's root (has minisio/)")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--child", choices=["opcodes", "wall", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_echo(args.events, args.child))))
        return
    runs = {"here": _measure(ROOT, args.events)}
    if args.baseline:
        runs["baseline"] = _measure(args.baseline.resolve(), args.events)
    names = sorted({k for run in runs.values() for k in run["opcodes"]})
    print("| per echo | " + " | ".join(f"{n} ({r['minisio']})" for n, r in runs.items()) + " |")
    print("| --- |" + " ---: |" * len(runs))
    for name in names:
        cells = " | ".join(f"{r['opcodes'].get(name, 0):.0f}" for r in runs.values())
        print(f"| bytecodes in {name} | {cells} |")
    rows = [("bytecodes, total", lambda r: f"{sum(r['opcodes'].values()):.0f}")]
    if all("instructions" in r for r in runs.values()):
        rows.append(("machine instructions", lambda r: f"{r['instructions']:,.0f}"))
    rows.append(("wall time (min of 30)", lambda r: f"{r['us']:.2f} us"))
    for label, cell in rows:
        print(f"| **{label}** | " + " | ".join(cell(r) for r in runs.values()) + " |")


if __name__ == "__main__":
    main()

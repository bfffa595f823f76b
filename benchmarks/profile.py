"""Where minisio's server time goes under the echo and fan-out loads, sampled by py-spy.

    .venv/bin/python benchmarks/profile.py [--scenarios echo-50,fan-1000] [--seconds 4]

Installs py-spy into the venv if it is missing (pip). For each scenario it
starts a fresh minisio server, drives it with the load generator, samples the
server with ``py-spy record --format raw`` and prints the functions with the
most samples, by own time and including callees. The raw (collapsed) stacks
are kept in ``benchmarks/results/profile-<scenario>.txt`` for flame graphs.
A two-node scenario (``redis-fan-1000``) starts a fresh Redis and two minisio
nodes on it, as run.py does, and samples both nodes at once: node A (the
sender's, and half the receivers) in ``profile-<scenario>-a.txt``, node B
(receiving through Redis) in ``-b.txt``.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench


def py_spy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists() and shutil.which("py-spy") is None:
        bench.log("installing py-spy into the venv (pip) ...")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True, timeout=300
        )
    return str(exe) if exe.exists() else "py-spy"


def summarize(path: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames}:
            inclusive[name] += n
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", "including callees:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "send_many (minisio/connection.py:340)" -> keep the function and the file's tail.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def record(spy: str, args: argparse.Namespace, pid: int, out: Path) -> list[str]:
    cmd = [spy, "record", "--format", "raw", "--rate", "250", "--nonblocking"]
    cmd += ["-d", str(int(args.seconds)), "-o", str(out), "-p", str(pid)]
    if args.native:
        cmd.append("--native")
    return cmd


def two_nodes(
    spy: str,
    scenario: bench.Scenario,
    args: argparse.Namespace,
    load_args: argparse.Namespace,
    server_cores: set[int] | None,
    loadgen_cores: set[int] | None,
) -> None:
    """A redis-fan scenario: Redis, nodes A and B as in run.py, both sampled at once."""
    redis = bench.RedisProcess(loadgen_cores)
    nodes: list[bench.ServerProcess] = []
    outs = {n: bench.RESULTS / f"profile-{scenario.name}-{n}.txt" for n in ("a", "b")}
    try:
        for n in outs:
            nodes.append(
                bench.ServerProcess("minisio", load_args, server_cores, redis.url, f"-{n}")
            )
        redis.wait_subscribed(2)
        a, b = nodes
        result: dict[str, object] = {}
        driver = threading.Thread(
            target=lambda: result.update(
                bench.loadgen(
                    scenario, a.port, a.pid, load_args, loadgen_cores, (b.port, b.pid), redis.pid
                )
            )
        )
        driver.start()
        spies = [
            subprocess.Popen(
                record(spy, args, node.pid, out),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for node, out in zip(nodes, outs.values(), strict=True)
        ]
        for proc in spies:
            proc.wait(args.seconds + 60)
        driver.join()
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
    print(f"## minisio under {scenario.name}: {bench.describe(scenario, result)}\n")
    for n, out in outs.items():
        print(f"### node {n.upper()}\n")
        print(summarize(out, args.top))
        print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", default="echo-50,fan-1000")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    args = parser.parse_args()
    spy = py_spy()
    server_cores, loadgen_cores = bench.pinning()
    load_args = argparse.Namespace(
        duration=args.seconds + 1.0,
        warmup=0.5,
        idle_clients=None,
        uvloop=False,
        server_profile=None,
    )
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios.split(","):
        scenario = bench.SCENARIOS[name]
        if scenario.redis:
            two_nodes(spy, scenario, args, load_args, server_cores, loadgen_cores)
            continue
        out = bench.RESULTS / f"profile-{name}.txt"
        server = bench.ServerProcess("minisio", load_args, server_cores)
        result: dict[str, object] = {}
        driver = threading.Thread(
            target=lambda s=server, sc=scenario, r=result: r.update(
                bench.loadgen(sc, s.port, s.pid, load_args, loadgen_cores)
            )
        )
        driver.start()
        try:
            subprocess.run(
                record(spy, args, server.pid, out),
                check=True,
                timeout=args.seconds + 60,
                capture_output=True,
            )
        finally:
            driver.join()
            server.stop()
        print(f"## minisio under {name}: {bench.describe(scenario, result)}\n")
        print(summarize(out, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

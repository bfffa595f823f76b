"""Benchmark minisio against a raw websockets server, python-socketio and the Node server.

``make bench`` runs this file. See BENCHMARKS.md for the method. Progress goes
to stderr, the markdown tables to stdout, everything measured to
``benchmarks/results/latest.json``.

Every end-to-end measurement starts a fresh server process, pinned to one
core, and a load generator process (``loadgen.py``) pinned to another (the
two-node ``redis-fan`` scenarios: a fresh Redis and two server processes, both
servers on the first core, Redis and the load generator on the other). The
servers are run in a rotating order inside each repetition; the ratios
(minisio / other) are taken within one repetition and their median reported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
#: glibc's malloc for every Python server: big blocks from the heap, kept there. asyncio's
#: transport reads with recv(256 KiB); by default glibc serves that with mmap, mremap and
#: munmap on every read until some earlier free happens to raise its dynamic thresholds, so
#: a server's speed would hang on its import history (strace: raw websockets under echo-50,
#: 3 more system calls per message, ~half the throughput). Fixed values, of the size the
#: dynamic thresholds grow to (setting them turns that adjustment off), make the runs
#: comparable. minisio reads 64 KiB at a time and does not depend on them. A GLIBC_TUNABLES
#: of your own is left as it is, for every server alike.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=4194304"
PY = sys.executable

SERVERS = ("minisio", "raw", "psio", "node", "asgi", "psio-asgi")
LABELS = {
    "minisio": "minisio",
    "raw": "raw websockets",
    "psio": "python-socketio (aiohttp)",
    "node": "socket.io (Node)",
    "asgi": "minisio.ASGIApp (uvicorn)",
    "psio-asgi": "python-socketio ASGIApp (uvicorn)",
    "baseline": "minisio baseline (--baseline)",
    "admin-dev": "minisio + admin UI watching (development)",
    "admin-prod": "minisio + admin UI watching (production)",
}
#: minisio instrumented for the admin UI, with one admin client logged in and reading
#: (benchmarks/servers/admin_watcher.py, off the server's core): --servers minisio,admin-dev
#: gives the cost of instrument() as the paired ratio. Not in the default run.
ADMIN_SERVERS = {"admin-dev": "development", "admin-prod": "production"}
#: The servers that speak HTTP long-polling (the raw websockets server does not); a
#: --baseline checkout joins them when it has minisio/polling.py.
POLLING_SERVERS = {"minisio", "psio", "node", *ADMIN_SERVERS}
#: The servers with a Redis adapter (two nodes of a cluster in the redis-fan scenarios); a
#: --baseline checkout joins them when it has minisio/redis.py.
REDIS_SERVERS = {"minisio", "node"}
#: The two ASGI apps under the same uvicorn (benchmarks/servers/asgi_common.py), and the
#: scenarios they take part in.
ASGI_SERVERS = {"asgi", "psio-asgi"}
ASGI_SCENARIOS = {"echo-50", "fan-1000"}


# -- scenarios ------------------------------------------------------------------
class Scenario:
    def __init__(self, name: str, kind: str, clients: int, metric: str, unit: str) -> None:
        self.name, self.kind, self.clients, self.metric, self.unit = (
            name,
            kind,
            clients,
            metric,
            unit,
        )
        #: The clients use HTTP long-polling (only POLLING_SERVERS take part).
        self.polling = kind in ("poll-echo", "upgrade")
        #: A time: the ratio shown is other / minisio, so that above 1x is minisio ahead.
        self.lower_is_better = kind == "upgrade"
        #: Two nodes of a cluster through a fresh Redis (only REDIS_SERVERS take part).
        self.redis = kind == "redis-fan"

    def runs_on(self, server: str) -> bool:
        if server in ASGI_SERVERS:
            return self.name in ASGI_SCENARIOS
        if self.redis:
            return server in REDIS_SERVERS
        return not self.polling or server in POLLING_SERVERS


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("echo-1", "echo", 1, "messages_per_s", "msg/s"),
        Scenario("echo-50", "echo", 50, "messages_per_s", "msg/s"),
        Scenario("fan-100", "fan", 100, "deliveries_per_s", "deliveries/s"),
        Scenario("fan-1000", "fan", 1000, "deliveries_per_s", "deliveries/s"),
        Scenario("redis-fan-1000", "redis-fan", 1000, "deliveries_per_s", "deliveries/s"),
        Scenario("idle-2000", "idle", 2000, "rss_per_conn_kb", "KB/conn"),
        Scenario("poll-echo-1", "poll-echo", 1, "messages_per_s", "round trips/s"),
        Scenario("poll-echo-50", "poll-echo", 50, "messages_per_s", "round trips/s"),
        Scenario("upgrade-time", "upgrade", 100, "upgrade_p50_ms", "ms"),
    )
}

#: (label, scenario, metric, other server or None for an absolute value, wanted ratio/limit)
TARGETS: list[tuple[str, str, str, str | None, float]] = [
    ("echo 50 clients: minisio >= 0.90x raw", "echo-50", "messages_per_s", "raw", 0.90),
    ("echo 50 clients: minisio >= 4x python-socketio", "echo-50", "messages_per_s", "psio", 4.0),
    ("fan-out 1000: minisio >= 0.95x raw", "fan-1000", "deliveries_per_s", "raw", 0.95),
    ("fan-out 1000: minisio >= 1.0x Node", "fan-1000", "deliveries_per_s", "node", 1.0),
    (
        "redis-fan-1000: minisio >= 1.0x Node pair",
        "redis-fan-1000",
        "deliveries_per_s",
        "node",
        1.0,
    ),
    ("RSS per idle connection <= 16 KB", "idle-2000", "rss_per_conn_kb", None, 16.0),
    (
        "polling echo 50 clients: minisio >= 1.0x Node",
        "poll-echo-50",
        "messages_per_s",
        "node",
        1.0,
    ),
    (
        "polling echo 50 clients: minisio >= 3x python-socketio",
        "poll-echo-50",
        "messages_per_s",
        "psio",
        3.0,
    ),
]

#: (label, scenario, metric, server, other server, wanted server / other): ratios between two
#: servers that are not standalone minisio, paired within a repetition like the others.
PAIR_TARGETS: list[tuple[str, str, str, str, str, float]] = [
    (
        "echo 50 clients: minisio on uvicorn >= 2x python-socketio on uvicorn",
        "echo-50",
        "messages_per_s",
        "asgi",
        "psio-asgi",
        2.0,
    ),
    (
        "fan-out 1000: minisio on uvicorn >= 2x python-socketio on uvicorn",
        "fan-1000",
        "deliveries_per_s",
        "asgi",
        "psio-asgi",
        2.0,
    ),
]

#: (label, codec row field, wanted minisio / python-socketio ratio), for the first codec case
#: (the ~100 B chat event); chart.py marks these too, so they are written down once.
CODEC_TARGETS: list[tuple[str, str, float]] = [
    ("codec encode ~100 B event >= 10x python-socketio", "encode_ratio", 10.0),
    ("codec decode ~100 B event >= 5x python-socketio", "decode_ratio", 5.0),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- environment ----------------------------------------------------------------
def ensure_python_socketio(install: bool) -> str | None:
    """None when python-socketio and aiohttp import; else why they are skipped."""

    def missing() -> list[str]:
        return [m for m in ("socketio", "aiohttp") if importlib.util.find_spec(m) is None]

    if not missing():
        return None
    if not install:
        return f"not installed ({', '.join(missing())}) and --no-install given"
    log("installing python-socketio and aiohttp into the venv (pip) ...")
    try:
        subprocess.run(
            [PY, "-m", "pip", "install", "-q", "python-socketio", "aiohttp"],
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return f"pip install failed: {exc}"
    importlib.invalidate_caches()
    return None if not missing() else f"still missing after pip install: {missing()}"


def redis_reason() -> str | None:
    """None when the two-node scenarios can run: redis-server, and redis-py for minisio."""
    if shutil.which("redis-server") is None:
        return "redis-server is not on PATH"
    missing = [m for m in ("redis", "msgpack") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[redis]')"
    return None


def node_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (REPO / "node_modules" / "socket.io" / "package.json").is_file():
        return "node_modules/socket.io is missing (run npm ci)"
    return None


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "usable_cores": sorted(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    if shutil.which("node"):
        info["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    dists = ("websockets", "orjson", "python-socketio", "aiohttp", "uvloop", "redis", "msgpack")
    dists += ("uvicorn",)
    for dist in dists:
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            info[dist] = version(dist)
    for npm in ("socket.io", "@socket.io/redis-adapter", "redis"):
        with contextlib.suppress(Exception):
            pkg = json.loads((REPO / "node_modules" / npm / "package.json").read_text())
            info["socket.io" if npm == "socket.io" else f"npm {npm}"] = pkg["version"]
    return info


def pinning() -> tuple[set[int] | None, set[int] | None]:
    """Server core, load generator core: different ones when there are two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, {cores[1]}


def pinned(cores: set[int] | None) -> Callable[[], None] | None:
    if cores is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cores)

    return pin


# -- one measurement ------------------------------------------------------------
class ServerProcess:
    """A fresh server: started, its port read from its first ``PORT n`` line, stopped."""

    def __init__(
        self,
        server: str,
        args: argparse.Namespace,
        cores: set[int] | None,
        redis: str | None = None,
        node: str = "",
    ) -> None:
        if server == "node":
            cmd = ["node", str(HERE / "servers" / "node_server.mjs")]
        else:
            script = {
                "minisio": "minisio_server",
                "baseline": "minisio_server",
                "admin-dev": "minisio_server",
                "admin-prod": "minisio_server",
                "raw": "raw_ws_server",
                "psio": "psio_server",
                "asgi": "minisio_asgi_server",
                "psio-asgi": "psio_asgi_server",
            }
            cmd = [PY, str(HERE / "servers" / f"{script[server]}.py")]
            if args.uvloop:
                cmd.append("--uvloop")
            if args.server_profile:
                cmd += ["--profile", args.server_profile + node]
            if server in ADMIN_SERVERS:
                cmd += ["--admin", ADMIN_SERVERS[server]]
        if redis:
            cmd += ["--redis", redis]  # one node of a cluster: the Redis adapter
        self.log_path = RESULTS / "logs" / f"{server}{node}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = self.log_path.open("w")
        env = dict(os.environ)
        env.pop("MINISIO_SRC", None)
        if server == "baseline":
            env["MINISIO_SRC"] = str(args.baseline)  # the same server script, that minisio
        if server != "node":
            env.setdefault("GLIBC_TUNABLES", MALLOC_TUNABLES)
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            preexec_fn=pinned(cores),
        )
        self.port = self._read_port(timeout=20)

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(b"PORT "):
                    return int(line.split()[1])
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"server did not start, see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()


class RedisProcess:
    """A throw-away redis-server on a free port: no persistence, stopped by its pid."""

    def __init__(self, cores: set[int] | None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.log_path = RESULTS / "logs" / "redis.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(cores),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if self.command(b"PING") == b"+PONG":
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start, see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, *words: bytes) -> bytes:
        """One command, its reply: a line (``+PONG``) or a bulk string's bytes (CLIENT LIST)."""
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(request)
            reply = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("Redis closed the connection")
                reply += chunk
                head, sep, rest = reply.partition(b"\r\n")
                if not sep:
                    continue
                if not head.startswith(b"$"):
                    return head
                if len(rest) >= int(head[1:]) + 2:
                    return rest[: int(head[1:])]

    def wait_subscribed(self, n: int, timeout: float = 10) -> None:
        """Until ``n`` clients hold a pattern subscription: every node hears the broadcasts.

        (PUBSUB NUMPAT counts distinct patterns, and the nodes all subscribe the same one.)
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            clients = self.command(b"CLIENT", b"LIST").decode().splitlines()
            if sum(" psub=0 " not in f" {c} " for c in clients if " psub=" in f" {c} ") >= n:
                return
            time.sleep(0.02)
        raise RuntimeError(f"the nodes did not subscribe to Redis within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()


def loadgen(
    scenario: Scenario,
    port: int,
    server_pid: int,
    args: argparse.Namespace,
    cores: set[int] | None,
    node_b: tuple[int, int] | None = None,
    redis_pid: int | None = None,
) -> dict[str, Any]:
    """One load generator run; ``node_b`` (port, pid): the second node of a redis-fan run."""
    clients = scenario.clients
    if scenario.kind == "idle" and args.idle_clients:
        clients = args.idle_clients
    timeout = 30 + args.duration + args.warmup
    cmd = [
        PY,
        str(HERE / "loadgen.py"),
        "fan" if scenario.redis else scenario.kind,
        "--port",
        str(port),
        "--clients",
        str(clients),
        "--server-pid",
        str(server_pid),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--timeout",
        str(timeout),
    ]
    if node_b is not None:
        cmd += ["--port-b", str(node_b[0]), "--server-pid-b", str(node_b[1])]
    if redis_pid is not None:
        cmd += ["--redis-pid", str(redis_pid)]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            preexec_fn=pinned(cores),
        )
    except subprocess.TimeoutExpired:
        return {"error": "load generator timed out"}
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return {"error": f"load generator printed nothing: {proc.stderr[-500:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if node_b is not None and "server_cpu" in result:
        # "server CPU" of a two-node run: both nodes together, in cores; each one too.
        result["server_a_cpu"] = result["server_cpu"]
        result["server_cpu"] += result.get("server_b_cpu", 0.0)
    return result


def two_nodes(
    server: str,
    scenario: Scenario,
    args: argparse.Namespace,
    server_cores: set[int] | None,
    loadgen_cores: set[int] | None,
) -> dict[str, Any]:
    """A redis-fan run: a fresh Redis, two nodes of ``server`` on it, the load generator.

    With 2 cores and 4 processes one core each is impossible: both nodes share the
    servers' core, Redis shares the load generator's (it only relays one PUBLISH per
    event to one subscriber), for every server alike.
    """
    redis = RedisProcess(loadgen_cores)
    nodes: list[ServerProcess] = []
    try:
        for name in ("-a", "-b"):
            nodes.append(ServerProcess(server, args, server_cores, redis=redis.url, node=name))
        redis.wait_subscribed(2)
        a, b = nodes
        node_b = (b.port, b.pid)
        return loadgen(scenario, a.port, a.pid, args, loadgen_cores, node_b, redis.pid)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


def describe(scenario: Scenario, r: dict[str, Any]) -> str:
    if "error" in r:
        return "ERROR " + r["error"]
    if scenario.kind == "idle":
        return (
            f"{r['rss_per_conn_kb']:.1f} KB/conn, {r['connects_per_s']:,.0f} connects/s,"
            f" connect p50 {r['connect_p50_ms']:.1f} ms p99 {r['connect_p99_ms']:.1f} ms"
        )
    if scenario.kind == "upgrade":
        return (
            f"{r['sessions']} upgrades, p50 {r['upgrade_p50_ms']:.2f} ms"
            f" p99 {r['upgrade_p99_ms']:.2f} ms (3probe p50 {r['probe_p50_ms']:.2f} ms,"
            f" server cpu {r.get('server_cpu_ms', 0):.2f} ms per upgrade)"
        )
    if scenario.redis:
        return (
            f"{r[scenario.metric]:,.0f} {scenario.unit}, p50 {r['p50_ms']:.2f} ms"
            f" p99 {r['p99_ms']:.2f} ms (A {r['a_p50_ms']:.2f}/{r['a_p99_ms']:.2f},"
            f" B {r['b_p50_ms']:.2f}/{r['b_p99_ms']:.2f}; cpu A {r.get('server_a_cpu', 0):.0%}"
            f" B {r.get('server_b_cpu', 0):.0%} redis {r.get('redis_cpu', 0):.0%}"
            f" loadgen {r['loadgen_cpu']:.0%}, others {r.get('others_cpu', 0):.2f} cores)"
        )
    return (
        f"{r[scenario.metric]:,.0f} {scenario.unit}, p50 {r['p50_ms']:.2f} ms"
        f" p99 {r['p99_ms']:.2f} ms (server cpu {r.get('server_cpu', 0):.0%},"
        f" loadgen cpu {r['loadgen_cpu']:.0%}, others {r.get('others_cpu', 0):.2f} cores)"
    )


# -- summary --------------------------------------------------------------------
def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Medians per scenario and server, and the paired ratios minisio / other."""
    summary: dict[str, Any] = {}
    for name, by_server in runs.items():
        scenario = SCENARIOS[name]
        fields = (
            ["rss_per_conn_kb", "connects_per_s", "connect_p50_ms", "connect_p99_ms"]
            if scenario.kind == "idle"
            else [
                "upgrade_p50_ms",
                "upgrade_p99_ms",
                "probe_p50_ms",
                "server_cpu_ms",
                "loadgen_cpu",
                "others_cpu",
            ]
            if scenario.kind == "upgrade"
            else [
                scenario.metric,
                "per_cpu",
                "p50_ms",
                "p99_ms",
                "server_cpu",
                "loadgen_cpu",
                "others_cpu",
            ]
        )
        if scenario.redis:
            fields += ["a_p50_ms", "a_p99_ms", "b_p50_ms", "b_p99_ms"]
            fields += ["server_a_cpu", "server_b_cpu", "redis_cpu"]
        entry: dict[str, Any] = {"servers": {}, "ratios": {}, "ratios_per_cpu": {}}
        for server, reps in by_server.items():
            for r in reps:
                if (
                    "error" not in r
                    and scenario.kind not in ("idle", "upgrade")
                    and r.get("server_cpu")
                ):
                    # Work per server CPU-second: steadier than throughput on a busy machine.
                    r["per_cpu"] = r[scenario.metric] / r["server_cpu"]
            ok = [r for r in reps if "error" not in r]
            entry["servers"][server] = {f: median([r.get(f) for r in ok]) for f in fields}
            entry["servers"][server]["runs"] = len(ok)
            entry["servers"][server]["errors"] = [r["error"] for r in reps if "error" in r]
        mine = by_server.get("minisio", [])
        for other, reps in by_server.items():
            if other == "minisio":
                continue
            paired = [
                (
                    b[scenario.metric] / a[scenario.metric]
                    if scenario.lower_is_better
                    else a[scenario.metric] / b[scenario.metric]
                )
                for a, b in zip(mine, reps, strict=False)
                if "error" not in a
                and "error" not in b
                and a[scenario.metric]
                and b[scenario.metric]
            ]
            entry["ratios"][other] = median(paired)
            if scenario.kind not in ("idle", "upgrade"):
                entry["ratios_per_cpu"][other] = median(
                    [
                        a["per_cpu"] / b["per_cpu"]
                        for a, b in zip(mine, reps, strict=False)
                        if a.get("per_cpu") and b.get("per_cpu")
                    ]
                )
        entry["pairs"] = {}
        for _, target_scenario, metric, a_name, b_name, _ in PAIR_TARGETS:
            if target_scenario == name and a_name in by_server and b_name in by_server:
                pairs = zip(by_server[a_name], by_server[b_name], strict=False)
                entry["pairs"][f"{a_name}/{b_name}"] = median(
                    [a[metric] / b[metric] for a, b in pairs if a.get(metric) and b.get(metric)]
                )
        summary[name] = entry
    return summary


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def tables(
    summary: dict[str, Any],
    codec_rows: list[list[dict[str, Any]]],
    skipped: dict[str, str],
    info: dict[str, Any],
    reps: int,
) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    out.append(
        f"Machine: {info['nproc']} cores ({info['cpu']}), Python {info['python']},"
        f" Node {info.get('node', 'n/a')}, websockets {info.get('websockets')},"
        f" orjson {info.get('orjson')}, python-socketio {info.get('python-socketio', 'n/a')},"
        f" socket.io {info.get('socket.io', 'n/a')}; server loop: {info['server_loop']};"
        f" load generator loop: {info.get('loadgen_loop', '?')}; {reps} repetition(s), medians."
    )
    if info.get("baseline"):
        out[-1] += f" Baseline: minisio from {info['baseline']} ({info.get('baseline_commit')})."
    out.append("")
    if codec_rows:
        out.append("### Codec (ops/s, median of repetitions; ratio = minisio / python-socketio)")
        out.append("")
        out.append(
            "| packet | bytes | minisio encode | python-socketio encode | ratio"
            " | minisio decode | python-socketio decode | ratio |"
        )
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for i, first in enumerate(codec_rows[0]):
            rows = [rep[i] for rep in codec_rows]

            def m(key: str, rows: list[dict[str, Any]] = rows) -> float | None:
                return median([r.get(key) for r in rows])

            out.append(
                f"| {first['case']} | {first['bytes']:,} | {fmt(m('minisio_encode'), ',.0f')}"
                f" | {fmt(m('psio_encode'), ',.0f')} | {fmt(m('encode_ratio'), '.1f')}x"
                f" | {fmt(m('minisio_decode'), ',.0f')} | {fmt(m('psio_decode'), ',.0f')}"
                f" | {fmt(m('decode_ratio'), '.1f')}x |"
            )
        out.append("")
    out.append("### End to end over loopback (median of repetitions)")
    out.append("")
    out.append(
        "| scenario | server | throughput | p50 ms | p99 ms | server CPU | loadgen CPU"
        " | others' CPU | per server CPU-s | minisio / this | same, per CPU-s |"
    )
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, entry in summary.items():
        scenario = SCENARIOS[name]
        if scenario.kind in ("idle", "upgrade"):
            continue
        for server, s in entry["servers"].items():
            mine = server == "minisio"
            ratio = "" if mine else fmt(entry["ratios"].get(server), ".2f") + "x"
            per_cpu = "" if mine else fmt(entry["ratios_per_cpu"].get(server), ".2f") + "x"
            out.append(
                f"| {name} | {LABELS[server]} | {fmt(s[scenario.metric], ',.0f')} {scenario.unit}"
                f" | {fmt(s['p50_ms'], '.2f')} | {fmt(s['p99_ms'], '.2f')}"
                f" | {fmt(s['server_cpu'], '.0%')} | {fmt(s['loadgen_cpu'], '.0%')}"
                f" | {fmt(s['others_cpu'], '.2f')} | {fmt(s['per_cpu'], ',.0f')}"
                f" | {ratio} | {per_cpu}"
                + (f" ({len(s['errors'])} failed)" if s["errors"] else "")
                + " |"
            )
    clusters = [n for n in summary if SCENARIOS[n].redis]
    if clusters:
        out.append("")
        out.append(
            "### Two nodes through Redis (sender on node A, receivers half on A, half on B;"
            " server CPU above is A + B)"
        )
        out.append("")
        out.append(
            "| scenario | server | on A: p50 ms | p99 ms | on B: p50 ms | p99 ms"
            " | node A CPU | node B CPU | Redis CPU |"
        )
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in clusters:
            for server, s in summary[name]["servers"].items():
                out.append(
                    f"| {name} | {LABELS[server]} | {fmt(s['a_p50_ms'], '.2f')}"
                    f" | {fmt(s['a_p99_ms'], '.2f')} | {fmt(s['b_p50_ms'], '.2f')}"
                    f" | {fmt(s['b_p99_ms'], '.2f')} | {fmt(s['server_a_cpu'], '.0%')}"
                    f" | {fmt(s['server_b_cpu'], '.0%')} | {fmt(s['redis_cpu'], '.0%')} |"
                )
    idle = [n for n in summary if SCENARIOS[n].kind == "idle"]
    if idle:
        out.append("")
        out.append("### Idle connections")
        out.append("")
        out.append(
            "| scenario | server | server RSS per connection | connects/s"
            " | connect p50 ms | connect p99 ms |"
        )
        out.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for name in idle:
            for server, s in summary[name]["servers"].items():
                out.append(
                    f"| {name} | {LABELS[server]} | {fmt(s['rss_per_conn_kb'], '.1f')} KB"
                    f" | {fmt(s['connects_per_s'], ',.0f')} | {fmt(s['connect_p50_ms'], '.1f')}"
                    f" | {fmt(s['connect_p99_ms'], '.1f')} |"
                    + (f" ({len(s['errors'])} failed)" if s["errors"] else "")
                )
    upgrades = [n for n in summary if SCENARIOS[n].kind == "upgrade"]
    if upgrades:
        out.append("")
        out.append("### Upgrade from long-polling to WebSocket (sessions one after another)")
        out.append("")
        out.append(
            "| scenario | server | sessions | upgrade p50 ms | upgrade p99 ms | 3probe p50 ms"
            " | server CPU ms per upgrade | this / minisio (p50) |"
        )
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in upgrades:
            for server, s in summary[name]["servers"].items():
                ratio = (
                    "" if server == "minisio" else fmt(summary[name]["ratios"].get(server), ".2f")
                )
                out.append(
                    f"| {name} | {LABELS[server]} | {SCENARIOS[name].clients}"
                    f" | {fmt(s['upgrade_p50_ms'], '.2f')} | {fmt(s['upgrade_p99_ms'], '.2f')}"
                    f" | {fmt(s['probe_p50_ms'], '.2f')} | {fmt(s['server_cpu_ms'], '.2f')}"
                    f" | {ratio + 'x' if ratio else ''} |"
                    + (f" ({len(s['errors'])} failed)" if s["errors"] else "")
                )
    # Targets.
    checks: list[dict[str, Any]] = []
    for label, name, metric, other, wanted in TARGETS:
        entry = summary.get(name)
        value: float | None = None
        if entry is not None:
            if other is None:
                value = entry["servers"].get("minisio", {}).get(metric)
            else:
                value = entry["ratios"].get(other)
        if value is None:
            status = "not measured"
        elif other is None:
            status = "met" if value <= wanted else "missed"
        else:
            status = "met" if value >= wanted else "missed"
        shown = fmt(value, ".1f") + " KB" if other is None else fmt(value, ".2f") + "x"
        checks.append({"target": label, "value": value, "status": status})
        out_value = shown if value is not None else "n/a"
        checks[-1]["shown"] = out_value
    for label, name, _, a_name, b_name, wanted in PAIR_TARGETS:
        value = summary.get(name, {}).get("pairs", {}).get(f"{a_name}/{b_name}")
        status = "not measured" if value is None else ("met" if value >= wanted else "missed")
        checks.append(
            {
                "target": label,
                "value": value,
                "status": status,
                "shown": "n/a" if value is None else fmt(value, ".2f") + "x",
            }
        )
    if codec_rows:
        chat = [rep[0] for rep in codec_rows]
        for label, key, wanted in CODEC_TARGETS:
            value = median([r.get(key) for r in chat])
            status = "not measured" if value is None else ("met" if value >= wanted else "missed")
            checks.append(
                {
                    "target": label,
                    "value": value,
                    "status": status,
                    "shown": fmt(value, ".1f") + "x",
                }
            )
    out.append("")
    out.append("### Targets")
    out.append("")
    out.append("| target | measured | status |")
    out.append("| --- | ---: | --- |")
    for c in checks:
        out.append(f"| {c['target']} | {c['shown']} | {c['status']} |")
    if skipped:
        out.append("")
        for server, why in skipped.items():
            out.append(f"Skipped {LABELS[server]}: {why}.")
    return "\n".join(out), checks


# -- main -----------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition, short windows")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 2)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 0.5)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--idle-clients", type=int, help="clients of the idle scenario")
    parser.add_argument("--no-codec", action="store_true", help="skip the codec benchmarks")
    parser.add_argument("--no-install", action="store_true", help="never pip install")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another minisio checkout (e.g. a git worktree of an older commit): run it too, as "
        "server 'baseline' (same server script, MINISIO_SRC=DIR); in the polling scenarios only "
        "if it has minisio/polling.py",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of every Python server (auto: uvloop when installed, as minisio's "
        "'speed' extra; else asyncio)",
    )
    parser.add_argument("--server-profile", help=argparse.SUPPRESS)  # cProfile file, for profiling
    parser.add_argument("--budget", type=float, help="stop starting runs after this many seconds")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = parser.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 0.5)
    args.budget = args.budget or (110 if args.quick else 570)
    started = time.monotonic()

    # Enough file descriptors for 2000 clients on each side; children inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    servers = [s for s in args.servers.split(",") if s]
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "minisio" / "__init__.py").is_file():
            log(f"--baseline {args.baseline}: no minisio package there")
            return 2
        if "baseline" not in servers:
            servers.append("baseline")
        if (args.baseline / "minisio" / "polling.py").is_file():
            POLLING_SERVERS.add("baseline")
        if (args.baseline / "minisio" / "redis.py").is_file():
            REDIS_SERVERS.add("baseline")
    elif "baseline" in servers:
        log("server 'baseline' needs --baseline DIR")
        return 2
    scenarios = [SCENARIOS[s] for s in args.scenarios.split(",") if s]
    skipped: dict[str, str] = {}
    if any(s.redis for s in scenarios):
        why = redis_reason()
        if why:
            log(f"skipping the Redis scenarios: {why}")
            scenarios = [s for s in scenarios if not s.redis]
    if "psio" in servers or "psio-asgi" in servers:
        why = ensure_python_socketio(not args.no_install)
        if why:
            skipped.update({s: why for s in ("psio", "psio-asgi") if s in servers})
    if importlib.util.find_spec("uvicorn") is None:
        why = "uvicorn is not installed (pip install -r requirements-dev.txt)"
        skipped.update({s: why for s in sorted(ASGI_SERVERS) if s in servers})
    if "node" in servers:
        why = node_reason()
        if why:
            skipped["node"] = why
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    if args.loop == "uvloop" and not have_uvloop:
        log("--loop uvloop given but uvloop is not installed; pip install -e '.[speed]'")
        return 2
    args.uvloop = args.loop == "uvloop" or (args.loop == "auto" and have_uvloop)
    for server, why in skipped.items():
        log(f"skipping {LABELS[server]}: {why}")
    servers = [s for s in servers if s not in skipped]
    info = machine()
    info["server_loop"] = "uvloop" if args.uvloop else "asyncio"
    if args.baseline is not None:
        info["baseline"] = str(args.baseline)
        with contextlib.suppress(Exception):
            info["baseline_commit"] = subprocess.run(
                ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        LABELS["baseline"] = f"minisio baseline ({info.get('baseline_commit') or args.baseline})"
    server_cores, loadgen_cores = pinning()
    info["pinning"] = (
        f"server on core {sorted(server_cores)}, load generator on core {sorted(loadgen_cores)}"
        if server_cores and loadgen_cores
        else "none (fewer than 2 usable cores)"
    )
    if any(s.redis for s in scenarios) and server_cores and loadgen_cores:
        info["pinning"] += (
            f"; redis-fan: both nodes on core {sorted(server_cores)},"
            f" Redis and the load generator on core {sorted(loadgen_cores)}"
        )
    log(f"machine: {info['nproc']} x {info['cpu']}, load average {info['load_average']}")
    log(f"pinning: {info['pinning']}")

    sys.path.insert(0, str(HERE))
    import codec

    codec_rows: list[list[dict[str, Any]]] = []
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.name: {server: [] for server in servers if s.runs_on(server)} for s in scenarios
    }
    out_of_time = False
    for rep in range(args.reps):
        if time.monotonic() - started > args.budget:
            out_of_time = True
            break
        log(f"== repetition {rep + 1}/{args.reps}")
        if not args.no_codec:
            codec_rows.append(codec.run(0.15 if args.quick else 0.3, log=log))
        order = servers[rep % len(servers) :] + servers[: rep % len(servers)] if servers else []
        for scenario in scenarios:
            for server in order:
                if not scenario.runs_on(server):
                    continue
                if time.monotonic() - started > args.budget:
                    out_of_time = True
                    break
                if scenario.redis:
                    try:
                        result: dict[str, Any] = two_nodes(
                            server, scenario, args, server_cores, loadgen_cores
                        )
                    except RuntimeError as exc:
                        result = {"error": str(exc)}
                    info.setdefault("loadgen_loop", result.get("loadgen_loop"))
                    runs[scenario.name][server].append(result)
                    log(f"  {scenario.name:12} {LABELS[server]:26} {describe(scenario, result)}")
                    continue
                try:
                    proc = ServerProcess(server, args, server_cores)
                except RuntimeError as exc:
                    result = {"error": str(exc)}
                else:
                    try:
                        result = loadgen(scenario, proc.port, proc.pid, args, loadgen_cores)
                    finally:
                        proc.stop()
                info.setdefault("loadgen_loop", result.get("loadgen_loop"))
                runs[scenario.name][server].append(result)
                log(f"  {scenario.name:12} {LABELS[server]:26} {describe(scenario, result)}")
    if out_of_time:
        log(f"time budget of {args.budget:.0f}s used up: the results are partial")

    summary = summarize(runs)
    text, checks = tables(summary, codec_rows, skipped, info, args.reps)
    print(text)
    results = {
        "machine": info,
        "settings": {
            "reps": args.reps,
            "duration": args.duration,
            "warmup": args.warmup,
            "quick": args.quick,
            "partial": out_of_time,
        },
        "skipped": skipped,
        "codec": codec_rows,
        "runs": runs,
        "summary": summary,
        "targets": checks,
        "elapsed_s": time.monotonic() - started,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    log(f"wrote {out} in {time.monotonic() - started:.0f}s")
    draw_chart(results, out.with_suffix(".svg"))
    return 0


def draw_chart(results: dict[str, Any], path: Path) -> None:
    """The ratio chart next to the JSON; a drawing bug only warns, the measurements are saved."""
    try:
        import chart

        chart.write_svg(results, path)
    except Exception as exc:
        log(f"warning: could not draw the chart {path}: {exc!r}")
        return
    log(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

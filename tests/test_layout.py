"""The package's shape: a pure codec, and only two runtime dependencies."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = ["eio.py", "sio.py", "rooms.py", "http11.py"]
IO_MODULES = {"asyncio", "websockets", "socket", "selectors", "ssl", "threading"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_codec_modules_do_no_io(module: str) -> None:
    names = imported(ROOT / "minisio" / module)
    assert names, "the walk found no imports at all"
    assert not names & IO_MODULES, f"{module} imports {names & IO_MODULES}"


def test_only_the_websocket_transport_touches_websockets() -> None:
    users = {p.name for p in (ROOT / "minisio").glob("*.py") if "websockets" in imported(p)}
    assert users == {"websocket.py"}


def test_runtime_dependencies_are_websockets_and_orjson() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]
    }
    assert names == {"websockets", "orjson"}
    assert (ROOT / "minisio" / "py.typed").is_file()

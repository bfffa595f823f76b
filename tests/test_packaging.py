"""The package as a user gets it: ``python -m build``, a fresh venv, ``minisio`` from anywhere.

The sdist and the wheel are built from this checkout (with the pinned
setuptools and build, no network), the wheel is installed into a new venv
outside the checkout with its two dependencies from a local wheelhouse
(``build/wheelhouse``, filled from the package index on the first run only),
and the installed ``minisio`` command is started from an empty folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

import minisio
from minisio import files
from tests.conftest import UNIT

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIST = (ROOT / "node_modules" / "socket.io-client" / "dist").resolve()
WHEELHOUSE = ROOT / "build" / "wheelhouse"


def pins() -> list[str]:
    """The runtime dependencies as requirements-dev.txt pins them."""
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    return [line for line in lines if line.startswith(("websockets==", "orjson=="))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build`` of the checkout, then a fresh venv with the wheel installed."""
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    version = minisio.__version__
    wheel = out / f"minisio-{version}-py3-none-any.whl"
    sdist = out / f"minisio-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in out.iterdir())
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = ["--no-index", "--find-links", str(WHEELHOUSE)]
    get = [*pip, "download", "--only-binary", ":all:", "-d", str(WHEELHOUSE), *pins()]
    if subprocess.run([*get, *offline], capture_output=True).returncode != 0:
        subprocess.run(get, check=True, capture_output=True, timeout=120)  # first run only
    install = [*pip, "--python", str(venv / "bin" / "python"), "install", *offline, str(wheel)]
    # Not this process's PYTHONPATH: pip would take the checkout for an installed minisio.
    run = subprocess.run(install, capture_output=True, text=True, timeout=120, env=clean_env())
    assert run.returncode == 0, run.stdout + run.stderr
    return {"wheel": wheel, "sdist": sdist, "venv": venv}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINISIO_CLIENT_DIR")}
    env.pop("VIRTUAL_ENV", None)
    return {**env, **extra}


@contextmanager
def installed_server(
    venv: Path, cwd: Path, *args: str, **env: str
) -> Iterator[tuple[str, list[str]]]:
    """The installed ``minisio`` command on port 0, run in ``cwd``: (its URL, its log so far)."""
    proc = subprocess.Popen(
        [str(venv / "bin" / "minisio"), "--port", "0", *args],
        cwd=cwd,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        match = re.match(r"minisio chat on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + proc.stderr.read()
        log: list[str] = []
        # The startup log lines come before the URL is printed.
        os.set_blocking(proc.stderr.fileno(), False)
        log.extend((proc.stderr.read() or "").splitlines())
        yield match.group(1), log
    finally:
        proc.terminate()
        proc.wait(timeout=5 * UNIT)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urlopen(url, timeout=5 * UNIT) as reply:
            return reply.status, reply.read(), dict(reply.headers)
    except HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    version = project["tool"]["setuptools"]["dynamic"]["version"]
    assert version == {"attr": "minisio.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", minisio.__version__)
    assert f"## {minisio.__version__} " in (ROOT / "CHANGELOG.md").read_text()


def test_the_cdn_fallback_is_the_locked_version_with_its_hashes() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/socket.io-client"]["version"] == files.CLIENT_VERSION
    assert f"socket.io-client@{files.CLIENT_VERSION}/dist/" in files.CDN_BASE
    for name, integrity in files.CDN_INTEGRITY.items():
        digest = hashlib.sha384((CLIENT_DIST / name).read_bytes()).digest()
        assert integrity == "sha384-" + base64.b64encode(digest).decode(), name


def test_the_sdist_and_the_wheel(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        # The page in the package, one copy in git (static/); nothing from node_modules.
        for page in ("index.html", "chat.js", "chat.css"):
            assert f"minisio/static/{page}" in names
            assert wheel.read(f"minisio/static/{page}") == (ROOT / "static" / page).read_bytes()
        assert "minisio/py.typed" in names and "minisio/admin.py" in names
        assert not [n for n in names if "node_modules" in n or n.endswith(".min.js")]
        info = f"minisio-{minisio.__version__}.dist-info"
        meta = HeaderParser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert meta["Version"] == minisio.__version__ and meta["Name"] == "minisio"
    assert meta["License-Expression"] == "MIT" and meta["Requires-Python"] == ">=3.11"
    assert set(meta.get_all("Provides-Extra") or ()) == {"speed", "redis"}
    assert "Programming Language :: Python :: 3.11" in (meta.get_all("Classifier") or ())
    urls = {u.split(",")[0] for u in meta.get_all("Project-URL") or ()}
    assert {"Homepage", "Changelog", "Issues"} <= urls
    assert "minisio = minisio.__main__:main" in entry_points
    with tarfile.open(built["sdist"]) as sdist:
        top = f"minisio-{minisio.__version__}/"
        members = set(sdist.getnames())
    for path in ("static/index.html", "CHANGELOG.md", "README.md", "pyproject.toml", "LICENSE"):
        assert top + path in members


def test_the_installed_command_serves_the_page_and_the_npm_bundle(
    built: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "anywhere"
    empty.mkdir()
    venv = built["venv"]
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import minisio; print(minisio.__file__)"],
        cwd=empty,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where  # the installed copy, not this checkout
    with installed_server(venv, empty, "--client-dir", str(CLIENT_DIST)) as (url, log):
        assert f"the client bundle is served from {CLIENT_DIST}" in "\n".join(log)
        status, body, _ = get(url)
        assert status == 200 and body == (ROOT / "static" / "index.html").read_bytes()
        assert get(url + "chat.js")[1] == (ROOT / "static" / "chat.js").read_bytes()
        status, body, headers = get(url + "socket.io/socket.io.js")
        assert status == 200 and body == (CLIENT_DIST / "socket.io.js").read_bytes()
        assert headers["Content-Type"] == "text/javascript; charset=utf-8"
        # Headless Chromium joins the chat through the installed server.
        run = subprocess.run(
            [
                "node",
                str(ROOT / "tests" / "js" / "join_chat.mjs"),
                url,
                "Ada",
                "hello from a wheel",
            ],
            capture_output=True,
            text=True,
            timeout=60 * UNIT,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        page: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
        assert page["users"] == ["Ada"] and page["errors"] == [] and not page["missing"]
        assert url + "socket.io/socket.io.js" in page["scripts"]


def test_with_no_npm_bundle_the_page_loads_the_cdn_one(
    built: dict[str, Path], tmp_path: Path
) -> None:
    with installed_server(built["venv"], tmp_path) as (url, log):
        said = "\n".join(log)
        assert "no socket.io-client installed" in said and files.CDN_BASE in said
        status, body, _ = get(url)
        assert status == 200
        page = body.decode()
        cdn = (
            f'<script defer src="{files.CDN_BASE}socket.io.js" '
            f'integrity="{files.CDN_INTEGRITY["socket.io.js"]}" crossorigin="anonymous"></script>'
        )
        assert cdn in page and 'src="/socket.io/socket.io.js"' not in page
        # Only that tag differs from the page in the package.
        original = (ROOT / "static" / "index.html").read_text()
        assert page == original.replace(
            '<script defer src="/socket.io/socket.io.js"></script>', cdn
        )
        assert get(url + "socket.io/socket.io.js")[0] == 404
        assert get(url + "chat.js")[0] == 200


def test_python_dash_m_and_version(built: dict[str, Path], tmp_path: Path) -> None:
    run = subprocess.run(
        [str(built["venv"] / "bin" / "python"), "-m", "minisio", "--version"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == f"minisio {minisio.__version__}"

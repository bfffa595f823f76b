"""Files served over plain HTTP: the static folder and the official client bundle.

Pure decisions on paths, plus reading the file: each function returns the
status, the headers and the body of the answer; :mod:`minisio.http` writes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import unquote

__all__ = ["CLIENT_FILES", "Reply", "client_file", "static_file", "text"]

logger = logging.getLogger("minisio")

Reply = tuple[int, list[tuple[str, str]], bytes]

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

CLIENT_FILES = (
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
)

_REPO = Path(__file__).resolve().parent.parent
_MAX_STATIC_FILE = 8 * 2**20
_warned = False


def text(status: int, body: str, *headers: tuple[str, str]) -> Reply:
    """A short plain-text answer."""
    return status, [("Content-Type", "text/plain; charset=utf-8"), *headers], body.encode()


def static_file(root: Path | None, path: str) -> Reply:
    """The file at URL ``path`` under ``root`` (``index.html`` for a folder), or 4xx.

    Traversal, encoded separators, backslashes, NULs and symlinks out of
    ``root`` are refused.
    """
    if root is None:
        return text(404, "Not Found\n")
    name = unquote(path)
    if "\\" in name or "\0" in name or not name.startswith("/"):
        return text(400, "Bad Request\n")
    parts = [p for p in name.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return text(404, "Not Found\n")
    target = root.joinpath(*parts) if parts else root
    try:  # any OSError, e.g. ENAMETOOLONG from is_dir(), means no such file
        if target.is_dir():
            target = target / "index.html"
        real = target.resolve(strict=True)
        if not real.is_relative_to(root) or not real.is_file():
            return text(404, "Not Found\n")
        return _file(real)
    except (OSError, RuntimeError):
        return text(404, "Not Found\n")


def client_file(name: str) -> Reply:
    """One file of the installed npm ``socket.io-client`` bundle (``dist/``)."""
    global _warned
    for base in _client_dirs():
        candidate = base / name
        if candidate.is_file():
            return _file(candidate)
    if not _warned:
        _warned = True
        logger.warning(
            "the Socket.IO client bundle is missing: run `npm ci` in %s "
            "to install socket.io-client",
            _REPO,
        )
    return text(
        404,
        "socket.io-client is not installed: run `npm ci` in the minisio "
        "checkout (or set MINISIO_CLIENT_DIR to its dist/ folder)\n",
    )


def _client_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("MINISIO_CLIENT_DIR")
    if env:
        dirs.append(Path(env))
    for base in (Path.cwd(), _REPO):
        dirs.append(base / "node_modules" / "socket.io-client" / "dist")
    return dirs


def _file(path: Path) -> Reply:
    if path.stat().st_size > _MAX_STATIC_FILE:
        # Read whole and on the event loop: fine for a page and its scripts, not for media.
        logger.warning("not serving %s: larger than %d bytes", path.name, _MAX_STATIC_FILE)
        return text(404, "Not Found\n")
    content_type = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    headers = [
        ("Content-Type", content_type),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return 200, headers, path.read_bytes()

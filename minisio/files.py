"""Files served over plain HTTP: the static folder, mounts, and the official client bundle.

Pure decisions on paths, plus reading the file: each function returns the
status, the headers and the body of the answer; :mod:`minisio.http` writes it.

Where the client bundle comes from, in this order (:func:`client_dirs`):
``$MINISIO_CLIENT_DIR`` (a ``socket.io-client/dist`` folder), then
``./node_modules/socket.io-client/dist`` under the current folder, then the
same under the minisio checkout (when minisio runs from one). When none has
it, a page served from the static folder is rewritten to load the same
version from the public CDN, with its subresource-integrity hash
(:data:`CDN_INTEGRITY`), so that it works from a bare ``pip install``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from .server import Server

__all__ = [
    "CDN_INTEGRITY",
    "CLIENT_FILES",
    "CLIENT_VERSION",
    "Reply",
    "client_dir",
    "client_dirs",
    "client_file",
    "client_source",
    "default_static_dir",
    "http_file",
    "static_file",
    "text",
]

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

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent  # the checkout, when minisio runs from one (see _checkout())
_MAX_STATIC_FILE = 8 * 2**20
_warned = False

#: The socket.io-client version package-lock.json pins; the CDN fallback loads the same.
CLIENT_VERSION = "4.8.4"
#: jsDelivr serves the npm tarball's files byte for byte, so the hashes of
#: node_modules' copies hold for it (tests/test_packaging.py checks them).
CDN_BASE = f"https://cdn.jsdelivr.net/npm/socket.io-client@{CLIENT_VERSION}/dist/"
#: Subresource integrity of the CDN files a page may load (W3C SRI, "sha384-" + base64).
CDN_INTEGRITY = {
    "socket.io.js": "sha384-Reot/vo8FFwN0x9+TUlfgfqhwfzvBM0YeCDPf977fZzLqc55oTKZGNv8BZA0LR4J",
    "socket.io.min.js": "sha384-fBrXvbDtHoeKWJ/hcA6M+YGueiDW+h45I7V6F2kD1S8bOkrF9rZYPLVkCR6BLR/1",
}


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


def http_file(server: Server, path: str) -> Reply:
    """The answer to a GET of ``path`` outside the Engine.IO path.

    A folder mounted at a prefix of ``path`` (the admin UI at ``/admin/``)
    answers first, then the static folder. A static HTML page whose client
    bundle is not installed here gets its ``<script src="/socket.io/socket.io.js">``
    pointed at the CDN, with the file's integrity hash.
    """
    for prefix, root in server._mounts.items():
        if path == prefix[:-1]:  # "/admin": its pages use relative URLs, so "/admin/"
            return 308, [("Location", prefix)], b""
        if path.startswith(prefix):
            return static_file(root, path[len(prefix) - 1 :])
    reply = static_file(server.static_dir, path)
    status, headers, body = reply
    html = status == 200 and headers[0][1].startswith("text/html")
    if html and server.serve_client and client_dir() is None:
        return status, headers, _cdn_scripts(body, server.path)
    return reply


def _cdn_scripts(html: bytes, path: str) -> bytes:
    """``html`` with its script tags of the local bundle loading the CDN's instead."""
    pattern = re.compile(rb'src="' + re.escape(path.encode()) + rb'(socket\.io(?:\.min)?\.js)"')

    def cdn(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode()
        return (
            f'src="{CDN_BASE}{name}" integrity="{CDN_INTEGRITY[name]}" crossorigin="anonymous"'
        ).encode()

    return pattern.sub(cdn, html)


def default_static_dir() -> Path | None:
    """The chat page: the wheel's ``minisio/static``, else the checkout's ``static/``."""
    for folder in (_PACKAGE / "static", _REPO / "static"):
        if (folder / "index.html").is_file():
            return folder
    return None


def client_file(name: str) -> Reply:
    """One file of the installed npm ``socket.io-client`` bundle (``dist/``)."""
    global _warned
    folder = client_dir()
    if folder is not None and (folder / name).is_file():
        return _file(folder / name)
    if not _warned:
        _warned = True
        logger.warning(
            "the Socket.IO client bundle is not installed (looked in %s): run `npm ci` "
            "or set MINISIO_CLIENT_DIR to a socket.io-client dist/ folder",
            ", ".join(map(str, client_dirs())),
        )
    return text(
        404,
        "socket.io-client is not installed here: run `npm ci` (or set "
        "MINISIO_CLIENT_DIR to its dist/ folder)\n",
    )


def client_dirs() -> list[Path]:
    """Where the client bundle is looked for, in order (see the module's docstring)."""
    dirs = []
    env = os.environ.get("MINISIO_CLIENT_DIR")
    if env:
        dirs.append(Path(env).resolve())
    bases = [Path.cwd()]
    if _checkout() and Path.cwd() != _REPO:
        bases.append(_REPO)
    for base in bases:
        dirs.append(base / "node_modules" / "socket.io-client" / "dist")
    return dirs


def client_dir() -> Path | None:
    """The first of :func:`client_dirs` that has the bundle, or None."""
    for folder in client_dirs():
        if (folder / "socket.io.js").is_file():
            return folder
    return None


def client_source() -> str:
    """Where a page's client bundle comes from, for the startup log."""
    folder = client_dir()
    if folder is not None:
        return f"the client bundle is served from {folder}"
    looked = ", ".join(map(str, client_dirs()))
    return (
        f"no socket.io-client installed (looked in {looked}): the page loads "
        f"socket.io-client {CLIENT_VERSION} from {CDN_BASE} (pinned, with integrity)"
    )


def _checkout() -> bool:
    """minisio runs from a git checkout (not from an installed wheel)."""
    return (_REPO / "pyproject.toml").is_file() and (_REPO / "minisio").is_dir()


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

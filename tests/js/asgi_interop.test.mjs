// The interop suite (interop.test.mjs) once more, every fixture server hosted by
// uvicorn as minisio.ASGIApp instead of minisio's own server: tests/js/server.py
// reads MINISIO_HOST, and the official client in its three modes must not tell
// the two hosts apart.

process.env.MINISIO_HOST = "uvicorn";
await import("./interop.test.mjs");

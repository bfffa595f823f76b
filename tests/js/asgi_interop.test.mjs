// The interop suite (interop.test.mjs) once more, every fixture server hosted by
// uvicorn as minisio.ASGIApp instead of minisio's own server: tests/js/server.py
// reads MINISIO_HOST, and the official client in its three modes must not tell
// the two hosts apart. To keep the suite short, the cases that start a server
// of their own per mode are left out here (MINISIO_INTEROP_SHARED_ONLY): the
// shared servers (routes, acks, binary, namespaces, rooms, limits) and the
// upgrade cases run; `MINISIO_HOST=uvicorn node --test tests/js/interop.test.mjs`
// runs all of it under uvicorn.

process.env.MINISIO_HOST = "uvicorn";
process.env.MINISIO_INTEROP_SHARED_ONLY = "1";
await import("./interop.test.mjs");

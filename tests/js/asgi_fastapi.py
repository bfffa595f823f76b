"""A FastAPI app and minisio on one port: ``uvicorn tests.js.asgi_fastapi:app``.

The chat of ``python -m minisio`` (its page, from minisio's static folder, and
its events), mounted in a FastAPI app that keeps its own routes and lifespan;
a REST endpoint emits to a room. Everything above the "test runner" line is
the README's FastAPI example, word for word (tests/test_asgi.py checks).
"""

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel

import minisio
from minisio.__main__ import create_app

STATIC = Path(minisio.__file__).resolve().parent.parent / "static"
io = create_app(static_dir=STATIC)  # the demo chat's events
sio_app = minisio.ASGIApp(io)


@io.on("connection")
def rooms(socket: minisio.Socket) -> None:
    @socket.on("join_room")
    def join_room(room: str) -> list[str]:
        socket.join(room)
        return sorted(socket.rooms)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with sio_app.lifespan():  # minisio starts before the app and stops after it
        app.state.started = time.time()
        yield
        app.state.stopped = time.time()


app = FastAPI(lifespan=lifespan)


class Notice(BaseModel):
    text: str


@app.post("/api/rooms/{room}/notice")
def notice(room: str, body: Notice) -> dict[str, int]:
    io.to(room).emit("notice", body.text)  # no await: emits are synchronous
    return {"sockets": len(io.sockets)}


@app.get("/api/health")
def health() -> dict[str, float | int]:
    return {"started": app.state.started, "sessions": io.clients_count}


app.mount("/", sio_app)  # last: the chat page, /socket.io/, and whatever else is not FastAPI's

# -- test runner: serve on 127.0.0.1, port 0, and tell what happened ------------------------
if __name__ == "__main__":
    import asyncio
    import signal
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests import asgi_host

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = asgi_host.uvicorn_server(app, lifespan="on")
        task, port = await asgi_host.start(server)
        print(f"listening http://127.0.0.1:{port}", flush=True)
        await stop.wait()
        server.should_exit = True
        await task
        stopped = getattr(app.state, "stopped", None)
        print(f"lifespan shutdown ran: {stopped is not None}", file=sys.stderr, flush=True)
        print(f"minisio serving after shutdown: {io._serving}", file=sys.stderr, flush=True)

    asyncio.run(main())

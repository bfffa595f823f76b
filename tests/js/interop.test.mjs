// Interop: the official socket.io-client (Node) against minisio, real processes on 127.0.0.1.
//
// Each test starts tests/js/server.py as a child process (or shares one per
// `describe`), connects with `io(url, { transports: ["websocket"] })` and
// closes every client and server it made. Timeouts are multiples of UNIT
// seconds; a slow machine can scale them with MINISIO_TEST_UNIT.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const UNIT = Number(process.env.MINISIO_TEST_UNIT ?? "1") * 1000; // ms
const PYTHON =
  process.env.MINISIO_PYTHON ?? fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));
const SERVER = fileURLToPath(new URL("./server.py", import.meta.url));
const WS = { transports: ["websocket"] };
const TEST = { timeout: 15 * UNIT };

// -- servers -----------------------------------------------------------------

/** Start the fixture server; resolves once it prints its URL. */
function startServer({ port = 0, pingInterval, pingTimeout, maxPayload, compression } = {}) {
  const args = [SERVER, "--port", String(port)];
  if (pingInterval !== undefined) args.push("--ping-interval", String(pingInterval));
  if (pingTimeout !== undefined) args.push("--ping-timeout", String(pingTimeout));
  if (maxPayload !== undefined) args.push("--max-payload", String(maxPayload));
  if (compression) args.push("--compression");
  const proc = spawn(PYTHON, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server not ready in time\n${stderr}`)),
      10 * UNIT,
    );
    proc.stdout.setEncoding("utf8").on("data", (chunk) => {
      stdout += chunk;
      const match = /listening (http:\/\/127\.0\.0\.1:(\d+))/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], port: Number(match[2]) });
      }
    });
    proc.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening\n${stderr}`));
    });
  });
  return ready.then(({ url, port }) => ({
    url,
    port,
    proc,
    stderr: () => stderr,
    /** SIGTERM (a clean "server shutting down"), SIGKILL if it lingers. */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3 * UNIT);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  }));
}

/** A server for one test, stopped when the test ends. */
async function serverFor(t, options) {
  const server = await startServer(options);
  t.after(() => server.stop());
  return server;
}

// -- clients -----------------------------------------------------------------

/** A client socket, closed when the test ends. Does not wait for the connection. */
function client(t, url, options = {}) {
  const socket = io(url, { forceNew: true, ...WS, ...options });
  t.after(() => socket.close()); // also closes its Manager once no socket uses it
  return socket;
}

/** A client that has connected (its `connect` event fired). */
async function connected(t, url, options = {}) {
  const socket = client(t, url, options);
  await connection(socket);
  return socket;
}

/** Resolves on `connect`, rejects with the `connect_error`. */
function connection(socket, ms = 5 * UNIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(reject, new Error("no connect in time")), ms);
    timer.unref();
    const onConnect = () => done(resolve, socket);
    const onError = (err) => done(reject, err);
    function done(fn, value) {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      fn(value);
    }
    socket.once("connect", onConnect);
    socket.once("connect_error", onError);
  });
}

/**
 * The arguments of the next `event` on `emitter`, or a rejection after `ms`.
 * A test that fails before awaiting it leaves neither an unhandled rejection
 * nor a timer holding the process open.
 */
function next(emitter, event, ms = 5 * UNIT) {
  const promise = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    timer.unref();
    function listener(...args) {
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    }
    emitter.on(event, listener);
  });
  promise.catch(() => {});
  return promise;
}

/** Every payload of `event` received from now on. */
function record(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(args.length === 1 ? args[0] : args));
  return seen;
}

/** A round trip on each socket: whatever the server sent it before is in by now. */
async function settle(...sockets) {
  await Promise.all(sockets.map((s) => s.timeout(5 * UNIT).emitWithAck("whoami")));
}

/** Why the server says socket `id` disconnected, asked through `via`; waits for it. */
async function serverReason(via, id, ms = 3 * UNIT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const reason = await via.timeout(ms).emitWithAck("reason", id);
    // No reason yet is an ack without arguments (the handler returned None).
    if (reason !== undefined || Date.now() > deadline) return reason;
    await sleep(20);
  }
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");

// -- one shared server for the plain request/response cases -------------------

describe("with one server", () => {
  let server;
  let url;
  before(async () => {
    server = await startServer();
    url = server.url;
  });
  after(() => server.stop());

  test("connects over WebSocket; socket.id is the server's id", TEST, async (t) => {
    const socket = client(t, url, { auth: { name: "ada", n: 1 }, query: { room: "x y" } });
    const welcome = next(socket, "welcome"); // emitted by the server's connection handler
    await connection(socket);
    assert.deepEqual(await welcome, [socket.id]);
    assert.equal(socket.io.engine.transport.name, "websocket");
    assert.match(socket.id, /^[A-Za-z0-9_-]{20}$/);
    assert.notEqual(socket.id, socket.io.engine.id, "the socket id is not the Engine.IO sid");
    const me = await socket.emitWithAck("whoami");
    assert.deepEqual(me.id, socket.id);
    assert.deepEqual(me.nsp, "/");
    assert.deepEqual(me.auth, { name: "ada", n: 1 });
    assert.equal(me.query.room, "x y");
    assert.equal(me.query.EIO, "4");
    assert.equal(me.query.transport, "websocket");
  });

  test("client disconnect: the server sees \"client namespace disconnect\"", TEST, async (t) => {
    const observer = await connected(t, url);
    const socket = await connected(t, url);
    const id = socket.id;
    const disconnected = next(socket, "disconnect");
    socket.disconnect();
    assert.equal((await disconnected)[0], "io client disconnect");
    assert.equal(await serverReason(observer, id), "client namespace disconnect");
    // connect() again: a new CONNECT on a new connection, a new socket id.
    socket.connect();
    await connection(socket);
    assert.notEqual(socket.id, id);
    assert.equal((await socket.emitWithAck("whoami")).id, socket.id);
  });

  test("client -> server acks: emitWithAck, several values, timeout()", TEST, async (t) => {
    const socket = await connected(t, url);
    assert.equal(await socket.emitWithAck("sum", 2, 3), 5);
    assert.equal(await socket.timeout(2 * UNIT).emitWithAck("sum", 0.5, 0.25), 0.75);

    // A tuple returned by the handler is an ack with several arguments;
    // the handler also emits "echo" back with the same arguments.
    const echoed = next(socket, "echo");
    const acked = await new Promise((resolve) =>
      socket.emit("echo", 1, "two", { three: [3, null, true] }, (...args) => resolve(args)),
    );
    assert.deepEqual(acked, [1, "two", { three: [3, null, true] }]);
    assert.deepEqual(await echoed, [1, "two", { three: [3, null, true] }]);

    // A handler that answers within the timeout, then one that is too slow.
    assert.equal(await socket.timeout(2 * UNIT).emitWithAck("slow", 20, "in time"), "in time");
    const started = Date.now();
    await assert.rejects(socket.timeout(200).emitWithAck("slow", 1000, "late"), {
      message: "operation has timed out",
    });
    assert.ok(Date.now() - started >= 190);
    // The late ack, when it comes, is ignored and the socket keeps working.
    assert.equal(await socket.emitWithAck("sum", 1, 1), 2);
    assert.ok(socket.connected);

    // Text beyond ASCII, both ways.
    const text = "héllo ✓ 😀 \u0000 \"quoted\" \\";
    assert.equal(await socket.emitWithAck("echo", text), text);
  });

  test("client retries (ackTimeout + retries) are answered like plain acks", TEST, async (t) => {
    const socket = await connected(t, url, { ackTimeout: 300, retries: 2 });
    assert.equal(await socket.emitWithAck("sum", 1, 2), 3);
    // The first try times out on the client (300 ms), the second is answered at
    // once: well before the first one's 10 units would have run out.
    const started = Date.now();
    assert.equal(await socket.emitWithAck("once_slow", `retry-${socket.id}`, 10 * UNIT), 2);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 10 * UNIT, `answered after ${elapsed} ms`);
  });

  test("server -> client acks: emit_with_ack answered, and timed out", TEST, async (t) => {
    const socket = await connected(t, url);
    socket.on("double", (x, ack) => ack(x * 2));
    socket.on("pair", (a, b, ack) => ack(a + b, "extra"));
    socket.on("blob", (ack) => ack({ data: Buffer.from([1, 2, 3]) }));
    socket.on("ignored", () => {}); // never calls the ack

    assert.deepEqual(await socket.emitWithAck("ask", "double", [21], 2), { ok: true, result: 42 });
    assert.deepEqual(await socket.emitWithAck("ask", "pair", [2, 3], 2), {
      ok: true,
      result: [5, "extra"],
    });
    assert.deepEqual(await socket.emitWithAck("ask", "blob", [], 2), {
      ok: true,
      result: { data: { bytes: "010203" } },
    });

    let started = Date.now();
    assert.deepEqual(await socket.emitWithAck("ask", "ignored", [], 0.3), {
      ok: false,
      error: "timeout",
    });
    assert.ok(Date.now() - started >= 280, "the server waited for its timeout");
    started = Date.now();
    assert.deepEqual(await socket.emitWithAck("ask", "nobody-listens", [], 0.2), {
      ok: false,
      error: "timeout",
    });
    assert.ok(Date.now() - started >= 180);
    assert.ok(socket.connected);
  });

  test("binary both ways: Buffer, ArrayBuffer, Uint8Array nested in objects", TEST, async (t) => {
    const socket = await connected(t, url);
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const view = new Uint8Array([9, 8, 7, 6, 5]);
    const arrayBuffer = new Uint8Array([0xde, 0xad, 0xbe, 0xef]).buffer;
    const slice = new Uint8Array(all.buffer, all.byteOffset + 16, 3); // a view into a larger buffer
    const payload = {
      buffer: all,
      nested: [{ arrayBuffer }, [view, "text", 1]],
      plain: { n: 1 },
      slice,
    };

    // What the server decoded: every buffer in place, byte for byte.
    assert.deepEqual(await socket.emitWithAck("describe", payload), {
      buffer: { bytes: hex(all) },
      nested: [{ arrayBuffer: { bytes: "deadbeef" } }, [{ bytes: "0908070605" }, "text", 1]],
      plain: { n: 1 },
      slice: { bytes: "101112" },
    });

    // Round trip: the server sends the bytes back in its ack and in an event.
    const echoed = next(socket, "echo");
    const [back] = await new Promise((resolve) =>
      socket.emit("echo", payload, (...args) => resolve(args)),
    );
    for (const got of [back, (await echoed)[0]]) {
      assert.ok(Buffer.isBuffer(got.buffer));
      assert.ok(got.buffer.equals(all));
      assert.equal(hex(got.nested[0].arrayBuffer), "deadbeef");
      assert.equal(hex(got.nested[1][0]), "0908070605");
      assert.deepEqual(got.nested[1].slice(1), ["text", 1]);
      assert.deepEqual(got.plain, { n: 1 });
      assert.equal(hex(got.slice), "101112");
    }

    // Bytes made on the server, including an empty buffer.
    const made = await socket.emitWithAck("make_binary");
    assert.ok(made.all.equals(all));
    assert.ok(Buffer.isBuffer(made.nested[0]));
    assert.equal(made.nested[0].length, 0);
    assert.equal(hex(made.nested[1].deep), "00ff00");
    assert.equal(made.text, "not binary");
  });

  test("four routes, three clients: who receives and who does not", TEST, async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => connected(t, url)));
    const seen = new Map([a, b, c].map((s) => [s, record(s, "routed")]));
    const names = new Map([[a, "a"], [b, "b"], [c, "c"]]);
    const got = (s) => seen.get(s).map((m) => `${m.route}:${m.payload}`);
    const reset = () => seen.forEach((list) => list.splice(0));

    const cases = [
      ["all", undefined, [a, b, c]],
      ["me", undefined, [a]],
      ["broadcast", undefined, [b, c]],
      ["to_id", b.id, [b]],
      ["to_id", c.id, [c]],
    ];
    for (const [route, to, receivers] of cases) {
      reset();
      assert.equal(await a.emitWithAck("route", route, `${route}-${to}`, to ?? null), true);
      await settle(a, b, c); // anything routed to b or c has arrived by now
      for (const s of [a, b, c]) {
        const expected = receivers.includes(s) ? [`${route}:${route}-${to}`] : [];
        assert.deepEqual(got(s), expected, `${route} ${to ?? ""} seen by ${names.get(s)}`);
      }
      for (const s of receivers) assert.equal(seen.get(s)[0].from, a.id);
    }

    // A broadcast with binary: encoded once, the same attachment frames to each.
    reset();
    const bytes = Buffer.from("binary broadcast");
    assert.equal(await a.emitWithAck("route", "broadcast", { bytes }, null), true);
    await settle(a, b, c);
    assert.deepEqual(seen.get(a), []);
    for (const s of [b, c]) {
      assert.equal(seen.get(s).length, 1);
      assert.ok(seen.get(s)[0].payload.bytes.equals(bytes));
    }
  });

  test("rooms: join, io.to(room), socket.to(room), leave", TEST, async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => connected(t, url)));
    const seen = new Map([a, b, c].map((s) => [s, record(s, "room")]));
    const check = async (expect) => {
      await settle(a, b, c);
      for (const [s, n] of expect) assert.equal(seen.get(s).length, n);
      seen.forEach((list) => list.splice(0));
    };

    assert.deepEqual(await a.emitWithAck("join", "r1"), [a.id, "r1"].sort());
    assert.deepEqual(await b.emitWithAck("join", "r1"), [b.id, "r1"].sort());
    assert.deepEqual(await c.emitWithAck("join", "r2"), [c.id, "r2"].sort());

    await a.emitWithAck("room", "r1", "hi", "io"); // io.to: the sender too
    await check([[a, 1], [b, 1], [c, 0]]);
    assert.deepEqual(seen.get(a), []);

    await a.emitWithAck("room", "r1", "hi", "socket"); // socket.to: not the sender
    await check([[a, 0], [b, 1], [c, 0]]);

    await a.emitWithAck("room", "r2", "to c", "socket"); // a room the sender is not in
    await check([[a, 0], [b, 0], [c, 1]]);

    assert.deepEqual(await b.emitWithAck("leave", "r1"), [b.id]);
    const received = next(a, "room");
    await a.emitWithAck("room", "r1", "after leave", "io");
    assert.deepEqual((await received)[0], { room: "r1", mode: "io", payload: "after leave" });
    await check([[a, 1], [b, 0], [c, 0]]);
  });

  test("several namespaces share one Manager and one WebSocket", TEST, async (t) => {
    // A server of its own: io()'s Manager cache is keyed by host and port.
    const { url } = await serverFor(t);
    const main = client(t, url, { forceNew: false, auth: { who: "main" } });
    const admin = io(`${url}/admin`, { ...WS, auth: { token: "secret" } });
    const welcome = next(admin, "welcome");
    t.after(() => admin.close());
    assert.equal(admin.io, main.io, "the same Manager");
    await Promise.all([connection(main), connection(admin)]);

    assert.notEqual(admin.id, main.id);
    const me = await admin.emitWithAck("whoami");
    assert.equal(me.id, admin.id);
    assert.equal(me.nsp, "/admin");
    assert.deepEqual(me.auth, { token: "secret" });
    assert.deepEqual(await welcome, [admin.id]);
    assert.deepEqual((await main.emitWithAck("whoami")).auth, { who: "main" });
    // Binary packets carry the namespace too ("51-/admin,...").
    const bytes = Buffer.from([1, 2, 3, 250]);
    const [back] = await new Promise((resolve) =>
      admin.emit("echo", { bytes }, (...args) => resolve(args)),
    );
    assert.ok(back.bytes.equals(bytes));
    // One engine, one WebSocket on the server for both sockets.
    assert.equal(main.io.engine, admin.io.engine);
    assert.deepEqual(await admin.emitWithAck("stats"), { websockets: 1 });

    // Events stay in their namespace: "/" has no "sum" twin in /admin, and an
    // "all" route in /admin does not reach the main socket.
    const inMain = record(main, "routed");
    const inAdmin = record(admin, "routed");
    assert.equal(await admin.emitWithAck("route", "all", "admins only", null), true);
    await settle(main, admin);
    assert.deepEqual(inMain, []);
    assert.equal(inAdmin.length, 1);
    assert.equal(inAdmin[0].from, admin.id);

    // Leaving one namespace keeps the other (and the connection) alive,
    // and the namespace can be joined again over the same connection.
    const adminId = admin.id;
    admin.disconnect();
    assert.equal(await serverReason(main, adminId), "client namespace disconnect");
    assert.deepEqual(await main.emitWithAck("stats"), { websockets: 1 });
    assert.ok(main.connected);
    admin.connect();
    await connection(admin);
    assert.notEqual(admin.id, adminId);
    assert.equal(admin.io.engine, main.io.engine);
    assert.deepEqual(await admin.emitWithAck("stats"), { websockets: 1 });
  });

  test("auth middleware refusal arrives as connect_error", TEST, async (t) => {
    const noToken = client(t, `${url}/admin`);
    await assert.rejects(connection(noToken), (err) => {
      assert.equal(err.message, "not authorized");
      assert.equal(err.data, undefined);
      return true;
    });
    const badToken = client(t, `${url}/admin`, { auth: { token: "guess" } });
    await assert.rejects(connection(badToken), (err) => {
      assert.equal(err.message, "not authorized");
      assert.deepEqual(err.data, { reason: "bad token" });
      return true;
    });
    const unknown = client(t, `${url}/nope`);
    await assert.rejects(connection(unknown), { message: "Invalid namespace" });
    // A refused namespace does not retry by itself.
    for (const s of [noToken, badToken, unknown]) {
      assert.equal(s.connected, false);
      assert.equal(s.active, false);
    }

    // Over a shared connection, a refusal leaves the main namespace connected.
    const main = await connected(t, url);
    const refused = main.io.socket("/admin", { auth: { token: "nope" } });
    t.after(() => refused.close());
    await assert.rejects(connection(refused), { message: "not authorized" });
    assert.equal(await main.emitWithAck("sum", 20, 22), 42);
  });

  for (const close of [false, true]) {
    const name = `server kick, disconnect(${close}): "io server disconnect", no reconnection`;
    test(name, TEST, async (t) => {
      const observer = await connected(t, url);
      const socket = await connected(t, url, { reconnectionDelay: 50, reconnectionDelayMax: 100 });
      const attempts = [];
      socket.io.on("reconnect_attempt", (n) => attempts.push(n));
      const disconnected = next(socket, "disconnect");
      const id = socket.id;
      await socket.emitWithAck("kick", close);
      const [reason] = await disconnected;
      assert.equal(reason, "io server disconnect");
      await sleep(600); // six reconnection delays
      assert.deepEqual(attempts, []);
      assert.equal(socket.connected, false);
      assert.equal(socket.active, false);
      // The kicked client's WebSocket is gone; the observer's is not.
      assert.deepEqual(await observer.emitWithAck("stats"), { websockets: 1 });
      assert.equal(await serverReason(observer, id), "server namespace disconnect");
    });
  }

  test("a packet over max_attachments closes that connection at once", TEST, async (t) => {
    // Both servers cap attachments at 10 (socket.io-parser's maxAttachments);
    // the client's encoder does not, so it sends the 11 frames anyway.
    const observer = await connected(t, url);
    const socket = await connected(t, url, { reconnection: false });
    const id = socket.id;
    const disconnected = next(socket, "disconnect");
    const started = Date.now();
    socket.emit("describe", Array.from({ length: 11 }, (_, i) => Buffer.from([i])));
    const [reason] = await disconnected;
    const elapsed = Date.now() - started;
    assert.equal(reason, "transport close");
    // Not after websockets' close_timeout (5 s): the frames queued behind the
    // bad packet must not hold up the closing handshake.
    assert.ok(elapsed < 2 * UNIT, `closed after ${elapsed} ms`);
    assert.equal(await serverReason(observer, id), "parse error");
    assert.equal(await observer.emitWithAck("sum", 1, 2), 3);
    // Ten attachments are fine.
    const ten = await connected(t, url);
    const buffers = Array.from({ length: 10 }, (_, i) => Buffer.from([i]));
    const described = await ten.emitWithAck("describe", buffers);
    assert.deepEqual(described, buffers.map((b) => ({ bytes: hex(b) })));
  });

  test("default options: polling first, then the upgrade to WebSocket", TEST, async (t) => {
    // The handshake over polling, as the server answers it.
    const response = await fetch(`${url}/socket.io/?EIO=4&transport=polling&t=x`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; charset=UTF-8");
    assert.match(
      await response.text(),
      /^0\{"sid":"[\w-]{20}","upgrades":\["websocket"\],"pingInterval":\d+,"pingTimeout":\d+,"maxPayload":\d+\}$/,
    );

    const socket = io(url, { forceNew: true, reconnection: false });
    t.after(() => socket.close());
    await connection(socket);
    const engine = socket.io.engine;
    if (engine.transport.name !== "websocket") await next(engine, "upgrade");
    assert.equal(engine.transport.name, "websocket");
    assert.equal(await socket.emitWithAck("transport"), "websocket");
    assert.equal((await socket.emitWithAck("whoami")).id, socket.id);

    // upgrade: false stays on polling, and the server sees it so.
    const stay = io(url, { forceNew: true, reconnection: false, upgrade: false });
    t.after(() => stay.close());
    await connection(stay);
    await sleep(300);
    assert.equal(stay.io.engine.transport.name, "polling");
    assert.equal(await stay.emitWithAck("transport"), "polling");
    assert.equal(await stay.emitWithAck("sum", 2, 3), 5);
  });
});

// -- cases that need their own server ------------------------------------------

test("the client reconnects by itself after the server restarts on its port", TEST, async (t) => {
  let server = await startServer();
  t.after(() => server.stop());
  const { url, port } = server;
  const socket = await connected(t, url, { reconnectionDelay: 100, reconnectionDelayMax: 200 });
  const firstId = socket.id;

  const disconnected = next(socket, "disconnect");
  await server.stop();
  const [reason] = await disconnected;
  assert.equal(reason, "transport close");
  assert.equal(socket.active, true, "still trying to reconnect");

  await next(socket.io, "reconnect_error", 10 * UNIT); // an attempt failed: nothing listens
  const reconnected = next(socket.io, "reconnect", 10 * UNIT);
  const connectedAgain = next(socket, "connect", 10 * UNIT);
  server = await startServer({ port });
  assert.equal(server.port, port);
  const [attempt] = await reconnected; // the Manager's WebSocket is open again
  assert.ok(attempt >= 2, `reconnected at attempt ${attempt}`);
  await connectedAgain; // and the namespace joined
  assert.ok(socket.connected);
  assert.notEqual(socket.id, firstId, "a new session");
  assert.equal((await socket.emitWithAck("whoami")).id, socket.id);
});

test("ping/pong keeps an idle connection alive across ping intervals", TEST, async (t) => {
  const scale = UNIT / 1000; // MINISIO_TEST_UNIT stretches the whole timeline
  const server = await serverFor(t, { pingInterval: 0.3 * scale, pingTimeout: 0.2 * scale });
  const socket = await connected(t, server.url);
  const id = socket.id;
  const pings = [];
  socket.io.engine.on("ping", () => pings.push(Date.now()));
  const disconnects = record(socket, "disconnect");

  // Without pongs the server would close after 0.5 s, and without pings the
  // client would give up after pingInterval + pingTimeout = 0.5 s as well.
  await sleep(1700 * scale);
  assert.deepEqual(disconnects, []);
  assert.ok(pings.length >= 4, `${pings.length} pings in ${1.7 * scale} s`);
  for (let i = 1; i < pings.length; i++) {
    const gap = pings[i] - pings[i - 1];
    assert.ok(gap >= 250 * scale && gap < 600 * scale, `ping gap ${gap} ms`);
  }
  assert.ok(socket.connected);
  assert.equal(socket.id, id);
  assert.equal((await socket.emitWithAck("whoami")).id, id);

  // A client that stops answering pings is dropped by the server.
  const mute = await connected(t, server.url, { reconnection: false });
  const muteId = mute.id;
  const engine = mute.io.engine;
  const sendPacket = engine._sendPacket.bind(engine); // engine.io-client 6.6 internals
  engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : sendPacket(type, ...rest));
  const [reason] = await next(mute, "disconnect", 3 * UNIT);
  assert.equal(reason, "transport close");
  assert.equal(await serverReason(socket, muteId), "ping timeout");
  assert.ok(socket.connected, "the well-behaved client stays");
});

const PAYLOAD = "payloads near max_payload arrive intact; one above it closes that connection only";
test(PAYLOAD, TEST, async (t) => {
  const maxPayload = 100_000;
  const server = await serverFor(t, { maxPayload });
  const observer = await connected(t, server.url, { reconnection: false });
  const socket = await connected(t, server.url, {
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  const firstId = socket.id;

  // The text frame is `42<ack id>["size","..."]`: 16 bytes around the string.
  const near = "x".repeat(maxPayload - 100);
  assert.equal(await socket.timeout(5 * UNIT).emitWithAck("size", near), near.length);
  const bytes = Buffer.alloc(maxPayload, 7); // an attachment frame of exactly max_payload bytes
  assert.equal(await socket.timeout(5 * UNIT).emitWithAck("size", bytes), maxPayload);
  // And back: the server sends large frames too (the limit is on what it accepts).
  const echoed = await socket.timeout(5 * UNIT).emitWithAck("echo", near);
  assert.equal(echoed, near);

  // One byte over: websockets fails the connection with 1009 (message too big).
  const disconnected = next(socket, "disconnect");
  const reconnected = next(socket, "connect", 10 * UNIT);
  socket.emit("size", "y".repeat(maxPayload));
  const [reason] = await disconnected;
  assert.equal(reason, "transport close");
  assert.equal(await serverReason(observer, firstId), "transport error");

  // The other client is untouched; the cut one reconnects by itself.
  assert.ok(observer.connected);
  assert.equal((await observer.emitWithAck("whoami")).id, observer.id);
  await reconnected;
  assert.ok(socket.connected);
  assert.notEqual(socket.id, firstId);
  assert.equal(await socket.emitWithAck("sum", 1, 2), 3);
});

test("permessage-deflate, when the server enables it, is negotiated and works", TEST, async (t) => {
  const server = await serverFor(t, { compression: true });
  const socket = await connected(t, server.url);
  assert.equal(socket.io.engine.transport.ws.extensions, "permessage-deflate");
  const big = "compressible ".repeat(10_000);
  assert.equal(await socket.emitWithAck("echo", big), big);
  const bytes = Buffer.alloc(50_000, 1);
  const head = bytes.subarray(0, 4);
  assert.deepEqual(await socket.emitWithAck("describe", head), { bytes: "01010101" });
  assert.equal(await socket.emitWithAck("size", bytes), bytes.length);

  // And off by default (as in the Node server).
  const plain = await serverFor(t);
  const other = await connected(t, plain.url);
  assert.equal(other.io.engine.transport.ws.extensions, "");
});

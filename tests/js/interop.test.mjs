// Interop: the official socket.io-client (Node) against minisio, real processes on 127.0.0.1.
//
// Each test starts tests/js/server.py as a child process (or shares one per
// `describe`) and closes every client and server it made. Most cases run
// once per client mode (MODES), with the mode at the start of the test name:
// "websocket" (`transports: ["websocket"]`), "polling" (`transports:
// ["polling"]`: HTTP long-polling only) and "default" (no `transports`:
// polling first, then the upgrade to WebSocket). Timeouts are multiples of
// UNIT seconds; a slow machine can scale them with MINISIO_TEST_UNIT.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { next, SCALE, startPython, UNIT } from "./helpers.mjs";

const SERVER = fileURLToPath(new URL("./server.py", import.meta.url));
const TEST = { timeout: 15 * UNIT };

/** The client options of each mode; a test's own options come on top. */
const MODES = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
  default: {}, // polling, then the upgrade to WebSocket
};
const MODE_NAMES = Object.keys(MODES);

/** The transport that carries a session of `mode` once it has settled (upgraded, in "default"). */
const carrier = (mode) => (mode === "polling" ? "polling" : "websocket");

/** What `stats()` counts for `n` settled sessions of `mode`: polling ones carry no WebSocket. */
const websocketsOf = (mode, n) => (mode === "polling" ? 0 : n);

// -- servers -----------------------------------------------------------------

/** Start the fixture server; resolves once it prints its URL. */
function startServer({ port = 0, pingInterval, pingTimeout, maxPayload, compression } = {}) {
  const args = [SERVER, "--port", String(port)];
  if (pingInterval !== undefined) args.push("--ping-interval", String(pingInterval));
  if (pingTimeout !== undefined) args.push("--ping-timeout", String(pingTimeout));
  if (maxPayload !== undefined) args.push("--max-payload", String(maxPayload));
  if (compression) args.push("--compression");
  return startPython(args);
}

/** A server for one test, stopped when the test ends. */
async function serverFor(t, options) {
  const server = await startServer(options);
  t.after(() => server.stop());
  return server;
}

// -- clients -----------------------------------------------------------------

/**
 * `client` and `connected` for sockets of one mode.
 *
 * `client(t, url, options)` makes a socket, closed when the test ends, and
 * does not wait for its connection; `connected` resolves once its `connect`
 * event fired.
 */
function clientsFor(mode) {
  const client = (t, url, options = {}) => {
    const socket = io(url, { forceNew: true, ...MODES[mode], ...options });
    t.after(() => socket.close()); // also closes its Manager once no socket uses it
    return socket;
  };
  const connected = (t, url, options) => connection(client(t, url, options));
  return { client, connected };
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

/** Resolves once the socket's engine runs on a WebSocket (at once if it already does). */
async function upgraded(socket, ms = 5 * UNIT) {
  const engine = socket.io.engine;
  if (engine.transport.name !== "websocket") await next(engine, "upgrade", ms);
  assert.equal(engine.transport.name, "websocket");
}

/**
 * Over polling only, give the client's next poll time to reach the server.
 *
 * The client polls again as soon as an answer comes; a server that stops
 * just then has no GET to give the close packet to, and the poll on its
 * way fails: "transport error", not "transport close".
 */
async function polled(mode) {
  if (mode === "polling") await sleep(0.2 * UNIT);
}

/** In "default" mode, wait for the upgrade of each socket; the other modes never change. */
async function settled(mode, ...sockets) {
  if (mode === "default") await Promise.all(sockets.map((s) => upgraded(s)));
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

/** Calls `ask()` until `done` accepts its answer, or `ms` passed; resolves to the last answer. */
async function waitFor(ask, done, ms = 3 * UNIT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const answer = await ask();
    if (done(answer) || Date.now() > deadline) return answer;
    await sleep(20);
  }
}

/** Why the server says socket `id` disconnected, asked through `via`; waits for it. */
function serverReason(via, id, ms = 3 * UNIT) {
  // No reason yet is an ack without arguments (the handler returned None).
  const ask = () => via.timeout(ms).emitWithAck("reason", id);
  return waitFor(ask, (reason) => reason !== undefined, ms);
}

/**
 * The server's count of WebSocket sessions, asked through `via` until it is
 * `expected`: a session whose client just closed is gone a moment later.
 */
async function websockets(via, expected, ms = 3 * UNIT) {
  const ask = () => via.timeout(ms).emitWithAck("stats");
  return (await waitFor(ask, (stats) => stats.websockets === expected, ms)).websockets;
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");

// -- one shared server per mode for the plain request/response cases ------------

for (const mode of MODE_NAMES) {
  const { client, connected } = clientsFor(mode);
  const via = carrier(mode);
  const modeTest = (name, fn) => test(`${mode}: ${name}`, TEST, fn);

  describe(`with one server, ${mode} clients`, () => {
    let server;
    let url;
    before(async () => {
      server = await startServer();
      url = server.url;
    });
    after(() => server.stop());

    const how = {
      websocket: "connects over WebSocket",
      polling: "connects over polling",
      default: "connects over polling, then upgrades to WebSocket",
    }[mode];
    modeTest(`${how}; socket.id is the server's id`, async (t) => {
      const socket = client(t, url, { auth: { name: "ada", n: 1 }, query: { room: "x y" } });
      const welcome = next(socket, "welcome"); // emitted by the server's connection handler
      await connection(socket);
      assert.deepEqual(await welcome, [socket.id]);
      assert.match(socket.id, /^[A-Za-z0-9_-]{20}$/);
      assert.notEqual(socket.id, socket.io.engine.id, "the socket id is not the Engine.IO sid");
      const me = await socket.emitWithAck("whoami");
      assert.deepEqual(me.id, socket.id);
      assert.deepEqual(me.nsp, "/");
      assert.deepEqual(me.auth, { name: "ada", n: 1 });
      assert.equal(me.query.room, "x y");
      assert.equal(me.query.EIO, "4");
      // The query of the request that opened the session: polling, unless WebSocket-only.
      assert.equal(me.query.transport, mode === "websocket" ? "websocket" : "polling");

      // The client's transport and the server's view of it, once settled.
      await settled(mode, socket);
      assert.equal(socket.io.engine.transport.name, via);
      assert.equal(await socket.emitWithAck("transport"), via);
      // One session throughout: the upgrade keeps the sid.
      assert.equal(await socket.emitWithAck("sid"), socket.io.engine.id);
      assert.equal((await socket.emitWithAck("whoami")).id, socket.id);
    });

    modeTest("a burst right from the start arrives once and in order, both ways", async (t) => {
      // Emits start before the connection and go on for a while after it; in
      // "default" mode they straddle the upgrade: what is queued for polling
      // then must go over the WebSocket, once and in order.
      const socket = client(t, url);
      const echoed = record(socket, "echo");
      const acked = [];
      let sent = 0;
      let atUpgrade = null;
      socket.io.on("open", () =>
        socket.io.engine.once("upgrade", () => {
          atUpgrade = sent;
        }),
      );
      const send = () => {
        const n = sent++;
        socket.emit("echo", n, (back) => acked.push(back));
      };
      for (let i = 0; i < 20; i++) send();
      await connection(socket);
      const deadline = Date.now() + 3 * UNIT;
      // Until the upgrade (if any) is well behind, or 300 emits.
      while (sent < 300 && Date.now() < deadline) {
        send();
        if (mode !== "default" ? sent >= 100 : atUpgrade !== null && sent >= atUpgrade + 30) break;
        await sleep(2);
      }
      await settle(socket); // its ack comes after every earlier one
      const all = Array.from({ length: sent }, (_, i) => i);
      assert.deepEqual(acked, all);
      assert.deepEqual(echoed, all);
      await settled(mode, socket);
      if (mode === "default") {
        assert.ok(atUpgrade > 0 && atUpgrade < sent, `upgraded after ${atUpgrade} of ${sent}`);
      }
      assert.equal(socket.io.engine.transport.name, via);
    });

    modeTest("client disconnect: the server sees \"client namespace disconnect\"", async (t) => {
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

    modeTest("client -> server acks: emitWithAck, several values, timeout()", async (t) => {
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

      // Text beyond ASCII, both ways (over polling: inside a payload, next to
      // the record separator).
      const text = "héllo ✓ 😀 \u0000 \"quoted\" \\ \u001f";
      assert.equal(await socket.emitWithAck("echo", text), text);
    });

    modeTest("client retries (ackTimeout + retries) are answered like plain acks", async (t) => {
      const socket = await connected(t, url, { ackTimeout: 300, retries: 2 });
      assert.equal(await socket.emitWithAck("sum", 1, 2), 3);
      // The first try times out on the client (300 ms), the second is answered at
      // once: well before the first one's 10 units would have run out.
      const started = Date.now();
      assert.equal(await socket.emitWithAck("once_slow", `retry-${socket.id}`, 10 * UNIT), 2);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 290 && elapsed < 10 * UNIT, `answered after ${elapsed} ms`);
    });

    modeTest("server -> client acks: emit_with_ack answered, and timed out", async (t) => {
      const socket = await connected(t, url);
      socket.on("double", (x, ack) => ack(x * 2));
      socket.on("pair", (a, b, ack) => ack(a + b, "extra"));
      socket.on("blob", (ack) => ack({ data: Buffer.from([1, 2, 3]) }));
      socket.on("ignored", () => {}); // never calls the ack

      assert.deepEqual(await socket.emitWithAck("ask", "double", [21], 2), {
        ok: true,
        result: 42,
      });
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

    modeTest("binary both ways: Buffer, ArrayBuffer, Uint8Array nested in objects", async (t) => {
      const socket = await connected(t, url);
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const view = new Uint8Array([9, 8, 7, 6, 5]);
      const arrayBuffer = new Uint8Array([0xde, 0xad, 0xbe, 0xef]).buffer;
      // A view into a larger buffer.
      const slice = new Uint8Array(all.buffer, all.byteOffset + 16, 3);
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

    modeTest("a 500 KB message both ways, as text and as binary", async (t) => {
      // Under the default max_payload (1 MB) even as base64 in a polling payload.
      const socket = await connected(t, url);
      const text = "500 KB ✓ ".repeat(50_000); // 550,000 bytes of UTF-8
      assert.equal(await socket.timeout(5 * UNIT).emitWithAck("size", text), text.length);
      const echoed = next(socket, "echo");
      assert.equal(await socket.timeout(5 * UNIT).emitWithAck("echo", text), text);
      assert.equal((await echoed)[0], text);

      const bytes = Buffer.from(Array.from({ length: 500_000 }, (_, i) => (i * 7) & 0xff));
      assert.equal(await socket.timeout(5 * UNIT).emitWithAck("size", bytes), bytes.length);
      const echoedBytes = next(socket, "echo");
      const back = await socket.timeout(5 * UNIT).emitWithAck("echo", { bytes });
      for (const got of [back, (await echoedBytes)[0]]) {
        assert.ok(Buffer.isBuffer(got.bytes));
        assert.ok(got.bytes.equals(bytes));
      }
      assert.ok(socket.connected);
    });

    modeTest("four routes, three clients: who receives and who does not", async (t) => {
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

    modeTest("rooms: join, io.to(room), socket.to(room), leave", async (t) => {
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

    modeTest(`several namespaces share one Manager and one session over ${via}`, async (t) => {
      // A server of its own: io()'s Manager cache is keyed by host and port.
      const { url } = await serverFor(t);
      const main = client(t, url, { forceNew: false, auth: { who: "main" } });
      const admin = io(`${url}/admin`, { ...MODES[mode], auth: { token: "secret" } });
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

      // One engine, one Engine.IO session on the server for both sockets,
      // carried by one WebSocket, or by polling (then no WebSocket at all).
      assert.equal(main.io.engine, admin.io.engine);
      const sid = main.io.engine.id;
      await settled(mode, main);
      for (const s of [main, admin]) {
        assert.equal(await s.emitWithAck("sid"), sid);
        assert.equal(await s.emitWithAck("transport"), via);
      }
      assert.deepEqual(await admin.emitWithAck("stats"), { websockets: websocketsOf(mode, 1) });

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
      assert.deepEqual(await main.emitWithAck("stats"), { websockets: websocketsOf(mode, 1) });
      assert.ok(main.connected);
      admin.connect();
      await connection(admin);
      assert.notEqual(admin.id, adminId);
      assert.equal(admin.io.engine, main.io.engine);
      assert.equal(await admin.emitWithAck("sid"), sid);
      assert.equal(await admin.emitWithAck("transport"), via);
      assert.deepEqual(await admin.emitWithAck("stats"), { websockets: websocketsOf(mode, 1) });
    });

    modeTest("auth middleware refusal arrives as connect_error", async (t) => {
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
      modeTest(name, async (t) => {
        const observer = await connected(t, url);
        const socket = await connected(t, url, {
          reconnectionDelay: 50,
          reconnectionDelayMax: 100,
        });
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
        assert.equal(socket.io.engine.readyState, "closed", "the Manager closed its engine");
        // The kicked client's session is gone; the observer's is not (over
        // polling no session has a WebSocket).
        await settled(mode, observer);
        assert.equal(await websockets(observer, websocketsOf(mode, 1)), websocketsOf(mode, 1));
        assert.equal(await observer.emitWithAck("transport"), via);
        assert.equal(await serverReason(observer, id), "server namespace disconnect");
      });
    }

    modeTest("a packet over max_attachments closes that connection at once", async (t) => {
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
      // bad packet must not hold up the closing handshake. Over polling the
      // held GET gets the close packet at once.
      assert.ok(elapsed < 2 * UNIT, `closed after ${elapsed} ms`);
      assert.equal(await serverReason(observer, id), "parse error");
      assert.equal(await observer.emitWithAck("sum", 1, 2), 3);
      // Ten attachments are fine.
      const ten = await connected(t, url);
      const buffers = Array.from({ length: 10 }, (_, i) => Buffer.from([i]));
      const described = await ten.emitWithAck("describe", buffers);
      assert.deepEqual(described, buffers.map((b) => ({ bytes: hex(b) })));
    });
  });
}

// -- cases that need their own server, once per mode ----------------------------
// (Left out when MINISIO_INTEROP_SHARED_ONLY=1: asgi_interop.test.mjs, which runs
// this file again under uvicorn, keeps to the shared servers above and the
// upgrade cases below.)

const OWN_SERVER_MODES = process.env.MINISIO_INTEROP_SHARED_ONLY === "1" ? [] : MODE_NAMES;
for (const mode of OWN_SERVER_MODES) {
  const { connected } = clientsFor(mode);
  const via = carrier(mode);
  const modeTest = (name, fn) => test(`${mode}: ${name}`, TEST, fn);

  modeTest("the client reconnects by itself after the server restarts on its port", async (t) => {
    let server = await startServer();
    t.after(() => server.stop());
    const { url, port } = server;
    const socket = await connected(t, url, { reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await settled(mode, socket);
    const firstId = socket.id;
    const firstSid = socket.io.engine.id;

    // Over polling the held GET gets the close packet; a WebSocket its close frame.
    await polled(mode);
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
    const [attempt] = await reconnected; // the Manager's engine is open again
    assert.ok(attempt >= 2, `reconnected at attempt ${attempt}`);
    await connectedAgain; // and the namespace joined
    assert.ok(socket.connected);
    assert.notEqual(socket.id, firstId, "a new socket");
    assert.notEqual(socket.io.engine.id, firstSid, "a new session");
    // The new session goes the same way as the first (in "default": polling, then upgraded).
    const me = await socket.emitWithAck("whoami");
    assert.equal(me.id, socket.id);
    assert.equal(me.query.transport, mode === "websocket" ? "websocket" : "polling");
    await settled(mode, socket);
    assert.equal(await socket.emitWithAck("transport"), via);
  });

  modeTest("ping/pong keeps an idle connection alive across ping intervals", async (t) => {
    const server = await serverFor(t, { pingInterval: 0.3 * SCALE, pingTimeout: 0.2 * SCALE });
    const socket = await connected(t, server.url);
    const id = socket.id;
    const pings = [];
    socket.io.engine.on("ping", () => pings.push(Date.now()));
    const disconnects = record(socket, "disconnect");

    // Without pongs the server would close after 0.5 s, and without pings the
    // client would give up after pingInterval + pingTimeout = 0.5 s as well.
    // Over polling each ping answers a held GET and each pong is a POST; in
    // "default" mode they go over the WebSocket the session upgraded to.
    await sleep(1700 * SCALE);
    assert.deepEqual(disconnects, []);
    assert.ok(pings.length >= 4, `${pings.length} pings in ${1.7 * SCALE} s`);
    for (let i = 1; i < pings.length; i++) {
      const gap = pings[i] - pings[i - 1];
      assert.ok(gap >= 250 * SCALE && gap < 600 * SCALE, `ping gap ${gap} ms`);
    }
    assert.ok(socket.connected);
    assert.equal(socket.id, id);
    assert.equal((await socket.emitWithAck("whoami")).id, id);
    assert.equal(socket.io.engine.transport.name, via);
    assert.equal(await socket.emitWithAck("transport"), via);

    // A client that stops answering pings is dropped by the server.
    const mute = await connected(t, server.url, { reconnection: false });
    const muteId = mute.id;
    const engine = mute.io.engine;
    const sendPacket = engine._sendPacket.bind(engine); // engine.io-client 6.6 internals
    engine._sendPacket = (type, ...rest) =>
      type === "pong" ? undefined : sendPacket(type, ...rest);
    const [reason] = await next(mute, "disconnect", 3 * UNIT);
    assert.equal(reason, "transport close");
    assert.equal(await serverReason(socket, muteId), "ping timeout");
    assert.ok(socket.connected, "the well-behaved client stays");
  });

  modeTest("every disconnect reason, as the client and the server see it", async (t) => {
    const server = await serverFor(t, { pingInterval: 0.3 * SCALE, pingTimeout: 0.2 * SCALE });
    const { url } = server;
    const fast = { reconnectionDelay: 50, reconnectionDelayMax: 100 };
    const observer = await connected(t, url, fast);
    const reasons = [];
    observer.on("disconnect", (reason) => reasons.push(reason));

    // The client leaves: "io client disconnect" / "client namespace disconnect".
    const leaving = await connected(t, url);
    await settled(mode, leaving);
    let id = leaving.id;
    let disconnected = next(leaving, "disconnect");
    leaving.disconnect();
    assert.equal((await disconnected)[0], "io client disconnect");
    assert.equal(await serverReason(observer, id), "client namespace disconnect");

    // The server kicks: "io server disconnect" / "server namespace disconnect".
    const kicked = await connected(t, url, fast);
    await settled(mode, kicked);
    id = kicked.id;
    disconnected = next(kicked, "disconnect");
    await kicked.emitWithAck("kick", true);
    assert.equal((await disconnected)[0], "io server disconnect");
    assert.equal(await serverReason(observer, id), "server namespace disconnect");
    assert.equal(kicked.active, false);

    // The transport closes under the client: "transport close" on both sides
    // (over polling the client posts a close packet), then a reconnection.
    const dropped = await connected(t, url, fast);
    await settled(mode, dropped);
    id = dropped.id;
    disconnected = next(dropped, "disconnect");
    const reconnected = next(dropped, "connect", 5 * UNIT);
    dropped.io.engine.transport.close();
    assert.equal((await disconnected)[0], "transport close");
    assert.equal(await serverReason(observer, id), "transport close");
    await reconnected;
    assert.notEqual(dropped.id, id);

    // The server stops answering (frozen): "ping timeout" once pingInterval +
    // pingTimeout pass without a ping; both clients reconnect once it thaws.
    await settled(mode, observer, dropped);
    const frozen = [observer, dropped].map((s) => next(s, "disconnect", 3 * UNIT));
    const back = [observer, dropped].map((s) => next(s, "connect", 10 * UNIT));
    const ids = [observer.id, dropped.id];
    server.freeze();
    let thawed = false;
    t.after(() => thawed || server.thaw());
    try {
      for (const wait of frozen) assert.equal((await wait)[0], "ping timeout");
    } finally {
      server.thaw();
      thawed = true;
    }
    await Promise.all(back);
    assert.notEqual(observer.id, ids[0]);
    assert.notEqual(dropped.id, ids[1]);
    // The server ended the frozen sessions one way or another once it woke up.
    for (const old of ids) {
      const why = await serverReason(observer, old);
      assert.ok(["ping timeout", "transport close", "transport error"].includes(why), why);
    }

    // The server shuts down: "transport close" (over polling the held GET
    // gets the close packet), and the client keeps trying.
    await settled(mode, observer);
    await polled(mode);
    disconnected = next(observer, "disconnect");
    await server.stop();
    assert.equal((await disconnected)[0], "transport close");
    assert.equal(observer.active, true);
    assert.deepEqual(reasons, ["ping timeout", "transport close"]);
  });

  const PAYLOAD =
    "payloads near max_payload arrive intact; one above it closes that connection only";
  modeTest(PAYLOAD, async (t) => {
    const maxPayload = 100_000;
    const server = await serverFor(t, { maxPayload });
    const observer = await connected(t, server.url, { reconnection: false });
    const socket = await connected(t, server.url, {
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
    });
    // In "default" mode: over the WebSocket the session upgraded to, which
    // has the same limit as one opened directly.
    await settled(mode, socket);
    const firstId = socket.id;

    // The text frame is `42<ack id>["size","..."]`: 16 bytes around the string
    // (over polling, it is the one packet of its POST).
    const near = "x".repeat(maxPayload - 100);
    assert.equal(await socket.timeout(5 * UNIT).emitWithAck("size", near), near.length);
    // Over a WebSocket an attachment frame of exactly max_payload bytes. Over
    // polling max_payload bounds a whole POST, where binary goes in base64
    // (4/3 larger) next to the packet's text: 74 KB make a POST of ~98.7 KB.
    const size = via === "polling" ? Math.floor(maxPayload * 0.74) : maxPayload;
    const bytes = Buffer.alloc(size, 7);
    assert.equal(await socket.timeout(5 * UNIT).emitWithAck("size", bytes), size);
    // And back: the server sends large frames too (the limit is on what it accepts).
    const echoed = await socket.timeout(5 * UNIT).emitWithAck("echo", near);
    assert.equal(echoed, near);
    const [big] = await socket.timeout(5 * UNIT).emitWithAck("echo", [bytes]);
    assert.ok(big.equals(bytes));

    // One byte over: websockets fails the connection with 1009 (message too
    // big), which the client sees as a close. A POST over the limit is
    // refused with 413 and the session ends, its held GET getting the close
    // packet: two answers on two connections, and whichever the client
    // handles first names the reason (the 413 an error, the GET a close).
    const disconnected = next(socket, "disconnect");
    const reconnected = next(socket, "connect", 10 * UNIT);
    socket.emit("size", "y".repeat(maxPayload));
    const [reason] = await disconnected;
    const expected =
      via === "polling" ? ["transport close", "transport error"] : ["transport close"];
    assert.ok(expected.includes(reason), reason);
    assert.equal(await serverReason(observer, firstId), "transport error");

    // The other client is untouched; the cut one reconnects by itself.
    assert.ok(observer.connected);
    assert.equal((await observer.emitWithAck("whoami")).id, observer.id);
    await reconnected;
    assert.ok(socket.connected);
    assert.notEqual(socket.id, firstId);
    assert.equal(await socket.emitWithAck("sum", 1, 2), 3);
  });

  const DEFLATE = "permessage-deflate, when the server enables it, is negotiated on WebSockets";
  modeTest(DEFLATE, async (t) => {
    const server = await serverFor(t, { compression: true });
    const socket = await connected(t, server.url);
    await settled(mode, socket);
    const transport = socket.io.engine.transport;
    assert.equal(transport.name, via);
    if (via === "websocket") {
      assert.equal(transport.ws.extensions, "permessage-deflate");
    } else {
      // Polling never opens a WebSocket: nothing to negotiate, all the same.
      assert.equal(transport.ws, undefined);
      assert.deepEqual(await socket.emitWithAck("stats"), { websockets: 0 });
    }
    const big = "compressible ".repeat(10_000);
    assert.equal(await socket.emitWithAck("echo", big), big);
    const bytes = Buffer.alloc(50_000, 1);
    const head = bytes.subarray(0, 4);
    assert.deepEqual(await socket.emitWithAck("describe", head), { bytes: "01010101" });
    assert.equal(await socket.emitWithAck("size", bytes), bytes.length);

    // And off by default (as in the Node server).
    if (via === "websocket") {
      const plain = await serverFor(t);
      const other = await connected(t, plain.url);
      await settled(mode, other);
      assert.equal(other.io.engine.transport.ws.extensions, "");
    }
  });
}

// -- cases about the choice of transport -----------------------------------------

const STAY = "upgrade: false stays on polling across ping intervals; the handshake as served";
test(STAY, TEST, async (t) => {
  const server = await serverFor(t, { pingInterval: 0.3 * SCALE, pingTimeout: 0.2 * SCALE });
  const { url } = server;

  // The handshake over polling, as the server answers it: it offers the upgrade.
  const response = await fetch(`${url}/socket.io/?EIO=4&transport=polling&t=x`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; charset=UTF-8");
  assert.match(
    await response.text(),
    /^0\{"sid":"[\w-]{20}","upgrades":\["websocket"\],"pingInterval":\d+,"pingTimeout":\d+,"maxPayload":\d+\}$/,
  );

  const { connected } = clientsFor("default");
  const stay = await connected(t, url, { upgrade: false, reconnection: false });
  const engine = stay.io.engine;
  const upgrading = record(engine, "upgrading");
  const pings = record(engine, "ping");
  const disconnects = record(stay, "disconnect");
  await sleep(1000 * SCALE); // three ping intervals, each over a held GET
  assert.deepEqual(upgrading, [], "no probe at all");
  assert.ok(pings.length >= 2, `${pings.length} pings`);
  assert.deepEqual(disconnects, []);
  assert.equal(engine.transport.name, "polling");
  assert.equal(await stay.emitWithAck("transport"), "polling");
  assert.deepEqual(await stay.emitWithAck("stats"), { websockets: 0 });
  assert.equal(await stay.emitWithAck("sum", 2, 3), 5);
  const bytes = Buffer.from([0, 1, 254, 255]);
  assert.ok((await stay.emitWithAck("echo", bytes)).equals(bytes));

  // The same options without upgrade: false do upgrade, on the same server.
  const moving = await connected(t, url, { reconnection: false });
  await upgraded(moving);
  assert.equal(await moving.emitWithAck("transport"), "websocket");
  assert.deepEqual(await moving.emitWithAck("stats"), { websockets: 1 });
  assert.equal(engine.transport.name, "polling");
});

const MID_UPGRADE = "a session that ends during its upgrade still tells the client why";
test(MID_UPGRADE, TEST, async (t) => {
  const { url } = await serverFor(t);
  const observer = await clientsFor("websocket").connected(t, url);
  const socket = clientsFor("default").client(t, url, { reconnection: false });
  const disconnected = next(socket, "disconnect");
  // Once "3probe" came, the client stops polling, then sends the upgrade
  // packet "5" on the probe. Hold that back until the server has ended the
  // session (disconnect(true) of its sockets, asked for by another client):
  // the close packet waits in the polling queue for a GET that never comes,
  // so the upgrade has to finish for the client to hear of it.
  const kicked = new Promise((resolve, reject) => {
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      engine.once("upgrading", (probe) => {
        const send = probe.send.bind(probe);
        const held = [];
        probe.send = (packets) => {
          if (held.push(packets) > 1) return;
          observer
            .emitWithAck("kick_session", engine.id)
            .then((ids) => {
              probe.send = send;
              held.forEach((packets) => send(packets));
              resolve(ids);
            }, reject);
        };
      });
    });
  });
  const ids = await kicked;
  assert.equal(ids.length, 1);
  assert.equal((await disconnected)[0], "io server disconnect");
  assert.equal(socket.io.engine.transport.name, "websocket", "the upgrade went through");
  assert.equal(await serverReason(observer, ids[0]), "server namespace disconnect");
  assert.equal(socket.active, false);
});

const MIXED =
  "polling-only, WebSocket-only and default clients in one broadcast: each gets it once";
test(MIXED, TEST, async (t) => {
  const { url } = await serverFor(t);
  const sockets = await Promise.all(MODE_NAMES.map((mode) => clientsFor(mode).connected(t, url)));
  const byMode = new Map(MODE_NAMES.map((mode, i) => [sockets[i], mode]));
  const seen = new Map(sockets.map((s) => [s, record(s, "routed")]));
  const reset = () => seen.forEach((list) => list.splice(0));

  // io.emit from each kind of client in turn (the default one perhaps still
  // polling, perhaps mid-upgrade), then again once it has upgraded.
  const round = async (label) => {
    for (const sender of sockets) {
      reset();
      const payload = `${label} from ${byMode.get(sender)}`;
      assert.equal(await sender.emitWithAck("route", "all", payload, null), true);
      await settle(...sockets);
      for (const s of sockets) {
        const got = seen.get(s).map((m) => `${m.payload} by ${m.from === sender.id}`);
        assert.deepEqual(got, [`${payload} by true`], `seen by the ${byMode.get(s)} client`);
      }
    }
  };
  await round("early");
  const [, pollingOnly, defaulted] = sockets;
  await upgraded(defaulted);
  await round("upgraded");

  // Binary in one broadcast: WebSocket frames for some, base64 in a payload for others.
  reset();
  const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
  assert.equal(await pollingOnly.emitWithAck("route", "all", { bytes }, null), true);
  await settle(...sockets);
  for (const s of sockets) {
    assert.equal(seen.get(s).length, 1, `seen by the ${byMode.get(s)} client`);
    assert.ok(seen.get(s)[0].payload.bytes.equals(bytes));
  }

  // Each as the server sees it; two of the three sessions ride a WebSocket.
  const seenAs = await Promise.all(sockets.map((s) => s.emitWithAck("transport")));
  assert.deepEqual(seenAs, MODE_NAMES.map(carrier));
  assert.deepEqual(await sockets[0].emitWithAck("stats"), { websockets: 2 });
});

// Connection state recovery with the official socket.io-client 4.8 (Node), over
// WebSocket and over polling, against tests/js/recovery_server.py.
//
// A drop is forced two ways: the client's engine closed under the socket
// (`socket.io.engine.close()`: the client sees "forced close" and its Manager
// reconnects) and the TCP connection aborted by the server (the client sees
// "transport close"). Either way the client comes back with its pid and last
// offset in the CONNECT auth, and gets the same socket back.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { next, SCALE, startPython, UNIT } from "./helpers.mjs";

const SERVER = fileURLToPath(new URL("./recovery_server.py", import.meta.url));
const TEST = { timeout: 20 * UNIT };
const MODES = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
};

async function serverFor(t, window = 120) {
  const server = await startPython([SERVER, "--window", String(window)]);
  t.after(() => server.stop());
  return server;
}

/** A connected socket of `mode`, closed when the test ends. */
async function connected(t, url, mode, options = {}) {
  const socket = io(url, {
    forceNew: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 50,
    ...MODES[mode],
    ...options,
  });
  t.after(() => socket.close());
  await next(socket, "connect");
  return socket;
}

/** The first argument of every `event` received, in order; the offset (last) is checked. */
function record(socket, event) {
  const seen = [];
  socket.on(event, (...args) => {
    assert.equal(args.length, 2, `${event}: a value and the offset`);
    assert.match(args[1], /^[1-9a-f][0-9a-f]*$/);
    seen.push(args[0]);
  });
  return seen;
}

const ask = (socket, ...args) => socket.timeout(5 * UNIT).emitWithAck(...args);

const range = (n) => Array.from({ length: n }, (_, i) => i);

const DROPS = {
  // The client's engine closed under it: what the client then sees, and what it does.
  "engine closed": async (socket) => {
    const reason = next(socket, "disconnect");
    socket.io.engine.close();
    assert.deepEqual((await reason)[0], "forced close");
  },
  // The server's side of the TCP connection aborted, as a broken network would:
  // a WebSocket client sees the connection close, a polling one its poll fail.
  "TCP cut": async (socket, mode) => {
    const reason = next(socket, "disconnect");
    socket.emit("cut");
    const expected = mode === "polling" ? "transport error" : "transport close";
    assert.deepEqual((await reason)[0], expected);
  },
};

for (const [mode] of Object.entries(MODES)) {
  describe(`${mode}`, () => {
    for (const [how, drop] of Object.entries(DROPS)) {
      test(`${mode}: ${how}: same id, recovered, rooms and data kept, each missed broadcast once, in order`, TEST, async (t) => {
        const server = await serverFor(t);
        const a = await connected(t, server.url, mode);
        const b = await connected(t, server.url, mode);
        assert.equal(a.recovered, false);
        const id = a.id;
        await ask(a, "join", "red");
        await ask(a, "set", "name", "ada");
        const ticks = record(a, "tick");
        const reds = record(a, "red");
        const mine = record(a, "mine");
        // Live, before the drop ("nobody" is no socket: blast goes at once).
        await ask(b, "blast", 2, "nobody");
        await drop(a, mode);
        const back = next(a, "connect");
        // Sent while a is away: blast waits until the server has seen it leave.
        assert.equal(await ask(b, "blast", 5, id), true);
        await back;
        assert.equal(a.id, id);
        assert.equal(a.recovered, true);
        const [sid, recovered, data, rooms] = await ask(a, "state");
        assert.deepEqual([sid, recovered, data, rooms], [id, true, { name: "ada" }, [id, "red"].sort()]);
        // Everything sent before and during the gap, exactly once and in order.
        assert.deepEqual(ticks, [...range(2), ...range(5)]);
        assert.deepEqual(reds, [...range(2), ...range(5)]);
        assert.deepEqual(mine, [5]); // emitted to a's old socket while it was away
        // A room emit reaches it live again.
        const live = next(a, "red");
        await ask(b, "blast", 1, "nobody");
        assert.equal((await live)[0], 0);
        // The server's reasons: the drop, then nothing else (no "disconnect" for the recovery).
        const reasons = await ask(b, "reasons");
        assert.deepEqual(reasons, [how === "TCP cut" ? "transport error" : "transport close"]);
        assert.deepEqual(await ask(b, "expired"), []);
      });
    }

    test(`${mode}: back after the window: a new session, and the server is told the old one expired`, TEST, async (t) => {
      const window = 0.4 * SCALE;
      const server = await serverFor(t, window);
      const a = await connected(t, server.url, mode, {
        reconnectionDelay: 1.5 * UNIT,
        reconnectionDelayMax: 1.5 * UNIT,
        randomizationFactor: 0,
      });
      const b = await connected(t, server.url, mode);
      const id = a.id;
      await ask(a, "set", "name", "ada");
      await ask(b, "blast", 1, "nobody"); // an offset for a
      const back = next(a, "connect");
      a.io.engine.close();
      await back;
      assert.notEqual(a.id, id);
      assert.equal(a.recovered, false);
      const [, recovered, data] = await ask(a, "state");
      assert.deepEqual([recovered, data], [false, {}]);
      assert.deepEqual(await ask(b, "expired"), [id]);
    });
  });
}

test("a socket that never received an event still recovers (minisio replays from its connection)", TEST, async (t) => {
  const server = await serverFor(t);
  const a = await connected(t, server.url, "websocket");
  const b = await connected(t, server.url, "websocket");
  const id = a.id;
  const ticks = record(a, "tick");
  a.io.engine.close();
  const back = next(a, "connect");
  assert.equal(await ask(b, "blast", 3, id), true);
  await back;
  assert.equal(a.id, id);
  assert.equal(a.recovered, true);
  await sleep(0.1 * UNIT);
  assert.deepEqual(ticks, range(3));
});

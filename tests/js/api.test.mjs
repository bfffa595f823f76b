// Issue 13's server API against the official socket.io-client (Node), real processes on 127.0.0.1.
//
// One tests/js/api_server.py serves the whole file; each test makes its own
// clients (and rooms named after the test) and closes them. Every case runs
// once per client mode: "websocket", "polling" and "default" (polling, then
// the upgrade). Timeouts are multiples of UNIT seconds (MINISIO_TEST_UNIT).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { next, SCALE, startPython, UNIT } from "./helpers.mjs";

const SERVER = fileURLToPath(new URL("./api_server.py", import.meta.url));
const TEST = { timeout: 10 * UNIT };

const MODES = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
  default: {},
};

/** Resolves with the socket on `connect`, rejects with the `connect_error`. */
async function connection(socket) {
  const outcome = await Promise.race([
    next(socket, "connect").then(() => ({ ok: true })),
    next(socket, "connect_error").then(([err]) => ({ ok: false, err })),
  ]);
  if (!outcome.ok) throw outcome.err;
  return socket;
}

/** The `connect_error` of a socket expected to be refused (it fails the test if it connects). */
async function refusal(socket) {
  const [err] = await Promise.race([
    next(socket, "connect_error"),
    next(socket, "connect").then(() => {
      throw new Error("connected, expected a connect_error");
    }),
  ]);
  return err;
}

/** In "default" mode, wait until the engine runs on a WebSocket. */
async function settled(mode, socket) {
  if (mode !== "default" || socket.io.engine.transport.name === "websocket") return;
  await next(socket.io.engine, "upgrade");
}

let server;
before(async () => {
  server = await startPython([SERVER]);
});
after(() => server?.stop());

for (const [mode, transports] of Object.entries(MODES)) {
  describe(`${mode} clients`, () => {
    const client = (t, path = "/", options = {}) => {
      const socket = io(server.url + path, { forceNew: true, ...transports, ...options });
      t.after(() => socket.close());
      return socket;
    };
    const connected = (t, path, options) => connection(client(t, path, options));
    const modeTest = (name, fn) => test(`${mode}: ${name}`, TEST, fn);

    modeTest("broadcast acks: three clients, one silent; AckTimeout.results", async (t) => {
      const room = `poll-${mode}`;
      const voters = await Promise.all(
        Array.from({ length: 3 }, () => connected(t, "/", { auth: { room } })),
      );
      voters[0].on("vote", (ack) => ack("yes-a"));
      voters[1].on("vote", (ack) => ack("yes-b"));
      let silentAsked = 0;
      voters[2].on("vote", () => silentAsked++); // never calls the ack
      const asker = await connected(t);

      const started = Date.now();
      const result = next(asker, "poll_result");
      asker.emit("poll", room, 0.5 * SCALE);
      const [outcome] = await result;
      assert.equal(outcome.ok, false, "the silent client makes it an AckTimeout");
      assert.deepEqual(outcome.results.sort(), ["yes-a", "yes-b"]);
      assert.ok(Date.now() - started >= 0.4 * UNIT, "waited for the timeout");
      assert.equal(silentAsked, 1, "the silent client got the event");

      // Once the third answers too: every answer, no timeout.
      voters[2].off("vote");
      voters[2].on("vote", (ack) => ack("yes-c"));
      const again = next(asker, "poll_result");
      asker.emit("poll", room, 2 * SCALE);
      const [all] = await again;
      assert.equal(all.ok, true);
      assert.deepEqual(all.results.sort(), ["yes-a", "yes-b", "yes-c"]);
      for (const voter of voters) assert.ok(voter.connected);
    });

    modeTest("on_any and on_any_outgoing see binaries", async (t) => {
      const socket = await connected(t);
      socket.emit("bin", Buffer.from([0, 1, 255]), { nested: new Uint8Array([7, 8]) }, "text");
      const seen = await socket.timeout(5 * UNIT).emitWithAck("seen");
      assert.deepEqual(seen, [
        ["bin", { bytes: "0001ff" }, { nested: { bytes: "0708" } }, "text"],
        ["seen"],
      ]);

      const bcast = next(socket, "bcast");
      const direct = next(socket, "direct");
      assert.equal(await socket.timeout(5 * UNIT).emitWithAck("send_binary"), true);
      const [payload, deep] = await bcast;
      assert.deepEqual([...payload], [1, 2]);
      assert.deepEqual([...deep.deep[0]], [255]);
      assert.deepEqual([...(await direct)[0]], [0]);
      const outgoing = await socket.timeout(5 * UNIT).emitWithAck("seen_outgoing");
      // The broadcast too; acks are not events, so the answers above are not here.
      assert.deepEqual(outgoing, [
        ["bcast", { bytes: "0102" }, { deep: [{ bytes: "ff" }] }],
        ["direct", { bytes: "00" }],
      ]);
    });

    modeTest("packet middleware drops a packet: nothing back, still connected", async (t) => {
      const socket = await connected(t);
      const received = [];
      socket.onAny((event, ...args) => received.push([event, args]));
      let acked = false;
      socket.emit("forbidden", 1, () => (acked = true));
      // Packets are handled in order: by this answer the dropped one has been through.
      const errors = await socket.timeout(5 * UNIT).emitWithAck("errors");
      assert.deepEqual(errors, ["forbidden: [1]"]);
      await sleep(0.3 * UNIT); // and nothing comes later either
      assert.equal(acked, false, "no ack for a dropped packet");
      assert.deepEqual(received, [], "no event for a dropped packet");
      assert.ok(socket.connected);
      // The middleware may change the args in place; other packets go through.
      assert.equal(await socket.timeout(5 * UNIT).emitWithAck("shout", "hi"), "HI");
      assert.deepEqual(await socket.timeout(5 * UNIT).emitWithAck("errors"), ["forbidden: [1]"]);
    });

    modeTest("dynamic namespaces: regex and function parents", async (t) => {
      const main = await connected(t);
      const team = client(t, "/team-42");
      const welcome = next(team, "team");
      await connection(team);
      assert.deepEqual(await welcome, ["/team-42"], "the parent's middleware and handler ran");
      assert.ok((await main.timeout(5 * UNIT).emitWithAck("teams")).includes("/team-42"));

      const nope = await refusal(client(t, "/nope"));
      assert.equal(nope.message, "Invalid namespace");
      const fn = client(t, "/fn-1", { auth: { ok: true } });
      const fnWelcome = next(fn, "fn");
      await connection(fn);
      assert.deepEqual(await fnWelcome, ["/fn-1"]);
      const denied = await refusal(client(t, "/fn-2", { auth: { ok: false } }));
      assert.equal(denied.message, "Invalid namespace");
      assert.ok(main.connected && team.connected && fn.connected);
    });

    modeTest("socket.emit(..., callback=fn) is answered by the client's ack", async (t) => {
      const socket = await connected(t);
      socket.on("question", (value, ack) => ack(value * 2, "two"));
      const answered = next(socket, "answered");
      socket.emit("ask", 21);
      assert.deepEqual(await answered, [[42, "two"]]);
    });

    modeTest("volatile emits to a connected client arrive", async (t) => {
      const socket = await connected(t);
      await settled(mode, socket);
      const got = [];
      socket.on("v", (n) => got.push(n));
      // One at a time: over polling a volatile packet is dropped while others wait.
      for (let i = 0; i < 5; i++) {
        assert.equal(await socket.timeout(5 * UNIT).emitWithAck("volatile", 1, i), true);
      }
      assert.deepEqual(got, [0, 1, 2, 3, 4]);
      if (mode !== "polling") {
        // A WebSocket with room in its buffer takes a burst.
        assert.equal(await socket.timeout(5 * UNIT).emitWithAck("volatile", 50, 5), true);
        assert.deepEqual(got, Array.from({ length: 55 }, (_, i) => i));
      }
    });

    modeTest("migration guards: a middleware returning False, ConnectionRefusedError", async (t) => {
      const guarded = await refusal(client(t, "/guarded"));
      assert.equal(guarded.message, "Connection rejected by server");
      const builtin = await refusal(client(t, "/builtin"));
      assert.equal(builtin.message, "go away");
      // The main namespace of the same server is unaffected.
      assert.ok((await connected(t)).connected);
    });
  });
}

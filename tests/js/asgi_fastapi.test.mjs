// minisio mounted in a FastAPI app (tests/js/asgi_fastapi.py, the README's example)
// under uvicorn: the app's own routes and lifespan, a REST call that emits to a
// room, the official client in its three modes, and Chromium chatting on the
// page served from the FastAPI port.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { CHROMIUM, next, startPython, UNIT } from "./helpers.mjs";

const APP = fileURLToPath(new URL("./asgi_fastapi.py", import.meta.url));
const WAIT = 5 * UNIT;
const MODES = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
  default: {},
};

async function notice(url, room, text) {
  const response = await fetch(`${url}/api/rooms/${encodeURIComponent(room)}/notice`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
  });
  assert.equal(response.status, 200);
  return response.json();
}

/** The `notice` events `socket` gets, "X joined" / "X left" of the chat left out. */
function notices(socket) {
  const got = [];
  socket.on("notice", (text) => {
    if (!/ (joined|left)$/.test(text)) got.push(text);
  });
  return got;
}

describe("FastAPI with minisio mounted, under uvicorn", { timeout: 60 * UNIT }, () => {
  let server;
  before(async () => {
    server = await startPython([APP]);
  });
  after(async () => {
    await server?.stop();
  });

  test("the app's own routes and its lifespan startup", { timeout: 15 * UNIT }, async () => {
    const health = await (await fetch(`${server.url}/api/health`)).json();
    assert.equal(typeof health.started, "number", "set by the app's lifespan");
    assert.equal((await fetch(`${server.url}/docs`)).status, 200); // FastAPI's own page
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /socket\.io\.js/); // minisio's static folder
    const bundle = await fetch(`${server.url}/socket.io/socket.io.min.js`);
    assert.equal(bundle.status, 200);
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
  });

  for (const [mode, options] of Object.entries(MODES)) {
    test(`${mode}: a REST call that emits to a room reaches that room's clients only`, async (t) => {
      const clients = ["a", "b", "c"].map((name) => {
        const socket = io(server.url, { forceNew: true, auth: { name }, ...options });
        t.after(() => socket.close());
        return socket;
      });
      await Promise.all(clients.map((s) => (s.connected ? null : next(s, "connect"))));
      const [a, b, c] = clients;
      const got = clients.map(notices);
      assert.deepEqual(await a.emitWithAck("join_room", "r1"), [a.id, "r1"].sort());
      assert.deepEqual(await b.emitWithAck("join_room", "r1"), [b.id, "r1"].sort());
      assert.deepEqual(await c.emitWithAck("join_room", "r2"), [c.id, "r2"].sort());
      const arrived = [next(a, "notice"), next(b, "notice")];
      assert.deepEqual(await notice(server.url, "r1", `for r1 (${mode})`), { sockets: 3 });
      await Promise.all(arrived);
      await sleep(200 * UNIT / 1000);
      assert.deepEqual(got, [[`for r1 (${mode})`], [`for r1 (${mode})`], []]);
      // And the chat itself, over the same port.
      assert.deepEqual(await a.emitWithAck("chat", { text: "hi", route: "all" }), { ok: true });
    });
  }

  test("Chromium loads the chat from the FastAPI port and chats", { timeout: 40 * UNIT }, async (t) => {
    const browser = await chromium.launch(CHROMIUM);
    t.after(() => browser.close());
    const T = (id) => `[data-testid="${id}"]`;
    const tabs = {};
    for (const name of ["Ann", "Bob"]) {
      const page = await browser.newPage();
      await page.goto(`${server.url}/`);
      await page.fill(T("name"), name);
      await page.click(T("join"));
      await page.waitForSelector(`${T("status")}[data-state="online"]`, { timeout: WAIT });
      tabs[name] = page;
    }
    await tabs.Ann.waitForSelector(`${T("user")}[data-name="Bob"]`, { timeout: WAIT });
    await tabs.Ann.check(T("route-all"));
    await tabs.Ann.fill(T("text"), "hello from Ann");
    await tabs.Ann.click(T("send"));
    const chat = `${T("chat-message")} ${T("chat-text")}`;
    for (const page of Object.values(tabs)) {
      await page.waitForFunction(
        ([selector]) => [...document.querySelectorAll(selector)].some((e) => e.textContent === "hello from Ann"),
        [chat],
        { timeout: WAIT },
      );
    }
    // A REST call to Bob's socket id (a room of one) shows on Bob's page only.
    const bobId = await tabs.Ann.$eval(`${T("user")}[data-name="Bob"]`, (e) => e.dataset.id);
    await notice(server.url, bobId, "only for Bob");
    const noticeSel = T("notice");
    await tabs.Bob.waitForFunction(
      ([selector]) => [...document.querySelectorAll(selector)].some((e) => e.textContent === "only for Bob"),
      [noticeSel],
      { timeout: WAIT },
    );
    await sleep(200);
    const annNotices = await tabs.Ann.$$eval(noticeSel, (els) => els.map((e) => e.textContent));
    assert.ok(!annNotices.includes("only for Bob"), annNotices.join(", "));
  });

  test("the lifespan shutdown runs, and minisio stops with it", { timeout: 15 * UNIT }, async () => {
    await server.stop();
    assert.match(server.stderr(), /lifespan shutdown ran: True/);
    assert.match(server.stderr(), /minisio serving after shutdown: False/);
  });
});

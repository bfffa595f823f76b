// The demo chat tab survives a dropped connection (connection state recovery),
// in headless Chromium against `python -m minisio`.
//
// The drop: the tab's engine is closed under its socket with reconnection
// paused, so that the gap lasts until the test says so; meanwhile another tab
// sends messages. Then the tab's Manager reconnects as it would by itself
// (its reconnect(): the backoff, then a new engine). The socket is reached through an
// init script that records what `window.io()` returns; the page is unchanged.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { CHROMIUM, startPython, UNIT } from "./helpers.mjs";

const WAIT = 5 * UNIT;
const CHAT = /minisio chat on (http:\/\/\S+)/;
const T = (id) => `[data-testid="${id}"]`;

function recordSockets() {
  // Runs before the page's scripts: wrap io() as soon as the bundle defines it.
  let real;
  Object.defineProperty(window, "io", {
    configurable: true,
    get: () => real,
    set(fn) {
      real = Object.assign((...args) => {
        const socket = fn(...args);
        (window.__sockets ||= []).push(socket);
        return socket;
      }, fn);
    },
  });
}

async function join(page, url, name) {
  await page.goto(url);
  await page.fill(T("name"), name);
  await page.click(T("join"));
  await page.waitForSelector(`${T("status")}[data-state="online"]`, { timeout: WAIT });
}

async function send(page, text) {
  await page.check(T("route-all"));
  await page.fill(T("text"), text);
  await page.click(T("send"));
  await page.waitForFunction(
    ([status, input]) =>
      document.querySelector(status).dataset.state === "ok" && document.querySelector(input).value === "",
    [T("send-status"), T("text")],
    { timeout: WAIT },
  );
}

const texts = (page, id) => page.$$eval(T(id), (els) => els.map((e) => e.textContent));
const received = (page) => page.$$eval(`${T("chat-message")} ${T("chat-text")}`, (els) => els.map((e) => e.textContent));

describe("the demo tab across a dropped connection", { timeout: 40 * UNIT }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startPython(["-m", "minisio", "--port", "0"], { ready: CHAT });
    browser = await chromium.launch(CHROMIUM);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("keeps its name and id, gets the messages sent meanwhile, and nobody sees it leave", async () => {
    const ada = await browser.newPage();
    const grace = await browser.newPage();
    await ada.addInitScript(recordSockets);
    await join(ada, server.url, "Ada");
    await join(grace, server.url, "Grace");
    await send(grace, "before the drop");
    await ada.waitForFunction((s) => document.querySelectorAll(s).length === 2, T("user"), { timeout: WAIT });
    const id = await ada.evaluate(() => window.__sockets.at(-1).id);

    // The drop, and the gap.
    await ada.evaluate(() => {
      const socket = window.__sockets.at(-1);
      socket.io.reconnection(false);
      socket.io.engine.close();
    });
    await ada.waitForSelector(`${T("status")}[data-state="connecting"]`, { timeout: WAIT });
    await send(grace, "while you were away");
    await send(grace, "and this too");

    // Back.
    await ada.evaluate(() => {
      const socket = window.__sockets.at(-1);
      socket.io.reconnection(true);
      socket.io.skipReconnect = false; // reconnection(false) set it
      socket.io.reconnect(); // what the Manager does by itself when reconnection is on
    });
    await ada.waitForSelector(`${T("status")}[data-state="online"]`, { timeout: WAIT });
    await ada.waitForFunction((s) => document.querySelectorAll(s).length === 2, T("user"), { timeout: WAIT });
    const state = await ada.evaluate(() => {
      const socket = window.__sockets.at(-1);
      return { id: socket.id, recovered: socket.recovered, sockets: window.__sockets.length };
    });
    assert.deepEqual(state, { id, recovered: true, sockets: 1 });
    await send(grace, "after");
    await ada.waitForFunction(
      (s) => [...document.querySelectorAll(s)].some((e) => e.textContent === "after"),
      `${T("chat-message")} ${T("chat-text")}`,
      { timeout: WAIT },
    );
    // Each message once, in order: the missed ones replayed before the live one.
    assert.deepEqual(await received(ada), ["before the drop", "while you were away", "and this too", "after"]);
    assert.ok((await texts(ada, "system")).includes("Reconnected as Ada: nothing was missed."));
    // The others saw nothing: no "Ada left", no second "Ada joined"; the roster kept her.
    assert.deepEqual(await texts(grace, "notice"), []);
    assert.deepEqual(await texts(ada, "notice"), ["Grace joined"]);
    const roster = await grace.$$eval(T("user"), (els) => els.map((e) => [e.dataset.name, e.dataset.id]));
    assert.equal(roster.length, 2);
    assert.deepEqual(roster.find(([name]) => name === "Ada"), ["Ada", id]);
    // The wire panel shows the CONNECT with pid and offset, and the same sid back.
    const wire = await texts(ada, "frame");
    assert.ok(wire.some((l) => /^> 40\{"pid":"[\w-]+","offset":"[0-9a-f]+","name":"Ada"\}$/.test(l)), "no resume CONNECT");
    assert.ok(wire.some((l) => l.startsWith(`< 40{"sid":"${id}","pid":"`)), "no CONNECT reply with the same sid");
    await ada.close();
    await grace.close();
  });
});

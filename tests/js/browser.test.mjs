// The chat page in a real browser: three tabs on the demo server
// (`python -m minisio`), the four routes, whispers, join/leave notices and
// the wire panel. Chromium is Debian's (/usr/bin/chromium), driven by
// playwright-core; if it cannot start, these tests fail.
//
// Waits are multiples of UNIT (a second); a loaded CI machine can scale them
// with MINISIO_TEST_UNIT, as the Python tests do.

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, startPython, UNIT } from "./helpers.mjs";

const WAIT = 5 * UNIT; // one wait for something to show on a page
const STATIC = fileURLToPath(new URL("../../static/", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("../../artifacts/", import.meta.url));
const VIEWPORT = { width: 1100, height: 720 };

// The demo chat server, but without the client bundle (serve_client=False):
// what a checkout without `npm ci` looks like to the page.
const NO_BUNDLE_SERVER = `
import asyncio, sys
from minisio.__main__ import create_app

async def main():
    io = create_app(static_dir=sys.argv[1], serve_client=False)
    async with io.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"minisio chat on http://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()

asyncio.run(main())
`;

// -- processes ---------------------------------------------------------------
const CHAT = /minisio chat on (http:\/\/\S+)/;
const servers = new Set();

/** Start a Python chat server; resolves once it prints its URL, stopped in after(). */
async function startServer(args) {
  const server = await startPython(args, { ready: CHAT });
  servers.add(server);
  return server;
}

// -- page helpers ------------------------------------------------------------
const T = (id) => `[data-testid="${id}"]`;

async function join(page, url, name) {
  await page.goto(url);
  await page.fill(T("name"), name);
  await page.click(T("join"));
  await page.waitForSelector(`${T("status")}[data-state="online"]`, { timeout: WAIT });
}

/** The texts of the chat messages this tab received from the server, in order. */
function received(page) {
  return page.$$eval(`${T("chat-message")} ${T("chat-text")}`, (els) => els.map((e) => e.textContent));
}

function notices(page) {
  return page.$$eval(T("notice"), (els) => els.map((e) => e.textContent));
}

function roster(page) {
  return page.$$eval(T("user"), (els) => els.map((e) => e.dataset.name));
}

function wireLines(page) {
  return page.$$eval(T("frame"), (els) => els.map((e) => e.textContent));
}

/** Wait until every text in `texts` is among the tab's received messages. */
async function waitForChat(page, texts) {
  await page.waitForFunction(
    ([selector, wanted]) => {
      const have = new Set([...document.querySelectorAll(selector)].map((e) => e.textContent));
      return wanted.every((text) => have.has(text));
    },
    [`${T("chat-message")} ${T("chat-text")}`, texts],
    { timeout: WAIT },
  );
}

async function waitForNotice(page, text) {
  await page.waitForFunction(
    ([selector, wanted]) => [...document.querySelectorAll(selector)].some((e) => e.textContent === wanted),
    [T("notice"), text],
    { timeout: WAIT },
  );
}

/** Send through the composer and wait for the server's ack. */
async function send(page, route, text) {
  await page.check(T(`route-${route}`));
  await page.fill(T("text"), text);
  await page.click(T("send"));
  await page.waitForFunction(
    ([status, input]) =>
      document.querySelector(status).dataset.state === "ok" && document.querySelector(input).value === "",
    [T("send-status"), T("text")],
    { timeout: WAIT },
  );
}

// -- the tests ---------------------------------------------------------------
describe("the chat page in chromium", { timeout: 50 * UNIT }, () => {
  let server;
  let browser;
  const tabs = {}; // name -> page
  const pageErrors = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await startServer(["-m", "minisio", "--port", "0"]);
    browser = await chromium.launch(CHROMIUM); // no browser: this throws, the tests fail
  });

  after(async () => {
    await browser?.close();
    await Promise.all([...servers].map((s) => s.stop()));
  });

  // One context per tab: each gets its own window, so none is a throttled
  // background tab.
  const newPage = async () => (await browser.newContext({ viewport: VIEWPORT })).newPage();

  async function openTab(name) {
    const page = await newPage();
    page.on("pageerror", (error) => pageErrors.push(`${name}: ${error.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error") pageErrors.push(`${name}: console: ${msg.text()}`);
    });
    tabs[name] = page;
    await join(page, server.url, name);
    return page;
  }

  it("announces each newcomer to those already there", async () => {
    const ada = await openTab("Ada");
    const grace = await openTab("Grace");
    await waitForNotice(ada, "Grace joined");
    const linus = await openTab("Linus");
    await waitForNotice(ada, "Linus joined");
    await waitForNotice(grace, "Linus joined");

    assert.deepEqual(await notices(ada), ["Grace joined", "Linus joined"]);
    assert.deepEqual(await notices(grace), ["Linus joined"]);
    assert.deepEqual(await notices(linus), []); // "joined" goes to the others only
    for (const page of [ada, grace, linus]) {
      await page.waitForFunction((s) => document.querySelectorAll(s).length === 3, T("user"), { timeout: WAIT });
      assert.deepEqual((await roster(page)).sort(), ["Ada", "Grace", "Linus"]);
      assert.equal(await page.textContent(T("user-count")), "3");
    }
    assert.match(await linus.textContent(T("status")), /connected as Linus/);
  });

  it("delivers each route to exactly the right tabs", async () => {
    const { Ada: ada, Grace: grace, Linus: linus } = tabs;

    await send(ada, "all", "hello, everyone");
    await waitForChat(ada, ["hello, everyone"]);
    await waitForChat(grace, ["hello, everyone"]);
    await waitForChat(linus, ["hello, everyone"]);

    await send(grace, "me", "note to self");
    await waitForChat(grace, ["note to self"]);

    await send(linus, "others", "hi, the rest of you");
    await waitForChat(ada, ["hi, the rest of you"]);
    await waitForChat(grace, ["hi, the rest of you"]);

    // Selecting someone in the roster picks the whisper route.
    await ada.click(`${T("user")}[data-name="Linus"]`);
    assert.equal(await ada.isChecked(T("route-whisper")), true);
    assert.equal(await ada.textContent(T("whisper-label")), "whisper to Linus");
    await send(ada, "whisper", "psst, Linus");
    await waitForChat(linus, ["psst, Linus"]);

    await grace.click(`${T("user")}[data-name="Ada"]`);
    await send(grace, "whisper", "psst, Ada");
    await waitForChat(ada, ["psst, Ada"]);

    // A message from each sender to everyone: the server handles a sender's
    // messages in order and each tab receives in order, so once these arrive
    // nothing sent earlier is still on its way.
    for (const [name, page] of Object.entries(tabs)) {
      await send(page, "all", `over from ${name}`);
      for (const other of Object.values(tabs)) await waitForChat(other, [`over from ${name}`]);
    }
    const over = ["over from Ada", "over from Grace", "over from Linus"];

    assert.deepEqual(await received(ada), ["hello, everyone", "hi, the rest of you", "psst, Ada", ...over]);
    assert.deepEqual(await received(grace), ["hello, everyone", "note to self", "hi, the rest of you", ...over]);
    assert.deepEqual(await received(linus), ["hello, everyone", "psst, Linus", ...over]);

    // The server sends no copy back for "others" and "whisper"; the page keeps its own.
    const copies = (page) => page.$$eval(T("sent-copy"), (els) => els.map((e) => e.textContent));
    const adaCopies = await copies(ada);
    assert.equal(adaCopies.length, 1);
    assert.match(adaCopies[0], /you whispered to Linus.*psst, Linus/);
    assert.equal((await copies(linus)).length, 1);
    assert.match((await copies(linus))[0], /to everyone but you.*hi, the rest of you/);
    assert.equal(
      await linus.getAttribute(`${T("chat-message")}[data-route="whisper"]`, "data-route"),
      "whisper",
    );

    // Two tabs mid-conversation, side by side, for a person to look at.
    const shots = await Promise.all([ada.screenshot(), grace.screenshot()]);
    const sheet = await newPage();
    await sheet.setViewportSize({ width: VIEWPORT.width * 2 + 12, height: VIEWPORT.height });
    const img = (png) => `<img src="data:image/png;base64,${png.toString("base64")}">`;
    await sheet.setContent(
      `<body style="margin:0;display:flex;gap:12px;background:#888">${shots.map(img).join("")}</body>`,
    );
    await sheet.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
    await writeFile(`${ARTIFACTS}chat-two-tabs.png`, await sheet.screenshot());
    await sheet.close();
  });

  it("shows the raw frames in the wire panel", async () => {
    const lines = await wireLines(tabs.Ada);
    const has = (pattern) => assert.ok(lines.some((l) => pattern.test(l)), `no line matches ${pattern}`);
    has(/^< 0\{"sid":"[\w-]+","upgrades":\["websocket"\]/); // Engine.IO open, over polling
    has(/^-- GET \(long-poll/); // a held GET
    has(/^-- websocket: > 2probe {2}< 3probe/); // the upgrade's probe
    has(/^-- websocket: > 5 \(upgrade/); // and the switch
    has(/^> 40\{"name":"Ada"\}$/); // Socket.IO CONNECT with auth
    // The demo has connection state recovery on: the CONNECT reply carries the
    // private session id, and each event the server keeps its offset, last.
    has(/^< 40\{"sid":"[\w-]+","pid":"[\w-]+"\}$/);
    has(/^> 42\d+\["chat",\{"text":"hello, everyone","route":"all"\}\]$/); // EVENT with an ack id
    has(/^< 43\d+\[\{"ok":true\}\]$/); // its ACK
    has(/^< 42\["chat",\{"from":"[\w-]+","name":"Ada","text":"hello, everyone","route":"all"\},"[0-9a-f]+"\]$/);
    has(/^< 42\["notice","Grace joined","[0-9a-f]+"\]$/);
    has(/^> 42\d+\["chat",\{"text":"psst, Linus","route":"whisper","to":"[\w-]+"\}\]$/);
    // What was not for Ada never reached her wire.
    const incoming = lines.filter((l) => l.startsWith("< "));
    for (const text of ["psst, Linus", "note to self"]) {
      assert.ok(!incoming.some((l) => l.includes(text)), `Ada received ${text}`);
    }
    // "To everyone but me" sends nothing back to its sender, Linus.
    const linusIn = (await wireLines(tabs.Linus)).filter((l) => l.startsWith("< "));
    assert.ok(linusIn.some((l) => l.includes('"chat"')), "Linus's panel shows incoming chat");
    assert.ok(!linusIn.some((l) => l.includes("hi, the rest of you")), "Linus got his own copy");
  });

  it("announces a closed tab as gone and forgets it as a whisper target", async () => {
    const { Ada: ada, Grace: grace, Linus: linus } = tabs;
    // Ada still has Linus selected from her whisper.
    assert.equal(await ada.getAttribute(`${T("user")}[data-name="Linus"]`, "aria-pressed"), "true");
    await ada.check(T("route-whisper"));
    await linus.close();
    delete tabs.Linus;
    await waitForNotice(ada, "Linus left");
    await waitForNotice(grace, "Linus left");
    for (const page of [ada, grace]) {
      await page.waitForFunction((s) => document.querySelectorAll(s).length === 2, T("user"), { timeout: WAIT });
      assert.deepEqual((await roster(page)).sort(), ["Ada", "Grace"]);
    }
    assert.equal(await ada.isDisabled(T("route-whisper")), true);
    assert.equal(await ada.isChecked(T("route-all")), true);
    assert.equal(await ada.textContent(T("whisper-label")), "whisper (select someone)");
  });

  it("keeps only the last 200 frames in the wire panel", async () => {
    const grace = tabs.Grace;
    // 80 echoes without waiting for each ack: 240 frames (event, ack, echo).
    await grace.evaluate(() => {
      const form = document.querySelector('[data-testid="composer"]');
      const input = document.querySelector('[data-testid="text"]');
      document.querySelector('[data-testid="route-me"]').checked = true;
      for (let i = 0; i < 80; i++) {
        input.value = `flood ${i}`;
        form.requestSubmit();
      }
    });
    await waitForChat(grace, ["flood 79"]);
    await grace.waitForFunction(
      (s) => [...document.querySelectorAll(s)].at(-1).textContent.startsWith("< 43"),
      T("frame"),
      { timeout: WAIT },
    );
    const lines = await wireLines(grace);
    assert.equal(lines.length, 200);
    assert.ok(!lines.some((l) => l.startsWith("< 0{")), "the open packet is still shown");
    assert.ok(lines.some((l) => l.includes('"text":"flood 79"')));
  });

  it("connects with the classroom page's io.connect(), upgrades, and chats with a polling-only page", async () => {
    // The classroom app's client code, verbatim: no options at all.
    const classroom = await newPage();
    await classroom.goto(server.url);
    const poller = await newPage();
    await poller.goto(server.url);
    const connectAndWatch = async ([options, wait]) => {
      const socket = options === null ? io.connect() : io(options);
      // The engine opens its first transport synchronously: that is the one
      // the session starts on. By "connect" the default client may already
      // have upgraded (the CONNECT reply can arrive on either transport).
      const first = socket.io.engine.transport.name;
      window.seen = [];
      socket.on("chat", (message) => window.seen.push(message.text));
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no connect")), wait);
        socket.on("connect", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.on("connect_error", (error) => reject(new Error(error.message)));
      });
      window.classroomSocket = socket;
      return [first, socket.io.engine.transport.name];
    };
    const [classroomFirst, classroomAtConnect] = await classroom.evaluate(connectAndWatch, [null, WAIT]);
    assert.equal(classroomFirst, "polling");
    assert.ok(["polling", "websocket"].includes(classroomAtConnect), classroomAtConnect);
    assert.deepEqual(
      await poller.evaluate(connectAndWatch, [{ transports: ["polling"], auth: { name: "Poller" } }, WAIT]),
      ["polling", "polling"],
    );
    // The default client moves to WebSocket; the polling-only one stays.
    const upgraded = await classroom.evaluate(async (wait) => {
      const engine = window.classroomSocket.io.engine;
      if (engine.transport.name !== "websocket") {
        await new Promise((resolve, reject) => {
          setTimeout(() => reject(new Error("no upgrade")), wait);
          engine.once("upgrade", resolve);
        });
      }
      return engine.transport.name;
    }, WAIT);
    assert.equal(upgraded, "websocket");
    const say = (page, text) =>
      page.evaluate(
        ([t, wait]) => window.classroomSocket.timeout(wait).emitWithAck("chat", { text: t, route: "all" }),
        [text, WAIT],
      );
    assert.deepEqual(await say(classroom, "hello from io.connect()"), { ok: true });
    assert.deepEqual(await say(poller, "hello from polling"), { ok: true });
    for (const page of [classroom, poller]) {
      await page.waitForFunction(() => window.seen.length >= 2, null, { timeout: WAIT });
      assert.deepEqual(await page.evaluate(() => window.seen), ["hello from io.connect()", "hello from polling"]);
    }
    assert.equal(await poller.evaluate(() => window.classroomSocket.io.engine.transport.name), "polling");
    await classroom.close();
    await poller.close();
  });

  it("acks a malformed chat message with an error the page can show", async () => {
    // Not what the page sends, but what any client may: each gets {ok: false, error}.
    const malformed = [
      { text: "hi", route: "whisper", to: ["x"] },
      { text: "hi", route: "whisper", to: { id: "x" } },
      { text: "hi", route: "whisper" },
      { text: ["hi"], route: "all" },
      { text: "hi", route: ["all"] },
      "hi",
    ];
    const acks = await tabs.Ada.evaluate(
      async ([messages, wait]) => {
        const probe = window.io({ forceNew: true, transports: ["websocket"], auth: { name: "probe" } });
        try {
          return await Promise.all(messages.map((m) => probe.timeout(wait).emitWithAck("chat", m)));
        } finally {
          probe.disconnect();
        }
      },
      [malformed, WAIT],
    );
    assert.deepEqual(
      acks.map((ack) => [ack.ok, typeof ack.error]),
      malformed.map(() => [false, "string"]),
    );
    assert.equal(acks[0].error, "no such user");
  });

  it("ran without page errors", () => {
    assert.deepEqual(pageErrors, []);
  });

  it("says so on the page when the client bundle is missing", async () => {
    const bare = await startServer(["-c", NO_BUNDLE_SERVER, STATIC]);
    const page = await newPage();
    await page.goto(bare.url);
    const alert = page.locator(T("bundle-missing"));
    await alert.waitFor({ state: "visible", timeout: WAIT });
    assert.match(await alert.textContent(), /the Socket\.IO client bundle is missing: run npm ci/i);
    assert.equal(await page.isDisabled(T("join")), true);
    await page.close();
    await bare.stop();
  });
});

// The official admin UI (@socket.io/admin-ui 0.5, from node_modules) watching
// the demo chat, in headless Chromium: `python -m minisio --admin USER:PASS`
// serves the chat at / and the UI at /admin/. The UI's page has no internet:
// every request to another host is refused (it asks for web fonts and icons
// on CDNs; the UI works without them, its icon buttons are blank).
//
// Waits are multiples of UNIT; MINISIO_TEST_UNIT stretches them.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, startPython, UNIT } from "./helpers.mjs";

const WAIT = 5 * UNIT;
const ARTIFACTS = fileURLToPath(new URL("../../artifacts/", import.meta.url));
const T = (id) => `[data-testid="${id}"]`;
const OFFLINE = /^https?:\/\/(?!127\.0\.0\.1[:/])/;

describe("the admin UI in chromium", { timeout: 60 * UNIT }, () => {
  let server;
  let browser;
  let admin; // the admin UI's page
  const tabs = {}; // chat tabs by name: {page, id}
  const pageErrors = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await startPython(["-m", "minisio", "--port", "0", "--admin", "admin:s3cret"], {
      ready: /minisio chat on (http:\/\/\S+)\//,
    });
    browser = await chromium.launch(CHROMIUM);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A chat tab joined as `name`; `polling`: its WebSockets refused, so it stays on polling. */
  async function chatTab(name, { polling = false } = {}) {
    const context = await browser.newContext();
    if (polling) await context.routeWebSocket(/.*/, (ws) => ws.close());
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(`${name}: ${error.message}`));
    await page.goto(server.url + "/");
    await page.fill(T("name"), name);
    await page.click(T("join"));
    await page.waitForSelector(`${T("status")}[data-state="online"]`, { timeout: WAIT });
    const id = await page.$eval(`${T("user")}[data-name="${name}"]`, (e) => e.dataset.id);
    tabs[name] = { page, id };
    return tabs[name];
  }

  async function openUi() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.route(OFFLINE, (route) => route.abort());
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(`admin: ${error.message}`));
    await page.goto(server.url + "/admin/");
    return page;
  }

  async function logIn(page, password) {
    await page.getByLabel("Server URL").fill(server.url);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Connect" }).click();
  }

  /** A screenshot into artifacts/, page transitions finished. */
  async function shoot(page, name) {
    await page.screenshot({ path: ARTIFACTS + name, animations: "disabled" });
  }

  /** The UI's connection status, as its header shows it. */
  function status(page) {
    return page.$eval("header .v-chip", (chip) => chip.textContent.trim());
  }

  /** The rows of the sockets table on the UI's current page: "id address transport". */
  async function socketRows(page) {
    const all = await page.$$eval("table tbody tr", (trs) => trs.map((tr) => tr.innerText.replace(/\s+/g, " ").trim()));
    return all.filter((row) => /^[\w-]{20} 127\.0\.0\.1 /.test(row));
  }

  async function waitForRow(page, pattern) {
    await page.waitForFunction(
      (source) =>
        [...document.querySelectorAll("table tbody tr")].some((tr) =>
          new RegExp(source).test(tr.innerText.replace(/\s+/g, " ").trim()),
        ),
      pattern.source,
      { timeout: WAIT },
    );
  }

  it("refuses wrong credentials", async () => {
    await chatTab("Ada");
    await chatTab("Grace", { polling: true });
    admin = await openUi();
    await logIn(admin, "not the password");
    await admin.getByText("Invalid credentials").waitFor({ timeout: WAIT });
    assert.equal(await status(admin), "disconnected");
  });

  it("logs in and lists the two chat tabs with their transports", async () => {
    await admin.getByLabel("Password").fill("s3cret");
    await admin.getByRole("button", { name: "Connect" }).click();
    await admin.waitForFunction(
      () => document.querySelector("header .v-chip")?.textContent.trim() === "connected",
      null,
      { timeout: WAIT },
    );
    await admin.goto(server.url + "/admin/#/sockets/");
    await waitForRow(admin, new RegExp(`${tabs.Ada.id} 127\\.0\\.0\\.1 WebSocket`));
    await waitForRow(admin, new RegExp(`${tabs.Grace.id} 127\\.0\\.0\\.1 HTTP long-polling`));
    assert.deepEqual((await socketRows(admin)).sort(), [
      `${tabs.Ada.id} 127.0.0.1 WebSocket`,
      `${tabs.Grace.id} 127.0.0.1 HTTP long-polling`,
    ].sort());
  });

  it("puts a tab in a room and shows its rooms", async () => {
    await admin.goto(`${server.url}/admin/#/n/%2F/sockets/${tabs.Ada.id}`);
    const roomsCard = admin.locator(".v-card", { hasText: "Join a room" });
    await roomsCard.getByLabel("Join a room").fill("vip");
    await roomsCard.locator("form button").click();
    await waitForRow(admin, /^vip$/);
    const rooms = await roomsCard.locator("table tbody tr").allInnerTexts();
    assert.deepEqual(rooms.map((r) => r.trim()).sort(), [tabs.Ada.id, "vip"].sort());
    await admin.getByText('"name": "Ada"').waitFor({ timeout: WAIT }); // socket.data
    await shoot(admin, "admin-ui-socket.png");
    await admin.goto(server.url + "/admin/#/rooms/");
    await waitForRow(admin, /^vip\b.*\b1$/);
  });

  it("shows an event arrive", async () => {
    await admin.goto(server.url + "/admin/#/events/");
    const { page } = tabs.Ada;
    await page.fill(T("text"), "hello, admin");
    await page.click(T("send"));
    await waitForRow(admin, new RegExp(`${tabs.Ada.id} Event received Event name: chat`));
    await waitForRow(admin, new RegExp(`${tabs.Grace.id} Event sent Event name: chat`));
    await shoot(admin, "admin-ui-events.png");
    await admin.goto(server.url + "/admin/#/sockets/");
    await waitForRow(admin, new RegExp(tabs.Grace.id));
    await shoot(admin, "admin-ui-sockets.png");
  });

  it("disconnects a tab, which leaves the chat", async () => {
    await admin.goto(`${server.url}/admin/#/n/%2F/sockets/${tabs.Grace.id}`);
    await admin.locator("tr", { hasText: "Status" }).locator("button:has(i.mdi-logout)").first().click();
    const grace = tabs.Grace.page;
    await grace.waitForSelector(`${T("status")}:not([data-state="online"])`, { timeout: WAIT });
    const ada = tabs.Ada.page;
    await ada.waitForFunction((s) => document.querySelectorAll(s).length === 1, T("user"), { timeout: WAIT });
    await ada.locator(T("notice"), { hasText: "Grace left" }).waitFor({ timeout: WAIT });
    await admin.goto(server.url + "/admin/#/sockets/");
    await admin.waitForFunction(
      (id) => ![...document.querySelectorAll("table tbody tr")].some((tr) => tr.innerText.includes(id)),
      tabs.Grace.id,
      { timeout: WAIT },
    );
    assert.deepEqual(await socketRows(admin), [`${tabs.Ada.id} 127.0.0.1 WebSocket`]);
    await shoot(admin, "admin-ui-after-disconnect.png");
    assert.deepEqual(pageErrors, []);
  });
});

// `node tests/js/join_chat.mjs URL NAME TEXT`: headless Chromium opens the
// chat page at URL, joins as NAME, sends TEXT to everyone and waits for it to
// come back. Prints one JSON line: what the page loaded and showed. Used by
// tests/test_packaging.py against a server installed from the wheel.

import { chromium } from "playwright-core";
import { CHROMIUM, UNIT } from "./helpers.mjs";

const [url, name, text] = process.argv.slice(2);
const T = (id) => `[data-testid="${id}"]`;
const browser = await chromium.launch(CHROMIUM);
try {
  const page = await (await browser.newContext()).newPage();
  const scripts = [];
  const errors = [];
  page.on("request", (request) => {
    if (request.resourceType() === "script") scripts.push(request.url());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url);
  await page.fill(T("name"), name);
  await page.click(T("join"));
  await page.waitForSelector(`${T("status")}[data-state="online"]`, { timeout: 5 * UNIT });
  await page.fill(T("text"), text);
  await page.click(T("send"));
  await page.waitForFunction(
    ([selector, wanted]) =>
      [...document.querySelectorAll(selector)].some((e) => e.textContent === wanted),
    [`${T("chat-message")} ${T("chat-text")}`, text],
    { timeout: 5 * UNIT },
  );
  const users = await page.$$eval(T("user"), (els) => els.map((e) => e.dataset.name));
  const missing = await page.isVisible(T("bundle-missing"));
  console.log(JSON.stringify({ scripts, errors, users, missing, status: "online" }));
} finally {
  await browser.close();
}

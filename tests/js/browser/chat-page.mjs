// Drives the gateway's web chat page in headless Chromium (Debian's `chromium`, through
// puppeteer-core): unlocks it with the gateway's API key, picks the model, asks a question,
// waits for the settled answer and reads what the page shows. A screenshot is saved at each
// step. Every request the page makes must stay on loopback.
//
// Usage: node browser/chat-page.mjs GATEWAY_URL API_KEY SCREENSHOT_DIR
// Prints one JSON object: the model shown, the answer, the settlement table, the balances.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const [url, apiKey, shots] = process.argv.slice(2);
const QUESTION = "What is the capital of France?";
mkdirSync(shots, { recursive: true });

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run"],
});
const offLoopback = [];
const consoleErrors = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 900 });
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    const host = new URL(request.url()).hostname;
    if (host === "127.0.0.1" || host === "localhost") request.continue();
    else { offLoopback.push(request.url()); request.abort(); }
  });
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  let step = 0;
  const shot = async (name) => page.screenshot({ path: join(shots, `${++step}-${name}.png`), fullPage: true });

  await page.goto(url, { waitUntil: "load" });
  await shot("locked");

  // A wrong key is refused and the page stays locked.
  await page.type("#api-key", "nesa-wrong-key-0000000000");
  await page.click("#unlock-button");
  await page.waitForFunction(() => document.getElementById("unlock-error").textContent.length > 0);
  const wrongKey = await page.$eval("#unlock-error", (e) => e.textContent);
  await shot("wrong-key");

  await page.$eval("#api-key", (e) => { e.value = ""; });
  await page.type("#api-key", apiKey);
  await page.click("#unlock-button");
  await page.waitForSelector("#chat:not([hidden])");
  await page.waitForFunction(() => document.getElementById("wallet").dataset.balance !== undefined);
  const model = await page.$eval("#model", (e) => e.value);
  const modelInfo = await page.$eval("#model-info", (e) => e.textContent);
  const balanceBefore = await page.$eval("#wallet", (e) => e.dataset.balance);
  await shot("unlocked");

  await page.type("#prompt", QUESTION);
  await page.$eval("#max-tokens", (e) => { e.value = "24"; });
  await page.click("#send");
  await page.waitForSelector(".assistant[data-state='waiting']");
  await shot("waiting");
  await page.waitForSelector(".assistant[data-state='settled'], .assistant[data-state='failed']", { timeout: 300_000 });
  // The balance refreshes after the answer.
  await page.waitForFunction((before) => document.getElementById("wallet").dataset.balance !== before, { timeout: 30_000 }, balanceBefore).catch(() => {});
  await shot("settled");

  const result = await page.evaluate(() => {
    const turn = document.querySelector(".assistant");
    const rows = {};
    for (const row of document.querySelectorAll("table.settlement tr")) rows[row.cells[0].textContent] = row.cells[1].textContent;
    return { state: turn.dataset.state, answer: turn.textContent, settlement: rows, status: turn.nextElementSibling.firstChild?.textContent ?? "" };
  });
  const balanceAfter = await page.$eval("#wallet", (e) => e.dataset.balance);
  console.log(JSON.stringify({ wrongKey, model, modelInfo, balanceBefore, balanceAfter, ...result, offLoopback, consoleErrors, screenshots: step }));
} finally {
  await browser.close();
}

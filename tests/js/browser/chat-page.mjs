// Drives the gateway's web chat page in headless Chromium (Debian's `chromium`, through
// puppeteer-core): unlocks it with the gateway's API key, picks the model, asks a question
// paid by the gateway's wallet, waits for the settled answer and reads what the page shows;
// then switches to Keplr and asks again, paid and signed by the Keplr wallet. `window.keplr`
// is Keplr's injected API in front of a CosmJS wallet (DirectSecp256k1HdWallet) holding
// KEPLR_MNEMONIC; like a Keplr user picking a higher fee, it raises the fee it signs by 20%.
// A screenshot is saved at each step. Every request the page makes must stay on loopback.
//
// Usage: KEPLR_MNEMONIC="…" node browser/chat-page.mjs GATEWAY_URL API_KEY SCREENSHOT_DIR
// Prints one JSON object: the model shown, each answer and settlement table, the balances,
// the Keplr calls and the fee Keplr signed.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DirectSecp256k1HdWallet, makeSignDoc } from "@cosmjs/proto-signing";
import { AuthInfo } from "cosmjs-types/cosmos/tx/v1beta1/tx";
import puppeteer from "puppeteer-core";

const [url, apiKey, shots] = process.argv.slice(2);
const QUESTION = "What is the capital of France?";
const KEPLR_QUESTION = "What is the capital of Italy?";
mkdirSync(shots, { recursive: true });
const wallet = await DirectSecp256k1HdWallet.fromMnemonic(process.env.KEPLR_MNEMONIC, { prefix: "nesa" });
const [account] = await wallet.getAccounts();
const base64 = (bytes) => Buffer.from(bytes).toString("base64");
const bytes = (text) => new Uint8Array(Buffer.from(text, "base64"));
const keplrCalls = [];
let keplrFee = null;

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

  // Keplr's injected API, signing in this process with CosmJS. It knows no chain until one is
  // suggested, as a fresh Keplr.
  await page.exposeFunction("__keplrCall", (method, chainId) => { keplrCalls.push({ method, chainId }); });
  await page.exposeFunction("__keplrSignDirect", async (chainId, signer, doc) => {
    keplrCalls.push({ method: "signDirect", chainId, signer });
    const authInfo = AuthInfo.decode(bytes(doc.authInfoBytes));
    authInfo.fee.amount = authInfo.fee.amount.map((c) => ({ ...c, amount: ((BigInt(c.amount) * 12n) / 10n).toString() }));
    keplrFee = authInfo.fee.amount.map((c) => `${c.amount}${c.denom}`).join(",");
    const signDoc = makeSignDoc(bytes(doc.bodyBytes), AuthInfo.encode(authInfo).finish(), chainId, BigInt(doc.accountNumber));
    const { signed, signature } = await wallet.signDirect(signer, signDoc);
    return {
      signed: { bodyBytes: base64(signed.bodyBytes), authInfoBytes: base64(signed.authInfoBytes), chainId: signed.chainId, accountNumber: signed.accountNumber.toString() },
      signature,
    };
  });
  await page.evaluateOnNewDocument((address, pubKey) => {
    const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const text = (b) => btoa(Array.from(b, (x) => String.fromCharCode(x)).join(""));
    const known = new Set();
    window.keplr = {
      async enable(chainId) {
        await window.__keplrCall("enable", chainId);
        if (!known.has(chainId)) throw new Error(`There is no chain info for ${chainId}`);
      },
      async experimentalSuggestChain(info) {
        await window.__keplrCall("experimentalSuggestChain", info.chainId);
        known.add(info.chainId);
      },
      async getKey(chainId) {
        if (!known.has(chainId)) throw new Error(`There is no chain info for ${chainId}`);
        return { name: "keplr-user", algo: "secp256k1", pubKey: bytes(pubKey), bech32Address: address, isNanoLedger: false };
      },
      async signDirect(chainId, signer, signDoc) {
        const answer = await window.__keplrSignDirect(chainId, signer, {
          bodyBytes: text(signDoc.bodyBytes), authInfoBytes: text(signDoc.authInfoBytes), accountNumber: signDoc.accountNumber.toString(),
        });
        const s = answer.signed;
        return { signed: { bodyBytes: bytes(s.bodyBytes), authInfoBytes: bytes(s.authInfoBytes), chainId: s.chainId, accountNumber: s.accountNumber }, signature: answer.signature };
      },
    };
  }, account.address, base64(account.pubkey));

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

  const turn = (index) => page.evaluate((index) => {
    const turn = document.querySelectorAll(".assistant")[index];
    const rows = {};
    for (const row of turn.nextElementSibling.querySelectorAll("table.settlement tr")) rows[row.cells[0].textContent] = row.cells[1].textContent;
    return { state: turn.dataset.state, payer: turn.dataset.payer, answer: turn.textContent, settlement: rows, status: turn.nextElementSibling.firstChild?.textContent ?? "" };
  }, index);
  const result = await turn(0);
  const balanceAfter = await page.$eval("#wallet", (e) => e.dataset.balance);

  // The same page, paying with Keplr.
  await page.select("#payer", "keplr");
  await page.waitForFunction(() => document.getElementById("wallet").dataset.payer === "keplr", { timeout: 30_000 });
  const keplrBefore = await page.$eval("#wallet", (e) => e.dataset.balance);
  await shot("keplr-connected");
  await page.type("#prompt", KEPLR_QUESTION);
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".assistant").length === 2);
  await shot("keplr-waiting");
  await page.waitForFunction(() => {
    const turn = document.querySelectorAll(".assistant")[1];
    return turn.dataset.state === "settled" || turn.dataset.state === "failed";
  }, { timeout: 300_000 });
  await page.waitForFunction((before) => document.getElementById("wallet").dataset.balance !== before, { timeout: 30_000 }, keplrBefore).catch(() => {});
  await shot("keplr-settled");
  const keplr = {
    address: account.address,
    calls: keplrCalls,
    fee: keplrFee,
    balanceBefore: keplrBefore,
    balanceAfter: await page.$eval("#wallet", (e) => e.dataset.balance),
    ...(await turn(1)),
  };
  console.log(JSON.stringify({ wrongKey, model, modelInfo, balanceBefore, balanceAfter, ...result, keplr, offLoopback, consoleErrors, screenshots: step }));
} finally {
  await browser.close();
}

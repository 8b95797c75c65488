// Starts a real `nesad start --solo` in a temporary home for client tests, and stops it.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { SigningCosmWasmClient } from "@cosmjs/cosmwasm-stargate";
import { GasPrice } from "@cosmjs/stargate";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const NESAD = process.env.NESAD_BIN ?? "nesad";

async function freePort() {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForRpc(url, child, log) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nesad exited early:\n${log()}`);
    try {
      const response = await fetch(`${url}/status`);
      const body = await response.json();
      if (Number(body.result?.sync_info?.latest_block_height) >= 1) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nesad RPC did not come up at ${url}:\n${log()}`);
}

/** Starts a solo chain whose genesis funds `accounts` ({address: coins}). */
export async function startSoloChain(accounts, { chainId = "nesa-js-1" } = {}) {
  const home = mkdtempSync(join(tmpdir(), "nesad-js-"));
  execFileSync(NESAD, ["init", "js-test", "--chain-id", chainId, "--home", home], { stdio: "pipe" });
  for (const [address, coins] of Object.entries(accounts)) {
    execFileSync(NESAD, ["genesis", "add-account", address, coins, "--home", home], { stdio: "pipe" });
  }
  const port = await freePort();
  const apiPort = await freePort();
  const grpcPort = await freePort();
  const rpc = `http://127.0.0.1:${port}`;
  const rest = `http://127.0.0.1:${apiPort}`;
  let output = "";
  const args = ["start", "--solo", "--home", home, "--rpc.laddr", `tcp://127.0.0.1:${port}`, "--api.laddr", `tcp://127.0.0.1:${apiPort}`, "--grpc.laddr", `tcp://127.0.0.1:${grpcPort}`, "--block-interval-ms", "200"];
  const child = spawn(NESAD, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  await waitForRpc(rpc, child, () => output);
  return {
    rpc,
    rest,
    grpc: `127.0.0.1:${grpcPort}`,
    chainId,
    home,
    log: () => output,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(home, { recursive: true, force: true });
    },
  };
}

const REPO = new URL("../..", import.meta.url).pathname;

/** Whether `scripts/localnet` can run here (CometBFT installed by scripts/setup). */
export function cometbftAvailable() {
  try {
    execFileSync("bash", ["-c", `source "${REPO}scripts/common.sh" && command -v cometbft`], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
}

/** A port p such that p..p+4 are free (one CometBFT validator and its nesad's APIs). */
async function freePortRange() {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const free = await Promise.all([0, 1, 2, 3, 4].map((i) => new Promise((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(base + i, "127.0.0.1", () => server.close(() => resolve(true)));
    })));
    if (free.every(Boolean)) return base;
  }
}

/**
 * Starts a one-validator CometBFT network (`scripts/localnet up 1`: real CometBFT with nesad
 * as its ABCI application, serving the REST and gRPC APIs beside it) whose genesis funds
 * `accounts` ({address: coins}).
 */
export async function startCometChain(accounts, { chainId = "nesa-js-comet-1" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "nesa-localnet-js-"));
  const base = await freePortRange();
  const env = {
    ...process.env,
    LOCALNET_DIR: dir,
    LOCALNET_CHAIN_ID: chainId,
    LOCALNET_BASE_PORT: String(base),
    LOCALNET_BLOCK_TIME: "200ms",
    LOCALNET_ACCOUNTS: Object.entries(accounts).map(([a, c]) => `${a}=${c}`).join(" "),
  };
  const localnet = (command) => execFileSync(`${REPO}scripts/localnet`, command, { env, stdio: "pipe" });
  try {
    localnet(["up", "1"]);
  } catch (e) {
    throw new Error(`scripts/localnet up 1 failed:\n${e.stdout}${e.stderr}`);
  }
  const rest = `http://127.0.0.1:${base + 3}`;
  // The APIs start with nesad, before CometBFT's first block: wait until REST answers.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${rest}/cosmos/base/tendermint/v1beta1/blocks/latest`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`the REST API of ${dir} did not come up`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    rpc: `http://127.0.0.1:${base + 1}`,
    rest,
    grpc: `127.0.0.1:${base + 4}`,
    chainId,
    home: dir,
    log: () => "",
    async stop() {
      try { localnet(["down"]); } finally { rmSync(dir, { recursive: true, force: true }); }
    },
  };
}

/**
 * The nodes a client test runs against: the solo node, and a CometBFT network where CometBFT
 * is installed (under CI=true a missing CometBFT fails the test instead of skipping it).
 */
export function nodeKinds() {
  const kinds = [{ name: "solo", start: startSoloChain }];
  if (cometbftAvailable()) {
    kinds.push({ name: "cometbft", start: startCometChain });
  } else if (process.env.CI === "true") {
    kinds.push({ name: "cometbft", start: async () => { throw new Error("cometbft not found: scripts/setup installs it"); } });
  }
  return kinds;
}

/**
 * Uploads and instantiates the probe contract (artifacts/nesa_probe.wasm) from `wallet`'s
 * `address` and increments its counter once; returns the contract's address.
 */
export async function deployProbe(chain, wallet, address) {
  const wasm = readFileSync(new URL("../../artifacts/nesa_probe.wasm", import.meta.url));
  const signer = await SigningCosmWasmClient.connectWithSigner(chain.rpc, wallet, { gasPrice: GasPrice.fromString("0.025unes") });
  const { codeId } = await signer.upload(address, wasm, "auto");
  const { contractAddress } = await signer.instantiate(address, codeId, {}, "probe", "auto");
  await signer.execute(address, contractAddress, { increment: {} }, "auto");
  signer.disconnect();
  return contractAddress;
}

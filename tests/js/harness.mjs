// Starts a real `nesad start --solo` in a temporary home for client tests, and stops it.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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
  const rpc = `http://127.0.0.1:${port}`;
  const rest = `http://127.0.0.1:${apiPort}`;
  let output = "";
  const args = ["start", "--solo", "--home", home, "--rpc.laddr", `tcp://127.0.0.1:${port}`, "--api.laddr", `tcp://127.0.0.1:${apiPort}`, "--block-interval-ms", "200"];
  const child = spawn(NESAD, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  await waitForRpc(rpc, child, () => output);
  return {
    rpc,
    rest,
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

// An unmodified CosmJS SigningCosmWasmClient uploads the probe contract (scripts/build-contracts),
// instantiates it with funds, executes it and queries it on a solo nesad.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import { GasPrice } from "@cosmjs/stargate";
import { SigningCosmWasmClient } from "@cosmjs/cosmwasm-stargate";
import { startSoloChain } from "./harness.mjs";

const wasmPath = new URL("../../artifacts/nesa_probe.wasm", import.meta.url);
let chain, wallet, address;

before(async () => {
  wallet = await DirectSecp256k1HdWallet.generate(24, { prefix: "nesa" });
  [{ address }] = await wallet.getAccounts();
  chain = await startSoloChain({ [address]: "100000000000unes" }, { chainId: "nesa-wasm-js-1" });
});

after(async () => {
  await chain?.stop();
});

test("upload, instantiate with funds, execute and query a contract", async () => {
  const wasm = readFileSync(wasmPath);
  const client = await SigningCosmWasmClient.connectWithSigner(chain.rpc, wallet, {
    gasPrice: GasPrice.fromString("0.025unes"),
  });

  const upload = await client.upload(address, wasm, "auto");
  assert.ok(upload.codeId >= 1);
  assert.equal(upload.checksum, createHash("sha256").update(wasm).digest("hex"));

  const { contractAddress } = await client.instantiate(address, upload.codeId, {}, "probe", "auto", {
    funds: [{ denom: "unes", amount: "4321" }],
    admin: address,
  });
  assert.match(contractAddress, /^nesa1/);
  assert.equal((await client.getBalance(contractAddress, "unes")).amount, "4321");

  const executed = await client.execute(address, contractAddress, { increment: {} }, "auto");
  assert.ok(executed.events.some((e) => e.type === "wasm-incremented"));
  await client.execute(address, contractAddress, { increment: {} }, "auto");
  assert.deepEqual(await client.queryContractSmart(contractAddress, { count: {} }), { count: 2 });
  // The same smart query over the REST API, in wasmd's gateway JSON (the answer inline).
  const query = Buffer.from(JSON.stringify({ count: {} })).toString("base64");
  const rest = await fetch(`${chain.rest}/cosmwasm/wasm/v1/contract/${contractAddress}/smart/${encodeURIComponent(query)}`);
  assert.equal(rest.status, 200);
  assert.deepEqual(await rest.json(), { data: { count: 2 } });
  const unknown = await fetch(`${chain.rest}/cosmwasm/wasm/v1/contract/${contractAddress}/smart/${Buffer.from('{"nope":{}}').toString("base64")}`);
  assert.notEqual(unknown.status, 200, "a query the contract does not know is an error");

  const contract = await client.getContract(contractAddress);
  assert.equal(contract.codeId, upload.codeId);
  assert.equal(contract.admin, address);
  assert.equal(contract.label, "probe");
  assert.deepEqual(await client.getContracts(upload.codeId), [contractAddress]);
  const details = await client.getCodeDetails(upload.codeId);
  assert.equal(details.checksum, upload.checksum);

  await assert.rejects(
    client.execute(address, contractAddress, { fail: { reason: "asked to" } }, "auto"),
    /asked to/,
  );
  client.disconnect();
});

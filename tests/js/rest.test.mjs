// The Cosmos SDK REST API (LCD) of a solo nesad and of a CometBFT network, read with plain
// HTTP as Keplr and explorers read it: accounts, balances, simulate and broadcast of a
// CosmJS-signed transaction, transactions by hash and by events, a contract smart query,
// node info and blocks, in the gateway's JSON (64-bit integers as strings, bytes in base64).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import { SigningStargateClient } from "@cosmjs/stargate";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";
import { deployProbe, nodeKinds } from "./harness.mjs";

const prefix = "nesa";
let chain, alice, aliceAddress, bobAddress, sent;

for (const kind of nodeKinds()) describe(`against a ${kind.name} node`, () => {
  before(async () => {
    alice = await DirectSecp256k1HdWallet.generate(24, { prefix });
    const bob = await DirectSecp256k1HdWallet.generate(24, { prefix });
    [{ address: aliceAddress }] = await alice.getAccounts();
    [{ address: bobAddress }] = await bob.getAccounts();
    chain = await kind.start({ [aliceAddress]: "1000000000unes" });
  });

  after(async () => {
    await chain?.stop();
  });

  async function get(path, headers = {}) {
    const response = await fetch(`${chain.rest}${path}`, { headers });
    return { status: response.status, body: await response.json() };
  }

  async function post(path, body) {
    const response = await fetch(`${chain.rest}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  test("balances and accounts read as the SDK gateway renders them", async () => {
    const balances = await get(`/cosmos/bank/v1beta1/balances/${aliceAddress}`);
    assert.equal(balances.status, 200);
    assert.deepEqual(balances.body, {
      balances: [{ denom: "unes", amount: "1000000000" }],
      pagination: { next_key: null, total: "1" },
    });
    const byDenom = await get(`/cosmos/bank/v1beta1/balances/${aliceAddress}/by_denom?denom=unes`);
    assert.deepEqual(byDenom.body, { balance: { denom: "unes", amount: "1000000000" } });

    const account = await get(`/cosmos/auth/v1beta1/accounts/${aliceAddress}`);
    assert.equal(account.status, 200);
    assert.equal(account.body.account["@type"], "/cosmos.auth.v1beta1.BaseAccount");
    assert.equal(account.body.account.address, aliceAddress);
    assert.equal(account.body.account.sequence, "0");
    assert.equal(typeof account.body.account.account_number, "string");
    assert.equal(account.body.account.pub_key, null);
  });

  test("an unknown account is a 404 with gRPC's NotFound code; a bad address a 400", async () => {
    const missing = await get(`/cosmos/auth/v1beta1/accounts/${bobAddress}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 5);
    assert.match(missing.body.message, /not found/);
    assert.deepEqual(missing.body.details, []);
    const bad = await get(`/cosmos/bank/v1beta1/balances/not-an-address`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 3);
    const unknown = await get(`/cosmos/staking/v1beta1/validators`);
    assert.equal(unknown.status, 501);
    assert.equal(unknown.body.code, 12);
  });

  test("a CosmJS-signed send simulates and broadcasts through REST, and the balances follow", async () => {
    const client = await SigningStargateClient.connectWithSigner(chain.rpc, alice);
    const msg = {
      typeUrl: "/cosmos.bank.v1beta1.MsgSend",
      value: { fromAddress: aliceAddress, toAddress: bobAddress, amount: [{ denom: "unes", amount: "12345" }] },
    };
    const fee = { amount: [{ denom: "unes", amount: "5000" }], gas: "200000" };
    const signed = await client.sign(aliceAddress, [msg], fee, "over rest");
    client.disconnect();
    const txBytes = Buffer.from(TxRaw.encode(signed).finish());
    const tx_bytes = txBytes.toString("base64");

    const simulated = await post("/cosmos/tx/v1beta1/simulate", { tx_bytes });
    assert.equal(simulated.status, 200, JSON.stringify(simulated.body));
    const gasUsed = BigInt(simulated.body.gas_info.gas_used);
    assert.ok(gasUsed > 0n && gasUsed < 200000n, `gas used ${gasUsed}`);
    assert.ok(simulated.body.result.events.some((e) => e.type === "transfer"));
    assert.deepEqual(simulated.body.result.msg_responses, [{ "@type": "/cosmos.bank.v1beta1.MsgSendResponse" }]);

    const broadcast = await post("/cosmos/tx/v1beta1/txs", { tx_bytes, mode: "BROADCAST_MODE_SYNC" });
    assert.equal(broadcast.status, 200);
    assert.equal(broadcast.body.tx_response.code, 0, broadcast.body.tx_response.raw_log);
    assert.equal(
      broadcast.body.tx_response.txhash,
      createHash("sha256").update(txBytes).digest("hex").toUpperCase(),
    );

    const deadline = Date.now() + 15_000;
    let bob;
    do {
      await new Promise((r) => setTimeout(r, 200));
      bob = await get(`/cosmos/bank/v1beta1/balances/${bobAddress}`);
    } while (bob.body.balances.length === 0 && Date.now() < deadline);
    assert.deepEqual(bob.body.balances, [{ denom: "unes", amount: "12345" }]);
    const account = await get(`/cosmos/auth/v1beta1/accounts/${aliceAddress}`);
    assert.equal(account.body.account.sequence, "1");
    assert.equal(account.body.account.pub_key["@type"], "/cosmos.crypto.secp256k1.PubKey");
    assert.equal(Buffer.from(account.body.account.pub_key.key, "base64").length, 33);

    // CometBFT indexes a block's transactions just after committing it: look up until found.
    let found;
    const indexed = Date.now() + 15_000;
    do {
      found = await get(`/cosmos/tx/v1beta1/txs/${broadcast.body.tx_response.txhash}`);
      if (found.status === 404) await new Promise((r) => setTimeout(r, 200));
    } while (found.status === 404 && Date.now() < indexed);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    const { tx, tx_response } = found.body;
    assert.equal(tx_response.code, 0);
    assert.equal(tx_response.txhash, broadcast.body.tx_response.txhash);
    assert.ok(Number(tx_response.height) > 1);
    assert.ok(BigInt(tx_response.gas_used) > 0n);
    assert.equal(tx_response.gas_wanted, "200000");
    assert.match(tx_response.timestamp, /^\d{4}-\d\d-\d\dT/);
    assert.ok(tx_response.events.some((e) => e.type === "transfer"));
    assert.equal(tx_response.tx["@type"], "/cosmos.tx.v1beta1.Tx");
    assert.deepEqual(tx.body.messages, [{
      "@type": "/cosmos.bank.v1beta1.MsgSend",
      from_address: aliceAddress,
      to_address: bobAddress,
      amount: [{ denom: "unes", amount: "12345" }],
    }]);
    assert.equal(tx.body.memo, "over rest");
    assert.equal(tx.auth_info.signer_infos[0].mode_info.single.mode, "SIGN_MODE_DIRECT");
    assert.equal(tx.auth_info.signer_infos[0].sequence, "0");
    assert.deepEqual(tx.auth_info.fee.amount, [{ denom: "unes", amount: "5000" }]);
    assert.equal(tx.auth_info.fee.gas_limit, "200000");
    assert.equal(tx.signatures.length, 1);
    sent = tx_response;
    const missing = await get(`/cosmos/tx/v1beta1/txs/${"AB".repeat(32)}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 5);
    assert.equal((await get("/cosmos/tx/v1beta1/txs/nothex")).status, 400);

    // The state before the send, at an earlier height.
    const height = Number((await get("/cosmos/base/tendermint/v1beta1/blocks/latest")).body.block.header.height);
    const earlier = await get(`/cosmos/bank/v1beta1/balances/${aliceAddress}/by_denom?denom=unes`, {
      "x-cosmos-block-height": "1",
    });
    assert.equal(earlier.status, 200, JSON.stringify(earlier.body));
    assert.equal(earlier.body.balance.amount, "1000000000");
    assert.ok(height > 1);
  });

  test("transactions are found by their events, with the query language or the older events=", async () => {
    assert.ok(sent, "the send above was committed");
    const search = (params) => get(`/cosmos/tx/v1beta1/txs?${new URLSearchParams(params)}`);
    const bySender = await search({ query: `message.sender='${aliceAddress}'` });
    assert.equal(bySender.status, 200, JSON.stringify(bySender.body));
    assert.equal(bySender.body.total, "1");
    assert.equal(bySender.body.tx_responses[0].txhash, sent.txhash);
    assert.equal(bySender.body.tx_responses[0].height, sent.height);
    assert.equal(bySender.body.txs[0].body.memo, "over rest");

    const legacy = await get(`/cosmos/tx/v1beta1/txs?events=${encodeURIComponent(`transfer.recipient='${bobAddress}'`)}`
      + `&events=${encodeURIComponent(`tx.height>=${sent.height}`)}&order_by=ORDER_BY_DESC&limit=5`);
    assert.equal(legacy.status, 200, JSON.stringify(legacy.body));
    assert.deepEqual(legacy.body.tx_responses.map((r) => r.txhash), [sent.txhash]);
    const earlier = await search({ query: `transfer.recipient='${bobAddress}' AND tx.height<${sent.height}` });
    assert.deepEqual([earlier.body.total, earlier.body.tx_responses], ["0", []]);

    const missing = await get("/cosmos/tx/v1beta1/txs");
    assert.equal(missing.status, 400);
    assert.match(missing.body.message, /query cannot be empty/);
    assert.equal((await search({ query: "transfer.recipient=" })).status, 400);
    assert.equal((await search({ query: `message.sender='${aliceAddress}'`, page: "9" })).status, 400);
  });

  test("malformed bodies and removed broadcast modes are refused with 400", async () => {
    assert.equal((await post("/cosmos/tx/v1beta1/txs", "{not json")).status, 400);
    assert.equal((await post("/cosmos/tx/v1beta1/txs", { tx_bytes: "%%%" })).status, 400);
    const block = await post("/cosmos/tx/v1beta1/txs", { tx_bytes: "AAAA", mode: "BROADCAST_MODE_BLOCK" });
    assert.equal(block.status, 400);
    assert.match(block.body.message, /BROADCAST_MODE_BLOCK/);
    const garbage = await post("/cosmos/tx/v1beta1/txs", { tx_bytes: "AAAA", mode: "BROADCAST_MODE_SYNC" });
    assert.equal(garbage.status, 200);
    assert.notEqual(garbage.body.tx_response.code, 0, "undecodable bytes fail CheckTx");
  });

  test("a contract answers a smart query over REST, in wasmd's gateway JSON", async () => {
    const contractAddress = await deployProbe(chain, alice, aliceAddress);
    const query = (message) => Buffer.from(JSON.stringify(message)).toString("base64");
    const answer = await get(`/cosmwasm/wasm/v1/contract/${contractAddress}/smart/${encodeURIComponent(query({ count: {} }))}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { data: { count: 1 } });
    const unknown = await get(`/cosmwasm/wasm/v1/contract/${contractAddress}/smart/${encodeURIComponent(query({ nope: {} }))}`);
    assert.notEqual(unknown.status, 200, "a query the contract does not know is an error");
    assert.equal(typeof unknown.body.message, "string");
  });

  test("node info and blocks", async () => {
    const info = await get("/cosmos/base/tendermint/v1beta1/node_info");
    assert.equal(info.status, 200);
    assert.equal(info.body.default_node_info.network, chain.chainId);
    assert.equal(info.body.application_version.app_name, "nesad");

    const first = await get("/cosmos/base/tendermint/v1beta1/blocks/1");
    assert.equal(first.status, 200);
    assert.equal(first.body.block.header.height, "1");
    assert.equal(first.body.block.header.chain_id, chain.chainId);
    assert.equal(Buffer.from(first.body.block_id.hash, "base64").length, 32);
    assert.match(first.body.sdk_block.header.proposer_address, /^nesavalcons1/);
    assert.equal(Buffer.from(first.body.block.header.proposer_address, "base64").length, 20);
    assert.match(first.body.block.header.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal((await get("/cosmos/base/tendermint/v1beta1/blocks/999999")).status, 400);
    assert.equal((await get("/cosmos/base/tendermint/v1beta1/blocks/zero")).status, 400);
  });
});

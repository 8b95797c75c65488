// What CosmJS's Comet38Client reads from a solo nesad for light clients and relayers — commits,
// validators, block search — and CometBFT's /websocket through CosmJS's own WebsocketClient:
// new blocks and transactions by event arrive as subscriptions, other RPC methods answer over
// the socket, and malformed or excess subscriptions get JSON-RPC errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import { GasPrice, SigningStargateClient } from "@cosmjs/stargate";
import { Comet38Client, WebsocketClient } from "@cosmjs/tendermint-rpc";
import { toHex } from "@cosmjs/encoding";
import { startSoloChain } from "./harness.mjs";

let chain, alice, aliceAddress, bobAddress, socket, client;

before(async () => {
  alice = await DirectSecp256k1HdWallet.generate(24, { prefix: "nesa" });
  const bob = await DirectSecp256k1HdWallet.generate(24, { prefix: "nesa" });
  [{ address: aliceAddress }] = await alice.getAccounts();
  [{ address: bobAddress }] = await bob.getAccounts();
  chain = await startSoloChain({ [aliceAddress]: "1000000000unes" });
  socket = new WebsocketClient(chain.rpc.replace("http://", "ws://"), (error) => { throw error; });
  client = Comet38Client.create(socket);
});

after(async () => {
  client?.disconnect();
  await chain?.stop();
});

/** The first event of `stream`, or a rejection after `ms`. */
function first(stream, ms = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no event arrived")), ms);
    const subscription = stream.subscribe({
      next: (event) => { clearTimeout(timer); subscription.unsubscribe(); resolve(event); },
      error: (error) => { clearTimeout(timer); reject(error); },
    });
  });
}

test("commits, validators and block search decode as CometBFT's", async () => {
  let status = await client.status();
  for (const deadline = Date.now() + 15_000; status.syncInfo.latestBlockHeight < 3 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 200));
    status = await client.status();
  }
  const height = status.syncInfo.latestBlockHeight;
  assert.ok(height >= 3, `height ${height}`);
  const earlier = await client.commit(height - 1);
  assert.equal(earlier.canonical, true);
  assert.equal(earlier.header.height, height - 1);
  assert.equal(earlier.commit.height, height - 1);
  assert.equal(earlier.commit.signatures.length, 1);
  assert.equal(earlier.commit.signatures[0].signature.length, 64);
  assert.deepEqual(earlier.commit.blockId.hash, (await client.block(height - 1)).blockId.hash);
  const latest = await client.commit();
  assert.ok(latest.header.height >= height);

  const validators = await client.validatorsAll(height);
  assert.equal(validators.total, 1);
  assert.deepEqual(validators.validators[0].address, status.validatorInfo.address);

  const found = await client.blockSearchAll({ query: `block.height>=${height - 1} AND block.height<=${height}` });
  assert.deepEqual(found.blocks.map((b) => b.block.header.height), [height - 1, height]);

  // What a relayer's pull event source reads instead of the socket.
  const results = await client.blockResults(height);
  assert.equal(results.height, height);
  assert.deepEqual(results.results, []);
  assert.deepEqual(results.validatorUpdates, []);
  assert.ok(Array.isArray(results.finalizeBlockEvents));
});

test("new blocks arrive as a subscription", async () => {
  const status = await client.status();
  const block = await first(client.subscribeNewBlock());
  assert.ok(block.header.height > status.syncInfo.latestBlockHeight, `height ${block.header.height}`);
  assert.equal(block.header.chainId, chain.chainId);
});

test("a transaction arrives on a subscription to its events", async () => {
  const received = first(client.subscribeTx(`transfer.recipient='${bobAddress}'`));
  const signer = await SigningStargateClient.connectWithSigner(chain.rpc, alice, { gasPrice: GasPrice.fromString("0.025unes") });
  const sent = await signer.sendTokens(aliceAddress, bobAddress, [{ denom: "unes", amount: "4242" }], "auto", "over the socket");
  signer.disconnect();
  const event = await received;
  assert.equal(toHex(event.hash).toUpperCase(), sent.transactionHash);
  assert.equal(event.height, sent.height);
  assert.equal(event.result.code, 0);
  assert.ok(event.result.events.some((e) => e.type === "transfer"));
  const results = await client.blockResults(sent.height);
  assert.equal(results.results.length, 1);
  assert.equal(results.results[0].code, 0);
  assert.equal(results.results[0].gasUsed, sent.gasUsed);
});

test("other methods answer over the socket; bad and excess subscriptions are errors", async () => {
  const status = await socket.execute({ jsonrpc: "2.0", id: 101, method: "status", params: {} });
  assert.equal(status.result.node_info.network, chain.chainId);
  await assert.rejects(
    socket.execute({ jsonrpc: "2.0", id: 102, method: "subscribe", params: { query: "tm.event=" } }),
    /parse query/,
  );
  await assert.rejects(
    socket.execute({ jsonrpc: "2.0", id: 103, method: "unsubscribe", params: { query: "tm.event='Nothing'" } }),
    /subscription not found/,
  );
  const subscribed = [];
  for (let n = 0; n < 5; n++) {
    const query = `tm.event='Tx' AND tx.height>${1000 + n}`;
    try {
      await socket.execute({ jsonrpc: "2.0", id: 200 + n, method: "subscribe", params: { query } });
      subscribed.push(query);
    } catch (error) {
      assert.match(error.message, /max_subscriptions_per_client/);
    }
  }
  assert.ok(subscribed.length >= 1 && subscribed.length <= 5);
  await assert.rejects(
    socket.execute({ jsonrpc: "2.0", id: 299, method: "subscribe", params: { query: "tm.event='Tx' AND tx.height>2000" } }),
    /max_subscriptions_per_client 5 reached/,
  );
  for (const query of subscribed) {
    await socket.execute({ jsonrpc: "2.0", id: 300, method: "unsubscribe", params: { query } });
  }
});

// CometBFT's /websocket on a solo nesad, with CosmJS's own WebsocketClient and Comet38Client:
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

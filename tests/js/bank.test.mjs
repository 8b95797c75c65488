// An unmodified CosmJS SigningStargateClient moves unes on a solo nesad and reads it back.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import { SigningStargateClient, StargateClient, GasPrice } from "@cosmjs/stargate";
import { startSoloChain } from "./harness.mjs";

const prefix = "nesa";
let chain, alice, bob, aliceAddress, bobAddress;

before(async () => {
  alice = await DirectSecp256k1HdWallet.generate(24, { prefix });
  bob = await DirectSecp256k1HdWallet.generate(24, { prefix });
  [{ address: aliceAddress }] = await alice.getAccounts();
  [{ address: bobAddress }] = await bob.getAccounts();
  chain = await startSoloChain({ [aliceAddress]: "1000000000unes" });
});

after(async () => {
  await chain?.stop();
});

test("sendTokens moves unes and getBalance/getAccount report it", async () => {
  const client = await SigningStargateClient.connectWithSigner(chain.rpc, alice, {
    gasPrice: GasPrice.fromString("0.025unes"),
  });
  assert.equal(await client.getChainId(), chain.chainId);
  const before = await client.getBalance(aliceAddress, "unes");
  assert.equal(before.amount, "1000000000");

  const fee = { amount: [{ denom: "unes", amount: "5000" }], gas: "200000" };
  const result = await client.sendTokens(aliceAddress, bobAddress, [{ denom: "unes", amount: "12345" }], fee, "hello nesa");
  assert.equal(result.code, 0, result.rawLog);
  assert.ok(result.height > 0);
  assert.ok(result.gasUsed > 0n && result.gasUsed <= 200000n, `gas used ${result.gasUsed}`);
  assert.ok(result.events.some((e) => e.type === "transfer"), "transfer event is reported");

  assert.equal((await client.getBalance(bobAddress, "unes")).amount, "12345");
  assert.equal((await client.getBalance(aliceAddress, "unes")).amount, String(1000000000 - 12345 - 5000));

  const account = await client.getAccount(aliceAddress);
  assert.equal(account.address, aliceAddress);
  assert.equal(account.sequence, 1);
  assert.ok(account.pubkey, "the signer's public key is stored after its first tx");
  const bobAccount = await client.getAccount(bobAddress);
  assert.equal(bobAccount.sequence, 0);

  const tx = await client.getTx(result.transactionHash);
  assert.equal(tx.height, result.height);
  assert.equal(tx.code, 0);

  // CosmJS's searchTx runs CometBFT's tx_search with the query language.
  const received = await client.searchTx(`transfer.recipient='${bobAddress}'`);
  assert.deepEqual(received.map((t) => t.hash), [result.transactionHash]);
  const bySender = await client.searchTx([{ key: "message.sender", value: aliceAddress }]);
  assert.deepEqual(bySender.map((t) => t.height), [result.height]);
  assert.deepEqual(await client.searchTx(`transfer.recipient='${bobAddress}' AND tx.height<${result.height}`), []);
  client.disconnect();
});

test("fee 'auto' estimates gas through Simulate", async () => {
  const client = await SigningStargateClient.connectWithSigner(chain.rpc, alice, {
    gasPrice: GasPrice.fromString("0.025unes"),
  });
  const result = await client.sendTokens(aliceAddress, bobAddress, [{ denom: "unes", amount: "1" }], "auto");
  assert.equal(result.code, 0, result.rawLog);
  client.disconnect();
});

test("a transfer larger than the balance fails on chain and charges only the fee", async () => {
  const client = await SigningStargateClient.connectWithSigner(chain.rpc, bob);
  const balance = BigInt((await client.getBalance(bobAddress, "unes")).amount);
  const fee = { amount: [{ denom: "unes", amount: "5000" }], gas: "200000" };
  const result = await client.sendTokens(bobAddress, aliceAddress, [{ denom: "unes", amount: "1000000" }], fee);
  assert.equal(result.code, 5, "insufficient funds");
  assert.match(result.rawLog ?? "", /insufficient funds/);
  assert.equal(BigInt((await client.getBalance(bobAddress, "unes")).amount), balance - 5000n);
  client.disconnect();
});

test("a transaction signed for another chain id is rejected at broadcast", async () => {
  const client = await SigningStargateClient.connectWithSigner(chain.rpc, alice);
  const account = await client.getAccount(aliceAddress);
  const msg = {
    typeUrl: "/cosmos.bank.v1beta1.MsgSend",
    value: { fromAddress: aliceAddress, toAddress: bobAddress, amount: [{ denom: "unes", amount: "1" }] },
  };
  const fee = { amount: [{ denom: "unes", amount: "5000" }], gas: "200000" };
  const signed = await client.sign(aliceAddress, [msg], fee, "", {
    accountNumber: account.accountNumber,
    sequence: account.sequence,
    chainId: "some-other-chain",
  });
  const { TxRaw } = await import("cosmjs-types/cosmos/tx/v1beta1/tx");
  const bytes = TxRaw.encode(signed).finish();
  await assert.rejects(client.broadcastTx(bytes), /signature verification failed/);
  const reader = await StargateClient.connect(chain.rpc);
  assert.equal((await reader.getAccount(aliceAddress)).sequence, account.sequence, "sequence unchanged");
  reader.disconnect();
  client.disconnect();
});

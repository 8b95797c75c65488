// The Cosmos SDK gRPC services of a solo nesad, called with @grpc/grpc-js (the reference
// Node.js gRPC library) and cosmjs-types' messages: balances and accounts, simulate and
// broadcast of a CosmJS-signed send, the transaction by hash, a contract smart query, blocks,
// the node's config, a past height through x-cosmos-block-height, and gRPC status codes.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import { SigningStargateClient } from "@cosmjs/stargate";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";
import {
  BroadcastMode, BroadcastTxRequest, BroadcastTxResponse, GetTxRequest, GetTxResponse,
  GetTxsEventRequest, GetTxsEventResponse, OrderBy, SimulateRequest, SimulateResponse,
} from "cosmjs-types/cosmos/tx/v1beta1/service";
import {
  QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest, QueryBalanceResponse,
} from "cosmjs-types/cosmos/bank/v1beta1/query";
import { QueryAccountRequest, QueryAccountResponse } from "cosmjs-types/cosmos/auth/v1beta1/query";
import { BaseAccount } from "cosmjs-types/cosmos/auth/v1beta1/auth";
import {
  QuerySmartContractStateRequest, QuerySmartContractStateResponse,
} from "cosmjs-types/cosmwasm/wasm/v1/query";
import {
  GetBlockByHeightRequest, GetBlockByHeightResponse, GetLatestBlockRequest, GetLatestBlockResponse,
} from "cosmjs-types/cosmos/base/tendermint/v1beta1/query";
import { ConfigRequest, ConfigResponse } from "cosmjs-types/cosmos/base/node/v1beta1/query";
import { deployProbe, nodeKinds } from "./harness.mjs";

let chain, alice, aliceAddress, bobAddress, client;

for (const kind of nodeKinds()) describe(`against a ${kind.name} node`, () => {
  before(async () => {
    alice = await DirectSecp256k1HdWallet.generate(24, { prefix: "nesa" });
    const bob = await DirectSecp256k1HdWallet.generate(24, { prefix: "nesa" });
    [{ address: aliceAddress }] = await alice.getAccounts();
    [{ address: bobAddress }] = await bob.getAccounts();
    chain = await kind.start({ [aliceAddress]: "1000000000unes" }, { chainId: "nesa-grpc-js-1" });
    client = new grpc.Client(chain.grpc, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await chain?.stop();
  });

  /** A unary call of `path` with cosmjs-types' `Request` and `Response` codecs. */
  function call(path, Request, Response, request, metadata = new grpc.Metadata()) {
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        path,
        (message) => Buffer.from(Request.encode(message).finish()),
        (bytes) => Response.decode(bytes),
        Request.fromPartial(request),
        metadata,
        (error, response) => (error ? reject(error) : resolve(response)),
      );
    });
  }

  const balanceOf = async (address, metadata) =>
    (await call("/cosmos.bank.v1beta1.Query/Balance", QueryBalanceRequest, QueryBalanceResponse,
      { address, denom: "unes" }, metadata)).balance.amount;

  test("balances and accounts", async () => {
    const all = await call("/cosmos.bank.v1beta1.Query/AllBalances", QueryAllBalancesRequest,
      QueryAllBalancesResponse, { address: aliceAddress });
    assert.deepEqual(all.balances, [{ denom: "unes", amount: "1000000000" }]);
    assert.equal(await balanceOf(aliceAddress), "1000000000");
    const { account } = await call("/cosmos.auth.v1beta1.Query/Account", QueryAccountRequest,
      QueryAccountResponse, { address: aliceAddress });
    assert.equal(account.typeUrl, "/cosmos.auth.v1beta1.BaseAccount");
    const base = BaseAccount.decode(account.value);
    assert.equal(base.address, aliceAddress);
    assert.equal(base.sequence, 0n);
  });

  test("errors carry gRPC's status codes", async () => {
    await assert.rejects(
      call("/cosmos.auth.v1beta1.Query/Account", QueryAccountRequest, QueryAccountResponse, { address: bobAddress }),
      (e) => e.code === grpc.status.NOT_FOUND && /not found/.test(e.details),
    );
    await assert.rejects(
      call("/cosmos.bank.v1beta1.Query/Balance", QueryBalanceRequest, QueryBalanceResponse, { address: "nope", denom: "unes" }),
      (e) => e.code === grpc.status.INVALID_ARGUMENT,
    );
    await assert.rejects(
      call("/cosmos.staking.v1beta1.Query/Validators", QueryBalanceRequest, QueryBalanceResponse, {}),
      (e) => e.code === grpc.status.UNIMPLEMENTED,
    );
  });

  test("a CosmJS-signed send simulates, broadcasts and is found by hash over gRPC", async () => {
    const signer = await SigningStargateClient.connectWithSigner(chain.rpc, alice);
    const msg = {
      typeUrl: "/cosmos.bank.v1beta1.MsgSend",
      value: { fromAddress: aliceAddress, toAddress: bobAddress, amount: [{ denom: "unes", amount: "777" }] },
    };
    const fee = { amount: [{ denom: "unes", amount: "5000" }], gas: "200000" };
    const signed = await signer.sign(aliceAddress, [msg], fee, "over grpc");
    signer.disconnect();
    const txBytes = TxRaw.encode(signed).finish();
    const heightBefore = (await call("/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock",
      GetLatestBlockRequest, GetLatestBlockResponse, {})).block.header.height;

    const simulated = await call("/cosmos.tx.v1beta1.Service/Simulate", SimulateRequest, SimulateResponse, { txBytes });
    assert.ok(simulated.gasInfo.gasUsed > 0n && simulated.gasInfo.gasUsed < 200000n);
    assert.ok(simulated.result.events.some((e) => e.type === "transfer"));

    const broadcast = await call("/cosmos.tx.v1beta1.Service/BroadcastTx", BroadcastTxRequest, BroadcastTxResponse,
      { txBytes, mode: BroadcastMode.BROADCAST_MODE_SYNC });
    assert.equal(broadcast.txResponse.code, 0, broadcast.txResponse.rawLog);
    const hash = broadcast.txResponse.txhash;

    let found;
    const deadline = Date.now() + 15_000;
    while (!found && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      found = await call("/cosmos.tx.v1beta1.Service/GetTx", GetTxRequest, GetTxResponse, { hash })
        .catch((e) => { if (e.code !== grpc.status.NOT_FOUND) throw e; });
    }
    assert.ok(found, "the transaction was committed");
    assert.equal(found.txResponse.code, 0);
    assert.equal(found.txResponse.txhash, hash);
    assert.equal(found.txResponse.gasWanted, 200000n);
    assert.equal(found.tx.body.memo, "over grpc");
    assert.equal(await balanceOf(bobAddress), "777");

    // Found by its events, as explorers and relayers search.
    const search = (query, more = {}) => call("/cosmos.tx.v1beta1.Service/GetTxsEvent", GetTxsEventRequest,
      GetTxsEventResponse, { query, ...more });
    const bySender = await search(`message.sender='${aliceAddress}'`);
    assert.equal(bySender.total, 1n);
    assert.equal(bySender.txResponses[0].txhash, hash);
    assert.equal(bySender.txs[0].body.memo, "over grpc");
    const atHeight = await search(`transfer.recipient='${bobAddress}' AND tx.height=${found.txResponse.height}`,
      { orderBy: OrderBy.ORDER_BY_DESC, limit: 10n });
    assert.deepEqual(atHeight.txResponses.map((r) => r.txhash), [hash]);
    const before = await search(`transfer.recipient='${bobAddress}' AND tx.height<${found.txResponse.height}`);
    assert.equal(before.total, 0n);
    await assert.rejects(search(""), (e) => e.code === grpc.status.INVALID_ARGUMENT);
    await assert.rejects(search("transfer.recipient="), (e) => e.code === grpc.status.INVALID_ARGUMENT);

    // The state before the send, read at a past height.
    const past = new grpc.Metadata();
    past.set("x-cosmos-block-height", heightBefore.toString());
    assert.equal(await balanceOf(aliceAddress, past), "1000000000");

    const block = await call("/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight", GetBlockByHeightRequest,
      GetBlockByHeightResponse, { height: found.txResponse.height });
    assert.equal(block.block.header.chainId, chain.chainId);
    assert.equal(block.block.data.txs.length >= 1, true);
  });

  test("a contract smart query and the node's config", async () => {
    const contractAddress = await deployProbe(chain, alice, aliceAddress);
    const answer = await call("/cosmwasm.wasm.v1.Query/SmartContractState", QuerySmartContractStateRequest,
      QuerySmartContractStateResponse,
      { address: contractAddress, queryData: Buffer.from(JSON.stringify({ count: {} })) });
    assert.deepEqual(JSON.parse(Buffer.from(answer.data).toString()), { count: 1 });

    const config = await call("/cosmos.base.node.v1beta1.Service/Config", ConfigRequest, ConfigResponse, {});
    assert.equal(config.minimumGasPrice, "0.025unes");
  });
});

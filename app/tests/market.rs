//! The market contracts compiled to wasm (`scripts/build-contracts`) inside the chain: uploaded,
//! instantiated, wired and driven through signed transactions on the real application, the
//! embedded VM and the solo block producer. Messages are `nesa_market` types; commitments,
//! result hashes and fingerprints are computed with `nesa_market` exactly as a node runner
//! computes them, from what the chain tells it (`wasm-query_assigned`).
//!
//! Every test starts from [`Market::setup`]: registry, staking and market instantiated and
//! wired, one kernel registered, four nodes bonded serving it.

mod support;

use cosmwasm_std::{Binary, Decimal, HexBinary, Uint128};
use nesa_market::market::{
    ConfigResponse, ExecuteMsg, InstantiateMsg, MarketParams, NodeOutcome, QueryMsg, QueryPhase,
    QueryResponse, QueryStatus, Sampling, SlashFractions, SlashReason,
};
use nesa_market::registry::{self, Encryption, NewKernel, ShardRange};
use nesa_market::staking::{self, NodeProfile, NodeResponse, ServedKernel};
use nesa_market::{commitment, encode_token_ids, result_hash, Fingerprint};
use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::cosmrs::Any;
use nesa_sdk::{Address, CoinExt};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use support::{TestAccount, TestChain};
use tendermint_proto::v0_38::abci::{Event, ExecTxResult};

/// Gas limit of every market transaction (generous: the tests report what is used).
const GAS: u64 = 5_000_000;
/// Uploads pay 10 gas per tx byte and 3 per wasm byte compiled, as on wasmd.
const UPLOAD_GAS: u64 = 20_000_000;
const FUNDS: u128 = 1_000_000_000_000;
const MIN_STAKE: u128 = 1_000_000;
const NODE_STAKE: u128 = 10_000_000;
const UNBONDING_BLOCKS: u64 = 100;
const JAIL_BLOCKS: u64 = 50;
const PRICE_IN: u128 = 3;
const PRICE_OUT: u128 = 7;
const LAYERS: u32 = 30;
const NODES: usize = 4;
const K: u8 = 3;
/// The prompt's token ids.
const INPUT: [u32; 4] = [1, 4093, 198, 19556];
const MAX_OUTPUT: u32 = 48;
/// Tokens every replica generates.
const GENERATED: u32 = 32;
/// Vocabulary of the simulated model.
const VOCAB: u32 = 96;
/// Escrow attached to every query: more than the 3 × (4 × 3 + 48 × 7) = 1044 required.
const ESCROW: u128 = 1_100;
/// Per winner: 4 × 3 + 32 × 7 = 236; protocol fee 10% = 23 (23.6 rounded down), royalty 5% =
/// 11 (11.8 down), the node keeps 202.
const PAY: u128 = 236;
const PROTOCOL_FEE: u128 = 23;
const ROYALTY: u128 = 11;
const NODE_SHARE: u128 = 202;

// Accounts, by index; nodes follow.
const ADMIN: usize = 0;
const OWNER: usize = 1;
const USER: usize = 2;
const KEEPER: usize = 3;
const FIRST_NODE: usize = 4;

fn fee(gas: u64) -> u128 {
    (gas as u128 * 25).div_ceil(1000)
}

fn artifact(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../artifacts")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-contracts)", path.display()))
}

fn any(type_url: &str, msg: impl Message) -> Any {
    Any {
        type_url: type_url.into(),
        value: msg.encode_to_vec(),
    }
}

fn events<'a>(result: &'a ExecTxResult, kind: &str) -> Vec<&'a Event> {
    result.events.iter().filter(|e| e.r#type == kind).collect()
}

fn value(event: &Event, key: &str) -> Option<String> {
    event
        .attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.clone())
}

/// The value of `key` in the first event of type `kind`.
fn attribute(result: &ExecTxResult, kind: &str, key: &str) -> String {
    events(result, kind)
        .into_iter()
        .find_map(|e| value(e, key))
        .unwrap_or_else(|| panic!("no {kind}.{key} in {:?}", result.events))
}

fn assert_ok(result: &ExecTxResult, what: &str) {
    assert_eq!(result.code, 0, "{what}: {}", result.log);
}

/// Rejected by the contract: x/wasm's "execute wasm contract failed" (code 5) with the
/// contract's own message, and nothing it did kept.
fn assert_rejected(result: &ExecTxResult, message: &str) {
    assert_eq!(
        (result.code, result.codespace.as_str()),
        (5, "wasm"),
        "{}",
        result.log
    );
    assert!(
        result.log.contains(message),
        "expected {message:?} in {:?}",
        result.log
    );
    assert!(
        !result.events.iter().any(|e| e.r#type.starts_with("wasm-")),
        "no contract event survives"
    );
}

fn market_params() -> MarketParams {
    MarketParams {
        commit_blocks: 10,
        reveal_blocks: 10,
        default_redundancy: K,
        max_redundancy: 5,
        quorum: 2,
        slash: SlashFractions {
            no_commit: Decimal::percent(20),
            no_reveal: Decimal::percent(20),
            bad_reveal: Decimal::percent(30),
            outlier: Decimal::percent(5),
        },
        jail_on_fault: true,
        protocol_fee: Decimal::percent(10),
        kernel_royalty: Decimal::percent(5),
        fingerprint_tolerance: 3,
        fingerprint_positions: 16,
        max_input_tokens: 256,
        max_output_tokens: 64,
        max_payload_bytes: 1024,
        denom: "unes".into(),
    }
}

fn kernel() -> NewKernel {
    NewKernel {
        name: "smollm2-135m-instruct-q4_1".into(),
        weights_sha256: HexBinary::from(vec![1; 32]),
        tokenizer_sha256: HexBinary::from(vec![2; 32]),
        architecture: "llama".into(),
        layer_count: LAYERS,
        shard_layout: vec![ShardRange {
            start_layer: 0,
            end_layer: LAYERS,
            sha256: HexBinary::from(vec![3; 32]),
        }],
        encryption: Encryption::None,
        price_per_input_token: Uint128::new(PRICE_IN),
        price_per_output_token: Uint128::new(PRICE_OUT),
        min_redundancy: 2,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF".into(),
    }
}

fn submit_msg(kernel_id: u64, input: &[u32]) -> ExecuteMsg {
    ExecuteMsg::SubmitQuery {
        kernel_id,
        input: Binary::from(encode_token_ids(input)),
        max_output_tokens: MAX_OUTPUT,
        sampling: Sampling {
            seed: 7,
            temperature_milli: 0,
            top_p_milli: 1000,
        },
        redundancy: Some(K),
        user_entropy: Binary::from(Sha256::digest(b"alice's entropy").to_vec()),
    }
}

/// What a node runner learns from `wasm-query_assigned`.
struct Assigned {
    query_id: u64,
    nodes: Vec<String>,
    seed: [u8; 32],
    positions: usize,
    commit_deadline: u64,
}

/// A node's result for a query, as its runner commits and reveals it.
#[derive(Clone)]
struct NodeResult {
    output: Vec<u8>,
    fingerprint: Vec<u8>,
    salt: Vec<u8>,
}

impl NodeResult {
    /// Greedy decoding of [`GENERATED`] tokens by `model` (0 is the real kernel; any other
    /// value a different model), the fingerprint at the positions the seed draws, a salt.
    fn compute(node: &str, assigned: &Assigned, model: u64) -> NodeResult {
        let logits: Vec<Vec<f32>> = (0..GENERATED)
            .map(|step| simulated_logits(model, step))
            .collect();
        let generated: Vec<u32> = logits
            .iter()
            .map(|l| {
                (0..VOCAB)
                    .max_by(|&a, &b| l[a as usize].total_cmp(&l[b as usize]).then(b.cmp(&a)))
                    .unwrap()
            })
            .collect();
        let fingerprint =
            Fingerprint::from_logits(&assigned.seed, GENERATED, assigned.positions, |p| {
                &logits[p as usize]
            });
        let mut salt = Sha256::new();
        salt.update(b"salt/");
        salt.update(node.as_bytes());
        salt.update(assigned.query_id.to_be_bytes());
        NodeResult {
            output: encode_token_ids(&generated),
            fingerprint: fingerprint.encode().expect("a valid fingerprint"),
            salt: salt.finalize().to_vec(),
        }
    }

    /// `sha256(node ‖ query_id ‖ result_hash(output, fingerprint) ‖ salt)`.
    fn commitment(&self, node: &str, query_id: u64) -> [u8; 32] {
        commitment(
            node,
            query_id,
            &result_hash(&self.output, &self.fingerprint),
            &self.salt,
        )
    }

    fn commit_msg(&self, node: &str, query_id: u64) -> ExecuteMsg {
        ExecuteMsg::Commit {
            query_id,
            commitment: HexBinary::from(self.commitment(node, query_id).to_vec()),
        }
    }

    fn reveal_msg(&self, query_id: u64) -> ExecuteMsg {
        ExecuteMsg::Reveal {
            query_id,
            output: Binary::from(self.output.clone()),
            fingerprint: Binary::from(self.fingerprint.clone()),
            salt: Binary::from(self.salt.clone()),
        }
    }
}

/// Deterministic logits in [-8, 8) for one decoding step of `model`.
fn simulated_logits(model: u64, step: u32) -> Vec<f32> {
    (0..VOCAB)
        .map(|token| {
            let mut x = (model << 48) ^ ((step as u64) << 24) ^ token as u64;
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            (x % 16_000) as f32 / 1000.0 - 8.0
        })
        .collect()
}

/// Balances and fees paid at one moment, to check every movement afterwards.
struct Snapshot {
    accounts: Vec<u128>,
    fees: Vec<u128>,
    treasury: u128,
    staking: u128,
    market: u128,
}

/// The chain with the three contracts wired, a kernel and bonded nodes.
struct Market {
    chain: TestChain,
    accounts: Vec<TestAccount>,
    /// Fees each account paid so far (every transaction is included, so each pays its fee).
    fees: Vec<u128>,
    treasury: Address,
    registry: String,
    staking: String,
    market: String,
    kernel_id: u64,
}

impl Market {
    fn setup(name: &str) -> Market {
        let accounts: Vec<TestAccount> = (0..FIRST_NODE + NODES)
            .map(|i| TestAccount::from_seed(i as u8 + 1, i as u64))
            .collect();
        let funded: Vec<(&Address, u128)> = accounts.iter().map(|a| (&a.address, FUNDS)).collect();
        let chain = TestChain::new(&format!("market-{name}"), &funded);
        let treasury = TestAccount::from_seed(200, 0).address;
        let fees = vec![0; accounts.len()];
        let mut m = Market {
            chain,
            accounts,
            fees,
            treasury,
            registry: String::new(),
            staking: String::new(),
            market: String::new(),
            kernel_id: 0,
        };

        let admin = m.address(ADMIN);
        let uploads: Vec<Vec<u8>> = [
            "nesa_kernel_registry.wasm",
            "nesa_node_staking.wasm",
            "nesa_inference_market.wasm",
        ]
        .into_iter()
        .map(|name| {
            let store = proto::MsgStoreCode {
                sender: admin.clone(),
                wasm_byte_code: artifact(name),
                instantiate_permission: None,
            };
            m.sign(
                ADMIN,
                any("/cosmwasm.wasm.v1.MsgStoreCode", store),
                UPLOAD_GAS,
            )
        })
        .collect();
        let codes: Vec<u64> = m
            .chain
            .run_all(&uploads)
            .iter()
            .map(|r| {
                assert_ok(r, "store code");
                attribute(r, "store_code", "code_id").parse().unwrap()
            })
            .collect();

        m.registry = m.instantiate(codes[0], &registry::InstantiateMsg {}, "kernel-registry");
        let staking_msg = staking::InstantiateMsg {
            admin: None,
            denom: "unes".into(),
            min_stake: Uint128::new(MIN_STAKE),
            unbonding_blocks: UNBONDING_BLOCKS,
            jail_blocks: JAIL_BLOCKS,
            registry: m.registry.clone(),
            market: None,
            slash_recipient: m.treasury.to_string(),
        };
        m.staking = m.instantiate(codes[1], &staking_msg, "node-staking");
        let market_msg = InstantiateMsg {
            admin: None,
            registry: m.registry.clone(),
            staking: m.staking.clone(),
            treasury: m.treasury.to_string(),
            params: market_params(),
        };
        m.market = m.instantiate(codes[2], &market_msg, "inference-market");

        // Staking learns who the market is; the kernel owner registers the kernel.
        let wire = staking::ExecuteMsg::UpdateConfig(staking::ConfigUpdate {
            market: Some(m.market.clone()),
            ..Default::default()
        });
        let wire = m.execute_msg(ADMIN, &m.staking.clone(), &wire, 0);
        let register = m.execute_msg(
            OWNER,
            &m.registry.clone(),
            &registry::ExecuteMsg::Register(kernel()),
            0,
        );
        let results = m.block(vec![(ADMIN, wire), (OWNER, register)]);
        assert_ok(&results[0], "staking update_config");
        assert_ok(&results[1], "register kernel");
        m.kernel_id = attribute(&results[1], "wasm-kernel_registered", "kernel_id")
            .parse()
            .unwrap();

        let profile = NodeProfile {
            endpoint: "http://127.0.0.1:8700".into(),
            kernels: vec![ServedKernel {
                kernel_id: m.kernel_id,
                start_layer: 0,
                end_layer: LAYERS,
            }],
        };
        let bond = staking::ExecuteMsg::Bond {
            profile: Some(profile),
        };
        let staking_addr = m.staking.clone();
        let bonds = (FIRST_NODE..FIRST_NODE + NODES)
            .map(|i| (i, m.execute_msg(i, &staking_addr, &bond, NODE_STAKE)))
            .collect();
        for result in m.block(bonds) {
            assert_ok(&result, "bond");
            assert!(!events(&result, "wasm-node_bonded").is_empty());
        }
        let config: staking::StakingConfig = m.query(&m.staking, &staking::QueryMsg::Config {});
        assert_eq!(
            config.market.map(|a| a.to_string()),
            Some(m.market.clone()),
            "staking knows the market"
        );
        m
    }

    fn address(&self, who: usize) -> String {
        self.accounts[who].address.to_string()
    }

    /// The account index of a node address.
    fn who(&self, address: &str) -> usize {
        (FIRST_NODE..FIRST_NODE + NODES)
            .find(|&i| self.address(i) == address)
            .expect("one of our nodes")
    }

    fn sign(&mut self, who: usize, msg: Any, gas: u64) -> Vec<u8> {
        self.fees[who] += fee(gas);
        self.accounts[who].sign_with_gas(vec![msg], gas)
    }

    fn instantiate(&mut self, code_id: u64, msg: &impl Serialize, label: &str) -> String {
        let msg = proto::MsgInstantiateContract {
            sender: self.address(ADMIN),
            admin: self.address(ADMIN),
            code_id,
            label: label.into(),
            msg: serde_json::to_vec(msg).unwrap(),
            funds: vec![],
        };
        let result = self
            .block(vec![(
                ADMIN,
                any("/cosmwasm.wasm.v1.MsgInstantiateContract", msg),
            )])
            .remove(0);
        assert_ok(&result, label);
        attribute(&result, "instantiate", "_contract_address")
    }

    fn execute_msg(&self, who: usize, contract: &str, msg: &impl Serialize, funds: u128) -> Any {
        let msg = proto::MsgExecuteContract {
            sender: self.address(who),
            contract: contract.into(),
            msg: serde_json::to_vec(msg).unwrap(),
            funds: if funds > 0 {
                vec![nesa_sdk::Coin::unes(funds).to_proto()]
            } else {
                vec![]
            },
        };
        any("/cosmwasm.wasm.v1.MsgExecuteContract", msg)
    }

    /// One block holding one signed transaction per `(account, message)`, in order.
    fn block(&mut self, msgs: Vec<(usize, Any)>) -> Vec<ExecTxResult> {
        let txs: Vec<Vec<u8>> = msgs
            .into_iter()
            .map(|(who, msg)| self.sign(who, msg, GAS))
            .collect();
        self.chain.run_all(&txs)
    }

    /// `who` executes `msg` on the market in a block of its own.
    fn market_tx(&mut self, who: usize, msg: &ExecuteMsg, funds: u128) -> ExecTxResult {
        let msg = self.execute_msg(who, &self.market.clone(), msg, funds);
        self.block(vec![(who, msg)]).remove(0)
    }

    /// One block in which each node sends its market message.
    fn nodes_send(&mut self, msgs: Vec<(&str, ExecuteMsg)>) -> Vec<ExecTxResult> {
        let market = self.market.clone();
        let msgs = msgs
            .into_iter()
            .map(|(node, msg)| {
                (
                    self.who(node),
                    self.execute_msg(self.who(node), &market, &msg, 0),
                )
            })
            .collect();
        self.block(msgs)
    }

    fn query<T: DeserializeOwned>(&self, contract: &str, msg: &impl Serialize) -> T {
        let answer = self
            .chain
            .query_smart(contract, serde_json::to_value(msg).unwrap())
            .unwrap();
        serde_json::from_value(answer).unwrap()
    }

    fn inference(&self, id: u64) -> QueryResponse {
        self.query(&self.market, &QueryMsg::Query { id })
    }

    fn node(&self, address: &str) -> NodeResponse {
        self.query(
            &self.staking,
            &staking::QueryMsg::Node {
                address: address.into(),
            },
        )
    }

    fn outcome(&self, id: u64, node: &str) -> Option<NodeOutcome> {
        self.inference(id)
            .assignments
            .into_iter()
            .find(|a| a.node.as_str() == node)
            .unwrap()
            .outcome
    }

    /// The user submits the standard query; returns what node runners learn from it.
    fn submit(&mut self) -> (Assigned, ExecTxResult) {
        let result = self.market_tx(USER, &submit_msg(self.kernel_id, &INPUT), ESCROW);
        assert_ok(&result, "submit_query");
        let assigned = "wasm-query_assigned";
        let seed = hex::decode(attribute(&result, assigned, "seed")).unwrap();
        let assigned = Assigned {
            query_id: attribute(&result, assigned, "query_id").parse().unwrap(),
            nodes: attribute(&result, assigned, "nodes")
                .split(',')
                .map(str::to_string)
                .collect(),
            seed: seed.try_into().expect("a 32-byte seed"),
            positions: attribute(&result, assigned, "fingerprint_positions")
                .parse()
                .unwrap(),
            commit_deadline: attribute(&result, assigned, "commit_deadline")
                .parse()
                .unwrap(),
        };
        (assigned, result)
    }

    fn settle(&mut self, id: u64) -> ExecTxResult {
        self.market_tx(KEEPER, &ExecuteMsg::Settle { query_id: id }, 0)
    }

    fn balance(&self, address: &impl std::fmt::Display) -> u128 {
        self.chain.balance(address)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            accounts: self
                .accounts
                .iter()
                .map(|a| self.balance(&a.address))
                .collect(),
            fees: self.fees.clone(),
            treasury: self.balance(&self.treasury),
            staking: self.balance(&self.staking),
            market: self.balance(&self.market),
        }
    }

    /// Every balance since `before`, exact to the unes: each account lost the fees it paid and
    /// gained its entry of `gains` (0 when absent); the treasury, the staking contract and
    /// the market contract moved by the given amounts.
    fn assert_moved(
        &self,
        before: &Snapshot,
        gains: &[(usize, i128)],
        treasury: i128,
        staking: i128,
        market: i128,
    ) {
        for (who, account) in self.accounts.iter().enumerate() {
            let gain = gains
                .iter()
                .filter(|(w, _)| *w == who)
                .map(|(_, g)| g)
                .sum::<i128>();
            let fees = (self.fees[who] - before.fees[who]) as i128;
            let expected = before.accounts[who] as i128 - fees + gain;
            assert_eq!(
                self.balance(&account.address) as i128,
                expected,
                "account {who} (fees {fees}, gain {gain})"
            );
        }
        assert_eq!(
            self.balance(&self.treasury) as i128,
            before.treasury as i128 + treasury,
            "treasury"
        );
        assert_eq!(
            self.balance(&self.staking) as i128,
            before.staking as i128 + staking,
            "staking contract"
        );
        assert_eq!(
            self.balance(&self.market) as i128,
            before.market as i128 + market,
            "market contract"
        );
    }
}

fn slashed(reason: SlashReason, percent: u64) -> Option<NodeOutcome> {
    Some(NodeOutcome::Slashed {
        reason,
        fraction: Decimal::percent(percent),
    })
}

#[test]
fn an_honest_round_pays_nodes_treasury_and_kernel_owner_and_refunds_the_rest_to_the_unes() {
    let mut m = Market::setup("honest");
    let before = m.snapshot();

    let (assigned, submitted) = m.submit();
    let id = assigned.query_id;
    assert_eq!(
        attribute(&submitted, "wasm-query_submitted", "escrow"),
        ESCROW.to_string()
    );
    assert_eq!(
        attribute(&submitted, "wasm-query_submitted", "redundancy"),
        "3"
    );
    assert_eq!(
        attribute(&submitted, "wasm-query_submitted", "input_tokens"),
        "4"
    );
    assert_eq!(assigned.nodes.len(), 3, "k nodes assigned");
    let mut distinct = assigned.nodes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "assigned nodes are distinct");
    assert_eq!(
        m.balance(&m.market),
        ESCROW,
        "the escrow is held by the market"
    );

    // Every node runs the kernel and commits; the last commit opens reveals.
    let results: Vec<NodeResult> = assigned
        .nodes
        .iter()
        .map(|n| NodeResult::compute(n, &assigned, 0))
        .collect();
    let fingerprint_bytes = results[0].fingerprint.len();
    assert!(
        fingerprint_bytes <= 256,
        "a fingerprint of {GENERATED} tokens is {fingerprint_bytes} bytes"
    );
    assert_eq!(fingerprint_bytes, 1 + 16 * 14);
    let commits = m.nodes_send(
        assigned
            .nodes
            .iter()
            .zip(&results)
            .map(|(n, r)| (n.as_str(), r.commit_msg(n, id)))
            .collect(),
    );
    for (node, result) in assigned.nodes.iter().zip(&commits) {
        assert_ok(result, "commit");
        assert_eq!(&attribute(result, "wasm-result_committed", "node"), node);
    }
    assert_eq!(m.inference(id).phase, QueryPhase::Reveal);

    let reveals = m.nodes_send(
        assigned
            .nodes
            .iter()
            .zip(&results)
            .map(|(n, r)| (n.as_str(), r.reveal_msg(id)))
            .collect(),
    );
    for result in &reveals {
        assert_ok(result, "reveal");
        assert_eq!(
            attribute(result, "wasm-result_revealed", "matches_commitment"),
            "true"
        );
        assert_eq!(
            attribute(result, "wasm-result_revealed", "output_tokens"),
            GENERATED.to_string()
        );
    }
    assert_eq!(m.inference(id).phase, QueryPhase::Settleable);

    let settled = m.settle(id);
    assert_ok(&settled, "settle");
    let settle_event = "wasm-query_settled";
    assert_eq!(attribute(&settled, settle_event, "status"), "settled");
    assert_eq!(
        attribute(&settled, settle_event, "paid"),
        (3 * PAY).to_string()
    );
    assert_eq!(
        attribute(&settled, settle_event, "protocol_fee"),
        (3 * PROTOCOL_FEE).to_string()
    );
    assert_eq!(
        attribute(&settled, settle_event, "royalty"),
        (3 * ROYALTY).to_string()
    );
    let refund = ESCROW - 3 * PAY;
    assert_eq!(refund, 392);
    assert_eq!(
        attribute(&settled, settle_event, "refunded"),
        refund.to_string()
    );
    assert!(events(&settled, "wasm-node_slashed").is_empty());

    // Every unes: nodes 202 each, treasury 69, kernel owner 33, user refunded 392 of 1100.
    assert_eq!(
        3 * NODE_SHARE + 3 * PROTOCOL_FEE + 3 * ROYALTY + refund,
        ESCROW
    );
    let mut gains: Vec<(usize, i128)> = assigned
        .nodes
        .iter()
        .map(|n| (m.who(n), NODE_SHARE as i128))
        .collect();
    gains.push((OWNER, 3 * ROYALTY as i128));
    gains.push((USER, -(ESCROW as i128) + refund as i128));
    m.assert_moved(&before, &gains, 3 * PROTOCOL_FEE as i128, 0, 0);

    let query = m.inference(id);
    assert_eq!(query.query.status, QueryStatus::Settled);
    assert_eq!(query.phase, QueryPhase::Closed);
    for assignment in &query.assignments {
        assert_eq!(
            assignment.outcome,
            Some(NodeOutcome::Paid {
                amount: Uint128::new(NODE_SHARE)
            })
        );
    }
    let settlement = query.query.settlement.unwrap();
    assert_eq!(
        settlement.output.unwrap().as_slice(),
        results[0].output.as_slice()
    );

    let gas = |r: &ExecTxResult| r.gas_used;
    let commit_gas: Vec<i64> = commits.iter().map(gas).collect();
    let reveal_gas: Vec<i64> = reveals.iter().map(gas).collect();
    println!(
        "market gas on the real VM (gas_used of the whole tx, ante and tx size included; limit {GAS}):\n  \
         SubmitQuery {} (k = 3, 4 input tokens)\n  Commit {commit_gas:?}\n  \
         Reveal {reveal_gas:?} ({GENERATED} tokens, fingerprint {fingerprint_bytes} bytes)\n  Settle {} (3 winners paid)",
        gas(&submitted),
        gas(&settled),
    );
}

#[test]
fn a_copier_revealing_another_nodes_output_with_its_own_salt_is_slashed_and_jailed_and_the_honest_are_paid(
) {
    let mut m = Market::setup("copier");
    let (assigned, _) = m.submit();
    let id = assigned.query_id;
    let before = m.snapshot();
    let (a, b, copier) = (
        assigned.nodes[0].clone(),
        assigned.nodes[1].clone(),
        assigned.nodes[2].clone(),
    );
    let honest_a = NodeResult::compute(&a, &assigned, 0);
    let honest_b = NodeResult::compute(&b, &assigned, 0);

    let commits = m.nodes_send(vec![
        (&a, honest_a.commit_msg(&a, id)),
        (&b, honest_b.commit_msg(&b, id)),
    ]);
    // The copier takes a's commitment from the block results and posts it as its own.
    let copied = attribute(&commits[0], "wasm-result_committed", "commitment");
    let copy = ExecuteMsg::Commit {
        query_id: id,
        commitment: HexBinary::from_hex(&copied).unwrap(),
    };
    assert_ok(&m.nodes_send(vec![(&copier, copy)])[0], "copied commit");

    let reveals = m.nodes_send(vec![
        (&a, honest_a.reveal_msg(id)),
        (&b, honest_b.reveal_msg(id)),
    ]);
    reveals.iter().for_each(|r| assert_ok(r, "reveal"));
    // …then reveals a's output and fingerprint, read from the chain, with its own salt.
    let seen = m.inference(id).assignments[0].reveal.clone().unwrap();
    let own_salt = NodeResult::compute(&copier, &assigned, 0).salt;
    let copied_reveal = ExecuteMsg::Reveal {
        query_id: id,
        output: seen.output,
        fingerprint: seen.fingerprint,
        salt: Binary::from(own_salt),
    };
    let revealed = m.nodes_send(vec![(&copier, copied_reveal)]).remove(0);
    assert_ok(&revealed, "copied reveal");
    assert_eq!(
        attribute(&revealed, "wasm-result_revealed", "matches_commitment"),
        "false"
    );

    let settled = m.settle(id);
    assert_ok(&settled, "settle");
    assert_eq!(
        attribute(&settled, "wasm-query_settled", "status"),
        "settled"
    );
    assert_eq!(
        attribute(&settled, "wasm-query_settled", "winners"),
        format!("{a},{b}")
    );
    let slash = events(&settled, "wasm-node_slashed");
    assert_eq!(slash.len(), 1);
    assert_eq!(value(slash[0], "node"), Some(copier.clone()));
    assert_eq!(value(slash[0], "reason").as_deref(), Some("bad_reveal"));
    assert_eq!(value(slash[0], "fraction").as_deref(), Some("0.3"));
    assert_eq!(m.outcome(id, &copier), slashed(SlashReason::BadReveal, 30));

    let node = m.node(&copier);
    let slash_amount = NODE_STAKE * 3 / 10;
    assert_eq!(node.bonded.u128(), NODE_STAKE - slash_amount);
    assert_eq!(node.slashed.u128(), slash_amount);
    assert!(node.jailed && !node.eligible);
    let refund = ESCROW - 2 * PAY;
    m.assert_moved(
        &before,
        &[
            (m.who(&a), NODE_SHARE as i128),
            (m.who(&b), NODE_SHARE as i128),
            (OWNER, 2 * ROYALTY as i128),
            (USER, refund as i128),
        ],
        (2 * PROTOCOL_FEE + slash_amount) as i128,
        -(slash_amount as i128),
        -(ESCROW as i128),
    );
}

#[test]
fn a_node_that_never_commits_is_slashed_after_the_deadline() {
    let mut m = Market::setup("no-commit");
    let (assigned, _) = m.submit();
    let id = assigned.query_id;
    let before = m.snapshot();
    let (a, b, silent) = (
        assigned.nodes[0].clone(),
        assigned.nodes[1].clone(),
        assigned.nodes[2].clone(),
    );
    let honest_a = NodeResult::compute(&a, &assigned, 0);
    let honest_b = NodeResult::compute(&b, &assigned, 0);
    for result in m.nodes_send(vec![
        (&a, honest_a.commit_msg(&a, id)),
        (&b, honest_b.commit_msg(&b, id)),
    ]) {
        assert_ok(&result, "commit");
    }
    // Reveals stay shut while a node may still commit.
    let early = m.nodes_send(vec![(&a, honest_a.reveal_msg(id))]).remove(0);
    assert_rejected(
        &early,
        &format!("reveals for query {id} open when all 3 nodes committed (2 did)"),
    );

    // Empty blocks carry the chain past the commit deadline.
    m.chain.advance_to(assigned.commit_deadline);
    let late = NodeResult::compute(&silent, &assigned, 0);
    let results = m.nodes_send(vec![
        (&a, honest_a.reveal_msg(id)),
        (&b, honest_b.reveal_msg(id)),
        (&silent, late.commit_msg(&silent, id)),
    ]);
    assert_eq!(m.chain.height(), assigned.commit_deadline + 1);
    assert_ok(&results[0], "reveal after the commit deadline");
    assert_ok(&results[1], "reveal after the commit deadline");
    assert_rejected(
        &results[2],
        &format!(
            "the commit window of query {id} closed at height {}",
            assigned.commit_deadline
        ),
    );

    let settled = m.settle(id);
    assert_ok(&settled, "settle");
    assert_eq!(
        attribute(&settled, "wasm-query_settled", "status"),
        "settled"
    );
    assert_eq!(attribute(&settled, "wasm-node_slashed", "node"), silent);
    assert_eq!(
        attribute(&settled, "wasm-node_slashed", "reason"),
        "no_commit"
    );
    assert_eq!(m.outcome(id, &silent), slashed(SlashReason::NoCommit, 20));
    let node = m.node(&silent);
    let slash_amount = NODE_STAKE * 2 / 10;
    assert_eq!(node.bonded.u128(), NODE_STAKE - slash_amount);
    assert!(node.jailed);
    assert_eq!(node.jailed_until, Some(m.chain.height() + JAIL_BLOCKS));
    m.assert_moved(
        &before,
        &[
            (m.who(&a), NODE_SHARE as i128),
            (m.who(&b), NODE_SHARE as i128),
            (OWNER, 2 * ROYALTY as i128),
            (USER, (ESCROW - 2 * PAY) as i128),
        ],
        (2 * PROTOCOL_FEE + slash_amount) as i128,
        -(slash_amount as i128),
        -(ESCROW as i128),
    );
}

#[test]
fn without_a_quorum_the_user_gets_everything_back_and_valid_revealers_are_not_slashed() {
    let mut m = Market::setup("no-quorum");
    let before = m.snapshot();
    let (assigned, _) = m.submit();
    let id = assigned.query_id;
    // Each node runs a different model: three outputs, three fingerprints that do not agree.
    let results: Vec<NodeResult> = assigned
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeResult::compute(n, &assigned, 1 + i as u64))
        .collect();
    assert_ne!(results[0].output, results[1].output);
    assert_ne!(results[1].output, results[2].output);
    let commits = m.nodes_send(
        assigned
            .nodes
            .iter()
            .zip(&results)
            .map(|(n, r)| (n.as_str(), r.commit_msg(n, id)))
            .collect(),
    );
    commits.iter().for_each(|r| assert_ok(r, "commit"));
    let reveals = m.nodes_send(
        assigned
            .nodes
            .iter()
            .zip(&results)
            .map(|(n, r)| (n.as_str(), r.reveal_msg(id)))
            .collect(),
    );
    for result in &reveals {
        assert_ok(result, "reveal");
        assert_eq!(
            attribute(result, "wasm-result_revealed", "matches_commitment"),
            "true"
        );
    }

    let settled = m.settle(id);
    assert_ok(&settled, "settle");
    assert_eq!(
        attribute(&settled, "wasm-query_settled", "status"),
        "disputed"
    );
    assert_eq!(
        attribute(&settled, "wasm-query_settled", "refunded"),
        ESCROW.to_string()
    );
    assert_eq!(attribute(&settled, "wasm-query_settled", "paid"), "0");
    assert!(events(&settled, "wasm-node_slashed").is_empty());
    let query = m.inference(id);
    assert_eq!(query.query.status, QueryStatus::Disputed);
    for node in &assigned.nodes {
        assert_eq!(m.outcome(id, node), Some(NodeOutcome::Unpaid {}));
        let staked = m.node(node);
        assert_eq!((staked.bonded.u128(), staked.jailed), (NODE_STAKE, false));
    }
    // The user paid only its transaction fee; nobody else gained anything.
    m.assert_moved(&before, &[], 0, 0, 0);
}

#[test]
fn a_slash_on_staking_by_anyone_but_the_market_is_rejected() {
    let mut m = Market::setup("unauthorized-slash");
    let victim = m.address(FIRST_NODE);
    let before = m.snapshot();
    let slash = staking::ExecuteMsg::Slash {
        node: victim.clone(),
        fraction: Decimal::one(),
        jail: true,
        reason: "grudge".into(),
        query_id: 1,
    };
    let msg = m.execute_msg(USER, &m.staking.clone(), &slash, 0);
    let result = m.block(vec![(USER, msg)]).remove(0);
    assert_rejected(&result, "only the market contract may slash");
    assert!(
        result.log.contains(&m.market),
        "the error names the market: {}",
        result.log
    );
    let node = m.node(&victim);
    assert_eq!(
        (node.bonded.u128(), node.jailed, node.slashed.u128()),
        (NODE_STAKE, false, 0)
    );
    m.assert_moved(&before, &[], 0, 0, 0);
}

#[test]
fn bad_submissions_are_rejected_with_a_clear_error_and_move_no_funds() {
    let mut m = Market::setup("bad-input");
    let before = m.snapshot();
    let market = m.market.clone();
    let required = 3 * (INPUT.len() as u128 * PRICE_IN + MAX_OUTPUT as u128 * PRICE_OUT);
    let oversized: Vec<u32> = (0..257).collect();
    let cases: Vec<(ExecuteMsg, u128, String)> = vec![
        (
            submit_msg(99, &INPUT),
            ESCROW,
            "kernel 99 is not available".into(),
        ),
        (
            submit_msg(m.kernel_id, &INPUT),
            required - 1,
            format!(
                "escrow of {} is below the {required} this query may cost",
                required - 1
            ),
        ),
        (
            submit_msg(m.kernel_id, &[]),
            ESCROW,
            "the input is empty: send at least one token id".into(),
        ),
        (
            submit_msg(m.kernel_id, &oversized),
            100_000,
            "input of 1028 bytes exceeds the market's max_payload_bytes 1024".into(),
        ),
    ];
    let msgs = cases
        .iter()
        .map(|(msg, funds, _)| (USER, m.execute_msg(USER, &market, msg, *funds)))
        .collect();
    let results = m.block(msgs);
    for ((_, _, message), result) in cases.iter().zip(&results) {
        assert_rejected(result, message);
    }
    let config: ConfigResponse = m.query(&m.market, &QueryMsg::Config {});
    assert_eq!(config.query_count, 0, "no query was recorded");
    // The escrow of each went back with the failed transaction: only the fees were paid.
    m.assert_moved(&before, &[], 0, 0, 0);
    assert_eq!(m.fees[USER] - before.fees[USER], 4 * fee(GAS));
}

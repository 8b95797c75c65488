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
use nesa_market::devnet::{self, JAIL_BLOCKS};
use nesa_market::market::{
    ConfigResponse, ExecuteMsg, InstantiateMsg, MarketParams, NodeOutcome, QueryMsg, QueryPhase,
    QueryResponse, QueryStatus, SlashReason,
};
use nesa_market::registry;
use nesa_market::staking::{self, NodeResponse};
use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::cosmrs::Any;
use nesa_sdk::Address;
use serde::de::DeserializeOwned;
use serde::Serialize;
use support::market::*;
use support::{TestAccount, TestChain};
use tendermint_proto::v0_38::abci::ExecTxResult;

/// Gas limit of every market transaction (generous: the tests report what is used).
const GAS: u64 = 5_000_000;
/// Uploads pay 10 gas per tx byte and 3 per wasm byte compiled, as on wasmd.
const UPLOAD_GAS: u64 = 20_000_000;
const FUNDS: u128 = 1_000_000_000_000;
const NODE_STAKE: u128 = 10_000_000;
const NODES: usize = 4;
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

/// The devnet's parameters with a 10-block commit window, a 5% royalty (so rounding shows)
/// and small payload limits.
fn market_params() -> MarketParams {
    MarketParams {
        draw_blocks: 2,
        commit_blocks: 10,
        default_redundancy: K,
        kernel_royalty: Decimal::percent(5),
        max_input_tokens: 256,
        max_output_tokens: 64,
        max_payload_bytes: 1024,
        ..devnet::market_params()
    }
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
    /// Gas of the last draw: each ticket, then the draw itself.
    draw_gas: (Vec<i64>, i64),
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
            draw_gas: (vec![], 0),
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
        let staking_msg =
            devnet::staking_instantiate(None, m.registry.clone(), None, m.treasury.to_string());
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

        let staking_addr = m.staking.clone();
        let bonds = (FIRST_NODE..FIRST_NODE + NODES)
            .map(|i| {
                let bond = staking::ExecuteMsg::Bond {
                    profile: Some(node_profile(&m.address(i), m.kernel_id)),
                };
                (i, m.execute_msg(i, &staking_addr, &bond, NODE_STAKE))
            })
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
        execute_msg(&self.address(who), contract, msg, funds)
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
        smart_query(&self.chain, contract, msg)
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

    /// The user submits the standard query, every node enters its draw in the next block and
    /// the user draws it once the window closed; returns what node runners learn from the
    /// draw, and the submission's result.
    fn submit(&mut self) -> (Assigned, ExecTxResult) {
        let result = self.market_tx(USER, &submit_msg(self.kernel_id, &INPUT), ESCROW);
        assert_ok(&result, "submit_query");
        let submitted = Submitted::from_result(&result);
        let tickets = (FIRST_NODE..FIRST_NODE + NODES)
            .map(|i| {
                let address = self.address(i);
                (address.clone(), submitted.ticket_msg(&address))
            })
            .collect::<Vec<_>>();
        let tickets = tickets
            .iter()
            .map(|(node, msg)| (node.as_str(), msg.clone()))
            .collect();
        let entered = self.nodes_send(tickets);
        for ticket in &entered {
            assert_ok(ticket, "submit_ticket");
        }
        while self.chain.height() <= submitted.draw_deadline {
            self.block(vec![]);
        }
        let draw = ExecuteMsg::Draw {
            query_id: submitted.query_id,
        };
        let drawn = self.market_tx(USER, &draw, 0);
        assert_ok(&drawn, "draw");
        self.draw_gas = (entered.iter().map(|r| r.gas_used).collect(), drawn.gas_used);
        (Assigned::from_result(&drawn), result)
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
         SubmitQuery {} (k = 3, 4 input tokens)\n  SubmitTicket {:?} (BLS verification)\n  \
         Draw {} ({NODES} tickets)\n  Commit {commit_gas:?}\n  \
         Reveal {reveal_gas:?} ({GENERATED} tokens, fingerprint {fingerprint_bytes} bytes)\n  Settle {} (3 winners paid)",
        gas(&submitted),
        m.draw_gas.0,
        m.draw_gas.1,
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
        activations: None,
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

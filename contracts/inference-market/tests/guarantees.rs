//! What the market guarantees whatever happens around a query: nodes are never blamed for a
//! query nobody took up, stake backing an assignment stays slashable until the query ends, a
//! query settles under the terms it was submitted with, every query ends even when the
//! staking contract or the kernel changes under it, and no node is given more queries than
//! its declared capacity.

mod support;

use cosmwasm_std::{Addr, Decimal, Uint128};
use cw_multi_test::Executor;
use nesa_inference_market::msg::{ExecuteMsg, NodeOutcome, QueryStatus, SlashReason};
use nesa_inference_market::ContractError;
use nesa_market::devnet::UNBONDING_BLOCKS;
use nesa_market::market::SlashFractions;
use nesa_market::{registry, staking};

use support::Behaviour::{Honest, Silent};
use support::*;

const INPUT: [u32; 4] = [1, 4093, 198, 19556];
const ESCROW: u128 = 400;

fn three_node_query(market: &mut Market) -> u64 {
    let user = market.user();
    market.submit(&user, &INPUT, 16, Some(3), ESCROW).unwrap()
}

fn staking_execute(
    market: &mut Market,
    sender: &Addr,
    msg: &staking::ExecuteMsg,
) -> anyhow::Result<cw_multi_test::AppResponse> {
    market
        .app
        .execute_contract(sender.clone(), market.staking.clone(), msg, &[])
}

fn claim(market: &mut Market, node: &Addr) -> Result<(), nesa_node_staking::ContractError> {
    staking_execute(market, node, &staking::ExecuteMsg::Claim {})
        .map(|_| ())
        .map_err(|e| e.downcast().unwrap())
}

#[test]
fn a_query_no_node_committed_to_is_refunded_and_nobody_is_slashed_or_jailed() {
    let mut market = Market::new();
    let user = market.user();
    let user_before = market.balance(&user);
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let response = market.play(id, &[Silent, Silent, Silent]);

    let query = market.query(id);
    assert_eq!(query.query.status, QueryStatus::Disputed);
    assert_eq!(
        query.query.settlement.unwrap().refunded,
        Uint128::new(ESCROW)
    );
    assert_eq!(market.balance(&user), user_before);
    assert!(events(&response, "wasm-node_slashed").is_empty());
    assert!(events(&response, "wasm-stake_slashed").is_empty());
    for node in &nodes {
        assert_eq!(market.outcome(id, node), Some(NodeOutcome::Unpaid {}));
        let staked = market.node(node);
        assert_eq!(staked.bonded, Uint128::new(NODE_STAKE));
        assert!(!staked.jailed);
        assert_eq!(staked.open_assignments, 0);
    }
}

#[test]
fn one_commit_is_enough_for_the_silent_nodes_to_be_slashed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    market.play(id, &[Honest, Silent, Silent]);
    assert_eq!(market.query(id).query.status, QueryStatus::Disputed);
    for node in &nodes[1..] {
        assert_eq!(
            market.outcome(id, node),
            Some(NodeOutcome::Slashed {
                reason: SlashReason::NoCommit,
                fraction: Decimal::percent(20)
            })
        );
    }
    assert_eq!(market.outcome(id, &nodes[0]), Some(NodeOutcome::Unpaid {}));
}

#[test]
fn stake_unbonded_mid_query_cannot_be_claimed_before_the_query_settles() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let leaver = nodes[0].clone();
    assert_eq!(market.node(&leaver).open_assignments, 1);
    staking_execute(
        &mut market,
        &leaver,
        &staking::ExecuteMsg::Unbond {
            amount: Uint128::new(NODE_STAKE),
        },
    )
    .unwrap();
    // The others commit and reveal in time; the leaver never commits.
    let output = market.honest_output(id);
    for node in &nodes[1..] {
        market.commit(node, id, &output).unwrap();
    }
    market.advance_to(market.query(id).query.commit_deadline + 1);
    for node in &nodes[1..] {
        market.reveal_honest(node, id).unwrap();
    }
    // Nobody settles until long after the unbonding period: the node still cannot leave.
    market.advance(UNBONDING_BLOCKS + 1);
    assert!(matches!(
        claim(&mut market, &leaver),
        Err(nesa_node_staking::ContractError::StakeLocked { query_id, .. }) if query_id == id
    ));
    assert_eq!(market.balance(&market.staking.clone()), 5 * NODE_STAKE);
    market.settle(id).unwrap();
    let node = market.node(&leaver);
    assert_eq!(node.slashed, Uint128::new(NODE_STAKE * 2 / 10));
    assert_eq!(node.open_assignments, 0);
    let before = market.balance(&leaver);
    claim(&mut market, &leaver).unwrap();
    assert_eq!(market.balance(&leaver), before + NODE_STAKE * 8 / 10);
}

#[test]
fn settlement_applies_the_fees_and_slashes_the_query_was_submitted_under() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let before: Vec<u128> = nodes.iter().map(|n| market.balance(n)).collect();
    let mut harsher = devnet_params();
    harsher.slash = SlashFractions {
        no_commit: Decimal::one(),
        no_reveal: Decimal::one(),
        bad_reveal: Decimal::one(),
        outlier: Decimal::one(),
    };
    harsher.protocol_fee = Decimal::percent(40);
    harsher.kernel_royalty = Decimal::percent(40);
    harsher.jail_on_fault = false;
    let admin = market.admin.clone();
    market
        .execute(&admin, &ExecuteMsg::UpdateParams { params: harsher }, 0)
        .unwrap();

    market.play(id, &[Silent, Honest, Honest]);
    // The terms at submission: a 20% slash with jail, a 10% fee and a 5% royalty.
    assert_eq!(
        market.outcome(id, &nodes[0]),
        Some(NodeOutcome::Slashed {
            reason: SlashReason::NoCommit,
            fraction: Decimal::percent(20)
        })
    );
    let silent = market.node(&nodes[0]);
    assert_eq!(silent.bonded, Uint128::new(NODE_STAKE * 8 / 10));
    assert!(silent.jailed);
    // pay = 4 × 3 + 8 × 7 = 68: fee 6, royalty 3, node 59.
    let settlement = market.query(id).query.settlement.unwrap();
    assert_eq!(settlement.protocol_fee, Uint128::new(2 * 6));
    assert_eq!(settlement.royalty, Uint128::new(2 * 3));
    for (node, before) in nodes.iter().zip(before).skip(1) {
        assert_eq!(market.balance(node), before + 59);
    }
    // A query submitted now gets the new terms.
    let user = market.user();
    let next = market.submit(&user, &INPUT, 16, Some(3), ESCROW).unwrap();
    let terms = market.query(next).query.terms.unwrap();
    assert_eq!(terms.protocol_fee, Decimal::percent(40));
    assert_eq!(terms.slash.no_commit, Decimal::one());
}

#[test]
fn a_query_ends_even_when_staking_no_longer_accepts_the_market() {
    let mut market = Market::new();
    let user = market.user();
    let total = market.total_unes();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    // The staking admin points staking at another market mid-query.
    let admin = market.admin.clone();
    let elsewhere = market.addr("another-market").to_string();
    staking_execute(
        &mut market,
        &admin,
        &staking::ExecuteMsg::UpdateConfig(staking::ConfigUpdate {
            market: Some(elsewhere),
            ..Default::default()
        }),
    )
    .unwrap();
    let user_before = market.balance(&user);
    let response = market.play(id, &[Silent, Honest, Honest]);

    let query = market.query(id);
    assert_eq!(query.query.status, QueryStatus::Settled);
    let settlement = query.query.settlement.unwrap();
    assert_eq!(
        market.balance(&user),
        user_before + settlement.refunded.u128()
    );
    assert_eq!(market.balance(&market.market.clone()), 0);
    assert_eq!(market.total_unes(), total);
    // The slash and the unlock were refused and reported; the payment stands.
    let failures = events(&response, "wasm-staking_call_failed");
    assert_eq!(failures.len(), 2, "{:?}", response.events);
    assert_eq!(market.node(&nodes[0]).bonded, Uint128::new(NODE_STAKE));
    // The locks the old market can no longer lift lapse on their own.
    let lapse = market.query(id).query.reveal_deadline + UNBONDING_BLOCKS + 1;
    market.advance_to(lapse);
    for node in &nodes {
        assert_eq!(market.node(node).open_assignments, 0);
    }
}

#[test]
fn a_query_on_a_kernel_deprecated_mid_query_still_settles() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    market.registry_execute(&registry::ExecuteMsg::Deprecate { kernel_id: 1 });
    market.play(id, &[Honest, Honest, Honest]);
    assert_eq!(market.query(id).query.status, QueryStatus::Settled);
    assert_eq!(market.balance(&market.market.clone()), 0);
}

#[test]
fn a_submission_whose_deadlines_would_pass_the_largest_height_is_rejected() {
    let mut market = Market::new();
    market.app.update_block(|b| b.height = u64::MAX - 20);
    let user = market.user();
    assert_eq!(
        market
            .submit(&user, &INPUT, 16, Some(3), ESCROW)
            .unwrap_err(),
        ContractError::HeightOverflow {}
    );
}

#[test]
fn a_flood_of_queries_never_gives_a_node_more_than_its_capacity() {
    let mut market = Market::with(0, devnet_params());
    let capacities = [1, 1, 2, 3];
    let nodes: Vec<Addr> = capacities
        .iter()
        .enumerate()
        .map(|(i, &capacity)| market.add_node(&format!("cap-{i}"), NODE_STAKE, capacity))
        .collect();
    let user = market.user();
    // 7 slots in all: at most three 2-node queries fit, whatever the draw.
    let mut ids = Vec::new();
    let escrow = Market::required_escrow(4, 64, 2);
    let available = loop {
        match market.submit(&user, &INPUT, 64, Some(2), escrow) {
            Ok(id) => ids.push(id),
            Err(ContractError::NotEnoughCandidates { available, .. }) => break available,
            Err(e) => panic!("{e}"),
        }
        assert!(ids.len() <= 3, "more queries assigned than capacity allows");
    };
    let open = |market: &Market| -> Vec<u32> {
        nodes
            .iter()
            .map(|n| market.node(n).open_assignments)
            .collect()
    };
    let before = open(&market);
    for ((node, capacity), open) in nodes.iter().zip(capacities).zip(&before) {
        assert!(
            *open <= capacity,
            "{node}: {open} open, capacity {capacity}"
        );
    }
    let free = before
        .iter()
        .zip(capacities)
        .filter(|(open, capacity)| **open < *capacity)
        .count();
    assert_eq!(available, free);
    assert!(free < 2);
    assert_eq!(before.iter().sum::<u32>(), 2 * ids.len() as u32);
    // Settling one frees its nodes' slots.
    market.play(ids[0], &[Honest, Honest]);
    assert_eq!(open(&market).iter().sum::<u32>(), 2 * ids.len() as u32 - 2);
    market.submit(&user, &INPUT, 64, Some(2), escrow).unwrap();
}

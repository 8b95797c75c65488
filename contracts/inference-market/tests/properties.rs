//! Property tests over random query sequences with random node behaviour: unes are
//! conserved (balances + escrow + stake), escrow and stake are fully backed by the contracts'
//! balances, every settlement adds up, and no node is ever paid twice for one query.

mod support;

use std::collections::BTreeMap;

use cosmwasm_std::Uint128;
use cw_multi_test::Executor;
use nesa_inference_market::msg::{NodeOutcome, QueriesResponse, QueryMsg, QueryStatus};
use nesa_inference_market::ContractError;
use nesa_market::devnet::JAIL_BLOCKS;
use nesa_market::staking;
use proptest::prelude::*;

use support::Behaviour::{self, Copier, Diverged, Honest, Lazy, Silent, Vanishes};
use support::*;

const NODES: usize = 6;

#[derive(Clone, Debug)]
struct Round {
    k: u8,
    input_tokens: u32,
    max_output_tokens: u32,
    extra_escrow: u128,
    behaviours: Vec<Behaviour>,
    /// An assigned node unbonds this share (in %) of its stake right after assignment.
    unbond: Option<(usize, u8)>,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => Just(Honest),
        1 => Just(Diverged),
        1 => Just(Silent),
        1 => Just(Vanishes),
        1 => Just(Copier),
        1 => Just(Lazy),
    ]
}

fn round() -> impl Strategy<Value = Round> {
    (
        2u8..=5,
        1u32..40,
        1u32..=20,
        0u128..500,
        proptest::collection::vec(behaviour(), 5),
        proptest::option::of((0usize..5, 1u8..=100)),
    )
        .prop_map(
            |(k, input_tokens, max_output_tokens, extra_escrow, behaviours, unbond)| Round {
                k,
                input_tokens,
                max_output_tokens,
                extra_escrow,
                behaviours: behaviours[..k as usize].to_vec(),
                unbond: unbond.map(|(i, pct)| (i % k as usize, pct)),
            },
        )
}

/// Stake the staking contract owes: every node's bonded stake and unbonding entries.
fn owed_stake(market: &Market) -> u128 {
    market
        .nodes
        .iter()
        .map(|n| {
            let node = market.node(n);
            node.bonded.u128() + node.unbonding.iter().map(|e| e.amount.u128()).sum::<u128>()
        })
        .sum()
}

/// Escrow the market owes: the escrow of every query not yet settled or disputed.
fn owed_escrow(market: &Market) -> u128 {
    [QueryStatus::Pending, QueryStatus::Revealing]
        .into_iter()
        .flat_map(|status| {
            let response: QueriesResponse = market
                .app
                .wrap()
                .query_wasm_smart(
                    &market.market,
                    &QueryMsg::QueriesByStatus {
                        status,
                        start_after: None,
                        limit: Some(30),
                    },
                )
                .unwrap();
            response.queries
        })
        .map(|q| q.escrow.amount.u128())
        .sum()
}

fn check_backing(market: &Market, total: u128) -> Result<(), TestCaseError> {
    prop_assert_eq!(market.total_unes(), total, "unes conserved");
    prop_assert_eq!(
        market.balance(&market.market),
        owed_escrow(market),
        "escrow backed"
    );
    prop_assert_eq!(
        market.balance(&market.staking),
        owed_stake(market),
        "stake backed"
    );
    Ok(())
}

/// Lets every jailed node serve again, so later rounds still find candidates.
fn unjail_everyone(market: &mut Market) {
    market.advance(JAIL_BLOCKS);
    for node in market.nodes.clone() {
        if market.node(&node).jailed {
            market
                .app
                .execute_contract(
                    node,
                    market.staking.clone(),
                    &staking::ExecuteMsg::Unjail {},
                    &[],
                )
                .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn unes_are_conserved_and_no_node_is_paid_twice(rounds in proptest::collection::vec(round(), 1..5)) {
        let mut market = Market::with(NODES, devnet_params());
        let total = market.total_unes();
        let user = market.user();
        for round in rounds {
            let escrow = Market::required_escrow(
                u128::from(round.input_tokens),
                u128::from(round.max_output_tokens),
                u128::from(round.k),
            ) + round.extra_escrow;
            let input: Vec<u32> = (0..round.input_tokens).collect();
            let id = match market.submit(&user, &input, round.max_output_tokens, Some(round.k), escrow) {
                Ok(id) => id,
                Err(ContractError::NotEnoughCandidates { .. }) => continue,
                Err(e) => return Err(TestCaseError::fail(format!("submit: {e}"))),
            };
            check_backing(&market, total)?;

            let nodes = market.assigned(id);
            if let Some((index, percent)) = round.unbond {
                let bonded = market.node(&nodes[index]).bonded.u128();
                let amount = bonded * u128::from(percent) / 100;
                if amount > 0 {
                    market
                        .app
                        .execute_contract(
                            nodes[index].clone(),
                            market.staking.clone(),
                            &staking::ExecuteMsg::Unbond { amount: Uint128::new(amount) },
                            &[],
                        )
                        .unwrap();
                }
            }

            let response = market.play(id, &round.behaviours);
            check_backing(&market, total)?;

            // Each node receives at most one transfer from the market for this query.
            let mut transfers: BTreeMap<String, usize> = BTreeMap::new();
            for event in response.events.iter().filter(|e| e.ty == "transfer") {
                let get = |key: &str| event.attributes.iter().find(|a| a.key == key).map(|a| a.value.clone());
                if get("sender").as_deref() == Some(market.market.as_str()) {
                    *transfers.entry(get("recipient").unwrap()).or_default() += 1;
                }
            }
            for node in &nodes {
                prop_assert!(transfers.get(node.as_str()).copied().unwrap_or(0) <= 1);
            }

            // The settlement adds up to the escrow, to the unes.
            let query = market.query(id);
            let settlement = query.query.settlement.clone().unwrap();
            prop_assert_eq!(settlement.paid + settlement.refunded, Uint128::new(escrow));
            let node_shares: Uint128 = query
                .assignments
                .iter()
                .filter_map(|a| match a.outcome {
                    Some(NodeOutcome::Paid { amount }) => Some(amount),
                    _ => None,
                })
                .sum();
            prop_assert_eq!(node_shares + settlement.protocol_fee + settlement.royalty, settlement.paid);
            let mut winners = settlement.winners.clone();
            winners.sort();
            winners.dedup();
            prop_assert_eq!(winners.len(), settlement.winners.len(), "winners are distinct");
            let paid = query.assignments.iter().filter(|a| matches!(a.outcome, Some(NodeOutcome::Paid { .. }))).count();
            prop_assert_eq!(paid, settlement.winners.len());
            if query.query.status == QueryStatus::Settled {
                prop_assert!(settlement.winners.len() >= usize::from(query.query.quorum));
            } else {
                prop_assert!(settlement.winners.is_empty());
                prop_assert_eq!(settlement.refunded, Uint128::new(escrow));
            }

            // A second settlement is refused and moves nothing.
            let before = market.total_unes();
            prop_assert!(
                matches!(market.settle(id), Err(ContractError::AlreadySettled { .. })),
                "second settle must be rejected"
            );
            prop_assert_eq!(market.total_unes(), before);

            unjail_everyone(&mut market);
        }
        check_backing(&market, total)?;
    }
}

//! The query lifecycle across the three contracts: honest rounds, every kind of fault, the
//! deadlines, disputes, unbonding and jail.

mod support;

use cosmwasm_std::{Addr, Decimal, Uint128};
use cw_multi_test::Executor;
use nesa_inference_market::msg::{
    NodeOutcome, QueriesResponse, QueryMsg, QueryPhase, QueryStatus, QuoteResponse, SlashReason,
};
use nesa_inference_market::ContractError;
use nesa_market::devnet::{JAIL_BLOCKS, UNBONDING_BLOCKS};
use nesa_market::staking;

use support::Behaviour::{Copier, Diverged, Honest, Lazy, Silent, Vanishes};
use support::*;

const INPUT: [u32; 4] = [1, 4093, 198, 19556];

/// A 3-node query on a fresh chain with 4 input tokens and up to 16 output tokens, paying 400.
fn three_node_query(market: &mut Market) -> u64 {
    let user = market.user();
    market.submit(&user, &INPUT, 16, Some(3), 400).unwrap()
}

fn outcome(market: &Market, id: u64, node: &Addr) -> Option<NodeOutcome> {
    market.outcome(id, node)
}

fn slashed(reason: SlashReason, percent: u64) -> Option<NodeOutcome> {
    Some(NodeOutcome::Slashed {
        reason,
        fraction: Decimal::percent(percent),
    })
}

#[test]
fn an_honest_round_pays_every_node_and_refunds_the_rest_exactly() {
    let mut market = Market::new();
    let user = market.user();
    let total = market.total_unes();
    let user_before = market.balance(&user);
    let id = three_node_query(&mut market);
    assert_eq!(market.balance(&market.market), 400);

    let nodes = market.assigned(id);
    let before: Vec<u128> = nodes.iter().map(|n| market.balance(n)).collect();
    let response = market.play(id, &[Honest, Honest, Honest]);

    // 8 output tokens: pay = 4 × 3 + 8 × 7 = 68 per node; fee 10% = 6 (6.8 down),
    // royalty 5% = 3 (3.4 down), node 59. Refund = 400 - 3 × 68 = 196.
    for (node, before) in nodes.iter().zip(before) {
        assert_eq!(market.balance(node), before + 59);
        assert_eq!(
            outcome(&market, id, node),
            Some(NodeOutcome::Paid {
                amount: Uint128::new(59)
            })
        );
    }
    assert_eq!(market.balance(&market.treasury), 18);
    assert_eq!(market.balance(&market.kernel_owner), 9);
    assert_eq!(market.balance(&user), user_before - 400 + 196);
    assert_eq!(
        3 * 59 + 18 + 9 + 196,
        400,
        "every unes of the escrow is accounted for"
    );
    assert_eq!(market.balance(&market.market), 0);
    assert_eq!(market.total_unes(), total);

    assert_eq!(
        attribute(&response, "wasm-query_settled", "status"),
        "settled"
    );
    assert_eq!(attribute(&response, "wasm-query_settled", "paid"), "204");
    assert_eq!(
        attribute(&response, "wasm-query_settled", "refunded"),
        "196"
    );
    assert!(events(&response, "wasm-node_slashed").is_empty());
    let query = market.query(id);
    assert_eq!(query.query.status, QueryStatus::Settled);
    assert_eq!(query.phase, QueryPhase::Closed);
    let settlement = query.query.settlement.unwrap();
    assert_eq!(settlement.output_tokens, 8);
    assert_eq!(settlement.winners.len(), 3);
    assert_eq!(
        nesa_market::decode_token_ids(&settlement.output.unwrap()).unwrap(),
        market.honest_output(id)
    );
}

#[test]
fn submission_opens_a_draw_and_the_draw_emits_the_assignment_node_runners_watch_for() {
    let mut market = Market::new();
    let user = market.user();
    let response = market
        .execute(&user, &Market::submit_msg(&INPUT, 16, Some(3)), 400)
        .unwrap();
    let submitted = market.height();
    let params = devnet_params();
    assert_eq!(
        attribute(&response, "wasm-query_submitted", "escrow"),
        "400"
    );
    assert_eq!(
        attribute(&response, "wasm-query_submitted", "draw_deadline"),
        (submitted + params.draw_blocks).to_string()
    );
    let state = market.query(1);
    assert_eq!(
        attribute(&response, "wasm-query_submitted", "draw_input"),
        state.query.draw_input.to_hex()
    );
    assert!(events(&response, "wasm-query_assigned").is_empty());
    assert_eq!(state.phase, QueryPhase::Draw);
    assert!(state.query.nodes.is_empty());

    for node in market.nodes.clone() {
        let entered = market.enter(&node, 1).unwrap();
        assert_eq!(
            attribute(&entered, "wasm-ticket_submitted", "node"),
            node.as_str()
        );
    }
    assert_eq!(market.query(1).tickets.len(), 5);
    let response = market.draw(1).unwrap();
    let height = market.height();
    let nodes = attribute(&response, "wasm-query_assigned", "nodes");
    let nodes: Vec<&str> = nodes.split(',').collect();
    assert_eq!(nodes.len(), 3);
    let mut unique = nodes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "assigned nodes are distinct");
    assert_eq!(
        attribute(&response, "wasm-query_assigned", "commit_deadline"),
        (height + params.commit_blocks).to_string()
    );
    assert_eq!(
        attribute(&response, "wasm-query_assigned", "reveal_deadline"),
        (height + params.commit_blocks + params.reveal_blocks).to_string()
    );
    let seed = attribute(&response, "wasm-query_assigned", "seed");
    let state = market.query(1);
    assert_eq!(seed, state.query.seed.to_hex());
    assert_eq!(state.phase, QueryPhase::Commit);
    assert!(state.tickets.is_empty(), "tickets are cleared at the draw");
}

#[test]
fn a_copier_revealing_another_nodes_output_does_not_match_its_commitment_and_is_slashed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let treasury_before = market.balance(&market.treasury);
    let response = market.play(id, &[Honest, Honest, Copier]);

    let copier = &nodes[2];
    let reveal = market.query(id).assignments[2].reveal.clone().unwrap();
    assert!(
        !reveal.matches_commitment,
        "its own address is bound into the commitment"
    );
    assert_eq!(
        outcome(&market, id, copier),
        slashed(SlashReason::BadReveal, 30)
    );
    let slash = events(&response, "wasm-node_slashed");
    assert_eq!(slash.len(), 1);
    assert!(slash[0]
        .attributes
        .iter()
        .any(|a| a.key == "reason" && a.value == "bad_reveal"));
    // 30% of its 10 NES stake went to the treasury (plus the protocol fee of two payments).
    let node = market.node(copier);
    assert_eq!(node.bonded, Uint128::new(NODE_STAKE * 7 / 10));
    assert!(node.jailed);
    assert_eq!(
        market.balance(&market.treasury),
        treasury_before + NODE_STAKE * 3 / 10 + 2 * 6
    );
    // The two honest nodes are a strict majority of 3 and are paid.
    assert_eq!(
        market.query(id).query.settlement.unwrap().winners,
        vec![nodes[0].clone(), nodes[1].clone()]
    );
}

#[test]
fn a_copier_using_the_victims_salt_still_cannot_open_its_own_commitment() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    let victim = nodes[0].clone();
    let copier = nodes[1].clone();
    market.commit(&victim, id, &honest).unwrap();
    // The copier posts the victim's exact commitment.
    let copied = market.query(id).assignments[0].commitment.clone().unwrap();
    market.commit_raw(&copier, id, copied.as_slice()).unwrap();
    market.commit(&nodes[2], id, &honest).unwrap();
    market.reveal_honest(&victim, id).unwrap();
    // …and reveals the victim's output *and salt*.
    let msg = nesa_inference_market::msg::ExecuteMsg::Reveal {
        query_id: id,
        output: nesa_market::encode_token_ids(&honest).into(),
        fingerprint: market.model_fingerprint(id, honest.len() as u32, 0),
        salt: Market::salt(&victim, id).into(),
        activations: None,
    };
    market.execute(&copier, &msg, 0).unwrap();
    assert!(
        !market.query(id).assignments[1]
            .reveal
            .clone()
            .unwrap()
            .matches_commitment
    );
    market.reveal_honest(&nodes[2], id).unwrap();
    market.settle(id).unwrap();
    assert_eq!(
        outcome(&market, id, &copier),
        slashed(SlashReason::BadReveal, 30)
    );
}

#[test]
fn a_node_revealing_its_own_output_with_another_nodes_fingerprint_does_not_match_its_commitment() {
    // Without a majority output settlement compares fingerprints, so a node that never ran the
    // model must not get into the winning cluster by borrowing a fingerprint revealed before
    // its own reveal: the fingerprint is part of what it committed to.
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    let tokens = honest.len() as u32;
    let mut diverged = honest.clone();
    *diverged.last_mut().unwrap() += 1;
    let mut own: Vec<u32> = honest.clone();
    own[0] += 7;
    // Before reveals open the lazy node cannot know the model's fingerprint: it commits to
    // its own output with one it made up.
    let seed = market.seed(id);
    let made_up = fingerprint(&seed, tokens, 16, 5_000, 0);
    let near = market.model_fingerprint(id, tokens, 2);
    market.commit(&nodes[0], id, &honest).unwrap();
    market
        .commit_result(&nodes[1], id, &diverged, &near)
        .unwrap();
    market.commit_result(&nodes[2], id, &own, &made_up).unwrap();
    market.reveal_honest(&nodes[0], id).unwrap();
    market.reveal(&nodes[1], id, &diverged, near).unwrap();

    // It reads node 0's revealed fingerprint and reveals it with its own output and salt.
    let borrowed = market.query(id).assignments[0]
        .reveal
        .clone()
        .unwrap()
        .fingerprint;
    let response = market.reveal(&nodes[2], id, &own, borrowed).unwrap();
    assert_eq!(
        attribute(&response, "wasm-result_revealed", "matches_commitment"),
        "false"
    );
    assert!(
        !market.query(id).assignments[2]
            .reveal
            .clone()
            .unwrap()
            .matches_commitment
    );

    // Three different outputs: the two model runs agree by fingerprint and are paid; the
    // borrower is slashed for a bad reveal, not paid as a third agreeing replica.
    let response = market.settle(id).unwrap();
    let settlement = market.query(id).query.settlement.unwrap();
    assert_eq!(settlement.winners, vec![nodes[0].clone(), nodes[1].clone()]);
    assert_eq!(
        outcome(&market, id, &nodes[2]),
        slashed(SlashReason::BadReveal, 30)
    );
    assert_eq!(
        attribute(&response, "wasm-node_slashed", "reason"),
        "bad_reveal"
    );
    assert_eq!(
        market.node(&nodes[2]).bonded,
        Uint128::new(NODE_STAKE * 7 / 10)
    );
}

#[test]
fn a_lazy_node_with_a_made_up_output_is_an_outlier_and_is_slashed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let response = market.play(id, &[Honest, Lazy, Honest]);
    assert!(
        market.query(id).assignments[1]
            .reveal
            .clone()
            .unwrap()
            .matches_commitment
    );
    assert_eq!(
        outcome(&market, id, &nodes[1]),
        slashed(SlashReason::Outlier, 5)
    );
    assert_eq!(
        market.node(&nodes[1]).bonded,
        Uint128::new(NODE_STAKE * 95 / 100)
    );
    assert_eq!(
        attribute(&response, "wasm-node_slashed", "reason"),
        "outlier"
    );
    assert_eq!(
        attribute(&response, "wasm-query_settled", "status"),
        "settled"
    );
}

#[test]
fn a_node_that_never_commits_is_slashed_and_jailed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    market.play(id, &[Silent, Honest, Honest]);
    assert_eq!(
        outcome(&market, id, &nodes[0]),
        slashed(SlashReason::NoCommit, 20)
    );
    let node = market.node(&nodes[0]);
    assert_eq!(node.bonded, Uint128::new(NODE_STAKE * 8 / 10));
    assert!(node.jailed);
    assert_eq!(node.jailed_until, Some(market.height() + JAIL_BLOCKS));
    assert_eq!(market.query(id).query.status, QueryStatus::Settled);
}

#[test]
fn a_node_that_commits_but_never_reveals_is_slashed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    market.play(id, &[Honest, Vanishes, Honest]);
    assert_eq!(
        outcome(&market, id, &nodes[1]),
        slashed(SlashReason::NoReveal, 20)
    );
    assert_eq!(
        market.node(&nodes[1]).bonded,
        Uint128::new(NODE_STAKE * 8 / 10)
    );
}

#[test]
fn a_reveal_after_the_deadline_is_rejected() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    for node in &nodes {
        market.commit(node, id, &honest).unwrap();
    }
    let deadline = market.query(id).query.reveal_deadline;
    market.advance_to(deadline);
    market.reveal_honest(&nodes[0], id).unwrap();
    market.advance(1);
    assert_eq!(
        market.reveal_honest(&nodes[1], id).unwrap_err(),
        ContractError::RevealClosed {
            query_id: id,
            reveal_deadline: deadline
        }
    );
}

#[test]
fn a_commit_after_the_deadline_is_rejected() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    let deadline = market.query(id).query.commit_deadline;
    market.advance_to(deadline);
    market.commit(&nodes[0], id, &honest).unwrap();
    market.advance(1);
    assert_eq!(
        market.commit(&nodes[1], id, &honest).unwrap_err(),
        ContractError::CommitClosed {
            query_id: id,
            commit_deadline: deadline
        }
    );
}

#[test]
fn a_reveal_before_commits_close_is_rejected() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    market.commit(&nodes[0], id, &honest).unwrap();
    market.commit(&nodes[1], id, &honest).unwrap();
    let deadline = market.query(id).query.commit_deadline;
    assert_eq!(
        market.reveal_honest(&nodes[0], id).unwrap_err(),
        ContractError::RevealNotOpen {
            query_id: id,
            committed: 2,
            assigned: 3,
            commit_deadline: deadline
        }
    );
    // The last commit opens reveals at once, before the deadline.
    market.commit(&nodes[2], id, &honest).unwrap();
    assert_eq!(market.query(id).phase, QueryPhase::Reveal);
    market.reveal_honest(&nodes[0], id).unwrap();
}

#[test]
fn without_quorum_the_user_is_refunded_in_full_and_honest_nodes_are_not_slashed() {
    let mut market = Market::new();
    let user = market.user();
    let user_before = market.balance(&user);
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let response = market.play(id, &[Honest, Silent, Vanishes]);

    assert_eq!(
        market.balance(&user),
        user_before,
        "the whole escrow came back"
    );
    assert_eq!(
        attribute(&response, "wasm-query_settled", "status"),
        "disputed"
    );
    assert_eq!(
        attribute(&response, "wasm-query_settled", "refunded"),
        "400"
    );
    let query = market.query(id);
    assert_eq!(query.query.status, QueryStatus::Disputed);
    assert_eq!(
        outcome(&market, id, &nodes[0]),
        Some(NodeOutcome::Unpaid {})
    );
    let honest = market.node(&nodes[0]);
    assert_eq!(honest.bonded, Uint128::new(NODE_STAKE));
    assert!(!honest.jailed);
    // The faulty are still slashed.
    assert_eq!(
        outcome(&market, id, &nodes[1]),
        slashed(SlashReason::NoCommit, 20)
    );
    assert_eq!(
        outcome(&market, id, &nodes[2]),
        slashed(SlashReason::NoReveal, 20)
    );
}

#[test]
fn disagreeing_valid_results_without_a_majority_are_disputed_and_nobody_is_an_outlier() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let response = market.play(id, &[Honest, Lazy, Silent]);
    assert_eq!(
        attribute(&response, "wasm-query_settled", "status"),
        "disputed"
    );
    assert_eq!(
        outcome(&market, id, &nodes[0]),
        Some(NodeOutcome::Unpaid {})
    );
    assert_eq!(
        outcome(&market, id, &nodes[1]),
        Some(NodeOutcome::Unpaid {})
    );
    assert_eq!(events(&response, "wasm-node_slashed").len(), 1);
}

#[test]
fn diverged_replicas_agreeing_by_fingerprint_are_paid_for_the_common_output() {
    let mut market = Market::new();
    let user = market.user();
    let id = market.submit(&user, &INPUT, 16, Some(4), 600).unwrap();
    let nodes = market.assigned(id);
    // 2 identical of 4 is no strict majority; the fingerprints of all three model runs agree
    // within the tolerance; the lazy node's do not.
    let response = market.play(id, &[Honest, Diverged, Honest, Lazy]);
    let settlement = market.query(id).query.settlement.unwrap();
    assert_eq!(
        settlement.winners,
        vec![nodes[0].clone(), nodes[1].clone(), nodes[2].clone()]
    );
    assert_eq!(
        nesa_market::decode_token_ids(&settlement.output.unwrap()).unwrap(),
        market.honest_output(id),
        "the output held by most winners"
    );
    assert_eq!(
        outcome(&market, id, &nodes[3]),
        slashed(SlashReason::Outlier, 5)
    );
    assert_eq!(
        attribute(&response, "wasm-query_settled", "paid"),
        (3 * 68).to_string()
    );
}

#[test]
fn settling_twice_is_rejected_and_nobody_is_paid_twice() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    market.play(id, &[Honest, Honest, Honest]);
    let balances: Vec<u128> = market
        .accounts()
        .iter()
        .map(|a| market.balance(a))
        .collect();
    assert_eq!(
        market.settle(id).unwrap_err(),
        ContractError::AlreadySettled {
            id,
            status: QueryStatus::Settled
        }
    );
    let node = market.assigned(id)[0].clone();
    assert_eq!(
        market.reveal_honest(&node, id).unwrap_err(),
        ContractError::QueryClosed {
            id,
            status: QueryStatus::Settled
        }
    );
    let after: Vec<u128> = market
        .accounts()
        .iter()
        .map(|a| market.balance(a))
        .collect();
    assert_eq!(balances, after);
}

#[test]
fn settlement_waits_for_the_deadline_unless_everyone_revealed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    for node in &nodes {
        market.commit(node, id, &honest).unwrap();
    }
    market.reveal_honest(&nodes[0], id).unwrap();
    market.reveal_honest(&nodes[1], id).unwrap();
    let reveal_deadline = market.query(id).query.reveal_deadline;
    assert_eq!(
        market.settle(id).unwrap_err(),
        ContractError::SettleTooEarly {
            id,
            reveal_deadline
        }
    );
    market.reveal_honest(&nodes[2], id).unwrap();
    assert_eq!(market.query(id).phase, QueryPhase::Settleable);
    market.settle(id).unwrap();
}

#[test]
fn settlement_opens_once_commits_closed_and_every_committer_revealed() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    market.commit(&nodes[0], id, &honest).unwrap();
    market.commit(&nodes[1], id, &honest).unwrap();
    let commit_deadline = market.query(id).query.commit_deadline;
    market.advance_to(commit_deadline + 1);
    market.reveal_honest(&nodes[0], id).unwrap();
    market.reveal_honest(&nodes[1], id).unwrap();
    assert!(market.height() < market.query(id).query.reveal_deadline);
    market.settle(id).unwrap();
    assert_eq!(
        outcome(&market, id, &nodes[2]),
        slashed(SlashReason::NoCommit, 20)
    );
}

#[test]
fn only_assigned_nodes_commit_and_only_once() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    let outsider = market
        .nodes
        .iter()
        .find(|n| !nodes.contains(n))
        .unwrap()
        .clone();
    assert_eq!(
        market.commit(&outsider, id, &honest).unwrap_err(),
        ContractError::NotAssigned {
            query_id: id,
            node: outsider.clone()
        }
    );
    market.commit(&nodes[0], id, &honest).unwrap();
    assert_eq!(
        market.commit(&nodes[0], id, &honest).unwrap_err(),
        ContractError::AlreadyCommitted {
            query_id: id,
            node: nodes[0].clone()
        }
    );
    assert_eq!(
        market.commit_raw(&nodes[1], id, &[1; 31]).unwrap_err(),
        ContractError::InvalidCommitment { len: 31 }
    );
    assert_eq!(
        market.commit(&nodes[0], 99, &honest).unwrap_err(),
        ContractError::QueryNotFound { id: 99 }
    );
}

#[test]
fn a_reveal_must_carry_a_proper_salt_and_the_seeded_fingerprint_positions() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let honest = market.honest_output(id);
    for node in &nodes {
        market.commit(node, id, &honest).unwrap();
    }
    let node = nodes[0].clone();
    let wrong_positions = fingerprint(&[0; 32], honest.len() as u32, 16, 0, 0);
    // 8 tokens, 16 positions wanted: every position 0..8, whatever the seed.
    market.reveal(&node, id, &honest, wrong_positions).unwrap();
    let node = nodes[1].clone();
    let seed = market.seed(id);
    let three = fingerprint(&seed, honest.len() as u32, 3, 0, 0);
    assert!(matches!(
        market.reveal(&node, id, &honest, three).unwrap_err(),
        ContractError::FingerprintPositions { .. }
    ));
    assert!(matches!(
        market
            .reveal(&node, id, &honest, vec![9].into())
            .unwrap_err(),
        ContractError::Fingerprint(_)
    ));
    let msg = nesa_inference_market::msg::ExecuteMsg::Reveal {
        query_id: id,
        output: nesa_market::encode_token_ids(&honest).into(),
        fingerprint: market.model_fingerprint(id, honest.len() as u32, 0),
        salt: vec![1; 8].into(),
        activations: None,
    };
    assert_eq!(
        market.execute(&node, &msg, 0).unwrap_err(),
        ContractError::InvalidSalt { len: 8 }
    );
    let too_long: Vec<u32> = (0..17).collect();
    assert_eq!(
        market
            .reveal(&node, id, &too_long, market.model_fingerprint(id, 17, 0))
            .unwrap_err(),
        ContractError::OutputTooLong {
            tokens: 17,
            max: 16
        }
    );
}

#[test]
fn a_long_output_fingerprint_fits_in_256_bytes_and_is_accepted() {
    let mut market = Market::new();
    let user = market.user();
    let id = market.submit(&user, &INPUT, 64, Some(2), 10_000).unwrap();
    let nodes = market.assigned(id);
    let output: Vec<u32> = (0..32).collect();
    for node in &nodes {
        market.commit(node, id, &output).unwrap();
    }
    let fingerprint = market.model_fingerprint(id, 32, 0);
    assert!(fingerprint.len() <= 256, "{} bytes", fingerprint.len());
    for node in &nodes {
        market
            .reveal(node, id, &output, fingerprint.clone())
            .unwrap();
    }
    market.settle(id).unwrap();
    assert_eq!(market.query(id).query.settlement.unwrap().output_tokens, 32);
}

#[test]
fn a_node_unbonding_while_assigned_is_still_slashed_for_that_query() {
    let mut market = Market::new();
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    let leaver = nodes[0].clone();
    market
        .app
        .execute_contract(
            leaver.clone(),
            market.staking.clone(),
            &staking::ExecuteMsg::Unbond {
                amount: Uint128::new(NODE_STAKE),
            },
            &[],
        )
        .unwrap();
    assert!(market.node(&leaver).bonded.is_zero());
    market.play(id, &[Silent, Honest, Honest]);
    let node = market.node(&leaver);
    assert_eq!(node.unbonding.len(), 1);
    assert_eq!(node.unbonding[0].amount, Uint128::new(NODE_STAKE * 8 / 10));
    assert_eq!(node.slashed, Uint128::new(NODE_STAKE * 2 / 10));
    // What is left is all it can claim.
    market.advance(UNBONDING_BLOCKS);
    let before = market.balance(&leaver);
    market
        .app
        .execute_contract(
            leaver.clone(),
            market.staking.clone(),
            &staking::ExecuteMsg::Claim {},
            &[],
        )
        .unwrap();
    assert_eq!(market.balance(&leaver), before + NODE_STAKE * 8 / 10);
}

#[test]
fn jailed_nodes_are_never_assigned() {
    let mut market = Market::with(4, devnet_params());
    let id = three_node_query(&mut market);
    let nodes = market.assigned(id);
    market.play(id, &[Silent, Honest, Honest]);
    let jailed = nodes[0].clone();
    assert!(market.node(&jailed).jailed);
    let user = market.user();
    // Only 3 eligible nodes remain: every 3-node query gets exactly them.
    for _ in 0..5 {
        let id = market.submit(&user, &INPUT, 16, Some(3), 400).unwrap();
        assert!(!market.assigned(id).contains(&jailed));
    }
    assert_eq!(
        market.submit(&user, &INPUT, 16, Some(4), 600).unwrap_err(),
        ContractError::NotEnoughCandidates {
            kernel_id: 1,
            available: 3,
            required: 4
        }
    );
    // After the jail time the node unjails itself and is eligible again.
    market.advance(JAIL_BLOCKS);
    market
        .app
        .execute_contract(
            jailed.clone(),
            market.staking.clone(),
            &staking::ExecuteMsg::Unjail {},
            &[],
        )
        .unwrap();
    let id = market.submit(&user, &INPUT, 16, Some(4), 600).unwrap();
    assert!(market.assigned(id).contains(&jailed));
}

#[test]
fn nobody_but_the_market_may_slash_through_staking() {
    let mut market = Market::new();
    let user = market.user();
    let victim = market.nodes[0].clone();
    let err = market
        .app
        .execute_contract(
            user,
            market.staking.clone(),
            &staking::ExecuteMsg::Slash {
                node: victim.to_string(),
                fraction: Decimal::one(),
                jail: true,
                reason: "grudge".into(),
                query_id: 1,
            },
            &[],
        )
        .unwrap_err();
    assert!(matches!(
        err.downcast::<nesa_node_staking::ContractError>().unwrap(),
        nesa_node_staking::ContractError::NotMarket { .. }
    ));
    assert_eq!(market.node(&victim).bonded, Uint128::new(NODE_STAKE));
}

#[test]
fn a_matching_reveal_moves_the_running_seed() {
    let mut market = Market::new();
    let seed = |market: &Market| {
        let config: nesa_market::market::ConfigResponse = market
            .app
            .wrap()
            .query_wasm_smart(&market.market, &QueryMsg::Config {})
            .unwrap();
        config.running_seed
    };
    let initial = seed(&market);
    let id = three_node_query(&mut market);
    assert_eq!(seed(&market), initial, "submitting does not change it");
    market.play(id, &[Honest, Honest, Honest]);
    assert_ne!(seed(&market), initial);
}

#[test]
fn queries_are_listed_by_user_node_and_status() {
    let mut market = Market::new();
    let alice = market.user();
    let bob = market.addr("bob");
    let first = three_node_query(&mut market);
    let second = market.submit(&bob, &INPUT, 16, Some(3), 400).unwrap();
    market.play(first, &[Honest, Honest, Honest]);
    let list = |market: &Market, msg: QueryMsg| -> Vec<u64> {
        let response: QueriesResponse = market
            .app
            .wrap()
            .query_wasm_smart(&market.market, &msg)
            .unwrap();
        response.queries.iter().map(|q| q.id).collect()
    };
    let by_user = |user: &Addr| QueryMsg::QueriesByUser {
        user: user.to_string(),
        start_after: None,
        limit: None,
    };
    assert_eq!(list(&market, by_user(&alice)), vec![first]);
    assert_eq!(list(&market, by_user(&bob)), vec![second]);
    let by_status = |status| QueryMsg::QueriesByStatus {
        status,
        start_after: None,
        limit: None,
    };
    assert_eq!(list(&market, by_status(QueryStatus::Settled)), vec![first]);
    assert_eq!(list(&market, by_status(QueryStatus::Pending)), vec![second]);
    assert!(list(&market, by_status(QueryStatus::Revealing)).is_empty());
    let node = market.assigned(second)[0].clone();
    let by_node = list(
        &market,
        QueryMsg::QueriesByNode {
            node: node.to_string(),
            start_after: None,
            limit: None,
        },
    );
    assert!(by_node.contains(&second));
}

#[test]
fn the_quote_is_the_escrow_submission_requires() {
    let mut market = Market::new();
    let quote: QuoteResponse = market
        .app
        .wrap()
        .query_wasm_smart(
            &market.market,
            &QueryMsg::Quote {
                kernel_id: 1,
                input_tokens: 4,
                max_output_tokens: 16,
                redundancy: None,
            },
        )
        .unwrap();
    assert_eq!(quote.redundancy, 3);
    assert_eq!(quote.per_node, Uint128::new(4 * PRICE_IN + 16 * PRICE_OUT));
    assert_eq!(
        quote.escrow.amount.u128(),
        Market::required_escrow(4, 16, 3)
    );
    let user = market.user();
    let exact = quote.escrow.amount.u128();
    assert_eq!(
        market
            .submit(&user, &INPUT, 16, None, exact - 1)
            .unwrap_err(),
        ContractError::InsufficientEscrow {
            sent: Uint128::new(exact - 1),
            required: Uint128::new(exact)
        }
    );
    market.submit(&user, &INPUT, 16, None, exact).unwrap();
}

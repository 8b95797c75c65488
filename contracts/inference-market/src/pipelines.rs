//! Settling a sharded query: pipelines are judged by their drivers' outputs, seats by their
//! activation records, and pay follows the layers each seat served.
//!
//! A sharded query has `k` pipelines of one seat per range of the kernel's shard layout. The
//! drivers (span 0: embedding, its blocks, the head) reveal the pipelines' outputs, and
//! consensus runs over them exactly as over whole-model nodes. Every seat also revealed an
//! [`ActivationRecord`]; a record counts only when it opens the seat's commitment and has the
//! length its pipeline's output implies.
//!
//! - A winning pipeline: every seat with a valid record is paid its share; a seat that
//!   committed but did not reveal, or revealed invalidly, is slashed for that. A seat past the
//!   driver that never committed (a shard that died, or that the driver routed around) is
//!   not paid and not slashed: it never vouched for anything.
//! - An outvoted pipeline, compared with a winning pipeline whose every record is valid: the
//!   first seat whose record diverges on the positions both pipelines fed the same tokens
//!   ([`first_divergent_shard`]) is slashed as `divergent` (the driver when only the head
//!   diverged); every other seat with a valid record did honest work on what it was given and
//!   is paid its share. When a seat's input digest is not the previous seat's outputs, the
//!   driver relayed other rows or the seat misstates them: the chain cannot tell which, so
//!   the driver, that seat and every seat after it go unpaid and nobody is slashed for it.
//!   When the search reaches a seat past the driver that never committed, nothing after it
//!   can be judged: the driver, which revealed the outvoted output, is slashed as an outlier
//!   and the seats after it go unpaid.
//! - An outvoted pipeline whose driver revealed nothing valid: the driver is slashed for it;
//!   another seat is paid when its record equals the reference's for its span (it computed
//!   the right thing), otherwise it is neither paid nor blamed.
//! - No quorum: nobody is paid; only missing or invalid commits and reveals are slashed.
//! - A pipeline whose driver never committed: its other seats had nothing to work on, so
//!   their own missing commitments are not held against them (neither paid nor slashed).
//!
//! A pipeline's pay is split by layers: seat `s` gets `pay × layers(s) / layers` rounded down,
//! and the rounding remainder stays with the user's refund.

use cosmwasm_std::Uint128;
use nesa_market::activations::decode_leaves_allowed;
use nesa_market::market::{Assignment, InferenceQuery, SlashReason};
use nesa_market::{decode_token_ids, first_divergent_shard, Divergence, SeatRecord};

use crate::error::ContractError;
use crate::settle::{consensus, fault, pipeline_pay, Decision, Plan, Winners};

pub fn plan(query: &InferenceQuery, assignments: &[Assignment]) -> Result<Plan, ContractError> {
    let spans = query.shards.len();
    let pipelines = assignments.len() / spans;
    let seat = |pipeline: usize, span: usize| pipeline * spans + span;
    let drivers: Vec<usize> = (0..pipelines).map(|p| seat(p, 0)).collect();
    let verdict = consensus(query, assignments, &drivers)?;
    let quorum = verdict.is_some();
    let (winners, output) = Winners::split(verdict);
    let winning = |pipeline: usize| winners.contains(&seat(pipeline, 0));

    // Each pipeline's output (from a driver whose reveal opened its commitment) and each
    // seat's record, when it is valid for that output.
    let outputs: Vec<Option<Vec<u32>>> = (0..pipelines)
        .map(|p| driver_output(&assignments[seat(p, 0)]))
        .collect();
    let records: Vec<Vec<Option<SeatRecord>>> = (0..pipelines)
        .map(|p| {
            (0..spans)
                .map(|s| valid_record(query, &assignments[seat(p, s)], s, outputs[p].as_deref()))
                .collect()
        })
        .collect();

    let pay = match output {
        Some(index) => pipeline_pay(query, reveal_tokens(&assignments[index]))?,
        None => Uint128::zero(),
    };
    let shares = layer_shares(query, pay);
    // A winning pipeline whose every seat shows a valid record: what outvoted ones are
    // compared with.
    let reference = (0..pipelines)
        .find(|&p| winning(p) && records[p].iter().all(Option::is_some))
        .map(|p| {
            let records: Vec<SeatRecord> = records[p].iter().flatten().cloned().collect();
            (outputs[p].clone().unwrap_or_default(), records)
        });

    let mut decisions = vec![Decision::Unpaid; assignments.len()];
    for p in 0..pipelines {
        // Seats judged by their own commit and reveal (a record that does not fit its
        // pipeline's output is an invalid reveal).
        // A seat past the driver works only when the driver sends it rows (to it, not to a
        // spare): its missing commitment is not held against it.
        let own: Vec<Option<SlashReason>> = (0..spans)
            .map(|s| {
                let assignment = &assignments[seat(p, s)];
                if s > 0 && assignment.commitment.is_none() {
                    return None;
                }
                fault(assignment, false).or_else(|| {
                    (outputs[p].is_some() && records[p][s].is_none())
                        .then_some(SlashReason::BadReveal)
                })
            })
            .collect();
        for s in 0..spans {
            let uncommitted = assignments[seat(p, s)].commitment.is_none();
            decisions[seat(p, s)] = match own[s] {
                Some(reason) => Decision::Slash(reason),
                None if !quorum || uncommitted => Decision::Unpaid,
                None => Decision::Pay(shares[s]),
            };
        }
        if !quorum || winning(p) {
            continue;
        }
        match (&outputs[p], &reference) {
            (Some(output), Some((reference_output, reference_records))) => {
                let divergence =
                    first_divergent_shard(&records[p], reference_records, output, reference_output);
                let (blamed, reason, unpaid) = match divergence {
                    Divergence::Shard(s)
                        if s > 0 && assignments[seat(p, s)].commitment.is_none() =>
                    {
                        (Some(0), SlashReason::Outlier, s..spans)
                    }
                    Divergence::Shard(s) => (Some(s), SlashReason::Divergent, 0..0),
                    Divergence::Head => (Some(0), SlashReason::Divergent, 0..0),
                    Divergence::Relay(s) => (None, SlashReason::Divergent, s..spans),
                };
                if let Divergence::Relay(_) = divergence {
                    unpay(&mut decisions[seat(p, 0)]);
                }
                for s in unpaid {
                    unpay(&mut decisions[seat(p, s)]);
                }
                if let Some(blamed) = blamed {
                    let decision = &mut decisions[seat(p, blamed)];
                    if !matches!(decision, Decision::Slash(_)) {
                        *decision = Decision::Slash(reason);
                    }
                }
            }
            // Nothing to compare with: the driver's output was outvoted.
            (Some(_), None) => {
                decisions[seat(p, 0)] = Decision::Slash(SlashReason::Outlier);
                for s in 1..spans {
                    unpay(&mut decisions[seat(p, s)]);
                }
            }
            // No output: a seat is paid only for a record equal to the reference's.
            (None, reference) => {
                for s in 1..spans {
                    let equal = match (reference, revealed_record(&assignments[seat(p, s)], s)) {
                        (Some((_, expected)), Some(record)) => expected[s] == record,
                        _ => false,
                    };
                    if !equal {
                        unpay(&mut decisions[seat(p, s)]);
                    }
                }
            }
        }
    }
    Ok(Plan {
        decisions,
        output,
        quorum,
    })
}

/// A seat that was to be paid is not (a slash stands).
fn unpay(decision: &mut Decision) {
    if let Decision::Pay(_) = decision {
        *decision = Decision::Unpaid;
    }
}

/// Each span's part of a pipeline's pay: `pay × layers(span) / layers`, rounded down.
pub fn layer_shares(query: &InferenceQuery, pay: Uint128) -> Vec<Uint128> {
    let layers = |s: &nesa_market::registry::ShardRange| u128::from(s.end_layer - s.start_layer);
    let total: u128 = query.shards.iter().map(layers).sum();
    query
        .shards
        .iter()
        .map(|s| pay.multiply_ratio(layers(s), total.max(1)))
        .collect()
}

fn reveal_tokens(assignment: &Assignment) -> u32 {
    assignment.reveal.as_ref().map_or(0, |r| r.output_tokens)
}

/// The output a driver revealed, when its reveal opened its commitment.
fn driver_output(driver: &Assignment) -> Option<Vec<u32>> {
    let reveal = driver.reveal.as_ref().filter(|r| r.matches_commitment)?;
    decode_token_ids(&reveal.output).ok()
}

/// The record of the seat at `span`, when its reveal opened its commitment.
fn revealed_record(assignment: &Assignment, span: usize) -> Option<SeatRecord> {
    let reveal = assignment
        .reveal
        .as_ref()
        .filter(|r| r.matches_commitment)?;
    SeatRecord::decode(reveal.activations.as_ref()?, span > 0).ok()
}

/// A seat's record when it is valid: revealed, opening the commitment, and as long as the
/// pipeline's output implies. Without the pipeline's output a record cannot be checked.
fn valid_record(
    query: &InferenceQuery,
    assignment: &Assignment,
    span: usize,
    output: Option<&[u32]>,
) -> Option<SeatRecord> {
    let record = revealed_record(assignment, span)?;
    let tokens = output?.len() as u32;
    decode_leaves_allowed(
        record.outputs.decode_leaves.len(),
        tokens,
        query.max_output_tokens,
    )
    .then_some(record)
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{Addr, Binary, Coin, HexBinary};
    use nesa_market::market::{QueryStatus, Sampling};
    use nesa_market::registry::ShardRange;

    use super::*;

    fn query(layout: &[(u32, u32)]) -> InferenceQuery {
        InferenceQuery {
            id: 1,
            user: Addr::unchecked("user"),
            kernel_id: 1,
            kernel_owner: Addr::unchecked("owner"),
            price_per_input_token: Uint128::one(),
            price_per_output_token: Uint128::one(),
            input: Binary::default(),
            input_tokens: 0,
            max_output_tokens: 8,
            sampling: Sampling::default(),
            redundancy: 1,
            quorum: 1,
            fingerprint_positions: 1,
            fingerprint_tolerance: 0,
            terms: None,
            nodes: vec![],
            shards: layout
                .iter()
                .map(|&(start_layer, end_layer)| ShardRange {
                    start_layer,
                    end_layer,
                    sha256: HexBinary::from(vec![0; 32]),
                })
                .collect(),
            escrow: Coin::new(0u128, "unes"),
            seed: HexBinary::default(),
            submitted_height: 1,
            draw_input: HexBinary::default(),
            draw_deadline: 1,
            tickets: 0,
            commit_deadline: 1,
            reveal_deadline: 1,
            status: QueryStatus::Revealing,
            commits: 0,
            reveals: 0,
            settlement: None,
        }
    }

    #[test]
    fn shares_follow_layers_and_never_exceed_the_pay() {
        let q = query(&[(0, 10), (10, 30)]);
        assert_eq!(
            layer_shares(&q, Uint128::new(300)),
            vec![Uint128::new(100), Uint128::new(200)]
        );
        let q = query(&[(0, 1), (1, 2), (2, 3)]);
        let shares = layer_shares(&q, Uint128::new(100));
        assert_eq!(shares, vec![Uint128::new(33); 3]);
        assert!(shares.iter().copied().sum::<Uint128>() <= Uint128::new(100));
    }
}

//! Sharded queries: pipelines drawn span by span, a dead shard not paid, a lying shard found
//! and slashed alone, pay split by layers with the escrow exact to the unes.

mod support;

use cosmwasm_std::{coins, Addr, Binary, HexBinary, Uint128};
use cw_multi_test::Executor;
use nesa_inference_market::msg::{ExecuteMsg, NodeOutcome, QueryStatus, Sampling, SlashReason};
use nesa_inference_market::ContractError;
use nesa_market::registry::{self, ShardRange};
use nesa_market::staking::{self, ServedKernel};
use nesa_market::{
    commitment, encode_token_ids, shard_result_hash, ActivationRecord, Hash32, SeatRecord,
};
use sha2::{Digest, Sha256};
use support::*;

/// 6 + 12 + 12 layers.
const LAYOUT: [(u32, u32); 3] = [(0, 6), (6, 18), (18, 30)];
const K: u8 = 3;
const INPUT: [u32; 4] = [11, 12, 13, 14];
const MAX_OUTPUT: u32 = 8;

struct Sharded {
    market: Market,
    kernel_id: u64,
    /// Nodes bonded per span.
    servers: Vec<Vec<Addr>>,
}

impl Sharded {
    fn new(per_span: usize) -> Self {
        let mut market = Market::with(0, devnet_params());
        let response =
            market.registry_execute(&registry::ExecuteMsg::Register(registry::NewKernel {
                shard_layout: LAYOUT
                    .iter()
                    .map(|&(start_layer, end_layer)| ShardRange {
                        start_layer,
                        end_layer,
                        sha256: HexBinary::from(vec![start_layer as u8; 32]),
                    })
                    .collect(),
                ..kernel("smollm2-sharded")
            }));
        let kernel_id: u64 = attribute(&response, "wasm-kernel_registered", "kernel_id")
            .parse()
            .unwrap();
        let mut sharded = Self {
            market,
            kernel_id,
            servers: vec![],
        };
        for (span, &(start, end)) in LAYOUT.iter().enumerate() {
            let nodes = (0..per_span)
                .map(|i| {
                    sharded
                        .add_server(&format!("shard-{span}-{i}"), start, end)
                        .unwrap()
                })
                .collect();
            sharded.servers.push(nodes);
        }
        sharded.market.advance(1);
        sharded
    }

    /// A node funded and bonded serving `start..end` of the sharded kernel.
    fn add_server(&mut self, name: &str, start: u32, end: u32) -> anyhow::Result<Addr> {
        let node = self.market.addr(name);
        self.market.app.init_modules(|router, _, storage| {
            router
                .bank
                .init_balance(storage, &node, coins(NODE_STAKE, DENOM))
                .unwrap()
        });
        let mut profile = self.market.profile(&node, CAPACITY);
        profile.kernels = vec![ServedKernel {
            kernel_id: self.kernel_id,
            start_layer: start,
            end_layer: end,
            block_micros: Some(700),
        }];
        self.market.app.execute_contract(
            node.clone(),
            self.market.staking.clone(),
            &staking::ExecuteMsg::Bond {
                profile: Some(profile),
            },
            &coins(NODE_STAKE, DENOM),
        )?;
        self.market.nodes.push(node.clone());
        Ok(node)
    }

    fn submit(&mut self) -> u64 {
        let user = self.market.user();
        let id = self.submit_undrawn(&user).unwrap();
        self.market.draw_open(id);
        id
    }

    /// Submits a greedy query with k pipelines and the exact escrow, leaving it drawing.
    fn submit_undrawn(&mut self, user: &Addr) -> Result<u64, ContractError> {
        let msg = ExecuteMsg::SubmitQuery {
            kernel_id: self.kernel_id,
            input: Binary::from(encode_token_ids(&INPUT)),
            max_output_tokens: MAX_OUTPUT,
            sampling: Sampling {
                seed: 42,
                temperature_milli: 0,
                top_p_milli: 1000,
            },
            redundancy: Some(K),
            user_entropy: Binary::from(vec![7; 32]),
        };
        let response = self.market.execute(user, &msg, escrow())?;
        Ok(attribute(&response, "wasm-query_submitted", "query_id")
            .parse()
            .unwrap())
    }

    /// The seats of pipeline `p`, span by span.
    fn pipeline(&self, id: u64, p: usize) -> Vec<Addr> {
        let nodes = self.market.assigned(id);
        nodes[p * LAYOUT.len()..(p + 1) * LAYOUT.len()].to_vec()
    }

    /// Plays a round: every pipeline runs as `runs[p]` says, every seat commits and reveals
    /// (except dead ones), and the query is settled.
    fn play(&mut self, id: u64, runs: &[Run]) {
        let honest = honest_output();
        let mut reveals = Vec::new();
        for (p, run) in runs.iter().enumerate() {
            let (output, records) = run.execute(&honest);
            let seats = self.pipeline(id, p);
            for (s, node) in seats.iter().enumerate() {
                if run.dead == Some(s) || (run.idle && s > 0) {
                    continue;
                }
                let (output_bytes, fingerprint) = if s == 0 {
                    let fingerprint = if output == honest {
                        self.market.model_fingerprint(id, output.len() as u32, 0)
                    } else {
                        // Another output: its logits differ too.
                        fingerprint(
                            &self.market.seed(id),
                            output.len() as u32,
                            self.market.query(id).query.fingerprint_positions,
                            9_000,
                            0,
                        )
                    };
                    (encode_token_ids(&output), fingerprint.to_vec())
                } else {
                    (vec![], vec![])
                };
                let mut record = records[s].encode();
                if run.truncated == Some(s) {
                    record.truncate(record.len() - 32);
                }
                let salt = Market::salt(node, id);
                let hash = shard_result_hash(&output_bytes, &fingerprint, &record);
                self.market
                    .commit_raw(node, id, &commitment(node.as_str(), id, &hash, &salt))
                    .unwrap();
                reveals.push((node.clone(), output_bytes, fingerprint, record, salt));
            }
        }
        if self.market.query(id).query.status != QueryStatus::Revealing {
            let deadline = self.market.query(id).query.commit_deadline;
            self.market.advance_to(deadline + 1);
        }
        for (node, output, fingerprint, record, salt) in reveals {
            let msg = ExecuteMsg::Reveal {
                query_id: id,
                output: output.into(),
                fingerprint: fingerprint.into(),
                salt: salt.into(),
                activations: Some(record.into()),
            };
            self.market.execute(&node, &msg, 0).unwrap();
        }
        let deadline = self.market.query(id).query.reveal_deadline;
        self.market.advance_to(deadline + 1);
        self.market.settle(id).unwrap();
    }

    fn outcome(&self, id: u64, node: &Addr) -> NodeOutcome {
        self.market.outcome(id, node).expect("settled")
    }
}

fn escrow() -> u128 {
    Market::required_escrow(INPUT.len() as u128, MAX_OUTPUT as u128, K as u128)
}

fn honest_output() -> Vec<u32> {
    (0..MAX_OUTPUT).map(|i| 500 + i).collect()
}

/// How one pipeline runs.
#[derive(Clone, Copy, Default)]
struct Run {
    /// The shard at this span serves tampered weights from this decode position on.
    lie: Option<(usize, usize)>,
    /// The head picks another token at this decode step (every shard honest).
    wrong_head: Option<usize>,
    /// The shard at this span dies before committing (its span was served by another node).
    dead: Option<usize>,
    /// The shard at this span reveals a record one position short.
    truncated: Option<usize>,
    /// With a dead driver: the other seats got no rows and commit nothing.
    idle: bool,
    /// The shard at this span states inputs other than the previous shard's outputs (the
    /// driver relayed other rows, or the shard misstates them), from the prompt on.
    relayed_wrong: Option<usize>,
}

impl Run {
    fn honest() -> Self {
        Self::default()
    }

    /// The pipeline's output and each span's record, from a model of the engine: a row is a
    /// function of the span, the tokens fed so far and whether a tampered span at or before
    /// it had produced it. The first token that differs (from the lie on) is replaced.
    fn execute(&self, honest: &[u32]) -> (Vec<u32>, Vec<SeatRecord>) {
        let mut output = honest.to_vec();
        // A lie at decode position j changes the logits there: token j + 1 differs.
        let diverges_at = self
            .lie
            .map(|(_, j)| j + 1)
            .or(self.wrong_head)
            .or(self.relayed_wrong.map(|_| 0))
            .filter(|&t| t < output.len());
        if let Some(t) = diverges_at {
            for token in &mut output[t..] {
                *token += 10_000;
            }
        }
        let records = (0..LAYOUT.len())
            .map(|span| {
                let tampered = |position: Option<usize>| match self.lie {
                    Some((liar, j)) => span >= liar && position.is_none_or(|p| p >= j),
                    None => self.relayed_wrong.is_some_and(|s| span >= s),
                };
                let row = |label: &[u8], tokens: &[u32], tampered: bool| -> Hash32 {
                    let mut hasher = Sha256::new();
                    hasher.update(label);
                    hasher.update((span as u32).to_be_bytes());
                    hasher.update(encode_token_ids(&INPUT));
                    hasher.update(encode_token_ids(tokens));
                    hasher.update([tampered as u8]);
                    hasher.finalize().into()
                };
                // The prompt is honest unless the lie starts there (position None).
                let prompt_root = row(b"prompt", &[], tampered(None));
                // At the limit, every token but the last was fed back.
                let fed = output.len() - 1;
                let decode_leaves = (0..fed)
                    .map(|i| row(b"decode", &output[..=i], tampered(Some(i))))
                    .collect();
                ActivationRecord {
                    prompt_root,
                    decode_leaves,
                }
            })
            .collect::<Vec<_>>();
        // Each span's inputs are the previous span's outputs.
        let seats = (0..LAYOUT.len())
            .map(|span| SeatRecord {
                outputs: records[span].clone(),
                input_digest: (span > 0).then(|| {
                    if self.relayed_wrong == Some(span) {
                        [0xEE; 32]
                    } else {
                        records[span - 1].digest()
                    }
                }),
            })
            .collect();
        (output, seats)
    }
}

fn pipeline_pay() -> u128 {
    INPUT.len() as u128 * PRICE_IN + MAX_OUTPUT as u128 * PRICE_OUT
}

/// Span `s`'s share of a pipeline's pay before fees, and what its node receives after them.
fn share(s: usize) -> (u128, u128) {
    let layers = (LAYOUT[s].1 - LAYOUT[s].0) as u128;
    let gross = pipeline_pay() * layers / 30;
    let fees = Uint128::new(gross)
        .mul_floor(devnet_params().protocol_fee)
        .u128()
        + Uint128::new(gross)
            .mul_floor(devnet_params().kernel_royalty)
            .u128();
    (gross, gross - fees)
}

fn assert_slashed(outcome: NodeOutcome, expected: SlashReason) {
    match outcome {
        NodeOutcome::Slashed { reason, .. } if reason == expected => {}
        other => panic!("expected slashed as {}, got {other:?}", expected.as_str()),
    }
}

fn paid(amount: u128) -> NodeOutcome {
    NodeOutcome::Paid {
        amount: Uint128::new(amount),
    }
}

/// The escrow went exactly to the paid seats, the fees and the refund.
fn assert_escrow_exact(sharded: &Sharded, id: u64, paid_seats: &[usize]) {
    let settlement = sharded.market.query(id).query.settlement.unwrap();
    let gross: u128 = paid_seats.iter().map(|&s| share(s).0).sum();
    assert_eq!(settlement.paid.u128(), gross);
    assert_eq!(
        settlement.paid.u128() + settlement.refunded.u128(),
        escrow()
    );
}

#[test]
fn pipelines_are_drawn_span_by_span_and_every_shard_is_paid_by_layers() {
    let mut sharded = Sharded::new(4);
    let before = sharded.market.total_unes();
    let user_before = sharded.market.balance(&sharded.market.user());
    let id = sharded.submit();
    let query = sharded.market.query(id);
    assert_eq!(query.query.shards.len(), 3);
    assert_eq!(query.query.nodes.len(), 3 * usize::from(K));
    for assignment in &query.assignments {
        assert!(
            sharded.servers[assignment.span as usize].contains(&assignment.node),
            "{} holds span {} it does not serve",
            assignment.node,
            assignment.span
        );
    }
    for p in 0..usize::from(K) {
        let seats: Vec<(u8, u32)> = query.assignments[p * 3..p * 3 + 3]
            .iter()
            .map(|a| (a.pipeline, a.span))
            .collect();
        assert_eq!(seats, vec![(p as u8, 0), (p as u8, 1), (p as u8, 2)]);
    }

    sharded.play(id, &[Run::honest(); 3]);
    let query = sharded.market.query(id);
    assert_eq!(query.query.status, QueryStatus::Settled);
    for assignment in &query.assignments {
        let (_, net) = share(assignment.span as usize);
        assert_eq!(assignment.outcome, Some(paid(net)), "{}", assignment.node);
        assert_eq!(sharded.market.balance(&assignment.node), net);
    }
    let all_seats: Vec<usize> = (0..3).flat_map(|_| 0..3).collect();
    assert_escrow_exact(&sharded, id, &all_seats);
    // The user paid exactly what the seats earned (the rounding remainder came back).
    let spent = user_before - sharded.market.balance(&sharded.market.user());
    assert_eq!(spent, all_seats.iter().map(|&s| share(s).0).sum::<u128>());
    assert_eq!(sharded.market.total_unes(), before);
}

#[test]
fn a_dead_shard_is_neither_paid_nor_slashed_while_its_pipeline_is_paid() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    let dead = sharded.pipeline(id, 0)[1].clone();
    let runs = [
        Run {
            dead: Some(1),
            ..Run::honest()
        },
        Run::honest(),
        Run::honest(),
    ];
    sharded.play(id, &runs);
    // It never committed to serve (its span was served by a spare): unpaid, not slashed.
    assert_eq!(sharded.outcome(id, &dead), NodeOutcome::Unpaid {});
    assert!(!sharded.market.node(&dead).jailed);
    for (s, node) in sharded.pipeline(id, 0).iter().enumerate() {
        if s != 1 {
            assert_eq!(sharded.outcome(id, node), paid(share(s).1));
        }
    }
    let mut seats: Vec<usize> = (0..3).flat_map(|_| 0..3).collect();
    seats.remove(1);
    assert_escrow_exact(&sharded, id, &seats);
}

#[test]
fn shards_whose_driver_never_came_are_not_blamed_for_idling() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    let runs = [
        Run::honest(),
        Run {
            dead: Some(0),
            idle: true,
            ..Run::honest()
        },
        Run::honest(),
    ];
    sharded.play(id, &runs);
    let orphaned = sharded.pipeline(id, 1);
    assert_slashed(sharded.outcome(id, &orphaned[0]), SlashReason::NoCommit);
    for node in &orphaned[1..] {
        assert_eq!(sharded.outcome(id, node), NodeOutcome::Unpaid {});
        assert!(!sharded.market.node(node).jailed);
    }
    let seats: Vec<usize> = [0, 1, 2, 0, 1, 2].to_vec();
    assert_escrow_exact(&sharded, id, &seats);
}

#[test]
fn a_shard_serving_tampered_weights_is_found_and_slashed_alone() {
    for liar in 0..3 {
        let mut sharded = Sharded::new(3);
        let id = sharded.submit();
        let runs = [
            Run::honest(),
            Run {
                lie: Some((liar, 2)),
                ..Run::honest()
            },
            Run::honest(),
        ];
        sharded.play(id, &runs);
        let faulty = sharded.pipeline(id, 1);
        for (s, node) in faulty.iter().enumerate() {
            let outcome = sharded.outcome(id, node);
            if s == liar {
                assert!(
                    matches!(
                        outcome,
                        NodeOutcome::Slashed {
                            reason: SlashReason::Divergent,
                            ..
                        }
                    ),
                    "liar at span {liar}: {outcome:?}"
                );
                assert!(sharded.market.node(node).jailed);
            } else {
                // Honest work on what it was given: paid.
                assert_eq!(outcome, paid(share(s).1), "liar at {liar}, span {s}");
            }
        }
        let seats: Vec<usize> = (0..9).filter(|&i| i != 3 + liar).map(|i| i % 3).collect();
        assert_escrow_exact(&sharded, id, &seats);
    }
}

#[test]
fn a_shard_whose_inputs_are_not_the_previous_outputs_ends_the_search_and_slashes_nobody() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    let runs = [
        Run::honest(),
        Run {
            relayed_wrong: Some(1),
            ..Run::honest()
        },
        Run::honest(),
    ];
    sharded.play(id, &runs);
    let faulty = sharded.pipeline(id, 1);
    // The driver or shard 1 lied about what went between them; the chain cannot tell which:
    // neither is slashed, neither (nor anything after) is paid. Shard 0 is paid.
    for node in [&faulty[0], &faulty[1], &faulty[2]] {
        assert_eq!(sharded.outcome(id, node), NodeOutcome::Unpaid {});
        assert!(!sharded.market.node(node).jailed);
    }
    let seats: Vec<usize> = [0, 1, 2, 0, 1, 2].to_vec();
    assert_escrow_exact(&sharded, id, &seats);
}

#[test]
fn an_outvoted_pipeline_with_a_silent_shard_blames_its_driver() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    // Shard 1 never committed (the driver routed around it) and shard 2 lied.
    let runs = [
        Run::honest(),
        Run {
            dead: Some(1),
            lie: Some((2, 3)),
            ..Run::honest()
        },
        Run::honest(),
    ];
    sharded.play(id, &runs);
    let faulty = sharded.pipeline(id, 1);
    // Nothing past the silent seat can be judged: the driver vouched for the wrong output.
    assert_slashed(sharded.outcome(id, &faulty[0]), SlashReason::Outlier);
    assert_eq!(sharded.outcome(id, &faulty[1]), NodeOutcome::Unpaid {});
    assert!(!sharded.market.node(&faulty[1]).jailed);
    assert_eq!(sharded.outcome(id, &faulty[2]), NodeOutcome::Unpaid {});
    let seats: Vec<usize> = [0, 1, 2, 0, 1, 2].to_vec();
    assert_escrow_exact(&sharded, id, &seats);
}

#[test]
fn a_head_that_picks_another_token_blames_the_driver() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    let runs = [
        Run::honest(),
        Run::honest(),
        Run {
            wrong_head: Some(3),
            ..Run::honest()
        },
    ];
    sharded.play(id, &runs);
    let faulty = sharded.pipeline(id, 2);
    assert_slashed(sharded.outcome(id, &faulty[0]), SlashReason::Divergent);
    assert_eq!(sharded.outcome(id, &faulty[1]), paid(share(1).1));
    assert_eq!(sharded.outcome(id, &faulty[2]), paid(share(2).1));
}

#[test]
fn a_record_cut_short_is_an_invalid_reveal_and_cannot_shift_the_blame() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    // The liar at span 1 hides its divergent leaf by revealing one position fewer.
    let runs = [
        Run::honest(),
        Run {
            lie: Some((1, 6)),
            truncated: Some(1),
            ..Run::honest()
        },
        Run::honest(),
    ];
    sharded.play(id, &runs);
    let faulty = sharded.pipeline(id, 1);
    assert_slashed(sharded.outcome(id, &faulty[1]), SlashReason::BadReveal);
    assert_eq!(sharded.outcome(id, &faulty[0]), paid(share(0).1));
    assert_eq!(sharded.outcome(id, &faulty[2]), paid(share(2).1));
}

#[test]
fn reveals_that_do_not_fit_their_seat_are_refused() {
    let mut sharded = Sharded::new(3);
    let id = sharded.submit();
    let seats = sharded.pipeline(id, 0);
    let (output, records) = Run::honest().execute(&honest_output());
    let mut commit = |node: &Addr, output: &[u8], record: &[u8]| {
        let hash = shard_result_hash(output, &[], record);
        let salt = Market::salt(node, id);
        sharded
            .market
            .commit_raw(node, id, &commitment(node.as_str(), id, &hash, &salt))
            .unwrap();
    };
    let encoded = encode_token_ids(&output);
    commit(&seats[1], &encoded, &records[1].encode());
    commit(&seats[2], &[], &records[2].encode());
    let deadline = sharded.market.query(id).query.commit_deadline;
    sharded.market.advance_to(deadline + 1);
    let reveal = |output: Vec<u8>, activations: Option<Vec<u8>>| ExecuteMsg::Reveal {
        query_id: id,
        output: output.into(),
        fingerprint: Binary::default(),
        salt: Binary::from(Market::salt(&seats[1], id)),
        activations: activations.map(Binary::from),
    };
    // A middle span never sees tokens: it cannot reveal an output.
    let error = sharded
        .market
        .execute(&seats[1], &reveal(encoded, Some(records[1].encode())), 0)
        .unwrap_err();
    assert!(
        matches!(error, ContractError::InvalidActivations { .. }),
        "{error}"
    );
    // Every seat of a pipeline reveals a record, and a record is whole hashes.
    let error = sharded
        .market
        .execute(&seats[1], &reveal(vec![], None), 0)
        .unwrap_err();
    assert!(
        matches!(error, ContractError::InvalidActivations { .. }),
        "{error}"
    );
    let error = sharded
        .market
        .execute(&seats[1], &reveal(vec![], Some(vec![1; 33])), 0)
        .unwrap_err();
    assert!(
        matches!(error, ContractError::InvalidActivations { .. }),
        "{error}"
    );
    // More decode positions than the query allows.
    let error = sharded
        .market
        .execute(
            &seats[1],
            &reveal(vec![], Some(vec![1; 32 * (3 + MAX_OUTPUT as usize)])),
            0,
        )
        .unwrap_err();
    assert!(
        matches!(error, ContractError::InvalidActivations { .. }),
        "{error}"
    );
    // Nothing was recorded: the seat's reveal is still open.
    assert!(sharded.market.query(id).assignments[1].reveal.is_none());
}

#[test]
fn shards_must_follow_the_layout_and_whole_model_nodes_take_no_pipeline_seat() {
    let mut sharded = Sharded::new(3);
    let error = sharded.add_server("off-layout", 0, 10).unwrap_err();
    assert!(
        error
            .root_cause()
            .to_string()
            .contains("do not follow its shard layout"),
        "{error:?}"
    );
    // A node bonded for the whole sharded kernel may not enter its draws.
    let whole = sharded.add_server("whole", 0, 30);
    assert!(whole.is_err(), "the whole range is not one of the layout's");
    let user = sharded.market.user();
    let id = sharded.submit_undrawn(&user).unwrap();
    // A whole-model node of another kernel cannot enter either.
    let stranger = sharded.market.add_node("stranger", NODE_STAKE, CAPACITY);
    sharded.market.advance(1);
    let error = sharded.market.enter(&stranger, id).unwrap_err();
    assert!(
        matches!(error, ContractError::NotDrawable { .. }),
        "{error}"
    );
}

#[test]
fn a_span_without_enough_servers_refuses_the_query() {
    let mut sharded = Sharded::new(3);
    // Span 2 loses a server: two pipelines at most.
    let leaving = sharded.servers[2][0].clone();
    sharded
        .market
        .app
        .execute_contract(
            leaving,
            sharded.market.staking.clone(),
            &staking::ExecuteMsg::Unbond {
                amount: Uint128::new(NODE_STAKE),
            },
            &[],
        )
        .unwrap();
    let user = sharded.market.user();
    let error = sharded.submit_undrawn(&user).unwrap_err();
    assert!(
        matches!(
            error,
            ContractError::NotEnoughCandidates {
                available: 2,
                required: 3,
                ..
            }
        ),
        "{error}"
    );
}

//! Following a query: which milestones it has reached, at which heights, and when the client
//! saw them — what a progress display prints and what the per-phase latency of `nesa ask`
//! is measured from.

use std::collections::BTreeMap;
use std::time::Duration;

use nesa_market::market::{QueryPhase, QueryResponse, QueryStatus};
use serde::Serialize;

/// A point in a query's life, in the order they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    /// The query is on chain with its escrow, its draw open.
    Submitted,
    /// Its k nodes are drawn from the tickets entered.
    Assigned,
    /// Every assigned node committed.
    AllCommitted,
    /// Every assigned node revealed.
    AllRevealed,
    /// Settled or disputed.
    Closed,
}

impl Milestone {
    /// Every milestone, in order.
    pub const ALL: [Milestone; 5] = [
        Milestone::Submitted,
        Milestone::Assigned,
        Milestone::AllCommitted,
        Milestone::AllRevealed,
        Milestone::Closed,
    ];

    /// Lower-case words for display (`all committed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Milestone::Submitted => "submitted",
            Milestone::Assigned => "assigned",
            Milestone::AllCommitted => "all committed",
            Milestone::AllRevealed => "all revealed",
            Milestone::Closed => "closed",
        }
    }

    /// The block height at which `state` reached this milestone, if it has.
    pub fn height(&self, state: &QueryResponse) -> Option<u64> {
        let query = &state.query;
        let every = |height: fn(&nesa_market::market::Assignment) -> Option<u64>| {
            let heights: Option<Vec<u64>> = state.assignments.iter().map(height).collect();
            heights
                .filter(|h| !h.is_empty())
                .and_then(|h| h.into_iter().max())
        };
        match self {
            Milestone::Submitted => Some(query.submitted_height),
            Milestone::Assigned => (!query.nodes.is_empty()).then(|| assigned_height(query)),
            Milestone::AllCommitted => every(|a| a.committed_height),
            Milestone::AllRevealed => every(|a| a.reveal.as_ref().map(|r| r.height)),
            Milestone::Closed => query.settlement.as_ref().map(|s| s.height),
        }
    }
}

/// The height at which `query`, once it has nodes, was assigned. The market records no height
/// for the draw: this is the first block it could run in, the one right after the draw
/// deadline, where the nodes that lead draws send it. Queries assigned before sortition were
/// assigned by their submission.
fn assigned_height(query: &nesa_market::market::InferenceQuery) -> u64 {
    if query.draw_input.is_empty() {
        query.submitted_height
    } else {
        query.draw_deadline + 1
    }
}

/// Whether `state` is still drawing at `height` some `blocks` after its draw could have run:
/// its nodes have not drawn it, and anyone (its user too) may.
pub fn draw_overdue(state: &QueryResponse, height: u64, blocks: u64) -> bool {
    state.query.status == QueryStatus::Drawing
        && height >= state.query.draw_deadline.saturating_add(blocks)
}

/// The counts a progress display shows; a new line is due whenever they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub status: QueryStatus,
    /// Tickets entered in the draw.
    pub tickets: u32,
    /// Reveals are over (every node revealed or the deadline passed): anyone may settle.
    pub settleable: bool,
    /// k.
    pub nodes: usize,
    pub committed: usize,
    pub revealed: usize,
}

impl Progress {
    /// The counts of `state`.
    pub fn of(state: &QueryResponse) -> Self {
        Progress {
            status: state.query.status,
            tickets: state.query.tickets,
            settleable: matches!(state.phase, QueryPhase::Settleable),
            nodes: state.assignments.len(),
            committed: state
                .assignments
                .iter()
                .filter(|a| a.commitment.is_some())
                .count(),
            revealed: state
                .assignments
                .iter()
                .filter(|a| a.reveal.is_some())
                .count(),
        }
    }
}

/// How long one step between two milestones took, in blocks and as the client saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseTiming {
    pub from: Milestone,
    pub to: Milestone,
    pub blocks: u64,
    /// Wall-clock seconds between the client first seeing each end (block-polling precision);
    /// `None` when it did not see one of them.
    pub seconds: Option<f64>,
}

impl PhaseTiming {
    /// Replaces the observed seconds with chain time: the difference of the two milestones'
    /// block times, looked up in `block_seconds` (height → block time in seconds). Polling sees
    /// several blocks at once after a slow step; block times do not.
    pub fn with_block_times(
        mut self,
        from_height: u64,
        to_height: u64,
        block_seconds: &BTreeMap<u64, f64>,
    ) -> Self {
        if let (Some(start), Some(end)) = (
            block_seconds.get(&from_height),
            block_seconds.get(&to_height),
        ) {
            self.seconds = Some(((end - start).max(0.0) * 1000.0).round() / 1000.0);
        }
        self
    }
}

/// `duration` in seconds, to the millisecond (finer is polling noise).
pub fn seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

/// When the client first saw each milestone, as time since it started submitting.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    seen: BTreeMap<Milestone, Duration>,
}

impl Timeline {
    /// Records `milestone` as seen at `at`, unless it was seen before.
    pub fn mark(&mut self, milestone: Milestone, at: Duration) {
        self.seen.entry(milestone).or_insert(at);
    }

    /// Marks every milestone `state` has reached as seen at `at`.
    pub fn observe(&mut self, state: &QueryResponse, at: Duration) {
        for milestone in Milestone::ALL {
            if milestone.height(state).is_some() {
                self.mark(milestone, at);
            }
        }
    }

    /// When `milestone` was first seen.
    pub fn seen(&self, milestone: Milestone) -> Option<Duration> {
        self.seen.get(&milestone).copied()
    }

    /// The heights of the milestones `state` reached, in order.
    pub fn heights(state: &QueryResponse) -> Vec<(Milestone, u64)> {
        Milestone::ALL
            .iter()
            .filter_map(|m| m.height(state).map(|h| (*m, h)))
            .collect()
    }

    /// Like `phases`, with seconds taken from block times (height → seconds).
    pub fn phases_in_chain_time(
        &self,
        state: &QueryResponse,
        block_seconds: &BTreeMap<u64, f64>,
    ) -> Vec<PhaseTiming> {
        let reached = Self::heights(state);
        self.phases(state)
            .into_iter()
            .zip(reached.windows(2))
            .map(|(phase, pair)| phase.with_block_times(pair[0].1, pair[1].1, block_seconds))
            .collect()
    }

    /// The steps between the milestones `state` reached, each measured from the previous one
    /// reached (a node that never committed means no `all committed`: that step is skipped and
    /// the next one runs from `assigned`).
    pub fn phases(&self, state: &QueryResponse) -> Vec<PhaseTiming> {
        let reached: Vec<(Milestone, u64)> = Milestone::ALL
            .iter()
            .filter_map(|m| m.height(state).map(|h| (*m, h)))
            .collect();
        reached
            .windows(2)
            .map(|pair| {
                let ((from, from_height), (to, to_height)) = (pair[0], pair[1]);
                let seconds = match (self.seen(from), self.seen(to)) {
                    (Some(start), Some(end)) => Some(seconds(end.saturating_sub(start))),
                    _ => None,
                };
                PhaseTiming {
                    from,
                    to,
                    blocks: to_height.saturating_sub(from_height),
                    seconds,
                }
            })
            .collect()
    }
}

/// Query states at each step of the lifecycle, for tests of code that follows queries (here
/// and in the `nesa` CLI).
#[doc(hidden)]
pub mod fixtures {
    use cosmwasm_std::{Addr, Binary, Coin, Decimal, HexBinary, Uint128};
    use nesa_market::market::{
        Assignment, InferenceQuery, NodeOutcome, Reveal, Sampling, Settlement, SlashReason, Ticket,
    };

    use nesa_market::market::{QueryPhase, QueryResponse, QueryStatus};

    /// A query on kernel 1 submitted at height 10 with `k` nodes, nothing committed yet (as
    /// assigned at submission, before sortition: see [`drawing`] for a draw).
    pub fn submitted(k: usize) -> QueryResponse {
        let nodes: Vec<Addr> = (0..k).map(node).collect();
        QueryResponse {
            query: InferenceQuery {
                id: 7,
                user: Addr::unchecked("nesa1user"),
                kernel_id: 1,
                kernel_owner: Addr::unchecked("nesa1owner"),
                price_per_input_token: Uint128::new(1),
                price_per_output_token: Uint128::new(2),
                input: Binary::default(),
                input_tokens: 31,
                max_output_tokens: 64,
                sampling: Sampling::default(),
                redundancy: k as u8,
                quorum: 2,
                fingerprint_positions: 16,
                fingerprint_tolerance: 3,
                terms: Some(nesa_market::market::SettlementTerms::from_params(
                    &nesa_market::devnet::market_params(),
                )),
                nodes: nodes.clone(),
                shards: vec![],
                escrow: Coin::new(3u128 * (31 + 2 * 64), "unes"),
                seed: HexBinary::default(),
                submitted_height: 10,
                draw_input: HexBinary::default(),
                draw_deadline: 0,
                tickets: 0,
                commit_deadline: 20,
                reveal_deadline: 30,
                status: QueryStatus::Pending,
                commits: 0,
                reveals: 0,
                settlement: None,
            },
            assignments: nodes
                .into_iter()
                .enumerate()
                .map(|(index, node)| Assignment {
                    node,
                    pipeline: index as u8,
                    span: 0,
                    commitment: None,
                    committed_height: None,
                    reveal: None,
                    outcome: None,
                })
                .collect(),
            phase: QueryPhase::Commit,
            tickets: vec![],
        }
    }

    /// The address of node `i` in [`submitted`].
    pub fn node(i: usize) -> Addr {
        Addr::unchecked(format!(
            "nesa1node{i}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{i}"
        ))
    }

    /// A query for `k` nodes submitted at height 10 whose draw is open until height 13
    /// (commits then due by 20 + 4, reveals by 30 + 4); no tickets yet.
    pub fn drawing(k: usize) -> QueryResponse {
        let mut state = submitted(k);
        let query = &mut state.query;
        query.nodes.clear();
        query.status = QueryStatus::Drawing;
        query.draw_input = HexBinary::from(vec![0xd1; 32]);
        query.draw_deadline = 13;
        query.commit_deadline = 24;
        query.reveal_deadline = 34;
        state.assignments.clear();
        state.phase = QueryPhase::Draw;
        state
    }

    /// `node` enters the draw with stake `weight`; its ticket's output is derived from `tag`.
    pub fn enter(state: &mut QueryResponse, node: &Addr, weight: u128, tag: u8) {
        let output = nesa_market::sortition::ticket_output(&[tag; 96]);
        state.tickets.push(Ticket {
            node: node.clone(),
            span: None,
            weight: Uint128::new(weight),
            output: HexBinary::from(output.to_vec()),
        });
        state.tickets.sort_by(|a, b| a.node.cmp(&b.node));
        state.query.tickets += 1;
    }

    /// The draw runs right after its deadline (height 14) and assigns `nodes`.
    pub fn draw(state: &mut QueryResponse, nodes: &[Addr]) {
        state.query.nodes = nodes.to_vec();
        state.query.status = QueryStatus::Pending;
        state.assignments = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| Assignment {
                node: node.clone(),
                pipeline: index as u8,
                span: 0,
                commitment: None,
                committed_height: None,
                reveal: None,
                outcome: None,
            })
            .collect();
        state.tickets.clear();
        state.phase = QueryPhase::Commit;
    }

    /// Node `index` commits at `height`.
    pub fn commit(state: &mut QueryResponse, index: usize, height: u64) {
        let assignment = &mut state.assignments[index];
        assignment.commitment = Some(HexBinary::from(vec![index as u8; 32]));
        assignment.committed_height = Some(height);
        state.query.commits += 1;
        if state.query.commits as usize == state.assignments.len() {
            state.query.status = QueryStatus::Revealing;
            state.phase = QueryPhase::Reveal;
        }
    }

    /// Node `index` reveals `output` at `height`.
    pub fn reveal(state: &mut QueryResponse, index: usize, height: u64, output: &[u32]) {
        state.assignments[index].reveal = Some(Reveal {
            output: Binary::from(nesa_market::tokens::encode_token_ids(output)),
            output_hash: HexBinary::from(vec![1; 32]),
            output_tokens: output.len() as u32,
            fingerprint: Binary::default(),
            salt: Binary::from(vec![0; 16]),
            activations: None,
            matches_commitment: true,
            height,
        });
        state.query.status = QueryStatus::Revealing;
        state.query.reveals += 1;
        state.phase = QueryPhase::Reveal;
    }

    /// The query closes at `height` with `settlement`.
    pub fn close(state: &mut QueryResponse, status: QueryStatus, settlement: Settlement) {
        state.query.status = status;
        state.query.settlement = Some(settlement);
        state.phase = QueryPhase::Closed;
    }

    /// An honest round of three nodes on `output`: commits at 12–13, reveals at 15–16, settled
    /// at 17; each node is paid 39unes gross (10% protocol fee, 10% royalty).
    pub fn honest_round(output: &[u32]) -> QueryResponse {
        let mut state = submitted(3);
        commit(&mut state, 0, 12);
        commit(&mut state, 1, 13);
        commit(&mut state, 2, 13);
        reveal(&mut state, 0, 15, output);
        reveal(&mut state, 1, 15, output);
        reveal(&mut state, 2, 16, output);
        let pay = 31 + 2 * output.len() as u128;
        let fee = pay / 10;
        for assignment in &mut state.assignments {
            assignment.outcome = Some(NodeOutcome::Paid {
                amount: Uint128::new(pay - 2 * fee),
            });
        }
        let winners = state.query.nodes.clone();
        let settlement = Settlement {
            height: 17,
            winners,
            output: Some(Binary::from(nesa_market::tokens::encode_token_ids(output))),
            output_hash: Some(HexBinary::from(vec![1; 32])),
            output_tokens: output.len() as u32,
            paid: Uint128::new(3 * pay),
            protocol_fee: Uint128::new(3 * fee),
            royalty: Uint128::new(3 * fee),
            refunded: state.query.escrow.amount - Uint128::new(3 * pay),
        };
        close(&mut state, QueryStatus::Settled, settlement);
        state
    }

    /// Three nodes that all disagree: disputed at 17, the escrow refunded in full, nobody
    /// paid; node 2 never revealed and is slashed.
    pub fn disputed_round() -> QueryResponse {
        let mut state = submitted(3);
        commit(&mut state, 0, 12);
        commit(&mut state, 1, 12);
        commit(&mut state, 2, 12);
        reveal(&mut state, 0, 14, &[1]);
        reveal(&mut state, 1, 14, &[2]);
        state.assignments[0].outcome = Some(NodeOutcome::Unpaid {});
        state.assignments[1].outcome = Some(NodeOutcome::Unpaid {});
        state.assignments[2].outcome = Some(NodeOutcome::Slashed {
            reason: SlashReason::NoReveal,
            fraction: Decimal::percent(20),
        });
        let mut settlement = settlement(17);
        settlement.refunded = state.query.escrow.amount;
        close(&mut state, QueryStatus::Disputed, settlement);
        state
    }

    pub fn settlement(height: u64) -> Settlement {
        Settlement {
            height,
            winners: vec![],
            output: None,
            output_hash: None,
            output_tokens: 0,
            paid: Uint128::zero(),
            protocol_fee: Uint128::zero(),
            royalty: Uint128::zero(),
            refunded: Uint128::zero(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn a_fresh_query_is_submitted_and_assigned_in_the_same_block() {
        let state = submitted(3);
        assert_eq!(Milestone::Submitted.height(&state), Some(10));
        assert_eq!(Milestone::Assigned.height(&state), Some(10));
        assert_eq!(Milestone::AllCommitted.height(&state), None);
        assert_eq!(
            Progress::of(&state),
            Progress {
                status: QueryStatus::Pending,
                tickets: 0,
                settleable: false,
                nodes: 3,
                committed: 0,
                revealed: 0
            }
        );
    }

    #[test]
    fn a_drawn_query_is_assigned_when_its_draw_opens() {
        let mut state = drawing(2);
        assert_eq!(Milestone::Submitted.height(&state), Some(10));
        assert_eq!(Milestone::Assigned.height(&state), None);
        enter(&mut state, &node(0), 100, 1);
        enter(&mut state, &node(1), 100, 2);
        let progress = Progress::of(&state);
        assert_eq!(
            (progress.status, progress.tickets, progress.nodes),
            (QueryStatus::Drawing, 2, 0)
        );
        draw(&mut state, &[node(0), node(1)]);
        assert_eq!(Milestone::Assigned.height(&state), Some(14));
        assert_eq!(Progress::of(&state).nodes, 2);
    }

    #[test]
    fn a_draw_is_overdue_only_while_drawing_and_after_the_grace() {
        let mut state = drawing(2);
        assert!(!draw_overdue(&state, 16, 4));
        assert!(draw_overdue(&state, 17, 4));
        draw(&mut state, &[node(0), node(1)]);
        assert!(!draw_overdue(&state, 30, 4));
    }

    #[test]
    fn all_committed_is_the_height_of_the_last_commit_and_only_once_every_node_committed() {
        let mut state = submitted(3);
        commit(&mut state, 0, 12);
        commit(&mut state, 2, 14);
        assert_eq!(Milestone::AllCommitted.height(&state), None);
        assert_eq!(Progress::of(&state).committed, 2);
        commit(&mut state, 1, 13);
        assert_eq!(Milestone::AllCommitted.height(&state), Some(14));
        assert_eq!(Progress::of(&state).status, QueryStatus::Revealing);
    }

    #[test]
    fn phases_skip_a_milestone_that_was_never_reached() {
        let mut state = submitted(3);
        let mut timeline = Timeline::default();
        timeline.mark(Milestone::Submitted, Duration::ZERO);
        timeline.observe(&state, Duration::from_millis(1200));
        commit(&mut state, 0, 12);
        commit(&mut state, 1, 13);
        timeline.observe(&state, Duration::from_millis(4000));
        reveal(&mut state, 0, 21, &[5]);
        reveal(&mut state, 1, 22, &[5]);
        state.phase = QueryPhase::Settleable;
        assert!(Progress::of(&state).settleable);
        close(&mut state, QueryStatus::Settled, settlement(23));
        timeline.observe(&state, Duration::from_millis(14000));
        let phases = timeline.phases(&state);
        let steps: Vec<(Milestone, Milestone, u64)> =
            phases.iter().map(|p| (p.from, p.to, p.blocks)).collect();
        assert_eq!(
            steps,
            [
                (Milestone::Submitted, Milestone::Assigned, 0),
                (Milestone::Assigned, Milestone::Closed, 13),
            ],
            "node 2 never committed, so neither `all committed` nor `all revealed` happened"
        );
        assert_eq!(phases[0].seconds, Some(1.2));
        assert_eq!(phases[1].seconds, Some(12.8));
    }

    #[test]
    fn the_first_sighting_of_a_milestone_is_kept() {
        let mut timeline = Timeline::default();
        timeline.mark(Milestone::Closed, Duration::from_secs(3));
        timeline.mark(Milestone::Closed, Duration::from_secs(9));
        assert_eq!(
            timeline.seen(Milestone::Closed),
            Some(Duration::from_secs(3))
        );
        assert_eq!(timeline.seen(Milestone::Assigned), None);
    }
}

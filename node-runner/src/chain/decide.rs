//! The runner's decision steps for one query: from what the runner knows about its job (or
//! its entry in the query's draw), what the market says about the query and the current
//! height, the next thing to do. Pure (no chain reads, no transactions, no clock, no metrics),
//! so every phase is a unit test; the loop in [`super::runner`] does the I/O around it.

use nesa_market::events::{market, wasm_type};
use nesa_market::market::{NodeOutcome, QueryPhase, QueryResponse, QueryStatus};
use nesa_market::sortition::{seat_holders, Entry};
use nesa_market::Hash32;
use nesa_sdk::TxEvent;

use super::work::QueryResult;

/// Blocks to wait before sending the same step again (the first may still be in the mempool).
pub const RESEND_AFTER_BLOCKS: u64 = 3;
/// Blocks a non-first node waits before settling a settleable query itself.
pub const SETTLE_BACKUP_BLOCKS: u64 = 2;
/// Blocks after the leader of a draw could first draw it that the other entered nodes wait
/// before drawing the query themselves (so a leader that went away does not stall it).
pub const DRAW_BACKUP_BLOCKS: u64 = 2;
/// Failed attempts (a query that cannot be read, a transaction the chain does not accept) after
/// which the runner gives a job up instead of retrying every block for ever.
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// The attribute the chain adds to every event a contract emits: the contract's address.
pub const CONTRACT_ADDRESS_ATTRIBUTE: &str = "_contract_address";

/// The query assigned to `me` that `event` announces, if it is a `wasm-query_assigned` event
/// of the market contract `market_contract` that lists `me`. Any account can upload a contract
/// that emits an event of that type, so one from another contract is not an assignment.
pub fn assignment_of(event: &TxEvent, market_contract: &str, me: &str) -> Option<u64> {
    if event.kind != wasm_type(market::QUERY_ASSIGNED) || !emitted_by(event, market_contract) {
        return None;
    }
    let listed = event
        .attribute(market::attr::NODES)
        .is_some_and(|nodes| nodes.split(',').any(|n| n == me));
    if !listed {
        return None;
    }
    event.attribute(market::attr::QUERY_ID)?.parse().ok()
}

/// Whether `event` was emitted by the contract at `contract`.
pub fn emitted_by(event: &TxEvent, contract: &str) -> bool {
    event.attribute(CONTRACT_ADDRESS_ATTRIBUTE) == Some(contract)
}

/// A query whose draw is open, as the market announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawInvite {
    /// The query's id.
    pub query_id: u64,
    /// What this node's ticket signs.
    pub draw_input: Hash32,
    /// Last height at which the market accepts a ticket.
    pub draw_deadline: u64,
}

/// The draw that `event` opens for a query on kernel `kernel_id`, if it is a
/// `wasm-query_submitted` event of the market contract `market_contract` for that kernel. As
/// with assignments, an event of another contract is no query; one with a malformed attribute
/// is ignored rather than guessed at.
pub fn draw_of(event: &TxEvent, market_contract: &str, kernel_id: u64) -> Option<DrawInvite> {
    if event.kind != wasm_type(market::QUERY_SUBMITTED) || !emitted_by(event, market_contract) {
        return None;
    }
    let number = |key: &str| event.attribute(key)?.parse::<u64>().ok();
    if number(market::attr::KERNEL_ID)? != kernel_id {
        return None;
    }
    let draw_input = hex::decode(event.attribute(market::attr::DRAW_INPUT)?).ok()?;
    Some(DrawInvite {
        query_id: number(market::attr::QUERY_ID)?,
        draw_input: draw_input.try_into().ok()?,
        draw_deadline: number(market::attr::DRAW_DEADLINE)?,
    })
}

/// Whether `me` holds the first seat among the tickets `state` lists: that node draws the
/// query as soon as the draw closes, the others only as a backup. The market checks again at
/// the draw whether each holder may still serve, so this is who leads, not who is drawn; a
/// ticket this runner cannot read makes it no leader.
pub fn leads_draw(state: &QueryResponse, me: &str) -> bool {
    let entries: Option<Vec<Entry<&str>>> = state
        .tickets
        .iter()
        .map(|ticket| {
            Some(Entry {
                node: ticket.node.as_str(),
                weight: ticket.weight,
                output: ticket.output.as_slice().try_into().ok()?,
            })
        })
        .collect();
    let Some(entries) = entries else {
        return false;
    };
    seat_holders(&entries, state.query.redundancy.max(1))
        .first()
        .is_some_and(|&holder| entries[holder].node == me)
}

/// A market transaction the runner sends for a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Post the commitment to the result.
    Commit,
    /// Open the commitment: output, fingerprint and salt.
    Reveal,
    /// Close the query (pay, slash, refund).
    Settle,
}

/// What the runner knows about one query it serves. A restarted runner rebuilds it from chain
/// state as [`JobState::default`]: outputs are deterministic and salts derived from the node's
/// secret, so nothing else needs to survive a restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobState {
    /// The result of running the kernel, once generated.
    pub result: Option<QueryResult>,
    /// Whether the kernel is running on the query now.
    pub computing: bool,
    /// Whether the query waits in the work queue for the engine.
    pub queued: bool,
    /// The last step sent and the height it was sent at.
    pub last_sent: Option<(Step, u64)>,
    /// The first height at which this runner saw the query settleable.
    pub settleable_since: Option<u64>,
    /// Failed attempts since the job last made progress (see [`MAX_FAILED_ATTEMPTS`]).
    pub failed_attempts: u32,
}

impl JobState {
    /// Notes what the market's answer at `height` tells about time (when settling opened).
    pub fn observe(&mut self, phase: QueryPhase, height: u64) {
        if phase == QueryPhase::Settleable {
            self.settleable_since.get_or_insert(height);
        }
    }

    /// Notes a failed attempt (unreadable query, rejected transaction); returns
    /// [`Action::GiveUp`] once there were [`MAX_FAILED_ATTEMPTS`] of them, else [`Action::Wait`].
    pub fn note_failure(&mut self) -> Action {
        self.failed_attempts += 1;
        if self.failed_attempts >= MAX_FAILED_ATTEMPTS {
            Action::GiveUp {
                attempts: self.failed_attempts,
            }
        } else {
            Action::Wait
        }
    }

    /// Notes that the job moved forward (a result, a transaction accepted).
    pub fn note_progress(&mut self) {
        self.failed_attempts = 0;
    }

    /// Whether `step` was sent less than [`RESEND_AFTER_BLOCKS`] blocks before `height`.
    pub fn recently_sent(&self, step: Step, height: u64) -> bool {
        matches!(self.last_sent, Some((s, at)) if s == step && height < at + RESEND_AFTER_BLOCKS)
    }
}

/// A market transaction the runner sends for a query's draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrawStep {
    /// Submit this node's ticket.
    Enter,
    /// Draw the query's seats.
    Draw,
}

/// What the runner knows about a draw it takes part in. Not rebuilt after a restart: a draw
/// lasts a few blocks, and the other entrants draw a query whose leader went away.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawState {
    /// What this node's ticket signs.
    pub draw_input: Hash32,
    /// Whether the market holds this node's ticket.
    pub entered: bool,
    /// The last step sent and the height it was sent at.
    pub last_sent: Option<(DrawStep, u64)>,
    /// Failed attempts since the draw last made progress (see [`MAX_FAILED_ATTEMPTS`]).
    pub failed_attempts: u32,
}

impl DrawState {
    /// A draw announced by `invite`, not entered yet.
    pub fn new(invite: &DrawInvite) -> Self {
        DrawState {
            draw_input: invite.draw_input,
            entered: false,
            last_sent: None,
            failed_attempts: 0,
        }
    }

    /// Notes what the market's answer tells: whether it holds this node's ticket.
    pub fn observe(&mut self, state: &QueryResponse, me: &str) {
        if state.tickets.iter().any(|t| t.node.as_str() == me) {
            self.entered = true;
        }
    }

    /// As [`JobState::note_failure`].
    pub fn note_failure(&mut self) -> DrawAction {
        self.failed_attempts += 1;
        if self.failed_attempts >= MAX_FAILED_ATTEMPTS {
            DrawAction::GiveUp {
                attempts: self.failed_attempts,
            }
        } else {
            DrawAction::Wait
        }
    }

    /// Notes that the draw moved forward (a transaction accepted).
    pub fn note_progress(&mut self) {
        self.failed_attempts = 0;
    }

    /// Whether `step` was sent less than [`RESEND_AFTER_BLOCKS`] blocks before `height`.
    pub fn recently_sent(&self, step: DrawStep, height: u64) -> bool {
        matches!(self.last_sent, Some((s, at)) if s == step && height < at + RESEND_AFTER_BLOCKS)
    }
}

/// Why the runner stops following a draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrawEnd {
    /// The market has no such query.
    Unknown,
    /// The query is drawn (or refunded for want of tickets): its assignment, if it names this
    /// node, is a job like any other.
    Drawn,
    /// The draw closed without this node's ticket.
    Missed,
}

/// What to do next for a draw.
#[derive(Clone, Debug, PartialEq)]
pub enum DrawAction {
    /// Submit this node's ticket (once the work queue would take the query on).
    Enter,
    /// Draw the query: as its leader, or as a backup for a leader that did not.
    Draw {
        /// Whether this node leads the draw.
        leader: bool,
    },
    /// Stop following the draw.
    Forget(DrawEnd),
    /// The draw failed [`MAX_FAILED_ATTEMPTS`] times in a row: forget it.
    GiveUp {
        /// Failed attempts counted.
        attempts: u32,
    },
    /// Nothing to do at this height.
    Wait,
}

/// The next action for a draw in state `draw`, given the market's answer `chain` (`None`: the
/// market has no such query) for the node `me` at `height`. A transaction sent after block
/// `height` lands in a later block: a ticket is worth sending only before the block of the draw
/// deadline, and once that block is in, the tickets are final and the leader draws (the draw
/// lands after the deadline, as the market requires); the other entrants wait
/// [`DRAW_BACKUP_BLOCKS`] for it first.
pub fn decide_draw(
    draw: &DrawState,
    chain: Option<&QueryResponse>,
    me: &str,
    height: u64,
) -> DrawAction {
    let Some(state) = chain else {
        return DrawAction::Forget(DrawEnd::Unknown);
    };
    if state.query.status != QueryStatus::Drawing {
        return DrawAction::Forget(DrawEnd::Drawn);
    }
    if draw.failed_attempts >= MAX_FAILED_ATTEMPTS {
        return DrawAction::GiveUp {
            attempts: draw.failed_attempts,
        };
    }
    let entered = draw.entered || state.tickets.iter().any(|t| t.node.as_str() == me);
    let deadline = state.query.draw_deadline;
    if height < deadline {
        if entered || draw.recently_sent(DrawStep::Enter, height) {
            return DrawAction::Wait;
        }
        return DrawAction::Enter;
    }
    if !entered {
        return DrawAction::Forget(DrawEnd::Missed);
    }
    if draw.recently_sent(DrawStep::Draw, height) {
        return DrawAction::Wait;
    }
    let leader = leads_draw(state, me);
    if leader || height >= deadline + DRAW_BACKUP_BLOCKS {
        DrawAction::Draw { leader }
    } else {
        DrawAction::Wait
    }
}

/// What to do next for one query.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The market has no such query, or does not list this node for it: forget the job.
    Drop,
    /// The query is settled or disputed: record what it did to this node, forget the job.
    Finished {
        /// Settled or disputed.
        status: QueryStatus,
        /// This node's outcome (paid, unpaid, slashed).
        outcome: Option<NodeOutcome>,
    },
    /// Run the kernel on the query (the result is needed for a commit or a reveal).
    Generate,
    /// The job failed [`MAX_FAILED_ATTEMPTS`] times in a row: forget it (the market settles
    /// the query without this node).
    GiveUp {
        /// Failed attempts counted.
        attempts: u32,
    },
    /// Send `step` (again, when an earlier one did not land within [`RESEND_AFTER_BLOCKS`]).
    Send(Step),
    /// Nothing to do at this height.
    Wait,
}

/// The next action for a job in state `job`, given the market's answer `chain` (`None`: the
/// market has no such query) for the node `me` at `height`.
pub fn decide(job: &JobState, chain: Option<&QueryResponse>, me: &str, height: u64) -> Action {
    let Some(state) = chain else {
        return Action::Drop;
    };
    let Some(mine) = state.assignments.iter().find(|a| a.node.as_str() == me) else {
        return Action::Drop;
    };
    if state.query.status.is_final() {
        return Action::Finished {
            status: state.query.status,
            outcome: mine.outcome.clone(),
        };
    }
    if job.failed_attempts >= MAX_FAILED_ATTEMPTS {
        return Action::GiveUp {
            attempts: job.failed_attempts,
        };
    }
    let has_result = job.result.is_some();
    let needs_result = mine.reveal.is_none()
        && !matches!(state.phase, QueryPhase::Settleable | QueryPhase::Closed);
    if !has_result && !job.computing && !job.queued && needs_result {
        return Action::Generate;
    }
    let ready = |step| has_result && !job.recently_sent(step, height);
    match state.phase {
        QueryPhase::Commit if mine.commitment.is_none() && ready(Step::Commit) => {
            Action::Send(Step::Commit)
        }
        QueryPhase::Reveal
            if mine.commitment.is_some() && mine.reveal.is_none() && ready(Step::Reveal) =>
        {
            Action::Send(Step::Reveal)
        }
        QueryPhase::Settleable => {
            let since = job.settleable_since.unwrap_or(height);
            let first = state
                .assignments
                .first()
                .is_some_and(|a| a.node.as_str() == me);
            if (first || height >= since + SETTLE_BACKUP_BLOCKS)
                && !job.recently_sent(Step::Settle, height)
            {
                Action::Send(Step::Settle)
            } else {
                Action::Wait
            }
        }
        _ => Action::Wait,
    }
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{Decimal, HexBinary, Uint128};
    use nesa_market::market::SlashReason;
    use nesa_sdk::market::progress::fixtures::{
        self, commit, drawing, enter, node, reveal, submitted,
    };

    use super::*;

    /// The first node the fixtures assign; `second()` is the next one.
    fn first() -> String {
        submitted(3).assignments[0].node.to_string()
    }

    fn second() -> String {
        submitted(3).assignments[1].node.to_string()
    }

    fn result() -> QueryResult {
        QueryResult {
            output: vec![1, 2, 3],
            fingerprint: vec![4, 5],
            output_tokens: 3,
            tokens_per_second: 10.0,
            activations: None,
        }
    }

    fn generated() -> JobState {
        JobState {
            result: Some(result()),
            ..JobState::default()
        }
    }

    /// All three nodes committed at height 12: the reveal phase.
    fn committed() -> QueryResponse {
        let mut state = submitted(3);
        for node in 0..3 {
            commit(&mut state, node, 12);
        }
        state
    }

    fn settleable() -> QueryResponse {
        let mut state = committed();
        reveal(&mut state, 0, 15, &[1]);
        reveal(&mut state, 1, 15, &[1]);
        reveal(&mut state, 2, 16, &[1]);
        state.phase = QueryPhase::Settleable;
        state
    }

    #[test]
    fn a_new_assignment_in_the_commit_phase_is_generated() {
        let action = decide(&JobState::default(), Some(&submitted(3)), &first(), 11);
        assert_eq!(action, Action::Generate);
    }

    #[test]
    fn a_job_being_computed_waits() {
        let job = JobState {
            computing: true,
            ..JobState::default()
        };
        assert_eq!(
            decide(&job, Some(&submitted(3)), &first(), 11),
            Action::Wait
        );
    }

    #[test]
    fn a_generated_result_is_committed_in_the_commit_phase() {
        let action = decide(&generated(), Some(&submitted(3)), &first(), 12);
        assert_eq!(action, Action::Send(Step::Commit));
    }

    #[test]
    fn a_commit_sent_but_not_yet_seen_is_resent_after_a_few_blocks() {
        let job = JobState {
            last_sent: Some((Step::Commit, 12)),
            ..generated()
        };
        let state = submitted(3);
        for height in 12..12 + RESEND_AFTER_BLOCKS {
            assert_eq!(decide(&job, Some(&state), &first(), height), Action::Wait);
        }
        assert_eq!(
            decide(&job, Some(&state), &first(), 12 + RESEND_AFTER_BLOCKS),
            Action::Send(Step::Commit)
        );
    }

    #[test]
    fn an_already_committed_query_waits_for_the_reveal_phase() {
        let mut state = submitted(3);
        commit(&mut state, 0, 12);
        assert_eq!(
            decide(&generated(), Some(&state), &first(), 13),
            Action::Wait
        );
    }

    #[test]
    fn a_committed_result_is_revealed_in_the_reveal_phase() {
        let state = committed();
        assert_eq!(state.phase, QueryPhase::Reveal);
        let job = JobState {
            last_sent: Some((Step::Commit, 12)),
            ..generated()
        };
        assert_eq!(
            decide(&job, Some(&state), &first(), 13),
            Action::Send(Step::Reveal)
        );
    }

    #[test]
    fn a_reveal_sent_but_not_yet_seen_is_resent_after_a_few_blocks() {
        let state = committed();
        let job = JobState {
            last_sent: Some((Step::Reveal, 14)),
            ..generated()
        };
        assert_eq!(decide(&job, Some(&state), &first(), 16), Action::Wait);
        assert_eq!(
            decide(&job, Some(&state), &first(), 14 + RESEND_AFTER_BLOCKS),
            Action::Send(Step::Reveal)
        );
    }

    #[test]
    fn an_already_revealed_query_waits_for_settlement() {
        let mut state = committed();
        reveal(&mut state, 0, 14, &[1]);
        assert_eq!(
            decide(&generated(), Some(&state), &first(), 15),
            Action::Wait
        );
        // A restarted runner does not run the kernel again for a query it already revealed.
        assert_eq!(
            decide(&JobState::default(), Some(&state), &first(), 15),
            Action::Wait
        );
    }

    #[test]
    fn a_restarted_runner_regenerates_then_reveals_what_it_committed() {
        let state = committed();
        // Rebuilt from chain state: nothing computed, nothing sent.
        let restarted = JobState::default();
        assert_eq!(
            decide(&restarted, Some(&state), &first(), 14),
            Action::Generate
        );
        assert_eq!(
            decide(&generated(), Some(&state), &first(), 15),
            Action::Send(Step::Reveal)
        );
    }

    #[test]
    fn a_restarted_runner_regenerates_then_commits_in_the_commit_phase() {
        let restarted = JobState::default();
        let state = submitted(3);
        assert_eq!(
            decide(&restarted, Some(&state), &second(), 14),
            Action::Generate
        );
        assert_eq!(
            decide(&generated(), Some(&state), &second(), 14),
            Action::Send(Step::Commit)
        );
    }

    #[test]
    fn a_missed_commit_deadline_leaves_nothing_to_reveal() {
        // The commit window closed without this node's commitment: the others reveal.
        let mut state = submitted(3);
        commit(&mut state, 1, 12);
        commit(&mut state, 2, 12);
        state.phase = QueryPhase::Reveal;
        assert_eq!(
            decide(&generated(), Some(&state), &first(), 21),
            Action::Wait
        );
    }

    #[test]
    fn after_the_reveal_deadline_the_query_is_settled_without_generating() {
        let mut state = submitted(3);
        commit(&mut state, 0, 12);
        state.phase = QueryPhase::Settleable;
        let since = JobState {
            settleable_since: Some(31),
            ..JobState::default()
        };
        assert_eq!(
            decide(&since, Some(&state), &first(), 31),
            Action::Send(Step::Settle)
        );
        assert_eq!(
            decide(
                &JobState {
                    settleable_since: Some(31),
                    ..JobState::default()
                },
                Some(&state),
                &second(),
                31
            ),
            Action::Wait
        );
    }

    #[test]
    fn the_first_node_settles_at_once() {
        let mut job = generated();
        job.observe(QueryPhase::Settleable, 17);
        assert_eq!(job.settleable_since, Some(17));
        assert_eq!(
            decide(&job, Some(&settleable()), &first(), 17),
            Action::Send(Step::Settle)
        );
    }

    #[test]
    fn other_nodes_settle_as_a_backup_after_a_few_blocks() {
        let mut job = generated();
        job.observe(QueryPhase::Settleable, 17);
        job.observe(QueryPhase::Settleable, 18);
        assert_eq!(job.settleable_since, Some(17), "the first sighting counts");
        let state = settleable();
        assert_eq!(decide(&job, Some(&state), &second(), 18), Action::Wait);
        assert_eq!(
            decide(&job, Some(&state), &second(), 17 + SETTLE_BACKUP_BLOCKS),
            Action::Send(Step::Settle)
        );
    }

    #[test]
    fn a_settle_sent_but_not_yet_seen_is_resent_after_a_few_blocks() {
        let job = JobState {
            last_sent: Some((Step::Settle, 17)),
            settleable_since: Some(17),
            ..generated()
        };
        let state = settleable();
        assert_eq!(decide(&job, Some(&state), &first(), 18), Action::Wait);
        assert_eq!(
            decide(&job, Some(&state), &first(), 17 + RESEND_AFTER_BLOCKS),
            Action::Send(Step::Settle)
        );
    }

    #[test]
    fn an_already_settled_query_is_finished_with_this_nodes_outcome() {
        let state = fixtures::honest_round(&[5, 6]);
        let action = decide(&generated(), Some(&state), &first(), 18);
        assert_eq!(
            action,
            Action::Finished {
                status: QueryStatus::Settled,
                outcome: Some(NodeOutcome::Paid {
                    amount: Uint128::new(29)
                }),
            }
        );
        // The same for a restarted runner that knows nothing about it.
        assert_eq!(
            decide(&JobState::default(), Some(&state), &first(), 18),
            action
        );
    }

    #[test]
    fn a_disputed_query_is_finished_and_reports_a_slash() {
        let state = fixtures::disputed_round();
        let third = state.assignments[2].node.to_string();
        assert_eq!(
            decide(&JobState::default(), Some(&state), &third, 18),
            Action::Finished {
                status: QueryStatus::Disputed,
                outcome: Some(NodeOutcome::Slashed {
                    reason: SlashReason::NoReveal,
                    fraction: Decimal::percent(20),
                }),
            }
        );
    }

    #[test]
    fn a_query_that_no_longer_exists_is_dropped() {
        assert_eq!(decide(&generated(), None, &first(), 12), Action::Drop);
    }

    #[test]
    fn a_query_not_assigned_to_this_node_is_dropped() {
        let action = decide(&generated(), Some(&submitted(3)), "nesa1someoneelse", 12);
        assert_eq!(action, Action::Drop);
    }

    const MARKET: &str = "nesa1market";

    fn assigned_event(contract: &str, nodes: &str, query_id: &str) -> TxEvent {
        let attribute = |key: &str, value: &str| nesa_sdk::TxEventAttribute {
            key: key.into(),
            value: value.into(),
        };
        TxEvent {
            kind: wasm_type(market::QUERY_ASSIGNED),
            attributes: vec![
                attribute(CONTRACT_ADDRESS_ATTRIBUTE, contract),
                attribute(market::attr::QUERY_ID, query_id),
                attribute(market::attr::NODES, nodes),
            ],
        }
    }

    #[test]
    fn an_assignment_event_of_the_market_contract_is_taken() {
        let nodes = format!("nesa1other,{}", first());
        let event = assigned_event(MARKET, &nodes, "7");
        assert_eq!(assignment_of(&event, MARKET, &first()), Some(7));
        assert_eq!(assignment_of(&event, MARKET, "nesa1someoneelse"), None);
    }

    #[test]
    fn an_assignment_event_from_another_contract_is_ignored() {
        // Anyone can upload a contract that emits `wasm-query_assigned` naming this node.
        let spoofed = assigned_event("nesa1impostor", &first(), "7");
        assert_eq!(assignment_of(&spoofed, MARKET, &first()), None);
        let mut unsigned = assigned_event(MARKET, &first(), "7");
        unsigned
            .attributes
            .retain(|a| a.key != CONTRACT_ADDRESS_ATTRIBUTE);
        assert_eq!(assignment_of(&unsigned, MARKET, &first()), None);
        assert!(!emitted_by(&spoofed, MARKET));
    }

    #[test]
    fn an_assignment_event_with_a_bad_query_id_is_ignored() {
        let event = assigned_event(MARKET, &first(), "seven");
        assert_eq!(assignment_of(&event, MARKET, &first()), None);
    }

    #[test]
    fn a_settle_that_keeps_failing_is_given_up_after_bounded_attempts() {
        let mut job = generated();
        job.observe(QueryPhase::Settleable, 17);
        let state = settleable();
        for attempt in 1..MAX_FAILED_ATTEMPTS {
            assert_eq!(
                decide(&job, Some(&state), &first(), 17 + attempt as u64),
                Action::Send(Step::Settle)
            );
            assert_eq!(job.note_failure(), Action::Wait, "attempt {attempt}");
        }
        assert_eq!(
            job.note_failure(),
            Action::GiveUp {
                attempts: MAX_FAILED_ATTEMPTS
            }
        );
        assert_eq!(
            decide(&job, Some(&state), &first(), 40),
            Action::GiveUp {
                attempts: MAX_FAILED_ATTEMPTS
            }
        );
    }

    #[test]
    fn progress_resets_the_failed_attempts() {
        let mut job = generated();
        for _ in 1..MAX_FAILED_ATTEMPTS {
            job.note_failure();
        }
        job.note_progress();
        assert_eq!(job.note_failure(), Action::Wait);
        assert_eq!(
            decide(&job, Some(&submitted(3)), &first(), 12),
            Action::Send(Step::Commit)
        );
    }

    #[test]
    fn a_given_up_job_still_records_a_finished_query() {
        let state = fixtures::honest_round(&[5, 6]);
        let job = JobState {
            failed_attempts: MAX_FAILED_ATTEMPTS,
            ..generated()
        };
        assert!(matches!(
            decide(&job, Some(&state), &first(), 18),
            Action::Finished { .. }
        ));
    }

    #[test]
    fn a_queued_job_waits_for_the_engine() {
        let job = JobState {
            queued: true,
            ..JobState::default()
        };
        assert_eq!(
            decide(&job, Some(&submitted(3)), &first(), 11),
            Action::Wait
        );
    }

    fn submitted_event(contract: &str, kernel_id: &str, draw_input: &str) -> TxEvent {
        let attribute = |key: &str, value: &str| nesa_sdk::TxEventAttribute {
            key: key.into(),
            value: value.into(),
        };
        TxEvent {
            kind: wasm_type(market::QUERY_SUBMITTED),
            attributes: vec![
                attribute(CONTRACT_ADDRESS_ATTRIBUTE, contract),
                attribute(market::attr::QUERY_ID, "7"),
                attribute(market::attr::KERNEL_ID, kernel_id),
                attribute(market::attr::REDUNDANCY, "3"),
                attribute(market::attr::DRAW_INPUT, draw_input),
                attribute(market::attr::DRAW_DEADLINE, "13"),
            ],
        }
    }

    fn input_hex() -> String {
        "d1".repeat(32)
    }

    /// A draw this node follows, from the fixtures' submission event.
    fn following() -> DrawState {
        let event = submitted_event(MARKET, "1", &input_hex());
        DrawState::new(&draw_of(&event, MARKET, 1).expect("a draw"))
    }

    /// Three nodes entered: the index of the one that leads.
    fn entered_by_three() -> (QueryResponse, usize) {
        let mut state = drawing(3);
        for i in 0..3 {
            enter(&mut state, &node(i), 100 * (i as u128 + 1), i as u8);
        }
        let leaders: Vec<usize> = (0..3)
            .filter(|&i| leads_draw(&state, node(i).as_str()))
            .collect();
        assert_eq!(leaders.len(), 1, "exactly one node leads");
        (state, leaders[0])
    }

    #[test]
    fn a_draw_of_the_market_for_this_kernel_is_followed() {
        let event = submitted_event(MARKET, "1", &input_hex());
        assert_eq!(
            draw_of(&event, MARKET, 1),
            Some(DrawInvite {
                query_id: 7,
                draw_input: [0xd1; 32],
                draw_deadline: 13,
            })
        );
        // Another kernel's query is another runner's.
        assert_eq!(draw_of(&event, MARKET, 2), None);
    }

    #[test]
    fn a_submission_event_from_another_contract_is_ignored() {
        // Anyone can upload a contract that emits `wasm-query_submitted` for this kernel.
        let spoofed = submitted_event("nesa1impostor", "1", &input_hex());
        assert_eq!(draw_of(&spoofed, MARKET, 1), None);
        let mut unsigned = submitted_event(MARKET, "1", &input_hex());
        unsigned
            .attributes
            .retain(|a| a.key != CONTRACT_ADDRESS_ATTRIBUTE);
        assert_eq!(draw_of(&unsigned, MARKET, 1), None);
        let mut assigned = submitted_event(MARKET, "1", &input_hex());
        assigned.kind = wasm_type(market::QUERY_ASSIGNED);
        assert_eq!(draw_of(&assigned, MARKET, 1), None);
    }

    #[test]
    fn a_submission_event_with_a_malformed_draw_is_ignored() {
        let short = "d1".repeat(31);
        let long = "d1".repeat(33);
        let not_hex = "zz".repeat(32);
        let odd = format!("{}d", "d1".repeat(31));
        for input in [
            short.as_str(),
            long.as_str(),
            not_hex.as_str(),
            odd.as_str(),
            "",
        ] {
            let event = submitted_event(MARKET, "1", input);
            assert_eq!(draw_of(&event, MARKET, 1), None, "draw input {input:?}");
        }
        for (key, value) in [
            (market::attr::DRAW_DEADLINE, "soon"),
            (market::attr::QUERY_ID, "-1"),
            (market::attr::KERNEL_ID, "one"),
        ] {
            let mut event = submitted_event(MARKET, "1", &input_hex());
            for attribute in &mut event.attributes {
                if attribute.key == key {
                    attribute.value = value.into();
                }
            }
            assert_eq!(draw_of(&event, MARKET, 1), None, "{key} = {value}");
            event.attributes.retain(|a| a.key != key);
            assert_eq!(draw_of(&event, MARKET, 1), None, "no {key}");
        }
    }

    #[test]
    fn an_open_draw_is_entered_once_before_its_deadline_block() {
        let me = node(0);
        let mut state = drawing(3);
        let mut draw = following();
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 10),
            DrawAction::Enter
        );
        draw.last_sent = Some((DrawStep::Enter, 10));
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 11),
            DrawAction::Wait
        );
        enter(&mut state, &me, 100, 1);
        draw.observe(&state, me.as_str());
        assert!(draw.entered);
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 12),
            DrawAction::Wait
        );
        // A ticket sent after the deadline block could only land too late.
        let late = following();
        let open = drawing(3);
        assert_eq!(
            decide_draw(&late, Some(&open), me.as_str(), 13),
            DrawAction::Forget(DrawEnd::Missed)
        );
    }

    #[test]
    fn the_leader_draws_as_soon_as_the_tickets_are_final() {
        let (state, leader) = entered_by_three();
        let me = node(leader);
        let mut draw = following();
        draw.observe(&state, me.as_str());
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 12),
            DrawAction::Wait
        );
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 13),
            DrawAction::Draw { leader: true }
        );
        // Sent, not drawn yet: resent only after a few blocks.
        draw.last_sent = Some((DrawStep::Draw, 13));
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 14),
            DrawAction::Wait
        );
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 13 + RESEND_AFTER_BLOCKS),
            DrawAction::Draw { leader: true }
        );
    }

    #[test]
    fn a_node_that_does_not_lead_waits_then_draws_as_a_backup() {
        let (state, leader) = entered_by_three();
        let me = node((leader + 1) % 3);
        let mut draw = following();
        draw.observe(&state, me.as_str());
        for height in 13..13 + DRAW_BACKUP_BLOCKS {
            assert_eq!(
                decide_draw(&draw, Some(&state), me.as_str(), height),
                DrawAction::Wait,
                "height {height}"
            );
        }
        assert_eq!(
            decide_draw(&draw, Some(&state), me.as_str(), 13 + DRAW_BACKUP_BLOCKS),
            DrawAction::Draw { leader: false }
        );
    }

    #[test]
    fn the_leader_is_the_first_seat_holder_of_the_tickets() {
        let (state, leader) = entered_by_three();
        let entries: Vec<Entry<String>> = state
            .tickets
            .iter()
            .map(|t| Entry {
                node: t.node.to_string(),
                weight: t.weight,
                output: t.output.as_slice().try_into().unwrap(),
            })
            .collect();
        let first = seat_holders(&entries, 3)[0];
        assert_eq!(entries[first].node, node(leader).as_str());
        // A ticket this runner cannot read: nobody leads, every entrant waits for the backup.
        let mut garbled = state.clone();
        garbled.tickets[0].output = HexBinary::from(vec![1, 2, 3]);
        assert!((0..3).all(|i| !leads_draw(&garbled, node(i).as_str())));
        let mut draw = following();
        draw.entered = true;
        assert_eq!(
            decide_draw(&draw, Some(&garbled), node(leader).as_str(), 13),
            DrawAction::Wait
        );
    }

    #[test]
    fn a_drawn_or_unknown_query_ends_the_draw() {
        let (mut state, leader) = entered_by_three();
        let draw = following();
        assert_eq!(
            decide_draw(&draw, None, node(0).as_str(), 13),
            DrawAction::Forget(DrawEnd::Unknown)
        );
        fixtures::draw(&mut state, &[node(leader)]);
        assert_eq!(
            decide_draw(&draw, Some(&state), node(0).as_str(), 14),
            DrawAction::Forget(DrawEnd::Drawn)
        );
        // The assignment is then a job like any other.
        assert_eq!(
            decide(
                &JobState::default(),
                Some(&state),
                node(leader).as_str(),
                14
            ),
            Action::Generate
        );
    }

    #[test]
    fn a_draw_that_keeps_failing_is_given_up_after_bounded_attempts() {
        let state = drawing(3);
        let mut draw = following();
        for attempt in 1..MAX_FAILED_ATTEMPTS {
            assert_eq!(draw.note_failure(), DrawAction::Wait, "attempt {attempt}");
        }
        assert_eq!(
            draw.note_failure(),
            DrawAction::GiveUp {
                attempts: MAX_FAILED_ATTEMPTS
            }
        );
        assert_eq!(
            decide_draw(&draw, Some(&state), node(0).as_str(), 10),
            DrawAction::GiveUp {
                attempts: MAX_FAILED_ATTEMPTS
            }
        );
        draw.note_progress();
        assert_eq!(
            decide_draw(&draw, Some(&state), node(0).as_str(), 10),
            DrawAction::Enter
        );
    }
}

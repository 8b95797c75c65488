//! What `nesa ask` reports once a query is closed: the answer, who was paid, what it cost,
//! who was slashed, and how long each phase took.

use std::fmt::Write;

use cosmwasm_std::{Addr, Coin, Decimal, Uint128};
use nesa_market::market::{NodeOutcome, QueryResponse, QueryStatus, SlashReason};
use nesa_sdk::market::progress::{Milestone, PhaseTiming};
use serde::Serialize;

use crate::cli::output::{percent, short_address};

/// A node slashed at settlement, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlashedNode {
    pub node: Addr,
    pub reason: SlashReason,
    pub fraction: Decimal,
}

/// Everything `nesa ask` reports about a closed query (`--output json` prints this).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AskSummary {
    pub query_id: u64,
    pub kernel_id: u64,
    pub status: QueryStatus,
    /// The decoded answer; `None` when the query was disputed.
    pub answer: Option<String>,
    /// The submitting transaction.
    pub tx_hash: String,
    pub nodes: Vec<Addr>,
    pub winners: Vec<Addr>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub escrow: Coin,
    /// What the winners received, after the protocol fee and the royalty.
    pub paid_to_nodes: Uint128,
    pub protocol_fee: Uint128,
    pub kernel_royalty: Uint128,
    pub refunded: Uint128,
    pub slashed: Vec<SlashedNode>,
    pub submitted_height: u64,
    pub closed_height: Option<u64>,
    /// Steps between milestones, in blocks and wall-clock seconds.
    pub phases: Vec<PhaseTiming>,
    /// Wall-clock seconds from submitting to seeing the query closed.
    pub total_seconds: Option<f64>,
}

impl AskSummary {
    /// The summary of closed query `state`.
    pub fn new(
        state: &QueryResponse,
        answer: Option<String>,
        tx_hash: String,
        phases: Vec<PhaseTiming>,
        total_seconds: Option<f64>,
    ) -> Self {
        let query = &state.query;
        let settlement = query.settlement.as_ref();
        let paid_to_nodes = state
            .assignments
            .iter()
            .filter_map(|a| match a.outcome {
                Some(NodeOutcome::Paid { amount }) => Some(amount),
                _ => None,
            })
            .sum();
        let slashed = state
            .assignments
            .iter()
            .filter_map(|a| match a.outcome {
                Some(NodeOutcome::Slashed { reason, fraction }) => Some(SlashedNode {
                    node: a.node.clone(),
                    reason,
                    fraction,
                }),
                _ => None,
            })
            .collect();
        AskSummary {
            query_id: query.id,
            kernel_id: query.kernel_id,
            status: query.status,
            answer,
            tx_hash,
            nodes: query.nodes.clone(),
            winners: settlement.map(|s| s.winners.clone()).unwrap_or_default(),
            input_tokens: query.input_tokens,
            output_tokens: settlement.map_or(0, |s| s.output_tokens),
            escrow: query.escrow.clone(),
            paid_to_nodes,
            protocol_fee: settlement.map(|s| s.protocol_fee).unwrap_or_default(),
            kernel_royalty: settlement.map(|s| s.royalty).unwrap_or_default(),
            refunded: settlement.map(|s| s.refunded).unwrap_or_default(),
            slashed,
            submitted_height: query.submitted_height,
            closed_height: settlement.map(|s| s.height),
            phases,
            total_seconds,
        }
    }

    /// The one-line message for a disputed query: why there is no answer and where the
    /// money went.
    pub fn dispute_message(&self) -> String {
        if self.nodes.is_empty() {
            return format!(
                "query {} was not drawn: too few nodes entered its draw, so nobody answered; the escrow was refunded ({}{} back to you)",
                self.query_id, self.refunded, self.escrow.denom
            );
        }
        format!(
            "query {} was disputed: its {} nodes reached no quorum, so no answer is available; the escrow was refunded ({}{} back to you)",
            self.query_id,
            self.nodes.len(),
            self.refunded,
            self.escrow.denom
        )
    }
}

fn milestone_label(milestone: Milestone, status: QueryStatus) -> &'static str {
    match milestone {
        Milestone::Closed => status.as_str(),
        other => other.as_str(),
    }
}

fn addresses(addresses: &[Addr]) -> String {
    addresses
        .iter()
        .map(|a| short_address(a.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn blocks(n: u64) -> String {
    if n == 1 {
        "1 block".to_owned()
    } else {
        format!("{n} blocks")
    }
}

fn seconds(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), |s| format!("{s:.1} s"))
}

/// The summary for people (stderr, after the answer on stdout).
pub fn describe(summary: &AskSummary) -> String {
    let denom = &summary.escrow.denom;
    let mut text = String::new();
    let closed = summary
        .closed_height
        .map(|h| format!(" at height {h}"))
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "query {}: {}{closed} (kernel {}, tx {})",
        summary.query_id,
        summary.status.as_str(),
        summary.kernel_id,
        summary.tx_hash
    );
    let winners = if summary.nodes.is_empty() {
        "none (not drawn)".to_owned()
    } else if summary.winners.is_empty() {
        "none (no quorum)".to_owned()
    } else {
        format!(
            "{}/{}: {}",
            summary.winners.len(),
            summary.nodes.len(),
            addresses(&summary.winners)
        )
    };
    let _ = writeln!(text, "winners: {winners}");
    let _ = writeln!(
        text,
        "tokens: {} in, {} out",
        summary.input_tokens, summary.output_tokens
    );
    let _ = writeln!(text, "paid to nodes: {}{denom}", summary.paid_to_nodes);
    let _ = writeln!(text, "protocol fee: {}{denom}", summary.protocol_fee);
    let _ = writeln!(text, "kernel royalty: {}{denom}", summary.kernel_royalty);
    let _ = writeln!(
        text,
        "refunded: {}{denom} of the {} escrow",
        summary.refunded, summary.escrow
    );
    if summary.slashed.is_empty() {
        let _ = writeln!(text, "slashed: none");
    } else {
        let _ = writeln!(text, "slashed:");
        for slashed in &summary.slashed {
            let _ = writeln!(
                text,
                "  {} {} for {}",
                slashed.node,
                percent(slashed.fraction),
                slashed.reason.as_str()
            );
        }
    }
    let _ = writeln!(text, "phases:");
    let labels: Vec<String> = summary
        .phases
        .iter()
        .map(|p| {
            format!(
                "{} → {}",
                milestone_label(p.from, summary.status),
                milestone_label(p.to, summary.status)
            )
        })
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (label, phase) in labels.iter().zip(&summary.phases) {
        let pad = width - label.chars().count();
        let _ = writeln!(
            text,
            "  {label}{:pad$}  {:<8}  {:>7}",
            "",
            blocks(phase.blocks),
            seconds(phase.seconds)
        );
    }
    let total_blocks = summary
        .closed_height
        .map(|h| h.saturating_sub(summary.submitted_height));
    let _ = writeln!(
        text,
        "  total: {}, {}",
        total_blocks.map_or_else(|| "–".to_owned(), blocks),
        seconds(summary.total_seconds)
    );
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nesa_sdk::market::progress::fixtures::*;
    use nesa_sdk::market::progress::Timeline;

    use super::*;

    fn timed(state: &QueryResponse) -> (Vec<PhaseTiming>, Option<f64>) {
        let mut timeline = Timeline::default();
        timeline.mark(Milestone::Submitted, Duration::ZERO);
        timeline.mark(Milestone::Assigned, Duration::from_millis(1100));
        timeline.mark(Milestone::AllCommitted, Duration::from_millis(4100));
        timeline.mark(Milestone::AllRevealed, Duration::from_millis(7200));
        timeline.mark(Milestone::Closed, Duration::from_millis(8300));
        (timeline.phases(state), Some(8.3))
    }

    #[test]
    fn a_settled_query_reports_payments_and_phase_times() {
        let state = honest_round(&[5, 6, 7, 8]);
        let (phases, total) = timed(&state);
        let summary = AskSummary::new(&state, Some("Paris.".into()), "AB12".into(), phases, total);
        assert_eq!(summary.paid_to_nodes, Uint128::new(99));
        assert_eq!(summary.output_tokens, 4);
        let text = describe(&summary);
        let expected = "\
query 7: settled at height 17 (kernel 1, tx AB12)
winners: 3/3: nesa1node0…aaa0, nesa1node1…aaa1, nesa1node2…aaa2
tokens: 31 in, 4 out
paid to nodes: 99unes
protocol fee: 9unes
kernel royalty: 9unes
refunded: 360unes of the 477unes escrow
slashed: none
phases:
  submitted → assigned          0 blocks    1.1 s
  assigned → all committed      3 blocks    3.0 s
  all committed → all revealed  3 blocks    3.1 s
  all revealed → settled        1 block     1.1 s
  total: 7 blocks, 8.3 s
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_disputed_query_reports_the_refund_and_the_slashed_node() {
        let state = disputed_round();
        let (phases, total) = timed(&state);
        let summary = AskSummary::new(&state, None, "AB12".into(), phases, total);
        assert_eq!(summary.refunded, Uint128::new(477));
        assert_eq!(summary.slashed.len(), 1);
        let text = describe(&summary);
        assert!(text.starts_with("query 7: disputed at height 17"), "{text}");
        assert!(text.contains("winners: none (no quorum)\n"), "{text}");
        assert!(
            text.contains("nesa1node2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2 20% for no_reveal"),
            "{text}"
        );
        assert!(
            text.contains("  all committed → disputed  5 blocks"),
            "{text}"
        );
        assert_eq!(
            summary.dispute_message(),
            "query 7 was disputed: its 3 nodes reached no quorum, so no answer is available; the escrow was refunded (477unes back to you)"
        );
    }

    #[test]
    fn a_query_refunded_at_the_draw_says_nobody_was_drawn() {
        let mut state = drawing(3);
        let mut settlement = settlement(14);
        settlement.refunded = state.query.escrow.amount;
        close(&mut state, QueryStatus::Disputed, settlement);
        let summary = AskSummary::new(&state, None, "AB12".into(), vec![], None);
        assert!(describe(&summary).contains("winners: none (not drawn)\n"));
        assert_eq!(
            summary.dispute_message(),
            "query 7 was not drawn: too few nodes entered its draw, so nobody answered; the escrow was refunded (477unes back to you)"
        );
    }

    #[test]
    fn the_json_summary_carries_the_answer_and_every_figure() {
        let state = honest_round(&[5]);
        let (phases, total) = timed(&state);
        let summary = AskSummary::new(&state, Some("Paris.".into()), "AB12".into(), phases, total);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["answer"], "Paris.");
        assert_eq!(json["status"], "settled");
        assert_eq!(json["paid_to_nodes"], "81");
        assert_eq!(json["escrow"]["amount"], "477");
        assert_eq!(json["phases"][0]["from"], "submitted");
        assert_eq!(json["phases"][0]["to"], "assigned");
        assert_eq!(json["phases"][1]["to"], "all_committed");
        assert_eq!(json["phases"][3]["blocks"], 1);
        assert_eq!(json["winners"].as_array().unwrap().len(), 3);
    }
}

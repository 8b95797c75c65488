//! `nesa query market …`: queries, kernels and parameters of the inference market.

use std::fmt::Write;

use clap::Subcommand;
use nesa_market::market::{
    Assignment, InferenceQuery, MarketParams, NodeOutcome, QueryResponse, QueryStatus, Sampling,
};
use nesa_market::registry::{Encryption, Kernel, KernelStatus, KernelsResponse};
use nesa_sdk::market::MarketClient;
use nesa_sdk::{ChainClient, ClientError};

use super::output::{emit, milli, percent};
use super::GlobalArgs;

/// Kernels per page when listing them all.

#[derive(Subcommand)]
pub enum MarketQueryCommand {
    /// A query: status, kernel, user, each node's commit, reveal and outcome, the settlement
    Query {
        /// Query id (printed by `nesa ask`)
        id: u64,
    },
    /// Registered kernels (models), in id order
    Kernels {
        /// List only kernels after this id
        #[arg(long, value_name = "ID")]
        start_after: Option<u64>,
        /// List at most this many (default: all)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// One kernel: identity, hashes, shards, prices
    Kernel {
        /// Kernel id
        id: u64,
    },
    /// The market's parameters (deadlines, redundancy, fees, slashing, limits)
    Params,
}

pub async fn run(command: MarketQueryCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let client = ChainClient::new(&global.node)?;
    let market = MarketClient::connect(&client).await?;
    match command {
        MarketQueryCommand::Query { id } => {
            let state = market.query(id).await.map_err(|e| match e {
                ClientError::QueryFailed { .. } => anyhow::anyhow!(
                    "query {id} does not exist: `nesa ask` prints the id of each query it submits"
                ),
                other => other.into(),
            })?;
            emit(global.output, &state, describe_query)
        }
        MarketQueryCommand::Kernels { start_after, limit } => {
            let kernels = match limit {
                Some(limit) => market.kernels(start_after, Some(limit)).await?,
                None => market.all_kernels(start_after).await?,
            };
            emit(global.output, &KernelsResponse { kernels }, |page| {
                describe_kernels(&page.kernels)
            })
        }
        MarketQueryCommand::Kernel { id } => {
            let kernel = market.kernel(id).await.map_err(kernel_lookup_error)?;
            emit(global.output, &kernel, describe_kernel)
        }
        MarketQueryCommand::Params => {
            let params = market.params().await?;
            emit(global.output, &params, describe_params)
        }
    }
}

/// A failed kernel lookup: the registry's own answer when it has none, with where to look.
pub(super) fn kernel_lookup_error(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::QueryFailed { log, .. } => anyhow::anyhow!(
            "{}: list the kernels with `nesa query market kernels`",
            nesa_sdk::chain_reason(&log)
        ),
        other => other.into(),
    }
}

/// Greedy, or the sampler's temperature, top-p and seed.
pub fn describe_sampling(sampling: &Sampling) -> String {
    if sampling.temperature_milli == 0 {
        return "greedy".to_owned();
    }
    format!(
        "temperature {}, top-p {}, seed {}",
        milli(sampling.temperature_milli),
        milli(sampling.top_p_milli),
        sampling.seed
    )
}

fn describe_assignment(assignment: &Assignment, query: &InferenceQuery, denom: &str) -> String {
    let mut parts = Vec::new();
    // A sharded query's seat: its pipeline and the blocks it served.
    if let Some(range) = query.shards.get(assignment.span as usize) {
        parts.push(format!(
            "pipeline {} blocks {}..{}",
            assignment.pipeline, range.start_layer, range.end_layer
        ));
    }
    match assignment.committed_height {
        Some(height) => parts.push(format!("committed at {height}")),
        None => parts.push("not committed".to_owned()),
    }
    match &assignment.reveal {
        Some(reveal) if reveal.matches_commitment => parts.push(format!(
            "revealed at {} ({} tokens)",
            reveal.height, reveal.output_tokens
        )),
        Some(reveal) => parts.push(format!(
            "revealed at {} NOT matching its commitment",
            reveal.height
        )),
        None if assignment.committed_height.is_some() => parts.push("not revealed".to_owned()),
        None => {}
    }
    match &assignment.outcome {
        Some(NodeOutcome::Paid { amount }) => parts.push(format!("paid {amount}{denom}")),
        Some(NodeOutcome::Slashed { reason, fraction }) => parts.push(format!(
            "slashed {} for {}",
            percent(*fraction),
            reason.as_str()
        )),
        Some(NodeOutcome::Unpaid {}) => parts.push("unpaid".to_owned()),
        None => {}
    }
    format!("  {}: {}", assignment.node, parts.join(", "))
}

/// A query for people: what was asked, where it stands, each node and the settlement.
pub fn describe_query(state: &QueryResponse) -> String {
    let query = &state.query;
    let denom = &query.escrow.denom;
    let mut text = String::new();
    let phase = format!("{:?}", state.phase).to_lowercase();
    let _ = writeln!(
        text,
        "query {}: {} (phase {phase})",
        query.id,
        query.status.as_str()
    );
    let _ = writeln!(text, "kernel: {}", query.kernel_id);
    let _ = writeln!(text, "user: {}", query.user);
    let _ = writeln!(
        text,
        "input: {} tokens, at most {} output tokens, {}",
        query.input_tokens,
        query.max_output_tokens,
        describe_sampling(&query.sampling)
    );
    let _ = writeln!(text, "escrow: {}", query.escrow);
    let draw_deadline = if query.draw_input.is_empty() {
        String::new()
    } else {
        format!(", draw deadline {}", query.draw_deadline)
    };
    let _ = writeln!(
        text,
        "heights: submitted {}{draw_deadline}, commit deadline {}, reveal deadline {}",
        query.submitted_height, query.commit_deadline, query.reveal_deadline
    );
    if query.status == QueryStatus::Drawing {
        let plural = if query.tickets == 1 { "" } else { "s" };
        let _ = writeln!(
            text,
            "draw: {} ticket{plural}, anyone may draw after height {}",
            query.tickets, query.draw_deadline
        );
        for ticket in &state.tickets {
            let _ = writeln!(text, "  {}: weight {}", ticket.node, ticket.weight);
        }
    }
    let _ = writeln!(
        text,
        "nodes: {} (quorum {}), {} committed, {} revealed",
        query.redundancy, query.quorum, query.commits, query.reveals
    );
    for assignment in &state.assignments {
        let _ = writeln!(text, "{}", describe_assignment(assignment, query, denom));
    }
    match &query.settlement {
        None => {
            let _ = writeln!(text, "settlement: not yet");
        }
        Some(settlement) => {
            let _ = writeln!(text, "settlement at height {}:", settlement.height);
            let winners = if settlement.winners.is_empty() {
                "none (no quorum)".to_owned()
            } else {
                settlement
                    .winners
                    .iter()
                    .map(|w| w.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(text, "  winners: {winners}");
            if let Some(hash) = &settlement.output_hash {
                let _ = writeln!(
                    text,
                    "  output: {} tokens (sha256 {hash})",
                    settlement.output_tokens
                );
            }
            let to_nodes = settlement
                .paid
                .saturating_sub(settlement.protocol_fee)
                .saturating_sub(settlement.royalty);
            let _ = writeln!(
                text,
                "  cost: {}{denom} = {to_nodes}{denom} to nodes + {}{denom} protocol fee + {}{denom} kernel royalty",
                settlement.paid, settlement.protocol_fee, settlement.royalty
            );
            let _ = writeln!(text, "  refunded: {}{denom}", settlement.refunded);
        }
    }
    text
}

fn encryption_name(encryption: Encryption) -> &'static str {
    match encryption {
        Encryption::None => "none",
        Encryption::EeV1 => "ee-v1",
    }
}

fn status_name(status: KernelStatus) -> &'static str {
    match status {
        KernelStatus::Active => "active",
        KernelStatus::Deprecated => "deprecated",
    }
}

/// One line per kernel: id, name and version, status, shape, prices.
pub fn describe_kernels(kernels: &[Kernel]) -> String {
    if kernels.is_empty() {
        return "no kernels registered".to_owned();
    }
    kernels
        .iter()
        .map(|k| {
            format!(
                "{:>4}  {} v{}  {}  {} {} layers  encryption {}  {}/{} unes per input/output token  k ≥ {}\n",
                k.id,
                k.name,
                k.version,
                status_name(k.status),
                k.architecture,
                k.layer_count,
                encryption_name(k.encryption),
                k.price_per_input_token,
                k.price_per_output_token,
                k.min_redundancy
            )
        })
        .collect()
}

/// A kernel for people: identity, hashes, shards, prices.
pub fn describe_kernel(kernel: &Kernel) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "kernel {}: {} v{} ({})",
        kernel.id,
        kernel.name,
        kernel.version,
        status_name(kernel.status)
    );
    let _ = writeln!(text, "owner: {}", kernel.owner);
    if let Some(parent) = kernel.parent {
        let _ = writeln!(text, "forked from: kernel {parent}");
    }
    let _ = writeln!(
        text,
        "model: {}, {} layers, encryption {}",
        kernel.architecture,
        kernel.layer_count,
        encryption_name(kernel.encryption)
    );
    let _ = writeln!(text, "weights sha256: {}", kernel.weights_sha256);
    let _ = writeln!(text, "tokenizer sha256: {}", kernel.tokenizer_sha256);
    let _ = writeln!(text, "shards:");
    for shard in &kernel.shard_layout {
        let _ = writeln!(
            text,
            "  layers {}..{}: sha256 {}",
            shard.start_layer, shard.end_layer, shard.sha256
        );
    }
    let _ = writeln!(
        text,
        "price: {} unes per input token, {} unes per output token",
        kernel.price_per_input_token, kernel.price_per_output_token
    );
    let _ = writeln!(text, "minimum redundancy: {}", kernel.min_redundancy);
    let _ = writeln!(text, "registered at height: {}", kernel.created_height);
    if !kernel.description.is_empty() {
        let _ = writeln!(text, "description: {}", kernel.description);
    }
    text
}

/// The market parameters for people.
pub fn describe_params(params: &MarketParams) -> String {
    let slash = &params.slash;
    format!(
        "draw window: {} blocks\n\
         commit window: {} blocks\n\
         reveal window: {} blocks\n\
         redundancy: default {}, at most {}, quorum {}\n\
         slashing: no commit {}, no reveal {}, bad reveal {}, outlier {}; jail on fault: {}\n\
         protocol fee: {}\n\
         kernel royalty: {}\n\
         fingerprint: {} positions, tolerance {}\n\
         limits: {} input tokens, {} output tokens, {} payload bytes\n\
         denom: {}",
        params.draw_blocks,
        params.commit_blocks,
        params.reveal_blocks,
        params.default_redundancy,
        params.max_redundancy,
        params.quorum,
        percent(slash.no_commit),
        percent(slash.no_reveal),
        percent(slash.bad_reveal),
        percent(slash.outlier),
        if params.jail_on_fault { "yes" } else { "no" },
        percent(params.protocol_fee),
        percent(params.kernel_royalty),
        params.fingerprint_positions,
        params.fingerprint_tolerance,
        params.max_input_tokens,
        params.max_output_tokens,
        params.max_payload_bytes,
        params.denom
    )
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{Addr, HexBinary, Uint128};
    use nesa_market::registry::ShardRange;
    use nesa_sdk::market::progress::fixtures;

    use super::*;

    fn kernel() -> Kernel {
        Kernel {
            id: 1,
            owner: Addr::unchecked("nesa1owner"),
            name: "smollm2-135m".into(),
            version: 1,
            parent: None,
            weights_sha256: HexBinary::from(vec![0xab; 32]),
            tokenizer_sha256: HexBinary::from(vec![0xcd; 32]),
            architecture: "llama".into(),
            layer_count: 30,
            vocab_size: 49_152,
            context_length: 8192,
            shard_layout: vec![ShardRange {
                start_layer: 0,
                end_layer: 30,
                sha256: HexBinary::from(vec![0xab; 32]),
            }],
            encryption: Encryption::None,
            price_per_input_token: Uint128::new(1),
            price_per_output_token: Uint128::new(2),
            min_redundancy: 3,
            description: String::new(),
            status: KernelStatus::Active,
            created_height: 5,
        }
    }

    #[test]
    fn a_settled_query_shows_each_node_and_the_payments() {
        let text = describe_query(&fixtures::honest_round(&[5, 6, 7, 8]));
        assert!(
            text.starts_with("query 7: settled (phase closed)\n"),
            "{text}"
        );
        assert!(
            text.contains("input: 31 tokens, at most 64 output tokens, greedy"),
            "{text}"
        );
        assert!(
            text.contains("committed at 12, revealed at 15 (4 tokens), paid 33unes"),
            "{text}"
        );
        assert!(text.contains("settlement at height 17:"), "{text}");
        assert!(
            text.contains(
                "cost: 117unes = 99unes to nodes + 9unes protocol fee + 9unes kernel royalty"
            ),
            "{text}"
        );
        assert!(text.contains("refunded: 360unes"), "{text}");
    }

    #[test]
    fn a_disputed_query_shows_the_slashed_node_and_no_winners() {
        let text = describe_query(&fixtures::disputed_round());
        assert!(text.starts_with("query 7: disputed"), "{text}");
        assert!(
            text.contains("not revealed, slashed 20% for no_reveal"),
            "{text}"
        );
        assert!(text.contains("winners: none (no quorum)"), "{text}");
    }

    #[test]
    fn a_pending_query_has_no_settlement_yet() {
        let text = describe_query(&fixtures::submitted(3));
        assert!(text.contains("not committed"), "{text}");
        assert!(text.ends_with("settlement: not yet\n"), "{text}");
    }

    #[test]
    fn a_drawing_query_shows_its_deadline_and_tickets() {
        let mut state = fixtures::drawing(3);
        fixtures::enter(&mut state, &fixtures::node(1), 250, 1);
        let text = describe_query(&state);
        assert!(
            text.starts_with("query 7: drawing (phase draw)\n"),
            "{text}"
        );
        assert!(
            text.contains("heights: submitted 10, draw deadline 13, commit deadline 24"),
            "{text}"
        );
        assert!(
            text.contains("draw: 1 ticket, anyone may draw after height 13\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("  {}: weight 250\n", fixtures::node(1))),
            "{text}"
        );
    }

    #[test]
    fn sampling_is_greedy_or_spelled_out() {
        assert_eq!(describe_sampling(&Sampling::default()), "greedy");
        let seeded = Sampling {
            seed: 42,
            temperature_milli: 700,
            top_p_milli: 1000,
        };
        assert_eq!(
            describe_sampling(&seeded),
            "temperature 0.7, top-p 1, seed 42"
        );
    }

    #[test]
    fn kernels_list_one_line_each_and_a_kernel_shows_its_hashes() {
        let list = describe_kernels(&[kernel()]);
        assert_eq!(list.lines().count(), 1);
        assert!(
            list.contains("smollm2-135m v1  active  llama 30 layers"),
            "{list}"
        );
        assert_eq!(describe_kernels(&[]), "no kernels registered");
        let one = describe_kernel(&kernel());
        assert!(
            one.contains(&format!("tokenizer sha256: {}", "cd".repeat(32))),
            "{one}"
        );
        assert!(one.contains("layers 0..30: sha256 abab"), "{one}");
        assert!(
            one.contains("price: 1 unes per input token, 2 unes per output token"),
            "{one}"
        );
    }

    #[test]
    fn params_read_as_percentages_and_blocks() {
        let params = nesa_market::devnet::market_params();
        let text = describe_params(&params);
        let window = format!(
            "commit window: {} blocks",
            nesa_market::devnet::COMMIT_BLOCKS
        );
        assert!(text.contains(&window), "{text}");
        let draw = format!("draw window: {} blocks\n", params.draw_blocks);
        assert!(text.starts_with(&draw), "{text}");
        assert!(text.contains("outlier 5%; jail on fault: yes"), "{text}");
        assert!(text.contains("protocol fee: 10%"), "{text}");
    }
}

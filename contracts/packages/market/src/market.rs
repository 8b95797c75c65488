//! `nesa-inference-market`: queries, commit–reveal, CDV settlement, payment and slashing.
//!
//! Lifecycle of a query (docs/architecture.md): `submit_query` (escrow, k nodes assigned by stake from
//! an unsteerable seed) → each node `commit`s `sha256(node ‖ query_id ‖ result_hash ‖ salt)`
//! (`result_hash` = `sha256(sha256(output) ‖ sha256(fingerprint))`) by the commit deadline → reveals open once every node committed or the commit deadline
//! passed; each node `reveal`s output, fingerprint and salt by the reveal deadline → anyone
//! `settle`s: the strict-majority output (or else the largest agreeing fingerprint cluster)
//! wins if it has a quorum; winners are paid per token, the rest of the escrow is refunded,
//! faulty nodes are slashed and jailed.

use cosmwasm_schema::{cw_serde, QueryResponses};
use cosmwasm_std::{Addr, Binary, Coin, Decimal, HexBinary, Uint128};

use crate::registry::{KernelId, ShardRange};

/// A query's id: 1, 2, … in submission order.
pub type QueryId = u64;

/// Bytes of `user_entropy`.
pub const USER_ENTROPY_BYTES: usize = 32;
/// Largest `temperature_milli` (10.0).
pub const MAX_TEMPERATURE_MILLI: u32 = 10_000;
/// Largest `top_p_milli` (1.0).
pub const MAX_TOP_P_MILLI: u32 = 1_000;
/// Longest `commit_blocks` and `reveal_blocks` (about 5.8 days of 5-second blocks each), so
/// a query's deadlines cannot overflow.
pub const MAX_WINDOW_BLOCKS: u64 = 100_000;
/// Largest `max_payload_bytes` (1 MiB).
pub const MAX_PAYLOAD_BYTES: u32 = 1 << 20;
/// Largest `max_input_tokens` (a kernel's context is at most 2^20 tokens).
pub const MAX_INPUT_TOKENS: u32 = crate::registry::MAX_CONTEXT_LENGTH;
/// Most ranges a sharded kernel's layout may have for the market to run it: a query holds
/// `k × spans` seats.
pub const MAX_PIPELINE_SPANS: usize = 16;

#[cw_serde]
pub struct InstantiateMsg {
    /// May update params and hand over adminship; defaults to the sender.
    pub admin: Option<String>,
    /// The kernel registry contract.
    pub registry: String,
    /// The node-staking contract (whose `market` must be set to this contract).
    pub staking: String,
    /// Receives the protocol fee.
    pub treasury: String,
    pub params: MarketParams,
}

/// Every tunable of the market; validated at instantiate and on every update.
pub const DEFAULT_DRAW_BLOCKS: u64 = 3;

fn default_draw_blocks() -> u64 {
    DEFAULT_DRAW_BLOCKS
}

#[cw_serde]
pub struct MarketParams {
    /// Blocks after submission during which nodes may submit sortition tickets
    /// (1..=100,000); the draw is possible from the block after.
    #[serde(default = "default_draw_blocks")]
    pub draw_blocks: u64,
    /// Blocks after the draw during which assigned nodes may commit (1..=100,000).
    pub commit_blocks: u64,
    /// Blocks after the commit deadline during which committed nodes may reveal
    /// (1..=100,000).
    pub reveal_blocks: u64,
    /// k when a query does not say (1..=max_redundancy).
    pub default_redundancy: u8,
    /// Largest k a query may ask for (≤ 10).
    pub max_redundancy: u8,
    /// Fewest agreeing nodes for a query to be paid (1..=default_redundancy); a query's k
    /// must be at least this.
    pub quorum: u8,
    /// Fraction of stake slashed per fault, each in [0, 1].
    pub slash: SlashFractions,
    /// Whether a slashed node is also jailed.
    pub jail_on_fault: bool,
    /// Share of each node payment sent to the treasury.
    pub protocol_fee: Decimal,
    /// Share of each node payment sent to the kernel's owner (protocol_fee + kernel_royalty < 1).
    pub kernel_royalty: Decimal,
    /// Largest fingerprint distance (0.1-nat steps) at which two reveals agree.
    pub fingerprint_tolerance: u32,
    /// Positions per fingerprint (1..=18, so a fingerprint fits in 256 bytes).
    pub fingerprint_positions: u32,
    /// Most input tokens a query may carry (1..=2^20; the kernel's context also bounds it).
    pub max_input_tokens: u32,
    /// Most output tokens a query may ask for (≤ 65,536).
    pub max_output_tokens: u32,
    /// Most bytes of an input or output payload (token ids are 4 bytes each; at most 1 MiB).
    pub max_payload_bytes: u32,
    /// Escrow and payment denomination (`unes`).
    pub denom: String,
}

/// Slash fractions per fault.
#[cw_serde]
pub struct SlashFractions {
    /// Assigned, never committed.
    pub no_commit: Decimal,
    /// Committed, never revealed.
    pub no_reveal: Decimal,
    /// Revealed something that does not open its commitment (e.g. a copied output or
    /// fingerprint).
    pub bad_reveal: Decimal,
    /// Revealed a valid result outside the winning consensus (only when there is a quorum).
    pub outlier: Decimal,
}

/// Sampling parameters the nodes must use (integers: no floats on chain).
#[cw_serde]
#[derive(Copy, Default)]
pub struct Sampling {
    /// Seed of the sampler (identical for every replica).
    pub seed: u64,
    /// Temperature × 1000 (0 = greedy), at most 10,000.
    pub temperature_milli: u32,
    /// Nucleus top-p × 1000 (1000 = off), at most 1000.
    pub top_p_milli: u32,
}

#[cw_serde]
pub enum ExecuteMsg {
    /// Submits a query; the attached funds (one coin of `denom`) are the escrow and must
    /// cover `k × (input_tokens × price_in + max_output_tokens × price_out)`.
    /// The query then waits `draw_blocks` for sortition tickets (`SubmitTicket`) and is
    /// assigned by `Draw`. Emits `wasm-query_submitted` (with the `draw_input` tickets sign).
    SubmitQuery {
        kernel_id: KernelId,
        /// Token ids, little-endian u32 each (see `nesa_market::tokens`), non-empty.
        input: Binary,
        max_output_tokens: u32,
        sampling: Sampling,
        /// k: at least the kernel's minimum redundancy and the quorum, at most
        /// `max_redundancy`. When absent: the market's default, raised to the kernel's minimum.
        redundancy: Option<u8>,
        /// 32 random bytes from the user, mixed into the query's seed (fingerprint
        /// positions); they do not affect who is drawn.
        user_entropy: Binary,
    },
    /// A node bonded for the query's kernel enters the draw: `ticket` is its BLS signature
    /// of `sortition::ticket_message(draw_input)` under the sortition key registered in its
    /// profile before the query was accepted. Once per node, at or before the draw deadline.
    /// Emits `wasm-ticket_submitted`.
    SubmitTicket {
        query_id: QueryId,
        ticket: HexBinary,
    },
    /// Anyone assigns a query after its draw deadline: each of the k seats goes to the ticket
    /// that arrives first for it (`sortition::seat_holders`) among nodes that may still serve
    /// (checked again now: bonded, not jailed, below capacity); their stake is locked and the
    /// commit window opens. With no usable ticket the escrow is refunded and the query ends
    /// disputed. Emits `wasm-query_assigned`.
    Draw { query_id: QueryId },
    /// An assigned node commits to its result, output and fingerprint together (see
    /// `nesa_market::commitment` and `nesa_market::result_hash`), once, at or before the
    /// commit deadline. Emits `wasm-result_committed`.
    Commit {
        query_id: QueryId,
        commitment: HexBinary,
    },
    /// An assigned node that committed opens its commitment, after every node committed or
    /// the commit deadline passed, at or before the reveal deadline.
    /// Emits `wasm-result_revealed`.
    ///
    /// In a sharded query every seat also reveals `activations` (an encoded
    /// `nesa_market::SeatRecord`: the record of its outputs, and past span 0 the digest of its
    /// inputs' record; committed with `nesa_market::shard_result_hash`); the
    /// pipeline's driver (span 0) reveals the output and fingerprint with it, every other span
    /// reveals both empty.
    Reveal {
        query_id: QueryId,
        /// Token ids, little-endian u32 each.
        output: Binary,
        /// Encoded `nesa_market::Fingerprint` over the positions drawn from the query's seed.
        fingerprint: Binary,
        /// 16–64 bytes, the salt of the commitment.
        salt: Binary,
        /// A shard's activation record (sharded queries only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activations: Option<Binary>,
    },
    /// Anyone settles a query after its reveal deadline, or as soon as no more reveals can
    /// come. Emits `wasm-query_settled` and one `wasm-node_slashed` per slashed node. Never
    /// blocked by the staking contract: a slash or unlock it refuses is reported
    /// (`wasm-staking_call_failed`) and the settlement stands.
    Settle { query_id: QueryId },
    /// Admin only.
    UpdateParams { params: MarketParams },
    /// Admin only.
    UpdateAdmin { admin: String },
}

/// Where a query is in its lifecycle, as stored.
#[cw_serde]
#[derive(Copy, Eq, Hash, PartialOrd, Ord)]
pub enum QueryStatus {
    /// Accepted; collecting sortition tickets until the draw.
    Drawing,
    /// Waiting for commits.
    Pending,
    /// Every node committed, or a reveal arrived.
    Revealing,
    /// Paid with a quorum.
    Settled,
    /// No quorum: escrow refunded.
    Disputed,
}

impl QueryStatus {
    /// The snake_case name (as in JSON and events).
    pub fn as_str(&self) -> &'static str {
        match self {
            QueryStatus::Drawing => "drawing",
            QueryStatus::Pending => "pending",
            QueryStatus::Revealing => "revealing",
            QueryStatus::Settled => "settled",
            QueryStatus::Disputed => "disputed",
        }
    }

    /// Settled or disputed: nothing more can happen.
    pub fn is_final(&self) -> bool {
        matches!(self, QueryStatus::Settled | QueryStatus::Disputed)
    }
}

/// What may happen next, computed at the queried height.
#[cw_serde]
#[derive(Copy)]
pub enum QueryPhase {
    /// Nodes may submit tickets; after the draw deadline anyone may draw.
    Draw,
    /// Assigned nodes may commit.
    Commit,
    /// Committed nodes may reveal.
    Reveal,
    /// Anyone may settle.
    Settleable,
    /// Settled or disputed.
    Closed,
}

/// Why a node was slashed.
#[cw_serde]
#[derive(Copy)]
pub enum SlashReason {
    NoCommit,
    NoReveal,
    BadReveal,
    Outlier,
    /// The shard of an outvoted pipeline whose activations first diverged from the winning
    /// pipeline's on inputs both shared (`nesa_market::first_divergent_shard`); slashed by the
    /// `outlier` fraction.
    Divergent,
}

impl SlashReason {
    /// The snake_case name (as in JSON, events and the staking `reason`).
    pub fn as_str(&self) -> &'static str {
        match self {
            SlashReason::NoCommit => "no_commit",
            SlashReason::NoReveal => "no_reveal",
            SlashReason::BadReveal => "bad_reveal",
            SlashReason::Outlier => "outlier",
            SlashReason::Divergent => "divergent",
        }
    }
}

/// A query as stored (every list query returns these).
#[cw_serde]
pub struct InferenceQuery {
    pub id: QueryId,
    pub user: Addr,
    pub kernel_id: KernelId,
    /// Receives the royalty (the owner at submission).
    pub kernel_owner: Addr,
    /// Prices at submission (later updates do not touch queries in flight).
    pub price_per_input_token: Uint128,
    pub price_per_output_token: Uint128,
    pub input: Binary,
    pub input_tokens: u32,
    pub max_output_tokens: u32,
    pub sampling: Sampling,
    /// k.
    pub redundancy: u8,
    /// Agreeing nodes needed to pay (params at submission).
    pub quorum: u8,
    /// Positions per fingerprint (params at submission).
    pub fingerprint_positions: u32,
    /// Fingerprint tolerance (params at submission).
    pub fingerprint_tolerance: u32,
    /// Slash fractions, jailing and fees at submission: settlement applies these, whatever
    /// the parameters are by then. Absent only on queries stored before terms were recorded
    /// (those settle under the current parameters).
    #[serde(default)]
    pub terms: Option<SettlementTerms>,
    /// The assigned nodes, earliest arrival first (empty until drawn). In a sharded query,
    /// pipeline by pipeline: `nodes[p × spans + s]` serves span `s` of pipeline `p`.
    pub nodes: Vec<Addr>,
    /// For a sharded kernel, its shard layout at submission: each of the `redundancy`
    /// pipelines has one seat per range, and a pipeline's pay is split among its seats by
    /// layers. Empty for a whole-model query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRange>,
    /// The funds attached at submission.
    pub escrow: Coin,
    /// Seeds the fingerprint positions; set at the draw from the winning tickets.
    pub seed: HexBinary,
    pub submitted_height: u64,
    /// What tickets sign (`sortition::draw_input`); empty on queries assigned before sortition.
    #[serde(default)]
    pub draw_input: HexBinary,
    /// Last height at which a ticket is accepted.
    #[serde(default)]
    pub draw_deadline: u64,
    /// Tickets accepted.
    #[serde(default)]
    pub tickets: u32,
    /// Last height at which a commit is accepted.
    pub commit_deadline: u64,
    /// Last height at which a reveal is accepted.
    pub reveal_deadline: u64,
    pub status: QueryStatus,
    pub commits: u8,
    pub reveals: u8,
    /// Set when settled or disputed.
    pub settlement: Option<Settlement>,
}

/// What settlement applies to a query, fixed when it is submitted.
#[cw_serde]
pub struct SettlementTerms {
    pub slash: SlashFractions,
    pub jail_on_fault: bool,
    pub protocol_fee: Decimal,
    pub kernel_royalty: Decimal,
}

impl SettlementTerms {
    /// The terms the current parameters give a new query.
    pub fn from_params(params: &MarketParams) -> Self {
        Self {
            slash: params.slash.clone(),
            jail_on_fault: params.jail_on_fault,
            protocol_fee: params.protocol_fee,
            kernel_royalty: params.kernel_royalty,
        }
    }
}

/// The outcome of `settle`.
#[cw_serde]
pub struct Settlement {
    pub height: u64,
    /// Nodes paid (empty when disputed).
    pub winners: Vec<Addr>,
    /// The winning output (None when disputed).
    pub output: Option<Binary>,
    pub output_hash: Option<HexBinary>,
    /// Tokens of the winning output (each winner is billed for these).
    pub output_tokens: u32,
    /// Total of the winners' payments before fees.
    pub paid: Uint128,
    /// Sent to the treasury.
    pub protocol_fee: Uint128,
    /// Sent to the kernel owner.
    pub royalty: Uint128,
    /// Returned to the user.
    pub refunded: Uint128,
}

/// One assigned node's part in a query.
#[cw_serde]
pub struct Assignment {
    pub node: Addr,
    /// The pipeline (redundancy slot) this seat belongs to: 0..k.
    #[serde(default)]
    pub pipeline: u8,
    /// The span of the shard layout it serves (0 for a whole-model query, whose pipelines
    /// are single nodes). Span 0 drives its pipeline: it runs the embedding and the head.
    #[serde(default)]
    pub span: u32,
    pub commitment: Option<HexBinary>,
    pub committed_height: Option<u64>,
    pub reveal: Option<Reveal>,
    /// Set at settlement.
    pub outcome: Option<NodeOutcome>,
}

/// What a node revealed.
#[cw_serde]
pub struct Reveal {
    pub output: Binary,
    pub output_hash: HexBinary,
    pub output_tokens: u32,
    pub fingerprint: Binary,
    pub salt: Binary,
    /// A shard's activation record (sharded queries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations: Option<Binary>,
    /// Whether `commitment(node, query_id, result_hash(output, fingerprint), salt)` (with
    /// `shard_result_hash` in a sharded query) equals the node's commitment.
    pub matches_commitment: bool,
    pub height: u64,
}

/// What settlement did to a node.
#[cw_serde]
pub enum NodeOutcome {
    /// In the winning set: `amount` is its share after protocol fee and royalty.
    Paid { amount: Uint128 },
    /// Slashed (and jailed when the market's `jail_on_fault` is set).
    Slashed {
        reason: SlashReason,
        fraction: Decimal,
    },
    /// Neither paid nor slashed: a valid reveal in a disputed query, or any node of a query
    /// no assigned node committed to (refunded without blame: see `settle`).
    Unpaid {},
}

#[cw_serde]
#[derive(QueryResponses)]
pub enum QueryMsg {
    /// A query with every node's commitment, reveal and outcome; an error when unknown.
    #[returns(QueryResponse)]
    Query { id: QueryId },
    /// A user's queries in id order (default 10, at most 30 per page).
    #[returns(QueriesResponse)]
    QueriesByUser {
        user: String,
        start_after: Option<QueryId>,
        limit: Option<u32>,
    },
    /// Queries a node was assigned, in id order.
    #[returns(QueriesResponse)]
    QueriesByNode {
        node: String,
        start_after: Option<QueryId>,
        limit: Option<u32>,
    },
    /// Queries by stored status, in id order.
    #[returns(QueriesResponse)]
    QueriesByStatus {
        status: QueryStatus,
        start_after: Option<QueryId>,
        limit: Option<u32>,
    },
    /// The escrow a query needs (what `submit_query` will check).
    #[returns(QuoteResponse)]
    Quote {
        kernel_id: KernelId,
        input_tokens: u32,
        max_output_tokens: u32,
        redundancy: Option<u8>,
    },
    #[returns(MarketParams)]
    Params {},
    #[returns(ConfigResponse)]
    Config {},
}

#[cw_serde]
pub struct QueryResponse {
    pub query: InferenceQuery,
    /// One per assigned node, in draw order.
    pub assignments: Vec<Assignment>,
    pub phase: QueryPhase,
    /// The tickets entered while the query is drawing, in address order (a node runner evaluates
    /// `sortition::seat_holders` on them to see who leads the draw).
    #[serde(default)]
    pub tickets: Vec<Ticket>,
}

/// A verified sortition ticket.
#[cw_serde]
pub struct Ticket {
    pub node: Addr,
    /// The span of a sharded kernel the node entered for (`None`: a whole-model seat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<u32>,
    /// The stake counted for the node (its bonded stake when it entered).
    pub weight: Uint128,
    /// `sortition::ticket_output` of the signature.
    pub output: HexBinary,
}

#[cw_serde]
pub struct QueriesResponse {
    pub queries: Vec<InferenceQuery>,
}

#[cw_serde]
pub struct QuoteResponse {
    /// k used.
    pub redundancy: u8,
    /// Most one pipeline can be paid (a whole-model node, or the seats of a sharded
    /// pipeline together, split by layers): input × price_in + max_output × price_out.
    pub per_node: Uint128,
    /// Escrow needed: k × per_node.
    pub escrow: Coin,
}

#[cw_serde]
pub struct ConfigResponse {
    pub admin: Addr,
    pub registry: Addr,
    pub staking: Addr,
    pub treasury: Addr,
    /// Queries submitted so far (ids are 1..=query_count).
    pub query_count: u64,
    /// The running seed, mixed with every matching reveal's salt.
    pub running_seed: HexBinary,
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{from_json, to_json_string};

    use super::*;

    #[test]
    fn market_messages_parse_from_their_documented_json() {
        for example in [
            r#"{"submit_query":{"kernel_id":1,"input":"AQAAAAIAAAA=","max_output_tokens":32,"sampling":{"seed":7,"temperature_milli":0,"top_p_milli":1000},"redundancy":3,"user_entropy":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#,
            r#"{"submit_query":{"kernel_id":1,"input":"AQAAAA==","max_output_tokens":32,"sampling":{"seed":7,"temperature_milli":700,"top_p_milli":900},"user_entropy":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#,
            r#"{"commit":{"query_id":1,"commitment":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}}"#,
            r#"{"reveal":{"query_id":1,"output":"AQAAAA==","fingerprint":"AQ==","salt":"c2FsdHNhbHRzYWx0c2FsdA=="}}"#,
            r#"{"settle":{"query_id":1}}"#,
            r#"{"draw":{"query_id":1}}"#,
            r#"{"update_admin":{"admin":"nesa1admin"}}"#,
        ] {
            from_json::<ExecuteMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        for example in [
            r#"{"query":{"id":1}}"#,
            r#"{"queries_by_user":{"user":"nesa1u","limit":5}}"#,
            r#"{"queries_by_node":{"node":"nesa1n","start_after":3}}"#,
            r#"{"queries_by_status":{"status":"disputed"}}"#,
            r#"{"quote":{"kernel_id":1,"input_tokens":12,"max_output_tokens":32}}"#,
            r#"{"params":{}}"#,
            r#"{"config":{}}"#,
        ] {
            from_json::<QueryMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }

    #[test]
    fn the_devnet_instantiate_message_parses() {
        let json = r#"{"registry":"nesa1registry","staking":"nesa1staking","treasury":"nesa1treasury",
            "params":{"commit_blocks":10,"reveal_blocks":10,"default_redundancy":3,"max_redundancy":5,"quorum":2,
            "slash":{"no_commit":"0.2","no_reveal":"0.2","bad_reveal":"0.3","outlier":"0.05"},
            "jail_on_fault":true,"protocol_fee":"0.1","kernel_royalty":"0.1",
            "fingerprint_tolerance":3,"fingerprint_positions":16,
            "max_input_tokens":2048,"max_output_tokens":512,"max_payload_bytes":16384,"denom":"unes"}}"#;
        let msg: InstantiateMsg = from_json(json).unwrap();
        assert_eq!(msg.admin, None);
        assert_eq!(msg.params.slash.outlier, Decimal::percent(5));
    }

    #[test]
    fn statuses_reasons_and_outcomes_are_snake_case() {
        for status in [
            QueryStatus::Pending,
            QueryStatus::Revealing,
            QueryStatus::Settled,
            QueryStatus::Disputed,
        ] {
            assert_eq!(
                to_json_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        for reason in [
            SlashReason::NoCommit,
            SlashReason::NoReveal,
            SlashReason::BadReveal,
            SlashReason::Outlier,
            SlashReason::Divergent,
        ] {
            assert_eq!(
                to_json_string(&reason).unwrap(),
                format!("\"{}\"", reason.as_str())
            );
        }
        assert_eq!(
            to_json_string(&NodeOutcome::Paid {
                amount: Uint128::new(5)
            })
            .unwrap(),
            r#"{"paid":{"amount":"5"}}"#
        );
    }
}

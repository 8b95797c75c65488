//! `nesa-node-staking`: node runners' stake, profiles, unbonding, jail and slashing.
//!
//! A node is eligible for assignment while it is not jailed, has at least `min_stake` bonded
//! and its profile serves a kernel's whole layer range. Only the configured market contract
//! may slash; slashing reaches bonded stake and unbonding entries alike, so leaving does not
//! escape a fault committed while assigned.

use cosmwasm_schema::{cw_serde, QueryResponses};
use cosmwasm_std::{Addr, Decimal, HexBinary, Uint128};

use crate::registry::{Kernel, KernelId};

/// Most unbonding entries a node may have in flight.
pub const MAX_UNBONDING_ENTRIES: usize = 16;
/// Most kernel ranges one profile may list.
pub const MAX_SERVED_KERNELS: usize = 32;
/// Queries a node takes in flight when its profile does not say.
pub const DEFAULT_CAPACITY: u32 = 1;
/// Most queries a node may declare it takes in flight.
pub const MAX_CAPACITY: u32 = 64;
/// Longest `unbonding_blocks` and `jail_blocks` (about 58 days of 5-second blocks), so no
/// height computed from them can overflow.
pub const MAX_STAKING_BLOCKS: u64 = 1_000_000;

#[cw_serde]
pub struct InstantiateMsg {
    /// May update the configuration; defaults to the sender.
    pub admin: Option<String>,
    /// Denomination of stake (`unes`).
    pub denom: String,
    /// Least bonded stake of an eligible node; a node's first bond must reach it.
    pub min_stake: Uint128,
    /// Blocks between `unbond` and the entry becoming claimable (1..=1,000,000). An entry is
    /// paid only once every query the node was assigned before it unbonded has ended as well;
    /// an assignment the market never closes lapses this many blocks after its reveal deadline.
    pub unbonding_blocks: u64,
    /// Blocks a jailed node waits before it may `unjail` (at most 1,000,000).
    pub jail_blocks: u64,
    /// The kernel registry (for layer counts).
    pub registry: String,
    /// The inference market, the only address that may slash; may be set later with
    /// `update_config` when it is not known yet.
    pub market: Option<String>,
    /// Receives slashed stake (e.g. the protocol treasury).
    pub slash_recipient: String,
}

#[cw_serde]
pub enum ExecuteMsg {
    /// Adds the attached funds (one coin of the stake denom) to the sender's bond. The first
    /// bond must carry a `profile` and reach `min_stake`; later ones may replace the profile.
    /// Emits `wasm-node_bonded`.
    Bond { profile: Option<NodeProfile> },
    /// Replaces the sender's endpoint and served kernels. Emits `wasm-node_profile_updated`.
    UpdateProfile { profile: NodeProfile },
    /// Moves `amount` from bonded to an unbonding entry released after `unbonding_blocks`.
    /// Emits `wasm-node_unbonding`.
    Unbond { amount: Uint128 },
    /// Pays out every matured unbonding entry: its release height reached and every query the
    /// node was assigned before it unbonded ended (settled, or lapsed `unbonding_blocks` after
    /// its reveal deadline). Emits `wasm-node_claimed`.
    Claim {},
    /// Market only: burns `fraction` of the node's bonded and unbonding stake (sent to
    /// `slash_recipient`) and, with `jail`, jails it for `jail_blocks`. A node with no stake
    /// left is not an error (nothing to take). Emits `wasm-stake_slashed`.
    Slash {
        node: String,
        fraction: Decimal,
        jail: bool,
        reason: String,
        query_id: u64,
    },
    /// Market only: `nodes` were assigned `query_id`, whose reveal deadline is `until`. Each
    /// node's stake stays slashable (its earlier unbonding entries are not paid) and one of its
    /// `capacity` slots is taken until the market unlocks it or the lock lapses at
    /// `until + unbonding_blocks`. Fails when a node is at capacity. Emits
    /// `wasm-assignment_locked`.
    Lock {
        query_id: u64,
        nodes: Vec<String>,
        until: u64,
    },
    /// Market only: `query_id` ended (settled or refunded); its locks on `nodes` are removed.
    /// A node without that lock is skipped. Emits `wasm-assignment_unlocked`.
    Unlock { query_id: u64, nodes: Vec<String> },
    /// The node ends its own jail once `jailed_until` is reached. Emits `wasm-node_unjailed`.
    Unjail {},
    /// Admin only; `None` keeps the value.
    UpdateConfig(ConfigUpdate),
}

/// Admin's configuration changes; `None` keeps the current value.
#[cw_serde]
#[derive(Default)]
pub struct ConfigUpdate {
    pub admin: Option<String>,
    pub min_stake: Option<Uint128>,
    pub unbonding_blocks: Option<u64>,
    pub jail_blocks: Option<u64>,
    pub registry: Option<String>,
    pub market: Option<String>,
    pub slash_recipient: Option<String>,
}

/// What a node tells the market and users about itself.
#[cw_serde]
pub struct NodeProfile {
    /// Where its HTTP API listens: `http://…` or `https://…`, at most 256 bytes.
    pub endpoint: String,
    /// Kernels (and layer ranges of them) it serves; at most 32 entries.
    pub kernels: Vec<ServedKernel>,
    /// Queries it takes in flight at once, 1..=64 (1 when absent): the market assigns it no
    /// more open queries than this.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// The key the node signs sortition tickets with (`nesa_market::sortition`); a node
    /// without one is never drawn.
    #[serde(default)]
    pub sortition_key: Option<SortitionKey>,
}

/// A BLS12-381 sortition public key and the proof that the node holds it: the signature of
/// `sortition::possession_message(node, public_key)`.
#[cw_serde]
pub struct SortitionKey {
    /// 48-byte compressed G1 point.
    pub public_key: HexBinary,
    /// 96-byte compressed G2 point.
    pub proof: HexBinary,
}

fn default_capacity() -> u32 {
    DEFAULT_CAPACITY
}

/// A query the node is assigned and the market has not closed yet.
#[cw_serde]
pub struct AssignmentLock {
    pub query_id: u64,
    /// Height of the assignment: unbonding entries started at or after it are not held.
    pub assigned_height: u64,
    /// The last height the lock holds without the market's unlock.
    pub expires_height: u64,
}

impl AssignmentLock {
    /// Still holding at `height`.
    pub fn is_open(&self, height: u64) -> bool {
        height <= self.expires_height
    }
}

/// Layers `start_layer..end_layer` (end exclusive) of a kernel served by a node. For a
/// sharded kernel (a shard layout of more than one range) the range must be one of the
/// layout's; for any other kernel the node's ranges together must cover every layer.
#[cw_serde]
pub struct ServedKernel {
    pub kernel_id: KernelId,
    pub start_layer: u32,
    pub end_layer: u32,
    /// Measured time of one decode step through one of these blocks, in microseconds (what
    /// `/health` reports as `seconds_per_layer`): pipeline drivers route by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_micros: Option<u32>,
}

/// How a profile serves a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// Not at all (or not in a way the market can assign).
    Not,
    /// Every layer: the node can take a whole-model seat.
    Whole,
    /// This range of the kernel's shard layout: the node can take that span's seat in a
    /// pipeline.
    Span(u32),
}

/// How `served` (a profile's ranges) serves `kernel`: a sharded kernel is served span by span
/// (the first range equal to a span of its layout), any other kernel as a whole (the ranges
/// together cover `0..layer_count`).
pub fn serving(served: &[ServedKernel], kernel: &Kernel) -> Serving {
    let ranges = served.iter().filter(|s| s.kernel_id == kernel.id);
    if kernel.is_sharded() {
        for range in ranges {
            if let Some(span) = kernel
                .shard_layout
                .iter()
                .position(|s| s.start_layer == range.start_layer && s.end_layer == range.end_layer)
            {
                return Serving::Span(span as u32);
            }
        }
        return Serving::Not;
    }
    let mut ranges: Vec<(u32, u32)> = ranges.map(|k| (k.start_layer, k.end_layer)).collect();
    ranges.sort_unstable();
    let mut covered_to = 0;
    for (start, end) in ranges {
        if start > covered_to {
            break;
        }
        covered_to = covered_to.max(end);
    }
    if covered_to >= kernel.layer_count {
        Serving::Whole
    } else {
        Serving::Not
    }
}

/// A pending unbonding: `amount` claimable from `release_height` on.
#[cw_serde]
pub struct UnbondingEntry {
    pub amount: Uint128,
    pub release_height: u64,
    /// Height of the `unbond` (0 for entries recorded before it was kept): queries assigned
    /// up to this height hold the entry until they end.
    #[serde(default)]
    pub unbonded_height: u64,
}

#[cw_serde]
pub struct StakingConfig {
    pub admin: Addr,
    pub denom: String,
    pub min_stake: Uint128,
    pub unbonding_blocks: u64,
    pub jail_blocks: u64,
    pub registry: Addr,
    pub market: Option<Addr>,
    pub slash_recipient: Addr,
}

#[cw_serde]
#[derive(QueryResponses)]
pub enum QueryMsg {
    /// One node; an error when it never bonded.
    #[returns(NodeResponse)]
    Node { address: String },
    /// Nodes in address order (default 10, at most 30 per page).
    #[returns(NodesResponse)]
    Nodes {
        start_after: Option<String>,
        limit: Option<u32>,
    },
    /// Eligible nodes for a kernel (not jailed, bonded ≥ min_stake, serving all its layers,
    /// fewer open assignments than its capacity), with their bonded stake, in address order (default and most 100 per page): what the
    /// market samples from.
    #[returns(CandidatesResponse)]
    Candidates {
        kernel_id: KernelId,
        start_after: Option<String>,
        limit: Option<u32>,
    },
    /// What the market needs to check a node's sortition ticket for a kernel's query.
    #[returns(SortitionEntry)]
    Sortition { node: String, kernel_id: KernelId },
    #[returns(StakingConfig)]
    Config {},
}

#[cw_serde]
pub struct NodeResponse {
    pub address: Addr,
    pub bonded: Uint128,
    pub unbonding: Vec<UnbondingEntry>,
    pub jailed: bool,
    /// Height from which `unjail` is allowed (set while jailed).
    pub jailed_until: Option<u64>,
    /// Total ever slashed from this node.
    pub slashed: Uint128,
    pub profile: NodeProfile,
    /// Not jailed and bonded ≥ min_stake (it still needs to serve a kernel to be assigned).
    pub eligible: bool,
    /// Queries assigned and not yet closed (lapsed locks not counted): at `profile.capacity`
    /// the market assigns it nothing more.
    pub open_assignments: u32,
    /// Those queries, oldest first.
    pub assignments: Vec<AssignmentLock>,
}

#[cw_serde]
pub struct NodesResponse {
    pub nodes: Vec<NodeResponse>,
}

/// An eligible node and the stake it is sampled by.
/// A node's standing in a draw (`QueryMsg::Sortition`).
#[cw_serde]
pub struct SortitionEntry {
    pub address: Addr,
    /// For a sharded kernel, the span of its shard layout the node serves (its ticket enters
    /// that span's draw); `None` for a whole-model seat or when it may not be drawn.
    #[serde(default)]
    pub span: Option<u32>,
    /// Its bonded stake if it may be drawn for the kernel now (bonded, not jailed, at least
    /// `min_stake`, below capacity, serving every layer or, for a sharded kernel, one span of
    /// its layout); zero otherwise.
    pub weight: Uint128,
    /// Its registered sortition public key (48-byte compressed G1), if any.
    pub public_key: Option<HexBinary>,
    /// The height of its last stake increase or key change. A ticket counts only for a query
    /// accepted after it, so neither stake nor key can be chosen once a draw input is known.
    pub ticket_since: u64,
}

#[cw_serde]
pub struct Candidate {
    pub address: Addr,
    pub stake: Uint128,
    /// The span of a sharded kernel's layout it serves (`None`: the whole model).
    #[serde(default)]
    pub span: Option<u32>,
}

#[cw_serde]
pub struct CandidatesResponse {
    pub candidates: Vec<Candidate>,
}

/// Page size of `candidates` (default and maximum).
pub const CANDIDATES_PAGE: u32 = 100;

#[cfg(test)]
mod tests {
    use cosmwasm_std::from_json;

    use super::*;

    #[test]
    fn staking_messages_parse_from_their_documented_json() {
        for example in [
            r#"{"bond":{"profile":{"endpoint":"http://127.0.0.1:8700","kernels":[{"kernel_id":1,"start_layer":0,"end_layer":30}]}}}"#,
            r#"{"bond":{"profile":{"endpoint":"http://127.0.0.1:8700","kernels":[],"capacity":4}}}"#,
            r#"{"bond":{}}"#,
            r#"{"update_profile":{"profile":{"endpoint":"https://n.example","kernels":[]}}}"#,
            r#"{"unbond":{"amount":"500000"}}"#,
            r#"{"claim":{}}"#,
            r#"{"slash":{"node":"nesa1n","fraction":"0.05","jail":true,"reason":"no_commit","query_id":7}}"#,
            r#"{"unjail":{}}"#,
            r#"{"lock":{"query_id":7,"nodes":["nesa1n"],"until":40}}"#,
            r#"{"unlock":{"query_id":7,"nodes":["nesa1n"]}}"#,
            r#"{"update_config":{"market":"nesa1market"}}"#,
        ] {
            from_json::<ExecuteMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        for example in [
            r#"{"node":{"address":"nesa1n"}}"#,
            r#"{"nodes":{"limit":5}}"#,
            r#"{"candidates":{"kernel_id":1}}"#,
            r#"{"config":{}}"#,
        ] {
            from_json::<QueryMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }

    #[test]
    fn a_profile_without_capacity_takes_one_query_at_a_time() {
        let profile: NodeProfile =
            from_json(r#"{"endpoint":"http://127.0.0.1:8700","kernels":[]}"#).unwrap();
        assert_eq!(profile.capacity, DEFAULT_CAPACITY);
        assert_eq!(DEFAULT_CAPACITY, 1);
    }
}

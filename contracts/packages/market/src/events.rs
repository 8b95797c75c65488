//! Event types and attribute keys of the three contracts.
//!
//! A contract emits `Event::new(TYPE)`; the chain reports it as `wasm-<TYPE>` (x/wasm
//! semantics), with `_contract_address` added. Watchers match on [`wasm_type`]`(TYPE)`.
//! Lists of addresses are comma-separated; hashes and seeds are lower-case hex; amounts are
//! integers in unes.

/// The type under which the chain reports a contract's custom event: `wasm-<event_type>`.
pub fn wasm_type(event_type: &str) -> String {
    format!("wasm-{event_type}")
}

/// `nesa-kernel-registry` events.
pub mod registry {
    /// A new kernel: `kernel_id`, `owner`, `name`, `version`.
    pub const KERNEL_REGISTERED: &str = "kernel_registered";
    /// A fork: `kernel_id`, `parent`, `owner`, `name`, `version`.
    pub const KERNEL_FORKED: &str = "kernel_forked";
    /// Mutable fields changed: `kernel_id`.
    pub const KERNEL_UPDATED: &str = "kernel_updated";
    /// No longer accepts queries: `kernel_id`.
    pub const KERNEL_DEPRECATED: &str = "kernel_deprecated";
    /// New owner: `kernel_id`, `previous_owner`, `owner`.
    pub const KERNEL_OWNERSHIP_TRANSFERRED: &str = "kernel_ownership_transferred";

    pub mod attr {
        pub const KERNEL_ID: &str = "kernel_id";
        pub const PARENT: &str = "parent";
        pub const OWNER: &str = "owner";
        pub const PREVIOUS_OWNER: &str = "previous_owner";
        pub const NAME: &str = "name";
        pub const VERSION: &str = "version";
    }
}

/// `nesa-node-staking` events.
pub mod staking {
    /// Stake added: `node`, `amount`, `bonded` (total after).
    pub const NODE_BONDED: &str = "node_bonded";
    /// Endpoint or served kernels changed: `node`, `kernels` (comma-separated ids).
    pub const NODE_PROFILE_UPDATED: &str = "node_profile_updated";
    /// Unbonding started: `node`, `amount`, `bonded`, `release_height`.
    pub const NODE_UNBONDING: &str = "node_unbonding";
    /// Matured unbonding paid out: `node`, `amount`.
    pub const NODE_CLAIMED: &str = "node_claimed";
    /// Stake slashed by the market: `node`, `fraction`, `amount`, `reason`, `query_id`,
    /// `jailed_until` (when jailed).
    pub const STAKE_SLASHED: &str = "stake_slashed";
    /// Jail ended by the node: `node`.
    pub const NODE_UNJAILED: &str = "node_unjailed";
    /// The market assigned a query: `query_id`, `nodes`, `expires_height`.
    pub const ASSIGNMENT_LOCKED: &str = "assignment_locked";
    /// The market closed a query: `query_id`, `nodes` (those that held its lock).
    pub const ASSIGNMENT_UNLOCKED: &str = "assignment_unlocked";
    /// Admin changed the configuration.
    pub const CONFIG_UPDATED: &str = "staking_config_updated";

    pub mod attr {
        pub const NODE: &str = "node";
        pub const AMOUNT: &str = "amount";
        pub const BONDED: &str = "bonded";
        pub const RELEASE_HEIGHT: &str = "release_height";
        pub const KERNELS: &str = "kernels";
        pub const FRACTION: &str = "fraction";
        pub const REASON: &str = "reason";
        pub const QUERY_ID: &str = "query_id";
        pub const JAILED_UNTIL: &str = "jailed_until";
        pub const NODES: &str = "nodes";
        pub const EXPIRES_HEIGHT: &str = "expires_height";
    }
}

/// `nesa-inference-market` events.
pub mod market {
    /// Escrow taken, draw open (node runners watch this to enter): `query_id`, `kernel_id`,
    /// `user`, `escrow`, `input_tokens`, `max_output_tokens`, `redundancy`, `draw_input`
    /// (hex, what tickets sign), `draw_deadline`.
    pub const QUERY_SUBMITTED: &str = "query_submitted";
    /// A node entered the draw: `query_id`, `node`, `weight`.
    pub const TICKET_SUBMITTED: &str = "ticket_submitted";
    /// Nodes drawn (node runners watch this): `query_id`, `kernel_id`, `user`, `nodes`,
    /// `commit_deadline`, `reveal_deadline`, `seed`, `fingerprint_positions` (count).
    pub const QUERY_ASSIGNED: &str = "query_assigned";
    /// `query_id`, `node`, `commitment`.
    pub const RESULT_COMMITTED: &str = "result_committed";
    /// `query_id`, `node`, `output_hash`, `output_tokens`, `matches_commitment`.
    pub const RESULT_REVEALED: &str = "result_revealed";
    /// `query_id`, `status` (`settled`|`disputed`), `winners`, `output_hash`, `output_tokens`,
    /// `paid` (total to winners before fees), `protocol_fee`, `royalty`, `refunded`.
    pub const QUERY_SETTLED: &str = "query_settled";
    /// One per slashed node: `query_id`, `node`, `reason`, `fraction`.
    pub const NODE_SLASHED: &str = "node_slashed";
    /// The admin changed the parameters.
    pub const PARAMS_UPDATED: &str = "market_params_updated";
    /// The staking contract refused a slash or unlock of a settlement, which stands anyway:
    /// `query_id`, `error`.
    pub const STAKING_CALL_FAILED: &str = "staking_call_failed";

    pub mod attr {
        pub const QUERY_ID: &str = "query_id";
        pub const KERNEL_ID: &str = "kernel_id";
        pub const USER: &str = "user";
        pub const ESCROW: &str = "escrow";
        pub const INPUT_TOKENS: &str = "input_tokens";
        pub const MAX_OUTPUT_TOKENS: &str = "max_output_tokens";
        pub const REDUNDANCY: &str = "redundancy";
        pub const NODES: &str = "nodes";
        pub const NODE: &str = "node";
        pub const WEIGHT: &str = "weight";
        pub const DRAW_INPUT: &str = "draw_input";
        pub const DRAW_DEADLINE: &str = "draw_deadline";
        pub const COMMIT_DEADLINE: &str = "commit_deadline";
        pub const REVEAL_DEADLINE: &str = "reveal_deadline";
        pub const SEED: &str = "seed";
        pub const FINGERPRINT_POSITIONS: &str = "fingerprint_positions";
        pub const COMMITMENT: &str = "commitment";
        pub const OUTPUT_HASH: &str = "output_hash";
        pub const OUTPUT_TOKENS: &str = "output_tokens";
        pub const MATCHES_COMMITMENT: &str = "matches_commitment";
        pub const STATUS: &str = "status";
        pub const WINNERS: &str = "winners";
        pub const PAID: &str = "paid";
        pub const PROTOCOL_FEE: &str = "protocol_fee";
        pub const ROYALTY: &str = "royalty";
        pub const REFUNDED: &str = "refunded";
        pub const REASON: &str = "reason";
        pub const FRACTION: &str = "fraction";
        pub const ERROR: &str = "error";
    }
}

//! `nesa-market`: the public face of Nesa's market contracts.
//!
//! Everything the outside world (node runner, SDK, relayer, dApps) needs to talk to the three
//! contracts, without linking them: every instantiate/execute/query message, every response,
//! every event type and attribute name ([`registry`], [`staking`], [`market`], [`events`]).
//! The devnet's parameters ([`devnet`]), and the rules the three contracts share: how a listing
//! pages ([`pagination`]) and how a contract is upgraded ([`upgrade`], cw2 and `migrate`).
//!
//! And the protocol logic that a node runner and the inference market must compute
//! identically, written once here:
//! - [`commitment`]: `sha256(node ‖ query_id ‖ result_hash ‖ salt)`, where
//!   [`result_hash`] = `sha256(sha256(output) ‖ sha256(fingerprint))` binds the output and
//!   its fingerprint, and [`output_hash`] = `sha256(output)` (how results are grouped);
//! - [`fingerprint`]: the compact, quantized logit fingerprint a node reveals with its output,
//!   the positions it covers and how two fingerprints are compared;
//! - [`tokens`]: token-id payloads (inputs and outputs on chain are token ids, never text);
//! - [`sortition`]: who holds a query's seats, from nodes' verifiable random tickets;
//! - [`activations`]: the Merkle root over positions a pipeline shard commits to, the record
//!   it reveals and how settlement finds the shard that diverged.
//!
//! What a node runner computes for an assigned query (the seed and the position count come
//! from the `wasm-query_assigned` event, the logits from its own forward pass):
//!
//! ```
//! use nesa_market::{commitment, encode_token_ids, result_hash, Fingerprint, agree};
//!
//! let (node, query_id, seed, positions) = ("nesa1node", 7u64, [9u8; 32], 16usize);
//! let generated: Vec<u32> = vec![19556, 28, 905, 17];
//! let logits: Vec<Vec<f32>> = vec![vec![0.5, 2.0, -1.0, 0.0]; generated.len()];
//!
//! let output = encode_token_ids(&generated);
//! let fingerprint = Fingerprint::from_logits(&seed, generated.len() as u32, positions, |p| {
//!     &logits[p as usize]
//! });
//! let bytes = fingerprint.encode().unwrap(); // revealed with `output` and `salt`
//! assert_eq!(bytes.len(), 1 + 4 * 14);
//! let salt = [42u8; 32];
//! let commit = commitment(node, query_id, &result_hash(&output, &bytes), &salt); // `commit`
//! assert!(agree(&Fingerprint::decode(&bytes).unwrap(), &fingerprint, 0));
//! # let _ = commit;
//! ```
//!
//! Nothing here uses floating point on `wasm32`: the only float function
//! ([`fingerprint::quantize_logprob`] and the helpers built on it) is compiled for native
//! targets only, so the contracts' wasm stays float-free.

pub mod activations;
pub mod commitment;
pub mod devnet;
pub mod events;
pub mod fingerprint;
pub mod market;
pub mod pagination;
pub mod registry;
pub mod sortition;
pub mod staking;
pub mod tokens;
pub mod upgrade;

pub use activations::{
    activation_leaf, activations_root, first_divergent_shard, ActivationRecord, Divergence,
    SeatRecord,
};
pub use commitment::{commitment, output_hash, result_hash, shard_result_hash, Hash32};
pub use fingerprint::{agree, fingerprint_positions, Fingerprint, FingerprintEntry, TopToken};
pub use tokens::{decode_token_ids, encode_token_ids, token_count, TokenIdsError};
pub use upgrade::{MigrateMsg, UpgradeError};

/// The chain's native denomination (1 NES = 10^6 unes).
pub const DENOM: &str = "unes";

//! `nesa-market`: the public face of Nesa's market contracts.
//!
//! Everything the outside world (node runner, SDK, relayer, dApps) needs to talk to the three
//! contracts, without linking them: every instantiate/execute/query message, every response,
//! every event type and attribute name ([`registry`], [`staking`], [`market`], [`events`]).
//!
//! And the protocol logic that a node runner and the inference market must compute
//! identically, written once here:
//! - [`commitment`]: `sha256(node ‖ query_id ‖ output_hash ‖ salt)` and [`output_hash`];
//! - [`fingerprint`]: the compact, quantized logit fingerprint a node reveals with its output,
//!   the positions it covers and how two fingerprints are compared;
//! - [`tokens`]: token-id payloads (inputs and outputs on chain are token ids, never text).
//!
//! Nothing here uses floating point on `wasm32`: the only float function
//! ([`fingerprint::quantize_logprob`] and the helpers built on it) is compiled for native
//! targets only, so the contracts' wasm stays float-free.

pub mod commitment;
pub mod events;
pub mod fingerprint;
pub mod market;
pub mod registry;
pub mod staking;
pub mod tokens;

pub use commitment::{commitment, output_hash, Hash32};
pub use fingerprint::{agree, fingerprint_positions, Fingerprint, FingerprintEntry, TopToken};
pub use tokens::{decode_token_ids, encode_token_ids, token_count, TokenIdsError};

/// The chain's native denomination (1 NES = 10^6 unes).
pub const DENOM: &str = "unes";

//! `nesa-probe`: the fixture the chain's CosmWasm host is tested with.
//!
//! Every message exercises one x/wasm behaviour (storage, ordered iteration, bank messages,
//! submessages with each `reply_on`, contract-to-contract queries, instantiate2, migrate,
//! errors, panics and out-of-gas). The cw-multi-test tests in `tests/` are the reference
//! semantics the chain must match.

pub mod contract;
pub mod error;
mod execute;
pub mod msg;
mod query;
mod reply;
pub mod state;

pub use crate::error::ContractError;

//! `nesa-kernel-registry`: the AI kernels the market serves.
//!
//! Register a kernel (its weights, tokenizer and shard hashes, architecture, layers,
//! encryption, per-token prices, minimum redundancy), update what may change (prices,
//! redundancy, description), fork it into a new version, deprecate it, hand it over. Messages
//! and responses are `nesa_market::registry` types, re-exported by [`msg`].

pub mod contract;
pub mod error;
mod execute;
mod instantiate;
pub mod msg;
mod query;
pub mod state;
mod validation;

pub use crate::error::ContractError;

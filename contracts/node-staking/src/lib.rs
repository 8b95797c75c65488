//! `nesa-node-staking`: node runners bond `unes` with a profile (endpoint, kernels and layer
//! ranges served), unbond through an unbonding period, claim, and are slashed and jailed by
//! the inference market only. The market samples assignments from the `candidates` query.
//! Messages and responses are `nesa_market::staking` types, re-exported by [`msg`].

pub mod contract;
pub mod error;
mod execute;
mod instantiate;
pub mod msg;
mod profile;
mod query;
pub mod state;

pub use crate::error::ContractError;

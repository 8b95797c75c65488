//! `nesa-inference-market`: the query lifecycle (docs/architecture.md, "A query, end to end").
//!
//! [`submit`] takes the escrow and opens the query's draw; [`draw`] takes nodes' sortition
//! tickets and assigns the k seats by stake (`nesa_market::sortition`); [`commit_reveal`] runs the commit and reveal windows ([`lifecycle`] says
//! which is open); [`settle`] decides the result by consensus ([`cdv`]), pays the winners per
//! token with the protocol fee and kernel royalty split off, refunds the rest and slashes the
//! faulty through the staking contract. Messages and responses are `nesa_market::market`
//! types, re-exported by [`msg`].

pub mod cdv;
mod commit_reveal;
pub mod contract;
mod draw;
pub mod error;
mod execute;
mod instantiate;
pub mod lifecycle;
pub mod msg;
pub mod params;
pub mod pipelines;
mod query;
pub mod sampling;
pub mod settle;
pub mod state;
mod submit;

pub use crate::error::ContractError;

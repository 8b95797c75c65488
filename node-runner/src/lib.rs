//! Nesa node runner: serves registered models ("AI kernels") for the inference market.
//!
//! The inference engine and equivariant encryption are `nesa-engine`; this crate serves them:
//! - [`chain`]: the loop that picks up assigned queries, commits, reveals and settles (its
//!   decisions in [`chain::decide`]).
//! - [`api`]: the HTTP API (health, Prometheus metrics, local generation, split-mode server).
//! - [`worker`]: the one batching engine every caller shares.
//! - [`cmd`]: the `nesa-node` subcommands.

pub mod api;
pub mod chain;
pub mod cmd;
pub mod config;
pub mod metrics;
pub mod worker;

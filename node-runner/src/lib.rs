//! Nesa node runner: serves registered models ("AI kernels") for the inference market.
//!
//! - [`engine`]: the inference engine (quantized llama over GGUF, layer ranges, sampling).
//! - [`chain`]: the loop that picks up assigned queries, commits, reveals and settles.
//! - [`api`]: the HTTP API (health, Prometheus metrics, local generation).
//! - [`cmd`]: the `nesa-node` subcommands.

pub mod api;
pub mod chain;
pub mod cmd;
pub mod config;
pub mod ee;
pub mod engine;
pub mod metrics;
pub mod split;

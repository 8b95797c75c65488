//! Nesa node runner: serves registered models ("AI kernels") for the inference market.
//!
//! - [`engine`]: the inference engine (quantized llama over GGUF, layer ranges, sampling).
//! - [`cmd`]: the `nesa-node` subcommands.

pub mod cmd;
pub mod engine;

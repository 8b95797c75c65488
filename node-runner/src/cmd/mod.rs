//! The `nesa-node` subcommands; `main.rs` parses arguments and calls these.

pub mod chain;
pub mod generate;
pub mod kernel;

//! Solo mode: one process is the whole network — an embedded single-validator block producer
//! (`producer`) with its mempool and block store; the CometBFT-compatible RPC (`crate::rpc`)
//! serves them, and `nesad start --solo` (`crate::cmd::solo`) wires the two together.

pub mod blockstore;
pub mod events;
pub mod mempool;
pub mod producer;
pub mod validator;

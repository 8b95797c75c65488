//! The node runner on chain: registering kernels, bonding, and the loop that enters the draws
//! of queries for its kernel and serves the queries the market assigns to this node.

pub mod decide;
pub mod queue;
pub mod runner;
pub mod shards;
pub mod sortition;
pub mod work;

pub use crate::worker::Worker;
pub use runner::Runner;

//! The node runner on chain: registering kernels, bonding, and the loop that serves the
//! queries the market assigns to this node.

pub mod decide;
pub mod queue;
pub mod runner;
pub mod work;

pub use runner::{Runner, Worker};

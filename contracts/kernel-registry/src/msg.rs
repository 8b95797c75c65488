//! The registry's messages: defined in `nesa_market::registry` so off-chain code can use them
//! without this crate.

pub use nesa_market::registry::{
    ConfigResponse, Encryption, ExecuteMsg, InstantiateMsg, Kernel, KernelFork, KernelId,
    KernelStatus, KernelUpdate, KernelsResponse, NewKernel, QueryMsg, ShardRange,
};
pub use nesa_market::upgrade::MigrateMsg;

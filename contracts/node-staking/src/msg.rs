//! The staking contract's messages: defined in `nesa_market::staking` so off-chain code can
//! use them without this crate.

pub use nesa_market::staking::{
    Candidate, CandidatesResponse, ConfigUpdate, ExecuteMsg, InstantiateMsg, NodeProfile,
    NodeResponse, NodesResponse, QueryMsg, ServedKernel, SortitionEntry, SortitionKey,
    StakingConfig, UnbondingEntry,
};
pub use nesa_market::upgrade::MigrateMsg;

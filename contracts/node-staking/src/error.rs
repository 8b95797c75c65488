//! The staking contract's errors: each says what was wrong and what to do.

use cosmwasm_std::{Addr, Decimal, OverflowError, StdError, Uint128};
use cw_utils::PaymentError;
use thiserror::Error;

use nesa_market::registry::KernelId;
use nesa_market::staking::{MAX_CAPACITY, MAX_SERVED_KERNELS, MAX_UNBONDING_ENTRIES};
use nesa_market::UpgradeError;

#[derive(Error, Debug, PartialEq)]
pub enum ContractError {
    #[error(transparent)]
    Std(#[from] StdError),

    #[error(transparent)]
    Overflow(#[from] OverflowError),

    #[error(transparent)]
    Upgrade(#[from] UpgradeError),

    #[error("bond with one coin of the stake denom: {0}")]
    Payment(#[from] PaymentError),

    #[error("only the admin {admin} may change the configuration")]
    NotAdmin { admin: Addr },

    #[error("only the market contract may slash (configured market: {market:?})")]
    NotMarket { market: Option<Addr> },

    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },

    #[error("{node} has never bonded: bond with a profile first")]
    NotBonded { node: Addr },

    #[error("a first bond needs a profile (endpoint and kernels served)")]
    MissingProfile {},

    #[error("a first bond of {amount} is below the minimum stake {min_stake}")]
    BelowMinStake { amount: Uint128, min_stake: Uint128 },

    #[error("cannot unbond {requested}: {bonded} is bonded")]
    InsufficientBond { requested: Uint128, bonded: Uint128 },

    #[error("unbond a positive amount")]
    ZeroUnbond {},

    #[error("{MAX_UNBONDING_ENTRIES} unbonding entries are already pending: claim or wait for them first")]
    TooManyUnbondingEntries {},

    #[error(
        "nothing to claim yet: the next unbonding entry is released at height {next_release:?}"
    )]
    NothingToClaim { next_release: Option<u64> },

    #[error("the matured stake still backs query {query_id}: it is paid once that query is settled (or from height {expires_height} on)")]
    StakeLocked { query_id: u64, expires_height: u64 },

    #[error("{node} already serves {capacity} open queries, its declared capacity")]
    AtCapacity { node: Addr, capacity: u32 },

    #[error("{node} already holds query {query_id}")]
    AlreadyLocked { node: Addr, query_id: u64 },

    #[error("capacity {capacity} is out of range: take 1 to {MAX_CAPACITY} queries in flight")]
    InvalidCapacity { capacity: u32 },

    #[error("invalid sortition key: {reason}")]
    InvalidSortitionKey { reason: String },

    #[error("slash fraction {fraction} is above 1")]
    InvalidFraction { fraction: Decimal },

    #[error("{node} is not jailed")]
    NotJailed { node: Addr },

    #[error("still jailed: unjail is allowed from height {jailed_until}")]
    JailNotOver { jailed_until: u64 },

    #[error("invalid endpoint {endpoint:?}: use an http:// or https:// URL of at most 256 bytes")]
    InvalidEndpoint { endpoint: String },

    #[error("a profile lists at most {MAX_SERVED_KERNELS} kernel ranges, got {count}")]
    TooManyKernels { count: usize },

    #[error("kernel {kernel_id} is not in the registry: {reason}")]
    UnknownKernel { kernel_id: KernelId, reason: String },

    #[error("layers {start_layer}..{end_layer} of kernel {kernel_id} do not follow its shard layout ({layout}): a node serves exactly one of its ranges")]
    NotInShardLayout {
        kernel_id: u64,
        start_layer: u32,
        end_layer: u32,
        layout: String,
    },
    #[error("layers {start_layer}..{end_layer} of kernel {kernel_id} are invalid: the range must be non-empty and within its {layer_count} layers")]
    InvalidLayerRange {
        kernel_id: KernelId,
        start_layer: u32,
        end_layer: u32,
        layer_count: u32,
    },
}

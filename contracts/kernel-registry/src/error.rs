//! The registry's errors: each says what was wrong and what to do.

use cosmwasm_std::{Addr, StdError};
use cw_utils::PaymentError;
use thiserror::Error;

use nesa_market::registry::{KernelId, MAX_CONTEXT_LENGTH, MAX_REDUNDANCY, MAX_VOCAB_SIZE};
use nesa_market::UpgradeError;

#[derive(Error, Debug, PartialEq)]
pub enum ContractError {
    #[error(transparent)]
    Std(#[from] StdError),

    #[error("the registry takes no funds: {0}")]
    Payment(#[from] PaymentError),

    #[error(transparent)]
    Upgrade(#[from] UpgradeError),

    #[error("kernel {id} does not exist")]
    KernelNotFound { id: KernelId },

    #[error("only kernel {kernel_id}'s owner {owner} may do this")]
    NotOwner { kernel_id: KernelId, owner: Addr },

    #[error("kernel {kernel_id} is deprecated: fork it to publish a new version")]
    Deprecated { kernel_id: KernelId },

    #[error("the name {name:?} is taken by kernel {kernel_id}: fork it to publish a new version")]
    NameTaken { name: String, kernel_id: KernelId },

    #[error("invalid name {name:?}: use 1 to 64 letters, digits or -_./:")]
    InvalidName { name: String },

    #[error("invalid architecture {architecture:?}: use 1 to 32 of a-z 0-9 _ -")]
    InvalidArchitecture { architecture: String },

    #[error("{field} must be a sha256: 32 bytes (64 hex characters), got {len} bytes")]
    InvalidHash { field: String, len: usize },

    #[error("layer_count {layer_count} is out of range: use 1 to 4096")]
    InvalidLayerCount { layer_count: u32 },

    #[error("vocab_size {vocab_size} is out of range: use the model's vocabulary, 1 to {MAX_VOCAB_SIZE}")]
    InvalidVocabSize { vocab_size: u32 },

    #[error("context_length {context_length} is out of range: use the model's context, 1 to {MAX_CONTEXT_LENGTH}")]
    InvalidContextLength { context_length: u32 },

    #[error("invalid shard layout: {reason}")]
    InvalidShardLayout { reason: String },

    #[error("min_redundancy {value} is out of range: use 1 to {MAX_REDUNDANCY}")]
    InvalidMinRedundancy { value: u8 },

    #[error("description of {len} bytes is too long: at most 512")]
    DescriptionTooLong { len: usize },
}

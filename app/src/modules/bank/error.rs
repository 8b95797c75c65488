//! Bank errors, worded as the Cosmos SDK words them; the tx layer reports them with the SDK's
//! codes (codespace `sdk`).

use crate::state::StateError;

/// Why a bank message or transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The message could not be decoded (SDK code 2).
    #[error("tx parse error: {0}")]
    Decode(String),
    /// An address in the message is malformed (SDK code 7).
    #[error("{0}: invalid address")]
    InvalidAddress(String),
    /// An amount or denom is malformed, zero, repeated or overflows (SDK code 10).
    #[error("{0}: invalid coins")]
    InvalidCoins(String),
    /// The sender holds less than it sends (SDK code 5).
    #[error("{0}: insufficient funds")]
    InsufficientFunds(String),
    /// Reading or writing balances failed, or gas ran out.
    #[error(transparent)]
    State(#[from] StateError),
}

impl BankError {
    /// The SDK error code (codespace `sdk`), for contracts' replies.
    pub fn code(&self) -> u32 {
        match self {
            BankError::Decode(_) => 2,
            BankError::InsufficientFunds(_) => 5,
            BankError::InvalidAddress(_) => 7,
            BankError::InvalidCoins(_) => 10,
            BankError::State(StateError::OutOfGas { .. }) => 11,
            BankError::State(_) => 1,
        }
    }

    /// True when gas ran out.
    pub fn is_out_of_gas(&self) -> bool {
        matches!(self, BankError::State(StateError::OutOfGas { .. }))
    }
}

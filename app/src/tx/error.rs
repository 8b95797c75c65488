//! Transaction errors with the Cosmos SDK's codespace and codes, so wallets and CosmJS show
//! the messages their users already know.

use crate::modules::bank::BankError;
use crate::modules::wasm::WasmError;
use crate::msg::MsgError;
use crate::state::StateError;

/// The codespace of every error this module reports.
pub const CODESPACE: &str = "sdk";

/// Why a transaction was rejected or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("tx parse error: {0}")]
    Decode(String),
    #[error("{0}")]
    InvalidSequence(String),
    #[error("signature verification failed; please verify account number ({account_number}), sequence ({sequence}) and chain-id ({chain_id}): unauthorized")]
    SignatureVerification {
        account_number: u64,
        sequence: u64,
        chain_id: String,
    },
    #[error("{0}: unauthorized")]
    Unauthorized(String),
    #[error("{0}: insufficient funds")]
    InsufficientFunds(String),
    #[error("{0}: unknown request")]
    UnknownRequest(String),
    #[error("{0}: invalid address")]
    InvalidAddress(String),
    #[error("{0}: invalid pubkey")]
    InvalidPubKey(String),
    #[error("account {0} not found: unknown address")]
    UnknownAddress(String),
    #[error("{0}: invalid coins")]
    InvalidCoins(String),
    #[error("{0}")]
    OutOfGas(String),
    #[error("{0}: memo too large")]
    MemoTooLarge(String),
    #[error("{0}: insufficient fee")]
    InsufficientFee(String),
    #[error("{0}: invalid request")]
    InvalidRequest(String),
    #[error("{0}: tx too large")]
    TxTooLarge(String),
    #[error("{0}: tx timeout height")]
    TimeoutHeight(String),
    #[error(
        "account sequence mismatch, expected {expected}, got {got}: incorrect account sequence"
    )]
    WrongSequence { expected: u64, got: u64 },
    #[error("{0}: invalid gas limit")]
    InvalidGasLimit(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A wasm operation failed (codespace `wasm` for contract errors).
    #[error("{log}")]
    Wasm {
        codespace: &'static str,
        code: u32,
        log: String,
    },
    /// A message failed; its own error says why.
    #[error("failed to execute message; message index: {index}: {source}")]
    Message { index: usize, source: Box<TxError> },
}

impl TxError {
    /// The Cosmos SDK error code (codespace `sdk`).
    pub fn code(&self) -> u32 {
        match self {
            TxError::Decode(_) => 2,
            TxError::InvalidSequence(_) => 3,
            TxError::SignatureVerification { .. } | TxError::Unauthorized(_) => 4,
            TxError::InsufficientFunds(_) => 5,
            TxError::UnknownRequest(_) => 6,
            TxError::InvalidAddress(_) => 7,
            TxError::InvalidPubKey(_) => 8,
            TxError::UnknownAddress(_) => 9,
            TxError::InvalidCoins(_) => 10,
            TxError::OutOfGas(_) => 11,
            TxError::MemoTooLarge(_) => 12,
            TxError::InsufficientFee(_) => 13,
            TxError::InvalidRequest(_) => 18,
            TxError::TxTooLarge(_) => 21,
            TxError::TimeoutHeight(_) => 30,
            TxError::WrongSequence { .. } => 32,
            TxError::InvalidGasLimit(_) => 41,
            TxError::Internal(_) => 1,
            TxError::Message { source, .. } => source.code(),
            TxError::Wasm { code, .. } => *code,
        }
    }

    /// The ABCI codespace: `sdk`, or `wasm` for contract errors.
    pub fn codespace(&self) -> &'static str {
        match self {
            TxError::Wasm { codespace, .. } => codespace,
            TxError::Message { source, .. } => source.codespace(),
            _ => CODESPACE,
        }
    }
}

impl From<StateError> for TxError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::OutOfGas { .. } => TxError::OutOfGas(format!("{e}: out of gas")),
            other => TxError::Internal(other.to_string()),
        }
    }
}

impl From<BankError> for TxError {
    fn from(e: BankError) -> Self {
        match e {
            BankError::Decode(reason) => TxError::Decode(reason),
            BankError::InvalidAddress(reason) => TxError::InvalidAddress(reason),
            BankError::InvalidCoins(reason) => TxError::InvalidCoins(reason),
            BankError::InsufficientFunds(reason) => TxError::InsufficientFunds(reason),
            BankError::State(inner) => inner.into(),
        }
    }
}

impl From<WasmError> for TxError {
    fn from(e: WasmError) -> Self {
        match e {
            WasmError::Bank(inner) => inner.into(),
            WasmError::State(inner) => inner.into(),
            WasmError::Decode(reason) => TxError::Decode(reason),
            WasmError::InvalidAddress(reason) => TxError::InvalidAddress(reason),
            other => TxError::Wasm {
                codespace: other.codespace(),
                code: other.code(),
                log: other.to_string(),
            },
        }
    }
}

impl From<MsgError> for TxError {
    fn from(e: MsgError) -> Self {
        match e {
            MsgError::Bank(inner) => inner.into(),
            MsgError::Wasm(inner) => inner.into(),
            MsgError::UnknownType(url) => {
                TxError::UnknownRequest(format!("unrecognized message type `{url}`"))
            }
        }
    }
}

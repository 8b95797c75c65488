//! CosmWasm inside the chain: the embedded `cosmwasm-vm` host with x/wasm semantics — code
//! upload, classic and instantiate2 addresses, funds moved before calls, submessages with
//! `reply_on`, events, admin/migrate, gas metered per call and converted as wasmd does.

mod address;
mod backend;
pub mod contract;
pub mod encode;
pub mod genesis;
mod handle;
pub mod keys;
pub mod limits;
pub mod msg;
pub mod query;
pub mod store;
pub mod vm;

pub use address::{classic as classic_address, predictable as predictable_address};
pub use contract::{EntryPoint, Executed, Instantiate, MessageRouter, WasmCall};
pub use msg::{uncompress, WasmMsg};
pub use store::{CodeInfo, ContractInfo};
pub use vm::{CallSite, WasmVm};

use crate::modules::bank::BankError;
use crate::state::StateError;

/// The codespace of wasm errors.
pub const CODESPACE: &str = "wasm";

/// Why a wasm operation failed. Codes follow wasmd's `x/wasm/types/errors.go`.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("{0}: create wasm contract failed")]
    Create(String),
    #[error("{0}: instantiate wasm contract failed")]
    Instantiate(String),
    #[error("{0}: execute wasm contract failed")]
    Execute(String),
    #[error("no such code: {0}: not found")]
    NoSuchCode(u64),
    #[error("no such contract: {0}: not found")]
    NoSuchContract(String),
    #[error("{0}: query wasm contract failed")]
    Query(String),
    #[error("{0}: invalid")]
    InvalidMsg(String),
    #[error("{0}: migrate wasm contract failed")]
    Migration(String),
    #[error("{0}: exceeds limit")]
    Limit(String),
    #[error("{0}: duplicate")]
    Duplicate(String),
    #[error("unsupported message from contract: {0}: unknown message from the contract")]
    UnsupportedMessage(String),
    #[error("{0}: parsing events")]
    InvalidEvent(String),
    /// An error the contract returned (before its entry point is known).
    #[error("{0}")]
    Contract(String),
    /// The VM failed (trap, panic, invalid module) before the entry point is known.
    #[error("Error calling the VM: {0}")]
    Vm(String),
    #[error("{0}: out of gas")]
    OutOfGas(String),
    #[error("{0}: unauthorized")]
    Unauthorized(String),
    /// A message in a transaction could not be decoded (SDK code 2).
    #[error("tx parse error: {0}")]
    Decode(String),
    /// An address in a transaction's message is malformed (SDK code 7).
    #[error("{0}: invalid address")]
    InvalidAddress(String),
    /// Funds could not be moved, or a bank message from a contract failed.
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl WasmError {
    /// Attributes a contract or VM error to the entry point that raised it.
    pub fn in_entry_point(self, entry: EntryPoint) -> WasmError {
        let message = match self {
            WasmError::Contract(m) => m,
            WasmError::Vm(m) => format!("Error calling the VM: {m}"),
            other => return other,
        };
        match entry {
            EntryPoint::Instantiate => WasmError::Instantiate(message),
            EntryPoint::Execute | EntryPoint::Reply => WasmError::Execute(message),
            EntryPoint::Migrate => WasmError::Migration(message),
        }
    }

    /// True when gas ran out (the transaction's or a submessage's).
    pub fn is_out_of_gas(&self) -> bool {
        match self {
            WasmError::OutOfGas(_) | WasmError::State(StateError::OutOfGas { .. }) => true,
            WasmError::Bank(e) => e.is_out_of_gas(),
            _ => false,
        }
    }

    /// The ABCI codespace.
    pub fn codespace(&self) -> &'static str {
        match self {
            WasmError::OutOfGas(_)
            | WasmError::Unauthorized(_)
            | WasmError::Decode(_)
            | WasmError::InvalidAddress(_)
            | WasmError::Bank(_)
            | WasmError::State(_) => "sdk",
            _ => CODESPACE,
        }
    }

    /// The ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            WasmError::Create(_) => 2,
            WasmError::Instantiate(_) => 4,
            WasmError::Execute(_) | WasmError::Contract(_) | WasmError::Vm(_) => 5,
            WasmError::NoSuchCode(_) | WasmError::NoSuchContract(_) => 8,
            WasmError::Query(_) => 9,
            WasmError::InvalidMsg(_) => 10,
            WasmError::Migration(_) => 11,
            WasmError::Limit(_) => 13,
            WasmError::Duplicate(_) => 15,
            WasmError::UnsupportedMessage(_) => 20,
            WasmError::InvalidEvent(_) => 21,
            WasmError::OutOfGas(_) => 11,
            WasmError::Unauthorized(_) => 4,
            WasmError::Decode(_) => 2,
            WasmError::InvalidAddress(_) => 7,
            WasmError::Bank(e) => e.code(),
            WasmError::State(StateError::OutOfGas { .. }) => 11,
            WasmError::State(_) => 1,
        }
    }
}

/// Makes every code stored in `state` runnable from `vm`'s cache (after a restart, or on a node
/// whose cache directory was lost) and pins the pinned ones.
pub fn restore_cache(state: &impl crate::state::StateRead, vm: &WasmVm) -> Result<(), WasmError> {
    for (id, info) in store::codes(state)? {
        let checksum = info.checksum_bytes();
        vm.ensure_cached(&checksum, &store::code_bytes(state, id)?)?;
        if store::is_pinned(state, id)? {
            vm.pin(&checksum)?;
        }
    }
    Ok(())
}

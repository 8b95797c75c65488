//! The wasm module at genesis: codes stored (and pinned) in order, then contracts instantiated
//! in order, so the market is live from the first block.

use std::sync::Arc;

use base64::Engine;
use nesa_genesis::WasmGenesis;
use nesa_types::{Address, AddressError};

use super::contract::{instantiate, store_code, Instantiate, MessageRouter, WasmCall};
use super::msg::uncompress;
use super::store;
use super::vm::{CallSite, WasmVm};
use crate::state::{GasMeter, StateError, StateWrite};

/// Why the wasm genesis could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum WasmGenesisError {
    /// A code or contract entry is malformed.
    #[error("invalid genesis app_state: {0}")]
    Invalid(String),
    /// A code does not compile or a contract does not instantiate.
    #[error("genesis wasm: {0}")]
    Wasm(String),
    /// The state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The block genesis contracts see.
pub struct GenesisBlock<'a> {
    /// The chain id.
    pub chain_id: &'a str,
    /// The first block's height (contracts see the one before).
    pub initial_height: u64,
    /// Genesis time, nanoseconds since the Unix epoch.
    pub time_nanos: u64,
}

/// Stores every genesis code, then instantiates every genesis contract; messages the
/// contracts emit go through `router`.
pub fn init_genesis(
    state: &mut dyn StateWrite,
    vm: &Arc<WasmVm>,
    router: &dyn MessageRouter,
    block: GenesisBlock,
    genesis: &WasmGenesis,
) -> Result<(), WasmGenesisError> {
    let meter = GasMeter::unlimited();
    let site = CallSite {
        block: cosmwasm_std::BlockInfo {
            height: block.initial_height.saturating_sub(1),
            time: cosmwasm_std::Timestamp::from_nanos(block.time_nanos),
            chain_id: block.chain_id.to_string(),
        },
        tx_index: None,
        depth: 0,
        simulation: false,
    };
    let call = WasmCall {
        vm,
        meter: &meter,
        site,
        router,
    };
    for (index, code) in genesis.codes.iter().enumerate() {
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(&code.wasm_byte_code)
            .map_err(|e| {
                WasmGenesisError::Invalid(format!(
                    "genesis code {}: wasm_byte_code is not base64: {e}",
                    index + 1
                ))
            })?;
        let creator: Address = code
            .creator
            .parse()
            .map_err(|e: AddressError| WasmGenesisError::Invalid(e.to_string()))?;
        let wasm = uncompress(&compressed).map_err(|e| WasmGenesisError::Wasm(e.to_string()))?;
        let (code_id, checksum) = store_code(&call, state, &creator, &wasm, &mut vec![])
            .map_err(|e| WasmGenesisError::Wasm(format!("genesis code {}: {e}", index + 1)))?;
        if code.pinned {
            store::mark_pinned(state, code_id)?;
            vm.pin(&checksum)
                .map_err(|e| WasmGenesisError::Wasm(e.to_string()))?;
        }
    }
    for (index, contract) in genesis.contracts.iter().enumerate() {
        let parse = |text: &str| {
            text.parse::<Address>()
                .map_err(|e| WasmGenesisError::Invalid(e.to_string()))
        };
        let msg = serde_json::to_vec(&contract.msg).expect("JSON value serialises");
        let request = Instantiate {
            sender: parse(&contract.creator)?,
            admin: contract.admin.as_deref().map(parse).transpose()?,
            code_id: contract.code_id,
            label: &contract.label,
            msg: &msg,
            funds: &[],
            salt: None,
        };
        let (address, _) = instantiate(&call, state, request, &mut vec![]).map_err(|e| {
            WasmGenesisError::Wasm(format!(
                "genesis contract {} ({}): {e}",
                index + 1,
                contract.label
            ))
        })?;
        tracing::info!(%address, label = %contract.label, code_id = contract.code_id, "genesis contract instantiated");
    }
    Ok(())
}

//! The chain-wide state genesis fixes (chain id, parameters, first height) and each block
//! updates (height, time), and applying the genesis document's `app_state`: these keys, then
//! each module's own genesis.

use std::sync::Arc;

use nesa_genesis::AppState;

use crate::modules::bank::genesis::{self as bank_genesis, BankGenesisError};
use crate::modules::wasm::genesis::{self as wasm_genesis, GenesisBlock, WasmGenesisError};
use crate::modules::wasm::WasmVm;
use crate::msg::Router;
use crate::state::{StateError, StateRead, StateWrite};
use crate::tx::{ExecMode, Params, SignatureCache, TxEnv};

/// Where the chain id is stored.
pub const CHAIN_ID_KEY: &[u8] = b"app/chain_id";
/// Where the chain parameters are stored (JSON of the genesis form).
pub const PARAMS_KEY: &[u8] = b"app/params";
/// Where the height of the first block is stored.
pub const INITIAL_HEIGHT_KEY: &[u8] = b"app/initial_height";
/// The last block height, written every block (it also makes every block change the root).
pub const HEIGHT_KEY: &[u8] = b"app/height";
/// The genesis market contracts (JSON of `nesa_types::MarketContracts`).
pub const MARKET_CONTRACTS_KEY: &[u8] = b"app/market_contracts";
/// The last block time in nanoseconds (for simulations and queries between blocks).
pub const TIME_KEY: &[u8] = b"app/time";

/// Errors applying genesis.
#[derive(Debug, thiserror::Error)]
pub enum GenesisApplyError {
    /// `app_state` or its parameters are invalid.
    #[error("invalid genesis app_state: {0}")]
    Invalid(String),
    /// The bank genesis failed.
    #[error(transparent)]
    Bank(#[from] BankGenesisError),
    /// The wasm genesis failed.
    #[error(transparent)]
    Wasm(#[from] WasmGenesisError),
    /// The state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Chain-wide settings fixed at genesis.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// The chain id transactions are signed for.
    pub chain_id: String,
    /// Fee, size and gas limits.
    pub params: Params,
    /// Height of the first block.
    pub initial_height: u64,
}

impl ChainConfig {
    /// The environment a transaction executes in at `height` and `time_nanos`.
    pub fn tx_env<'a>(
        &'a self,
        wasm: &'a Arc<WasmVm>,
        signatures: &'a SignatureCache,
        height: u64,
        time_nanos: u64,
        mode: ExecMode,
    ) -> TxEnv<'a> {
        TxEnv {
            chain_id: &self.chain_id,
            time_nanos,
            tx_index: 0,
            wasm,
            signatures: Some(signatures),
            height,
            params: &self.params,
            mode,
        }
    }

    /// Reads the config genesis stored; `None` before genesis.
    pub fn load(state: &impl StateRead) -> Result<Option<ChainConfig>, StateError> {
        let Some(chain_id) = state.get(CHAIN_ID_KEY)? else {
            return Ok(None);
        };
        let params_json = state
            .get(PARAMS_KEY)?
            .ok_or_else(|| StateError::Storage("chain params missing".into()))?;
        let params: nesa_genesis::ChainParams = serde_json::from_slice(&params_json)
            .map_err(|e| StateError::Storage(format!("stored params: {e}")))?;
        let params = Params::from_genesis(&params).map_err(StateError::Storage)?;
        let initial_height = state
            .get(INITIAL_HEIGHT_KEY)?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1);
        let chain_id =
            String::from_utf8(chain_id).map_err(|e| StateError::Storage(e.to_string()))?;
        Ok(Some(ChainConfig {
            chain_id,
            params,
            initial_height,
        }))
    }
}

/// The time of the last committed block (nanoseconds), as stored in state.
pub fn last_block_time(state: &impl StateRead) -> u64 {
    state
        .get(TIME_KEY)
        .ok()
        .flatten()
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Writes the initial state: chain id, parameters, accounts and balances, then stores the
/// genesis codes and instantiates the genesis contracts.
pub fn apply_genesis(
    state: &mut dyn StateWrite,
    vm: &Arc<WasmVm>,
    chain_id: &str,
    initial_height: u64,
    genesis_time_nanos: u64,
    app_state: &AppState,
) -> Result<Params, GenesisApplyError> {
    app_state
        .validate()
        .map_err(|e| GenesisApplyError::Invalid(e.to_string()))?;
    let params = Params::from_genesis(&app_state.params).map_err(GenesisApplyError::Invalid)?;
    state.put(CHAIN_ID_KEY.to_vec(), chain_id.as_bytes().to_vec())?;
    state.put(
        PARAMS_KEY.to_vec(),
        serde_json::to_vec(&app_state.params).expect("params serialise"),
    )?;
    state.put(
        INITIAL_HEIGHT_KEY.to_vec(),
        initial_height.to_be_bytes().to_vec(),
    )?;
    state.put(
        HEIGHT_KEY.to_vec(),
        (initial_height - 1).to_be_bytes().to_vec(),
    )?;
    bank_genesis::init_genesis(state, &app_state.bank)?;
    let block = GenesisBlock {
        chain_id,
        initial_height,
        time_nanos: genesis_time_nanos,
    };
    wasm_genesis::init_genesis(state, vm, &Router, block, &app_state.wasm)?;
    if let Some(market) = &app_state.market {
        state.put(
            MARKET_CONTRACTS_KEY.to_vec(),
            serde_json::to_vec(market).expect("addresses serialise"),
        )?;
    }
    Ok(params)
}

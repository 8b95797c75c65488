//! Applying the genesis document's `app_state` to an empty state.

use nesa_genesis::AppState;

use std::sync::Arc;

use nesa_types::{Address, AddressError, Coin};

use crate::modules::bank;
use crate::modules::wasm::{self, CallSite, WasmCall, WasmVm};
use crate::state::GasMeter;
use crate::state::StateWrite;
use crate::tx::{Params, TxError};

/// Where the chain id is stored.
pub const CHAIN_ID_KEY: &[u8] = b"app/chain_id";
/// Where the chain parameters are stored (JSON of the genesis form).
pub const PARAMS_KEY: &[u8] = b"app/params";
/// Where the height of the first block is stored.
pub const INITIAL_HEIGHT_KEY: &[u8] = b"app/initial_height";
/// The last block height, written every block (it also makes every block change the root).
pub const HEIGHT_KEY: &[u8] = b"app/height";
/// The genesis market contracts (JSON of `nesa_genesis::market::MarketAddresses`).
pub const MARKET_CONTRACTS_KEY: &[u8] = b"app/market_contracts";
/// The last block time in nanoseconds (for simulations and queries between blocks).
pub const TIME_KEY: &[u8] = b"app/time";

/// Errors applying genesis.
#[derive(Debug, thiserror::Error)]
pub enum GenesisApplyError {
    #[error("invalid genesis app_state: {0}")]
    Invalid(String),
    #[error("genesis balance for {address}: {source}")]
    Balance { address: String, source: TxError },
    #[error("genesis wasm: {0}")]
    Wasm(String),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
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
    for balance in &app_state.bank.balances {
        let address: Address = balance
            .address
            .parse()
            .map_err(|e: AddressError| GenesisApplyError::Invalid(e.to_string()))?;
        let coins = balance
            .coins
            .iter()
            .map(|c| {
                Ok(Coin {
                    denom: c.denom.clone(),
                    amount: c
                        .amount_u128()
                        .map_err(|e| GenesisApplyError::Invalid(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, GenesisApplyError>>()?;
        bank::mint(state, &address, &coins).map_err(|source| GenesisApplyError::Balance {
            address: balance.address.clone(),
            source,
        })?;
    }
    apply_wasm_genesis(
        state,
        vm,
        chain_id,
        initial_height,
        genesis_time_nanos,
        app_state,
    )?;
    if let Some(market) = &app_state.market {
        state.put(
            MARKET_CONTRACTS_KEY.to_vec(),
            serde_json::to_vec(market).expect("addresses serialise"),
        )?;
    }
    Ok(params)
}

fn apply_wasm_genesis(
    state: &mut dyn StateWrite,
    vm: &Arc<WasmVm>,
    chain_id: &str,
    initial_height: u64,
    genesis_time_nanos: u64,
    app_state: &AppState,
) -> Result<(), GenesisApplyError> {
    use base64::Engine;
    for (index, code) in app_state.wasm.codes.iter().enumerate() {
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(&code.wasm_byte_code)
            .map_err(|e| {
                GenesisApplyError::Invalid(format!(
                    "genesis code {}: wasm_byte_code is not base64: {e}",
                    index + 1
                ))
            })?;
        let creator: Address = code
            .creator
            .parse()
            .map_err(|e: AddressError| GenesisApplyError::Invalid(e.to_string()))?;
        let wasm = crate::tx::uncompress(&compressed)
            .map_err(|e| GenesisApplyError::Wasm(e.to_string()))?;
        let checksum = vm
            .store(&wasm)
            .map_err(|e| GenesisApplyError::Wasm(format!("genesis code {}: {e}", index + 1)))?;
        let code_id = wasm::store::next_code_id(state)?;
        let info = wasm::CodeInfo {
            checksum: hex::encode(checksum),
            creator: creator.to_string(),
        };
        wasm::store::save_code(state, code_id, &info, &wasm)?;
        if code.pinned {
            wasm::store::mark_pinned(state, code_id)?;
            vm.pin(&checksum)
                .map_err(|e| GenesisApplyError::Wasm(e.to_string()))?;
        }
    }
    let meter = GasMeter::unlimited();
    let site = CallSite {
        block: cosmwasm_std::BlockInfo {
            height: initial_height.saturating_sub(1),
            time: cosmwasm_std::Timestamp::from_nanos(genesis_time_nanos),
            chain_id: chain_id.to_string(),
        },
        tx_index: None,
        depth: 0,
    };
    let call = WasmCall {
        vm,
        meter: &meter,
        site,
    };
    for (index, contract) in app_state.wasm.contracts.iter().enumerate() {
        let parse = |text: &str| {
            text.parse::<Address>()
                .map_err(|e| GenesisApplyError::Invalid(e.to_string()))
        };
        let msg = serde_json::to_vec(&contract.msg).expect("JSON value serialises");
        let request = wasm::Instantiate {
            sender: parse(&contract.creator)?,
            admin: contract.admin.as_deref().map(parse).transpose()?,
            code_id: contract.code_id,
            label: &contract.label,
            msg: &msg,
            funds: &[],
            salt: None,
        };
        let (address, _) = wasm::dispatch::instantiate(&call, state, request, &mut vec![])
            .map_err(|e| {
                GenesisApplyError::Wasm(format!(
                    "genesis contract {} ({}): {e}",
                    index + 1,
                    contract.label
                ))
            })?;
        tracing::info!(%address, label = %contract.label, code_id = contract.code_id, "genesis contract instantiated");
    }
    Ok(())
}

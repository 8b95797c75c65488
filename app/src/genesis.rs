//! Applying the genesis document's `app_state` to an empty state.

use nesa_genesis::AppState;

use crate::modules::auth::Address;
use crate::modules::bank::{self, Coin};
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

/// Errors applying genesis.
#[derive(Debug, thiserror::Error)]
pub enum GenesisApplyError {
    #[error("invalid genesis app_state: {0}")]
    Invalid(String),
    #[error("genesis balance for {address}: {source}")]
    Balance { address: String, source: TxError },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// Writes the initial state: chain id, parameters, accounts and balances.
pub fn apply_genesis(
    state: &mut impl StateWrite,
    chain_id: &str,
    initial_height: u64,
    app_state: &AppState,
) -> Result<Params, GenesisApplyError> {
    app_state.validate().map_err(|e| GenesisApplyError::Invalid(e.to_string()))?;
    let params = Params::from_genesis(&app_state.params).map_err(GenesisApplyError::Invalid)?;
    state.put(CHAIN_ID_KEY.to_vec(), chain_id.as_bytes().to_vec())?;
    state.put(PARAMS_KEY.to_vec(), serde_json::to_vec(&app_state.params).expect("params serialise"))?;
    state.put(INITIAL_HEIGHT_KEY.to_vec(), initial_height.to_be_bytes().to_vec())?;
    state.put(HEIGHT_KEY.to_vec(), (initial_height - 1).to_be_bytes().to_vec())?;
    for balance in &app_state.bank.balances {
        let address: Address = balance
            .address
            .parse()
            .map_err(|e: crate::modules::auth::AddressError| GenesisApplyError::Invalid(e.to_string()))?;
        let coins = balance
            .coins
            .iter()
            .map(|c| Ok(Coin { denom: c.denom.clone(), amount: c.amount_u128().map_err(|e| GenesisApplyError::Invalid(e.to_string()))? }))
            .collect::<Result<Vec<_>, GenesisApplyError>>()?;
        bank::mint(state, &address, &coins)
            .map_err(|source| GenesisApplyError::Balance { address: balance.address.clone(), source })?;
    }
    Ok(params)
}

//! The bank at genesis: initial balances, minted (their sum is the total supply).

use nesa_genesis::BankGenesis;
use nesa_types::{Address, AddressError, Coin};

use super::{mint, BankError};
use crate::state::{StateError, StateWrite};

/// Why the bank genesis could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum BankGenesisError {
    /// A balance entry is malformed.
    #[error("invalid genesis app_state: {0}")]
    Invalid(String),
    /// A balance could not be minted.
    #[error("genesis balance for {address}: {source}")]
    Balance { address: String, source: BankError },
    /// The state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Mints every genesis balance.
pub fn init_genesis(
    state: &mut dyn StateWrite,
    genesis: &BankGenesis,
) -> Result<(), BankGenesisError> {
    for balance in &genesis.balances {
        let address: Address = balance
            .address
            .parse()
            .map_err(|e: AddressError| BankGenesisError::Invalid(e.to_string()))?;
        let coins = balance
            .coins
            .iter()
            .map(|c| {
                Ok(Coin {
                    denom: c.denom.clone(),
                    amount: c
                        .amount_u128()
                        .map_err(|e| BankGenesisError::Invalid(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, BankGenesisError>>()?;
        mint(state, &address, &coins).map_err(|source| BankGenesisError::Balance {
            address: balance.address.clone(),
            source,
        })?;
    }
    Ok(())
}

//! The `app_state` section of the genesis document: everything the application initialises.

use nesa_types::{validate_denom, Address, Coin, MarketContracts, BASE_DENOM};
use serde::{Deserialize, Serialize};

use crate::document::GenesisError;

/// Initial state of every module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    /// Chain-wide parameters (fees, limits).
    #[serde(default)]
    pub params: ChainParams,
    /// Accounts module.
    #[serde(default)]
    pub auth: AuthGenesis,
    /// Bank module: initial balances.
    #[serde(default)]
    pub bank: BankGenesis,
    /// Contracts module: codes stored and contracts instantiated at genesis.
    #[serde(default)]
    pub wasm: WasmGenesis,
    /// The market contracts among the genesis contracts, for clients to find them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketContracts>,
}

/// Contracts live from the first block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmGenesis {
    /// Codes in upload order; the n-th gets code id n (from 1).
    #[serde(default)]
    pub codes: Vec<GenesisCode>,
    /// Contracts instantiated in order after every code is stored.
    #[serde(default)]
    pub contracts: Vec<GenesisContract>,
}

/// A code stored at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisCode {
    /// The wasm (optionally gzipped), base64.
    pub wasm_byte_code: String,
    /// Who uploaded it.
    pub creator: String,
    /// Keep the compiled module in memory (cheaper calls); true for the market contracts.
    #[serde(default = "yes")]
    pub pinned: bool,
}

fn yes() -> bool {
    true
}

/// A contract instantiated at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisContract {
    pub code_id: u64,
    pub label: String,
    /// The instantiate message.
    pub msg: serde_json::Value,
    /// The instantiating account.
    pub creator: String,
    /// Who may migrate the contract; absent makes it immutable.
    #[serde(default)]
    pub admin: Option<String>,
}

/// Chain-wide parameters fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    /// Minimum gas price in `fee_denom` per unit of gas, as a decimal string (e.g. "0.025").
    pub min_gas_price: String,
    /// The only denomination accepted for fees.
    pub fee_denom: String,
    /// Largest accepted transaction, in bytes.
    pub max_tx_bytes: u64,
    /// Largest gas limit a single transaction may ask for.
    pub max_tx_gas: u64,
    /// Longest memo accepted, in characters.
    pub max_memo_characters: u64,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            min_gas_price: "0.025".to_string(),
            fee_denom: BASE_DENOM.to_string(),
            max_tx_bytes: 1024 * 1024,
            max_tx_gas: 100_000_000,
            max_memo_characters: 256,
        }
    }
}

/// Accounts module genesis (accounts are created implicitly by balances).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthGenesis {}

/// Bank module genesis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankGenesis {
    /// Initial balances; the total supply is their sum.
    #[serde(default)]
    pub balances: Vec<GenesisBalance>,
}

/// One account's initial coins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBalance {
    /// Bech32 `nesa1…` address.
    pub address: String,
    /// Coins held at genesis.
    pub coins: Vec<GenesisCoin>,
}

/// An amount of one denomination, amounts as decimal strings as in the Cosmos SDK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisCoin {
    /// Denomination, e.g. `unes`.
    pub denom: String,
    /// Amount in the smallest unit, decimal.
    pub amount: String,
}

impl GenesisCoin {
    /// Parses a coin list such as `1000unes,5foo` (empty parts are skipped).
    pub fn parse_list(text: &str) -> Result<Vec<GenesisCoin>, GenesisError> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| Ok(GenesisCoin::from(&part.parse::<Coin>()?)))
            .collect()
    }

    /// The amount as an integer.
    pub fn amount_u128(&self) -> Result<u128, GenesisError> {
        self.amount.parse().map_err(|_| {
            GenesisError::InvalidCoins(format!(
                "{}{}: amount must be a whole number",
                self.amount, self.denom
            ))
        })
    }
}

impl From<&Coin> for GenesisCoin {
    fn from(coin: &Coin) -> Self {
        GenesisCoin {
            denom: coin.denom.clone(),
            amount: coin.amount.to_string(),
        }
    }
}

impl AppState {
    /// Adds coins to an account's genesis balance (merging with an existing entry).
    pub fn add_balance(
        &mut self,
        address: &str,
        coins: Vec<GenesisCoin>,
    ) -> Result<(), GenesisError> {
        validate_address(address)?;
        if coins.is_empty() {
            return Err(GenesisError::InvalidCoins("no coins given".into()));
        }
        let entry = match self.bank.balances.iter_mut().find(|b| b.address == address) {
            Some(entry) => entry,
            None => {
                self.bank.balances.push(GenesisBalance {
                    address: address.to_string(),
                    coins: vec![],
                });
                self.bank.balances.last_mut().expect("just pushed")
            }
        };
        for coin in coins {
            let add = coin.amount_u128()?;
            match entry.coins.iter_mut().find(|c| c.denom == coin.denom) {
                Some(existing) => {
                    let sum = existing
                        .amount_u128()?
                        .checked_add(add)
                        .ok_or_else(|| GenesisError::InvalidCoins("balance overflows".into()))?;
                    existing.amount = sum.to_string();
                }
                None => entry.coins.push(coin),
            }
        }
        entry.coins.sort_by(|a, b| a.denom.cmp(&b.denom));
        Ok(())
    }

    /// Checks addresses, coins and parameters.
    pub fn validate(&self) -> Result<(), GenesisError> {
        for balance in &self.bank.balances {
            validate_address(&balance.address)?;
            for coin in &balance.coins {
                validate_denom(&coin.denom)?;
                coin.amount_u128()?;
            }
        }
        for code in &self.wasm.codes {
            validate_address(&code.creator)?;
        }
        for (i, contract) in self.wasm.contracts.iter().enumerate() {
            validate_address(&contract.creator)?;
            if let Some(admin) = &contract.admin {
                validate_address(admin)?;
            }
            if contract.code_id == 0 || contract.code_id as usize > self.wasm.codes.len() {
                return Err(GenesisError::InvalidParams(format!(
                    "genesis contract {i} uses code {} but genesis stores {} codes",
                    contract.code_id,
                    self.wasm.codes.len()
                )));
            }
        }
        if self.params.max_tx_bytes == 0 || self.params.max_tx_gas == 0 {
            return Err(GenesisError::InvalidParams(
                "max_tx_bytes and max_tx_gas must be positive".into(),
            ));
        }
        if self.params.max_tx_gas > crate::BLOCK_MAX_GAS {
            return Err(GenesisError::InvalidParams(format!(
                "max_tx_gas ({}) must fit in a block ({} gas)",
                self.params.max_tx_gas,
                crate::BLOCK_MAX_GAS
            )));
        }
        validate_denom(&self.params.fee_denom)?;
        Ok(())
    }
}

/// Checks that `address` is a bech32 `nesa1…` address of 20 or 32 bytes.
pub fn validate_address(address: &str) -> Result<(), GenesisError> {
    address.parse::<Address>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coin_lists_parse_and_reject_garbage() {
        let coins = GenesisCoin::parse_list("1000unes,5uatom").unwrap();
        assert_eq!(
            coins[0],
            GenesisCoin {
                denom: "unes".into(),
                amount: "1000".into()
            }
        );
        assert_eq!(coins[1].denom, "uatom");
        assert!(GenesisCoin::parse_list("unes").is_err());
        assert!(GenesisCoin::parse_list("100").is_err());
        assert!(GenesisCoin::parse_list("10u").is_err());
    }

    #[test]
    fn adding_to_an_account_twice_merges_balances() {
        let mut state = AppState::default();
        let address = test_address();
        state
            .add_balance(&address, GenesisCoin::parse_list("10unes").unwrap())
            .unwrap();
        state
            .add_balance(&address, GenesisCoin::parse_list("5unes,1uatom").unwrap())
            .unwrap();
        assert_eq!(state.bank.balances.len(), 1);
        assert_eq!(
            state.bank.balances[0].coins[1],
            GenesisCoin {
                denom: "unes".into(),
                amount: "15".into()
            }
        );
        state.validate().unwrap();
    }

    #[test]
    fn addresses_with_another_prefix_are_rejected() {
        let err = validate_address("cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4").unwrap_err();
        assert!(err.to_string().contains("expected prefix `nesa`"), "{err}");
    }

    fn test_address() -> String {
        Address::from_bytes([7u8; 20]).to_string()
    }
}

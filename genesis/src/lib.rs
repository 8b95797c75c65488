//! Nesa genesis: the application state a chain starts from, the CometBFT-compatible genesis
//! document that carries it, and the builder `nesad init` and `nesad genesis` use.

mod app_state;
mod document;
pub mod market;

pub use app_state::{
    is_valid_denom, validate_address, AppState, AuthGenesis, BankGenesis, ChainParams,
    GenesisBalance, GenesisCode, GenesisCoin, GenesisContract, WasmGenesis,
};
pub use document::{GenesisDoc, GenesisError, GenesisValidator};

/// The staking and fee denomination: 1 NES = 10^6 unes.
pub const DENOM: &str = "unes";
/// Bech32 human-readable prefix of account addresses.
pub const ACCOUNT_PREFIX: &str = "nesa";

//! Nesa genesis: the application state a chain starts from, the CometBFT-compatible genesis
//! document that carries it, and the builder `nesad init` and `nesad genesis` use.

mod app_state;
mod document;
pub mod market;

pub use app_state::{
    validate_address, AppState, AuthGenesis, BankGenesis, ChainParams, GenesisBalance, GenesisCode,
    GenesisCoin, GenesisContract, WasmGenesis,
};
pub use document::{
    consensus_params, GenesisDoc, GenesisError, GenesisValidator, BLOCK_MAX_BYTES, BLOCK_MAX_GAS,
};

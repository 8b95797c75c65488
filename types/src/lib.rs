//! The primitives every side of Nesa shares — the chain (`nesad`), genesis, the sdk and the
//! node runner: addresses, coins, the bech32 prefix and base denom, and the market's contract
//! set with the query path that serves it, and the loader of every process's config file. Light on purpose: no cosmrs, no tendermint, no
//! cosmwasm; conversions to those crates' types live where those crates are used.

pub mod address;
pub mod coin;
pub mod config;
pub mod market;
pub mod private;

pub use address::{AccountAddress, Address, AddressError, ContractAddress};
pub use coin::{
    format_coins, is_valid_denom, validate_coin_list, validate_denom, Coin, CoinError, Coins,
};
pub use market::{MarketContracts, MARKET_CONTRACTS_PATH};

/// Bech32 human-readable prefix of Nesa addresses (`nesa1…`).
pub const ACCOUNT_PREFIX: &str = "nesa";
/// Base denomination of the staking and fee token (1 NES = 10^6 unes).
pub const BASE_DENOM: &str = "unes";
/// Number of `unes` in one NES.
pub const UNES_PER_NES: u128 = 1_000_000;

//! Nesa client library: addresses, coins, keys, transaction signing, chain queries, the
//! market client, ee-v1 key files, the split-mode client, the swarm's pipeline driver and the
//! model tokenizer (the last re-exported from the engine, `nesa-engine`).
//!
//! Every off-chain process (node runner, relayer, the `nesa` CLI, app tests) talks to the chain
//! through this crate, so there is one tx builder, one keyring and one RPC client.

pub mod address;
pub mod client;
pub mod coin;
pub mod ee;
pub mod fee;
pub mod keys;
pub mod market;
pub mod msgs;
pub mod split;
pub mod swarm;
pub mod tx;

/// Typed GGUF metadata reads (the engine's).
pub use nesa_engine::gguf;
/// Where model files live on this machine (the engine's).
pub use nesa_engine::models;
/// The model tokenizer built from a GGUF file (the engine's).
pub use nesa_engine::tokenizer;

pub use address::{Address, AddressError, AddressExt, ContractAddress};
pub use client::{
    chain_reason, AccountInfo, BlockWatcher, ChainClient, ClientError, MarketContracts,
    SendTxOptions, TxEvent, TxEventAttribute, TxOutcome, TxSender, WatchedBlock,
};
pub use coin::{Coin, CoinError, CoinExt, Coins, CoinsExt};
pub use fee::{FeeError, FeeSetting, GasPrice, GasSetting};
pub use keys::{signing_key_from_mnemonic, KeyEntry, KeyError, Keyring};
pub use tx::{SignDocParts, SignedTx, TxBuilder, TxError};

/// Re-exported so callers build messages with the same cosmrs/proto versions this crate signs with.
pub use cosmrs;
/// Re-exported so callers use the same tendermint types (hashes, chain ids) as the client.
pub use tendermint;

/// The primitives the chain and every client share (addresses, coins, the market's contracts).
pub use nesa_types;
pub use nesa_types::{ACCOUNT_PREFIX, BASE_DENOM, MARKET_CONTRACTS_PATH, UNES_PER_NES};
/// BIP-44 derivation path of the first account key (coin type 118, as on the Cosmos Hub).
pub const HD_PATH: &str = "m/44'/118'/0'/0/0";
/// Default CometBFT JSON-RPC endpoint of a local node.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:26657";

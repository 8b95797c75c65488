//! The node's home directory (default `~/.nesad`), laid out like CometBFT's so one home serves
//! both `nesad start --solo` and a CometBFT node: `config/genesis.json`,
//! `config/priv_validator_key.json`, `config/nesad.toml`, `data/state.redb`.

use std::path::{Path, PathBuf};

use nesa_types::config::{self, ConfigError};
use serde::{Deserialize, Serialize};

/// Paths inside a home directory.
pub struct HomePaths {
    home: PathBuf,
}

impl HomePaths {
    /// Paths under `home`.
    pub fn new(home: &Path) -> Self {
        HomePaths {
            home: home.to_path_buf(),
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home.join("config")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }
    pub fn genesis(&self) -> PathBuf {
        self.config_dir().join("genesis.json")
    }
    pub fn validator_key(&self) -> PathBuf {
        self.config_dir().join("priv_validator_key.json")
    }
    pub fn node_config(&self) -> PathBuf {
        self.config_dir().join("nesad.toml")
    }
    pub fn wasm_dir(&self) -> PathBuf {
        self.data_dir().join("wasm")
    }
    pub fn state_db(&self) -> PathBuf {
        self.data_dir().join("state.redb")
    }
}

/// The default home: `~/.nesad`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".nesad")
}

/// The moniker chosen at `nesad init` (stored in the node config).
pub fn moniker(home: &Path) -> String {
    NodeConfig::load(home)
        .map(|c| c.moniker)
        .unwrap_or_else(|_| "nesad".into())
}

/// `config/nesad.toml`: every field has a default; command-line flags override it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct NodeConfig {
    /// Human-readable node name.
    pub moniker: String,
    /// Solo mode: where the CometBFT-compatible JSON-RPC listens.
    pub rpc_laddr: String,
    /// Where the Cosmos SDK REST API listens (both modes) (`off` for nowhere).
    pub api_laddr: String,
    /// Where the Cosmos SDK gRPC services listen (both modes) (`off` for nowhere).
    pub grpc_laddr: String,
    /// CometBFT mode: the CometBFT node's RPC, which the REST and gRPC APIs read blocks and
    /// transactions from and broadcast through.
    pub cometbft_rpc: String,
    /// CometBFT mode: where the ABCI socket listens for CometBFT.
    pub abci_laddr: String,
    /// Solo mode: longest wait for transactions before an empty block, in milliseconds.
    pub block_interval_ms: u64,
    /// Solo mode: shortest time between two blocks, in milliseconds (CometBFT's
    /// `timeout_commit` plays this part), so a flood of transactions cannot make the market's
    /// block-counted windows pass faster than this.
    pub min_block_interval_ms: u64,
    /// Log filter (e.g. `info`, `nesa_app=debug`); `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "nesad".into(),
            rpc_laddr: "tcp://127.0.0.1:26657".into(),
            api_laddr: "tcp://127.0.0.1:1317".into(),
            grpc_laddr: "tcp://127.0.0.1:9090".into(),
            cometbft_rpc: "http://127.0.0.1:26657".into(),
            abci_laddr: "tcp://127.0.0.1:26658".into(),
            block_interval_ms: 1000,
            min_block_interval_ms: 1000,
            log_level: "info".into(),
        }
    }
}

impl NodeConfig {
    /// Reads `config/nesad.toml`, or the defaults when it does not exist.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        config::load_or_default(&HomePaths::new(home).node_config())
    }

    /// Writes the config with a comment above each field.
    pub fn save(&self, home: &Path) -> Result<(), ConfigError> {
        let text = format!(
            "# nesad node configuration. Command-line flags override these values.\n\n\
             # Human-readable node name.\nmoniker = {moniker:?}\n\n\
             # Solo mode (`nesad start --solo`): where the CometBFT-compatible JSON-RPC listens.\nrpc_laddr = {rpc:?}\n\n\
             # Where the Cosmos SDK REST API (LCD) listens, in both modes; \"off\" serves none.\napi_laddr = {api:?}\n\n\
             # Where the Cosmos SDK gRPC services listen, in both modes (HTTP/2 without TLS); \"off\" serves none.\ngrpc_laddr = {grpc:?}\n\n\
             # CometBFT mode: the CometBFT node's RPC, which the REST and gRPC APIs broadcast through and read blocks and transactions from.\ncometbft_rpc = {cometbft_rpc:?}\n\n\
             # CometBFT mode (`nesad start`): where the ABCI socket listens for CometBFT (its `proxy_app`).\nabci_laddr = {abci:?}\n\n\
             # Solo mode: longest wait for transactions before producing an empty block, in milliseconds.\nblock_interval_ms = {interval}\n\n\
             # Solo mode: shortest time between two blocks, in milliseconds, however many transactions arrive.\nmin_block_interval_ms = {min_interval}\n\n\
             # Log filter, e.g. \"info\" or \"nesa_app=debug\"; the RUST_LOG environment variable overrides it.\nlog_level = {log:?}\n",
            moniker = self.moniker,
            rpc = self.rpc_laddr,
            api = self.api_laddr,
            grpc = self.grpc_laddr,
            cometbft_rpc = self.cometbft_rpc,
            abci = self.abci_laddr,
            interval = self.block_interval_ms,
            min_interval = self.min_block_interval_ms,
            log = self.log_level,
        );
        config::write(&HomePaths::new(home).node_config(), &text)
    }
}

/// Strips `tcp://` from a listen address.
pub fn socket_address(laddr: &str) -> &str {
    laddr.strip_prefix("tcp://").unwrap_or(laddr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_loads_back_identical() {
        let home = std::env::temp_dir().join(format!("nesad-config-test-{}", std::process::id()));
        std::fs::create_dir_all(HomePaths::new(&home).config_dir()).unwrap();
        let config = NodeConfig {
            moniker: "val-1".into(),
            block_interval_ms: 250,
            min_block_interval_ms: 100,
            ..NodeConfig::default()
        };
        config.save(&home).unwrap();
        assert_eq!(NodeConfig::load(&home).unwrap(), config);
        std::fs::remove_dir_all(home).unwrap();
    }
}

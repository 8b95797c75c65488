//! `config.toml` in the node runner's home (default `~/.nesa-node`): every field has a default
//! and a comment; command-line flags override it.

use std::path::{Path, PathBuf};

use nesa_types::config::{self, ConfigError};
use serde::{Deserialize, Serialize};

/// The node runner's configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RunnerConfig {
    /// CometBFT JSON-RPC of a Nesa node.
    pub node: String,
    /// Name of this runner's key in `<home>/keyring.json` (it bonds, commits and reveals).
    pub key: String,
    /// The GGUF model this runner serves.
    pub model: PathBuf,
    /// The registered kernel id of that model (set by `nesa-node register`, or by hand).
    pub kernel_id: Option<u64>,
    /// Where the HTTP API (health, metrics, local generation) listens; also the endpoint
    /// published in the node's on-chain profile.
    pub api_laddr: String,
    /// Log filter (`info`, `nesa_node=debug`, …); RUST_LOG overrides it.
    pub log_level: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            node: "http://127.0.0.1:26657".into(),
            key: "node".into(),
            model: nesa_engine::default_model_path(),
            kernel_id: None,
            api_laddr: "127.0.0.1:8700".into(),
            log_level: "info".into(),
        }
    }
}

/// The default home: `~/.nesa-node`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".nesa-node")
}

impl RunnerConfig {
    fn path(home: &Path) -> PathBuf {
        home.join("config.toml")
    }

    /// Reads the config, or the defaults when there is none.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        config::load_or_default(&Self::path(home))
    }

    /// Writes the config with a comment above each field.
    pub fn save(&self, home: &Path) -> Result<(), ConfigError> {
        let text = format!(
            "# nesa-node configuration. Command-line flags override these values.\n\n\
             # CometBFT JSON-RPC of a Nesa node.\nnode = {node:?}\n\n\
             # Name of this runner's key in keyring.json (it bonds, commits and reveals).\nkey = {key:?}\n\n\
             # The GGUF model this runner serves.\nmodel = {model:?}\n\n\
             # The registered kernel id of that model (set by `nesa-node register`).\n{kernel}\n\n\
             # HTTP API (health, metrics, local generation); also the endpoint in the on-chain profile.\napi_laddr = {api:?}\n\n\
             # Log filter; RUST_LOG overrides it.\nlog_level = {log:?}\n",
            node = self.node,
            key = self.key,
            model = self.model.display().to_string(),
            kernel = match self.kernel_id {
                Some(id) => format!("kernel_id = {id}"),
                None => "# kernel_id = 1".to_string(),
            },
            api = self.api_laddr,
            log = self.log_level,
        );
        config::write(&Self::path(home), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_loads_back_identical() {
        let home = std::env::temp_dir().join(format!("nesa-node-config-{}", std::process::id()));
        let config = RunnerConfig {
            kernel_id: Some(4),
            key: "runner-1".into(),
            ..RunnerConfig::default()
        };
        config.save(&home).unwrap();
        assert_eq!(RunnerConfig::load(&home).unwrap(), config);
        std::fs::remove_dir_all(home).unwrap();
    }
}

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
    /// Name of this runner's key in its keyring (it bonds, commits and reveals).
    pub key: String,
    /// The GGUF model this runner serves.
    pub model: PathBuf,
    /// The registered kernel id of that model (set by `nesa-node register`, or by hand).
    pub kernel_id: Option<u64>,
    /// For a sharded kernel: the blocks `[start, end)` this runner serves, one range of the
    /// kernel's shard layout (`--layers 0..15`); none serves the whole model.
    pub layers: Option<[usize; 2]>,
    /// Where the HTTP API (health, metrics, local generation) listens; also the endpoint
    /// published in the node's on-chain profile.
    pub api_laddr: String,
    /// Log filter (`info`, `nesa_node=debug`, …); RUST_LOG overrides it.
    pub log_level: String,
    /// Queries generated at once, batched together in every forward pass (the weights are
    /// read once per step for all of them). With `queue_limit` it makes the capacity published
    /// in the node's profile (see [`RunnerConfig::published_capacity`]).
    pub capacity: u32,
    /// Memory the engine's key/value caches may use, in MiB: a generation is admitted when
    /// its worst case (prompt + most tokens) fits, and a query that could never fit is not
    /// taken on.
    pub kv_budget_mib: u64,
    /// Assigned queries that may wait for the engine; beyond it they are not taken on.
    pub queue_limit: u32,
    /// Bearer token that lets peers other than loopback call `/v1/generate`; without one,
    /// only loopback peers may.
    pub api_token: Option<String>,
    /// Requests the HTTP API computes at once (`/v1/generate`, `/v1/split/forward`); more
    /// are answered 503.
    pub api_max_concurrent: u32,
    /// Open split-mode sessions; more are answered 429.
    pub split_max_sessions: u32,
    /// Memory all split sessions' KV caches may use together, in MiB; beyond it 503.
    pub split_kv_budget_mib: u64,
    /// Seconds after which an idle split session is closed.
    pub split_session_idle_secs: u64,
}

impl RunnerConfig {
    /// The blocks this runner serves, when it serves a shard.
    pub fn layers(&self) -> Option<std::ops::Range<usize>> {
        self.layers.map(|[start, end]| start..end)
    }

    /// The capacity published in the node's profile: the open queries the market may assign
    /// it, i.e. those its work queue holds (generating or waiting).
    pub fn published_capacity(&self) -> u32 {
        (self.capacity.max(1).saturating_add(self.queue_limit))
            .clamp(1, nesa_market::staking::MAX_CAPACITY)
    }

    /// The engine's batching limits this config sets.
    pub fn scheduler(&self) -> nesa_engine::SchedulerConfig {
        nesa_engine::SchedulerConfig {
            kv_budget_bytes: (self.kv_budget_mib as usize).saturating_mul(1 << 20),
            // Market queries plus the operator's and split-mode requests.
            max_sequences: (self.capacity as usize + self.api_max_concurrent as usize).max(1),
            ..Default::default()
        }
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            node: "http://127.0.0.1:26657".into(),
            key: "node".into(),
            model: nesa_engine::default_model_path(),
            kernel_id: None,
            layers: None,
            api_laddr: "127.0.0.1:8700".into(),
            log_level: "info".into(),
            capacity: 8,
            kv_budget_mib: 512,
            queue_limit: 16,
            api_token: None,
            api_max_concurrent: 8,
            split_max_sessions: 16,
            split_kv_budget_mib: 512,
            split_session_idle_secs: 300,
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
             # Name of this runner's key in its keyring (it bonds, commits and reveals).\nkey = {key:?}\n\n\
             # The GGUF model this runner serves.\nmodel = {model:?}\n\n\
             # The registered kernel id of that model (set by `nesa-node register`).\n{kernel}\n\n\
             # For a sharded kernel: the blocks [start, end) this runner serves, one range of its shard layout.\n{layers}\n\n\
             # HTTP API (health, metrics, local generation); also the endpoint in the on-chain profile.\napi_laddr = {api:?}\n\n\
             # Log filter; RUST_LOG overrides it.\nlog_level = {log:?}\n\n\
             # Queries generated at once, batched in every forward pass (with queue_limit: the capacity in the node's profile).\ncapacity = {capacity}\n\n\
             # MiB the engine's key/value caches may use; a query whose worst case cannot fit is not taken on.\nkv_budget_mib = {kv_budget_mib}\n\n\
             # Assigned queries that may wait for the engine; beyond it they are not taken on.\nqueue_limit = {queue_limit}\n\n\
             # Bearer token for /v1/generate from peers other than loopback (none: loopback only).\n{token}\n\n\
             # Requests the HTTP API computes at once; more are answered 503.\napi_max_concurrent = {api_max_concurrent}\n\n\
             # Open split-mode sessions; more are answered 429.\nsplit_max_sessions = {split_max_sessions}\n\n\
             # MiB all split sessions' KV caches may use together; beyond it 503.\nsplit_kv_budget_mib = {split_kv_budget_mib}\n\n\
             # Seconds after which an idle split session is closed.\nsplit_session_idle_secs = {split_session_idle_secs}\n",
            node = self.node,
            key = self.key,
            model = self.model.display().to_string(),
            kernel = match self.kernel_id {
                Some(id) => format!("kernel_id = {id}"),
                None => "# kernel_id = 1".to_string(),
            },
            layers = match self.layers {
                Some([start, end]) => format!("layers = [{start}, {end}]"),
                None => "# layers = [0, 15]".to_string(),
            },
            api = self.api_laddr,
            log = self.log_level,
            capacity = self.capacity,
            kv_budget_mib = self.kv_budget_mib,
            queue_limit = self.queue_limit,
            token = match &self.api_token {
                Some(token) => format!("api_token = {token:?}"),
                None => "# api_token = \"a long random string\"".to_string(),
            },
            api_max_concurrent = self.api_max_concurrent,
            split_max_sessions = self.split_max_sessions,
            split_kv_budget_mib = self.split_kv_budget_mib,
            split_session_idle_secs = self.split_session_idle_secs,
        );
        // The config may hold the API token: owner-only, like the keyring beside it.
        let path = Self::path(home);
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| ConfigError::Io {
                action,
                path,
                source,
            }
        };
        nesa_sdk::keys::create_private_dir(home).map_err(io("create", home))?;
        nesa_sdk::keys::write_private_file(&path, text.as_bytes()).map_err(io("write", &path))
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
            layers: Some([15, 30]),
            key: "runner-1".into(),
            capacity: 3,
            kv_budget_mib: 96,
            api_token: Some("s3cret \"quoted\"".into()),
            ..RunnerConfig::default()
        };
        config.save(&home).unwrap();
        assert_eq!(RunnerConfig::load(&home).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.join("config.toml"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the config may hold the API token");
        }
        std::fs::remove_dir_all(home).unwrap();
    }
}

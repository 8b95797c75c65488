//! The genesis document, in the JSON shape CometBFT 0.38 reads, so one file serves both
//! `nesad start --solo` and a CometBFT node.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::AppState;

/// Errors reading, building or validating a genesis document.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read or written.
    #[error("genesis file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid genesis JSON.
    #[error("genesis file {path} is not valid genesis JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    /// An address is malformed.
    #[error(transparent)]
    InvalidAddress(#[from] nesa_types::AddressError),
    /// A coin amount or denomination is malformed.
    #[error("invalid coins: {0}")]
    InvalidCoins(String),
    /// A coin is malformed.
    #[error("invalid coins: {0}")]
    Coin(#[from] nesa_types::CoinError),
    /// A parameter is out of range.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The chain id is unusable.
    #[error("invalid chain id `{0}`: use 1-50 characters of letters, digits, '-', '_' or '.'")]
    InvalidChainId(String),
}

/// A validator listed in the genesis document (CometBFT's JSON shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    /// Upper-case hex of the first 20 bytes of sha256(ed25519 public key).
    pub address: String,
    /// `{"type": "tendermint/PubKeyEd25519", "value": "<base64>"}`.
    pub pub_key: serde_json::Value,
    /// Voting power, decimal string.
    pub power: String,
    /// Human-readable name (moniker).
    #[serde(default)]
    pub name: String,
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenesisDoc {
    /// RFC 3339 time of the first block.
    pub genesis_time: String,
    /// The chain id transactions are signed for.
    pub chain_id: String,
    /// Height of the first block, decimal string.
    #[serde(default = "default_initial_height")]
    pub initial_height: String,
    /// Consensus parameters; absent means CometBFT's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_params: Option<serde_json::Value>,
    /// The initial validator set.
    #[serde(default)]
    pub validators: Vec<GenesisValidator>,
    /// Expected app hash after genesis (empty: not checked).
    #[serde(default)]
    pub app_hash: String,
    /// The application's initial state.
    pub app_state: AppState,
}

fn default_initial_height() -> String {
    "1".to_string()
}

/// Most gas one block may use, summed over its transactions' gas limits (CometBFT's
/// `block.max_gas`; CometBFT's default, -1, would let one block run for ever).
pub const BLOCK_MAX_GAS: u64 = 100_000_000;

/// Largest block in bytes (CometBFT's default `block.max_bytes`).
pub const BLOCK_MAX_BYTES: u64 = 22_020_096;

/// CometBFT's default consensus parameters with the block gas limit set.
pub fn consensus_params() -> serde_json::Value {
    serde_json::json!({
        "block": {
            "max_bytes": BLOCK_MAX_BYTES.to_string(),
            "max_gas": BLOCK_MAX_GAS.to_string()
        },
        "evidence": {
            "max_age_num_blocks": "100000",
            "max_age_duration": "172800000000000",
            "max_bytes": "1048576"
        },
        "validator": { "pub_key_types": ["ed25519"] },
        "version": { "app": "0" },
        "abci": { "vote_extensions_enable_height": "0" }
    })
}

impl GenesisDoc {
    /// A new genesis document with default parameters and no accounts.
    pub fn new(chain_id: &str, genesis_time: String) -> Result<Self, GenesisError> {
        validate_chain_id(chain_id)?;
        Ok(GenesisDoc {
            genesis_time,
            chain_id: chain_id.to_string(),
            initial_height: default_initial_height(),
            consensus_params: Some(consensus_params()),
            validators: vec![],
            app_hash: String::new(),
            app_state: AppState::default(),
        })
    }

    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: display.clone(),
            source,
        })?;
        let doc: GenesisDoc = serde_json::from_str(&text).map_err(|source| GenesisError::Json {
            path: display,
            source,
        })?;
        doc.validate()?;
        Ok(doc)
    }

    /// Writes the document as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        let display = path.display().to_string();
        let text = serde_json::to_string_pretty(self).expect("genesis serialises");
        std::fs::write(path, text + "\n").map_err(|source| GenesisError::Io {
            path: display,
            source,
        })
    }

    /// The first block height.
    pub fn initial_height(&self) -> Result<u64, GenesisError> {
        self.initial_height
            .parse::<u64>()
            .ok()
            .filter(|h| *h >= 1)
            .ok_or_else(|| {
                GenesisError::InvalidParams(format!(
                    "initial_height `{}` must be a positive integer",
                    self.initial_height
                ))
            })
    }

    /// Checks the chain id, the initial height and the application state.
    pub fn validate(&self) -> Result<(), GenesisError> {
        validate_chain_id(&self.chain_id)?;
        self.initial_height()?;
        self.app_state.validate()
    }
}

fn validate_chain_id(chain_id: &str) -> Result<(), GenesisError> {
    let valid = (1..=50).contains(&chain_id.len())
        && chain_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(GenesisError::InvalidChainId(chain_id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_document_loads_back_identical() {
        let dir = std::env::temp_dir().join(format!("nesa-genesis-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("genesis.json");
        let doc = GenesisDoc::new("nesa-test-1", "2026-01-01T00:00:00Z".into()).unwrap();
        doc.save(&path).unwrap();
        assert_eq!(GenesisDoc::load(&path).unwrap(), doc);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chain_ids_with_spaces_are_rejected() {
        assert!(matches!(
            GenesisDoc::new("my chain", String::new()),
            Err(GenesisError::InvalidChainId(_))
        ));
    }

    #[test]
    fn a_cometbft_genesis_with_consensus_params_is_accepted() {
        let json = r#"{"genesis_time":"2026-01-01T00:00:00Z","chain_id":"c-1","initial_height":"1",
            "consensus_params":{"block":{"max_bytes":"22020096","max_gas":"-1"}},
            "validators":[],"app_hash":"","app_state":{}}"#;
        let doc: GenesisDoc = serde_json::from_str(json).unwrap();
        doc.validate().unwrap();
        assert!(doc.consensus_params.is_some());
    }
}

//! The `nesad` commands: `init`, `genesis add-account`, `start`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nesa_genesis::{GenesisCoin, GenesisDoc, GenesisValidator};
use serde_json::json;

use crate::home::{socket_address, HomePaths, NodeConfig};
use crate::solo::validator::ValidatorKey;

/// `nesad init <moniker> --chain-id <id>`: writes config, a validator key and a genesis file.
pub fn init(home: &Path, moniker: &str, chain_id: &str, overwrite: bool) -> anyhow::Result<()> {
    let paths = HomePaths::new(home);
    if paths.genesis().exists() && !overwrite {
        anyhow::bail!(
            "{} already exists; pass --overwrite to replace it (this discards the chain's genesis)",
            paths.genesis().display()
        );
    }
    std::fs::create_dir_all(paths.config_dir())?;
    std::fs::create_dir_all(paths.data_dir())?;
    let key = if paths.validator_key().exists() {
        ValidatorKey::load(&paths.validator_key())?
    } else {
        let key = ValidatorKey::generate();
        key.save(&paths.validator_key())?;
        key
    };
    let now = tendermint::Time::now().to_rfc3339();
    let mut genesis = GenesisDoc::new(chain_id, now)?;
    genesis.validators.push(GenesisValidator {
        address: key.address.to_string(),
        pub_key: serde_json::to_value(key.pub_key)?,
        power: "10".into(),
        name: moniker.to_string(),
    });
    genesis.save(&paths.genesis())?;
    NodeConfig { moniker: moniker.to_string(), ..NodeConfig::default() }.save(home)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "moniker": moniker,
            "chain_id": chain_id,
            "home": home.display().to_string(),
            "validator_address": key.address.to_string(),
            "genesis": paths.genesis().display().to_string(),
        }))?
    );
    Ok(())
}

/// `nesad genesis add-account <address> <coins>`.
pub fn add_genesis_account(home: &Path, address: &str, coins: &str) -> anyhow::Result<()> {
    let path = HomePaths::new(home).genesis();
    let mut genesis = GenesisDoc::load(&path).with_context(|| "run `nesad init` first".to_string())?;
    genesis.app_state.add_balance(address, GenesisCoin::parse_list(coins)?)?;
    genesis.save(&path)?;
    println!("added {coins} to {address} in {}", path.display());
    Ok(())
}

/// Options of `nesad start`.
pub struct StartOptions {
    pub home: PathBuf,
    pub solo: bool,
    pub rpc_laddr: Option<String>,
    pub abci_laddr: Option<String>,
    pub block_interval_ms: Option<u64>,
}

/// `nesad start [--solo]`.
pub fn start(options: StartOptions) -> anyhow::Result<()> {
    let config = NodeConfig::load(&options.home)?;
    let paths = HomePaths::new(&options.home);
    if options.solo {
        let rpc = options.rpc_laddr.unwrap_or(config.rpc_laddr);
        let solo = crate::solo::SoloConfig {
            home: options.home.clone(),
            rpc_address: socket_address(&rpc).to_string(),
            block_interval: Duration::from_millis(options.block_interval_ms.unwrap_or(config.block_interval_ms).max(1)),
        };
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(crate::solo::run(solo))
    } else {
        let abci = options.abci_laddr.unwrap_or(config.abci_laddr);
        let storage = crate::state::Storage::open(&paths.state_db())?;
        let app = Arc::new(crate::app::App::new(storage, &paths.wasm_dir())?);
        if let Some(last) = app.last_block()? {
            tracing::info!(height = last.height, app_hash = %hex::encode_upper(last.app_hash), "state loaded");
        }
        crate::abci::serve(app, socket_address(&abci))
    }
}

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

/// `nesad genesis add-wasm <file> --creator <addr>`: stores a code at genesis.
pub fn add_genesis_wasm(home: &Path, file: &Path, creator: &str, pinned: bool) -> anyhow::Result<()> {
    use base64::Engine;
    let path = HomePaths::new(home).genesis();
    let mut genesis = GenesisDoc::load(&path).with_context(|| "run `nesad init` first".to_string())?;
    nesa_genesis::validate_address(creator)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let wasm = crate::tx::uncompress(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    crate::modules::wasm::WasmVm::check(&wasm).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    genesis.app_state.wasm.codes.push(nesa_genesis::GenesisCode {
        wasm_byte_code: base64::engine::general_purpose::STANDARD.encode(&bytes),
        creator: creator.to_string(),
        pinned,
    });
    genesis.save(&path)?;
    println!("{}", genesis.app_state.wasm.codes.len());
    Ok(())
}

/// `nesad genesis instantiate <code-id> <msg> --label … --creator …`: instantiates at genesis.
pub fn add_genesis_contract(
    home: &Path,
    code_id: u64,
    msg: &str,
    label: &str,
    creator: &str,
    admin: Option<String>,
) -> anyhow::Result<()> {
    let path = HomePaths::new(home).genesis();
    let mut genesis = GenesisDoc::load(&path).with_context(|| "run `nesad init` first".to_string())?;
    let msg: serde_json::Value =
        serde_json::from_str(msg).map_err(|e| anyhow::anyhow!("the instantiate message is not valid JSON: {e}"))?;
    genesis.app_state.wasm.contracts.push(nesa_genesis::GenesisContract {
        code_id,
        label: label.to_string(),
        msg,
        creator: creator.to_string(),
        admin,
    });
    genesis.app_state.validate()?;
    genesis.save(&path)?;
    let instance = genesis.app_state.wasm.contracts.len() as u64;
    println!("{}", crate::modules::wasm::classic_address(code_id, instance));
    Ok(())
}

/// `nesad wasm check <files>`: the chain's own contract validation.
pub fn check_wasm(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        let outcome = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| crate::tx::uncompress(&bytes).map_err(|e| e.to_string()))
            .and_then(|wasm| crate::modules::wasm::WasmVm::check(&wasm).map(|_| wasm).map_err(|e| e.to_string()));
        match outcome {
            Ok(wasm) => {
                use sha2::Digest;
                println!("ok     {} ({} bytes, sha256 {})", file.display(), wasm.len(), hex::encode(sha2::Sha256::digest(&wasm)));
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {}: {e}", file.display());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files are not valid contracts", files.len());
    }
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

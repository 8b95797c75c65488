//! The `nesad` commands: `init`, `genesis add-account`, `start`.

mod chain_info;
mod solo;

pub use chain_info::{chain_info, Endpoints};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nesa_genesis::{GenesisCoin, GenesisDoc, GenesisValidator};
use serde_json::json;

use crate::home::{socket_address, HomePaths, NodeConfig};
use crate::solo::validator::ValidatorKey;

/// `nesad init <moniker> --chain-id <id>`: writes config, a validator key and a genesis file.
/// Options of `nesad init`.
pub struct InitOptions<'a> {
    pub moniker: &'a str,
    pub chain_id: &'a str,
    pub overwrite: bool,
    /// Where the market contracts are (`scripts/build-contracts` output).
    pub artifacts: Option<PathBuf>,
    /// Admin of the genesis market contracts (None: governance module, i.e. nobody yet).
    pub market_admin: Option<String>,
}

/// The protocol treasury: a module account that receives fees and slashed stake.
pub fn treasury_address() -> nesa_types::Address {
    nesa_types::Address::module("treasury")
}

/// `nesad init <moniker> --chain-id <id>`: writes config, a validator key and a genesis file
/// with the market contracts deployed when their artifacts are found.
pub fn init(home: &Path, options: InitOptions) -> anyhow::Result<()> {
    let InitOptions {
        moniker,
        chain_id,
        overwrite,
        ..
    } = options;
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
    let market = deploy_market(
        &mut genesis.app_state,
        options.artifacts.as_deref(),
        options.market_admin.as_deref(),
    )?;
    genesis.save(&paths.genesis())?;
    NodeConfig {
        moniker: moniker.to_string(),
        ..NodeConfig::default()
    }
    .save(home)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "moniker": moniker,
            "chain_id": chain_id,
            "home": home.display().to_string(),
            "validator_address": key.address.to_string(),
            "genesis": paths.genesis().display().to_string(),
            "market": market,
        }))?
    );
    Ok(())
}

/// Adds the market contracts to genesis if `artifacts` (or `./artifacts`) holds them.
fn deploy_market(
    app_state: &mut nesa_genesis::AppState,
    artifacts: Option<&Path>,
    admin: Option<&str>,
) -> anyhow::Result<Option<nesa_types::MarketContracts>> {
    let dir = artifacts
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("artifacts"));
    let Some(wasm) = nesa_genesis::market::MarketWasm::from_dir(&dir) else {
        if artifacts.is_some() {
            anyhow::bail!(
                "{} does not hold the market contracts ({}, {}, {}): run scripts/build-contracts",
                dir.display(),
                nesa_genesis::market::REGISTRY_WASM,
                nesa_genesis::market::STAKING_WASM,
                nesa_genesis::market::MARKET_WASM
            );
        }
        tracing::warn!("no market contracts in ./artifacts: the chain starts without the market (pass --artifacts <dir>)");
        return Ok(None);
    };
    for (name, code) in [
        ("registry", &wasm.registry),
        ("staking", &wasm.staking),
        ("market", &wasm.market),
    ] {
        crate::modules::wasm::WasmVm::check(code)
            .map_err(|e| anyhow::anyhow!("the {name} contract in {}: {e}", dir.display()))?;
    }
    let creator = match admin {
        Some(admin) => {
            nesa_genesis::validate_address(admin)?;
            admin.to_string()
        }
        None => nesa_types::Address::module("gov").to_string(),
    };
    let treasury = treasury_address().to_string();
    let addresses = nesa_genesis::market::deploy(
        app_state,
        &wasm,
        &creator,
        admin,
        &treasury,
        crate::modules::wasm::classic_address,
    )?;
    Ok(Some(addresses))
}

/// `nesad genesis add-account <address> <coins>`.
pub fn add_genesis_account(home: &Path, address: &str, coins: &str) -> anyhow::Result<()> {
    let path = HomePaths::new(home).genesis();
    let mut genesis =
        GenesisDoc::load(&path).with_context(|| "run `nesad init` first".to_string())?;
    genesis
        .app_state
        .add_balance(address, GenesisCoin::parse_list(coins)?)?;
    genesis.save(&path)?;
    println!("added {coins} to {address} in {}", path.display());
    Ok(())
}

/// `nesad genesis add-wasm <file> --creator <addr>`: stores a code at genesis.
pub fn add_genesis_wasm(
    home: &Path,
    file: &Path,
    creator: &str,
    pinned: bool,
) -> anyhow::Result<()> {
    use base64::Engine;
    let path = HomePaths::new(home).genesis();
    let mut genesis =
        GenesisDoc::load(&path).with_context(|| "run `nesad init` first".to_string())?;
    nesa_genesis::validate_address(creator)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let wasm = crate::modules::wasm::uncompress(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    crate::modules::wasm::WasmVm::check(&wasm)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    genesis
        .app_state
        .wasm
        .codes
        .push(nesa_genesis::GenesisCode {
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
    let mut genesis =
        GenesisDoc::load(&path).with_context(|| "run `nesad init` first".to_string())?;
    let msg: serde_json::Value = serde_json::from_str(msg)
        .map_err(|e| anyhow::anyhow!("the instantiate message is not valid JSON: {e}"))?;
    genesis
        .app_state
        .wasm
        .contracts
        .push(nesa_genesis::GenesisContract {
            code_id,
            label: label.to_string(),
            msg,
            creator: creator.to_string(),
            admin,
        });
    genesis.app_state.validate()?;
    genesis.save(&path)?;
    let instance = genesis.app_state.wasm.contracts.len() as u64;
    println!(
        "{}",
        crate::modules::wasm::classic_address(code_id, instance)
    );
    Ok(())
}

/// `nesad wasm check <files>`: the chain's own contract validation.
pub fn check_wasm(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        let outcome = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| crate::modules::wasm::uncompress(&bytes).map_err(|e| e.to_string()))
            .and_then(|wasm| {
                crate::modules::wasm::WasmVm::check(&wasm)
                    .map(|_| wasm)
                    .map_err(|e| e.to_string())
            });
        match outcome {
            Ok(wasm) => {
                use sha2::Digest;
                println!(
                    "ok     {} ({} bytes, sha256 {})",
                    file.display(),
                    wasm.len(),
                    hex::encode(sha2::Sha256::digest(&wasm))
                );
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
    pub api_laddr: Option<String>,
    pub grpc_laddr: Option<String>,
    pub cometbft_rpc: Option<String>,
    pub abci_laddr: Option<String>,
    pub block_interval_ms: Option<u64>,
    pub min_block_interval_ms: Option<u64>,
}

/// The REST and gRPC APIs of a node behind CometBFT.
struct CometApis {
    rest: Option<String>,
    grpc: Option<String>,
    /// The CometBFT node's RPC: broadcasts, transactions and blocks come from it.
    cometbft_rpc: String,
}

/// Serves the REST and gRPC APIs beside the ABCI socket, on their own threads. A port that
/// cannot be bound is logged, never fatal: the validator keeps validating.
fn serve_comet_apis(
    app: Arc<crate::app::App>,
    genesis: serde_json::Value,
    apis: CometApis,
) -> anyhow::Result<()> {
    let client = tendermint_rpc::HttpClient::new(apis.cometbft_rpc.as_str()).map_err(|e| {
        anyhow::anyhow!(
            "cometbft_rpc {:?} is not a usable URL: {e}",
            apis.cometbft_rpc
        )
    })?;
    let context = Arc::new(crate::rpc::node::ApiContext {
        app,
        genesis,
        node: crate::rpc::node::Node::Comet(client),
    });
    std::thread::Builder::new()
        .name("apis".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "cannot start the REST and gRPC APIs"),
            };
            runtime.block_on(async move {
                let rest = async {
                    if let Some(address) = &apis.rest {
                        if let Err(e) = crate::rpc::rest::serve(context.clone(), address).await {
                            tracing::error!(error = %e, "the REST API stopped; the node keeps validating");
                        }
                    }
                };
                let grpc = async {
                    if let Some(address) = &apis.grpc {
                        if let Err(e) = crate::rpc::grpc::serve(context.clone(), address).await {
                            tracing::error!(error = %e, "the gRPC services stopped; the node keeps validating");
                        }
                    }
                };
                tokio::join!(rest, grpc);
            });
        })?;
    Ok(())
}

/// `nesad start [--solo]`.
pub fn start(options: StartOptions) -> anyhow::Result<()> {
    let config = NodeConfig::load(&options.home)?;
    let paths = HomePaths::new(&options.home);
    if options.solo {
        let rpc = options.rpc_laddr.unwrap_or(config.rpc_laddr);
        let api = options.api_laddr.unwrap_or(config.api_laddr);
        let grpc = options.grpc_laddr.unwrap_or(config.grpc_laddr);
        let solo = solo::SoloConfig {
            home: options.home.clone(),
            rpc_address: socket_address(&rpc).to_string(),
            api_address: (!matches!(api.trim(), "" | "off"))
                .then(|| socket_address(api.trim()).to_string()),
            grpc_address: (!matches!(grpc.trim(), "" | "off"))
                .then(|| socket_address(grpc.trim()).to_string()),
            block_interval: Duration::from_millis(
                options
                    .block_interval_ms
                    .unwrap_or(config.block_interval_ms)
                    .max(1),
            ),
            min_block_interval: Duration::from_millis(
                options
                    .min_block_interval_ms
                    .unwrap_or(config.min_block_interval_ms),
            ),
        };
        let runtime = tokio::runtime::Runtime::new()?;
        let result = runtime.block_on(solo::run(solo));
        // Let the producer finish its block, but do not wait on idle RPC connections.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        result
    } else {
        let abci = options.abci_laddr.unwrap_or(config.abci_laddr);
        let storage = crate::state::Storage::open(&paths.state_db())?;
        let app = Arc::new(crate::app::App::new(storage, &paths.wasm_dir())?);
        if let Some(last) = app.last_block()? {
            tracing::info!(height = last.height, app_hash = %hex::encode_upper(last.app_hash), "state loaded");
        }
        let listen = |laddr: String| {
            (!matches!(laddr.trim(), "" | "off")).then(|| socket_address(laddr.trim()).to_string())
        };
        let apis = CometApis {
            rest: listen(options.api_laddr.unwrap_or(config.api_laddr)),
            grpc: listen(options.grpc_laddr.unwrap_or(config.grpc_laddr)),
            cometbft_rpc: options.cometbft_rpc.unwrap_or(config.cometbft_rpc),
        };
        if apis.rest.is_some() || apis.grpc.is_some() {
            // CometBFT holds the genesis; nesad reads it only for the chain's parameters.
            let genesis = std::fs::read_to_string(paths.genesis())
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or(serde_json::Value::Null);
            serve_comet_apis(app.clone(), genesis, apis)?;
        }
        crate::abci::serve(app, socket_address(&abci))
    }
}

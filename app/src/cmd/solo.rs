//! `nesad start --solo`: the embedded block producer and the CometBFT-compatible RPC over one
//! application, in one process, until it is stopped.

use std::sync::Arc;
use std::time::Duration;

use tendermint_proto::v0_38::abci::RequestInitChain;
use tokio::sync::broadcast;

use crate::app::App;
use crate::rpc::{self, RpcContext};
use crate::solo::blockstore::BlockStore;
use crate::solo::mempool::Mempool;
use crate::solo::producer::{Cadence, Producer};
use crate::solo::validator::ValidatorKey;
use crate::state::Storage;

/// What `nesad start --solo` needs to know.
pub struct SoloConfig {
    /// The node home (genesis, validator key, state).
    pub home: std::path::PathBuf,
    /// Where the JSON-RPC listens (`host:port`).
    pub rpc_address: String,
    /// Where the Cosmos SDK REST API listens (`host:port`), if anywhere.
    pub api_address: Option<String>,
    /// Where the Cosmos SDK gRPC services listen (`None`: nowhere).
    pub grpc_address: Option<String>,
    /// Longest wait for transactions before an empty block.
    pub block_interval: Duration,
    /// Shortest time between two blocks.
    pub min_block_interval: Duration,
}

/// Runs the solo node until the process is stopped.
pub async fn run(config: SoloConfig) -> anyhow::Result<()> {
    let paths = crate::home::HomePaths::new(&config.home);
    let genesis = nesa_genesis::GenesisDoc::load(&paths.genesis())?;
    let key = ValidatorKey::load(&paths.validator_key())?;
    let storage = Storage::open(&paths.state_db())?;
    let app = Arc::new(App::new(storage.clone(), &paths.wasm_dir())?);
    if app.config().is_none() {
        let response = app.init_chain(RequestInitChain {
            chain_id: genesis.chain_id.clone(),
            app_state_bytes: serde_json::to_vec(&genesis.app_state)?.into(),
            initial_height: genesis.initial_height()? as i64,
            ..Default::default()
        })?;
        tracing::info!(chain_id = %genesis.chain_id, app_hash = %hex::encode_upper(&response.app_hash), "initialised chain from genesis");
    } else if let Some(config) = app.config() {
        if config.chain_id != genesis.chain_id {
            anyhow::bail!(
                "the state in {} belongs to chain `{}` but genesis.json says `{}`",
                paths.state_db().display(),
                config.chain_id,
                genesis.chain_id
            );
        }
    }
    let store = BlockStore::new(storage)?;
    let mempool = Arc::new(Mempool::new());
    let (committed, _) = broadcast::channel(1024);
    let power = genesis
        .validators
        .iter()
        .find(|v| v.address.eq_ignore_ascii_case(&key.address.to_string()))
        .and_then(|v| v.power.parse().ok())
        .unwrap_or(10);
    let chain_id = tendermint::chain::Id::try_from(genesis.chain_id.clone())?;
    let node_id = hex::encode(key.address.as_bytes());
    let producer = Producer::new(
        app.clone(),
        store.clone(),
        mempool.clone(),
        key,
        chain_id,
        power,
        committed.clone(),
    );
    if app.last_block()?.is_none() {
        producer.produce(vec![])?;
    }
    if let Some(last) = app.last_block()? {
        tracing::info!(height = last.height, app_hash = %hex::encode_upper(last.app_hash), "resuming from the last committed block");
    }

    let context = Arc::new(RpcContext {
        app: app.clone(),
        store,
        mempool,
        committed,
        genesis: serde_json::to_value(&genesis)?,
        validators: producer.validators().clone(),
        node_id,
        moniker: crate::home::moniker(&config.home),
        rpc_address: format!("tcp://{}", config.rpc_address),
    });
    let cadence = Cadence {
        max_wait: config.block_interval,
        min_interval: config.min_block_interval,
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer_stop = stop.clone();
    let producer_thread = std::thread::Builder::new()
        .name("block-producer".into())
        .spawn(move || producer.run(cadence, &producer_stop))?;
    let producer_done = tokio::task::spawn_blocking(move || producer_thread.join());
    let api = Arc::new(rpc::node::ApiContext {
        app: app.clone(),
        genesis: context.genesis.clone(),
        node: rpc::node::Node::Solo(context.clone()),
    });
    let rest = {
        let context = api.clone();
        let address = config.api_address.clone();
        async move {
            match address {
                Some(address) => rpc::rest::serve(context, &address).await,
                None => std::future::pending().await,
            }
        }
    };
    let grpc = {
        let context = api.clone();
        let address = config.grpc_address.clone();
        async move {
            match address {
                Some(address) => rpc::grpc::serve(context, &address).await,
                None => std::future::pending().await,
            }
        }
    };
    let rpc = tokio::spawn({
        let address = config.rpc_address.clone();
        async move { rpc::serve(context, &address).await }
    });
    tokio::select! {
        result = rpc => result??,
        result = rest => result?,
        result = grpc => result?,
        result = producer_done => {
            match result? {
                Ok(Ok(())) => {}
                Ok(Err(e)) => anyhow::bail!("block production halted: {e}"),
                Err(_) => anyhow::bail!("block production panicked"),
            }
        }
        _ = shutdown_signal() => {
            // The producer finishes the block in progress (at most one block interval) and exits.
            stop.store(true, std::sync::atomic::Ordering::Release);
            tracing::info!("stopping; the last committed block is safe on disk");
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

//! `nesa-node init | register | bond | start`: the node runner's life on chain.

use std::io::BufRead;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cosmwasm_std::{HexBinary, Uint128};
use nesa_engine::ee::EncryptedKernel;
use nesa_engine::{LoadOptions, Model, ModelConfig, Tokenizer};
use nesa_market::registry::{Encryption, ExecuteMsg as RegistryMsg, NewKernel, ShardRange};
use nesa_market::staking::{
    ExecuteMsg as StakingMsg, NodeProfile, NodeResponse, QueryMsg as StakingQuery, ServedKernel,
};
use nesa_sdk::keys::KeyringArgs;
use nesa_sdk::{
    Address, ChainClient, ClientError, Coin, Coins, ContractAddress, Keyring, SendTxOptions,
};
use sha2::{Digest, Sha256};

use crate::api::{self, ApiState};
use crate::chain::queue::QueueLimits;
use crate::chain::sortition::Sortition;
use crate::chain::{Runner, Worker};
use crate::config::RunnerConfig;
use crate::metrics::Metrics;

/// `nesa-node init`: creates the runner's key (or recovers it from a mnemonic on stdin) and
/// writes `config.toml`.
pub fn init(
    home: &Path,
    config: RunnerConfig,
    recover: bool,
    keyring: &KeyringArgs,
) -> anyhow::Result<()> {
    let mut keyring = keyring.open(home)?;
    let entry = match keyring.show(&config.key) {
        Ok(entry) => entry.clone(),
        Err(_) if recover => {
            eprintln!("Enter the mnemonic of key '{}':", config.key);
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            keyring.recover(&config.key, line.trim())?
        }
        Err(_) => {
            let entry = keyring.add(&config.key)?;
            eprintln!("Created key '{}'. Write this mnemonic down; it is the only way to recover the key:\n\n{}\n", config.key, entry.mnemonic);
            entry
        }
    };
    config.save(home)?;
    println!("{}", entry.address);
    Ok(())
}

/// What describes a model file on chain.
pub struct ModelIdentity {
    pub weights_sha256: [u8; 32],
    pub tokenizer_sha256: [u8; 32],
    pub architecture: String,
    pub layer_count: u32,
    /// Tokens in the vocabulary (the embedding's rows).
    pub vocab_size: u32,
    /// Longest sequence the model runs.
    pub context_length: u32,
    /// Set for an equivariant-encrypted kernel.
    pub encrypted: Option<EncryptedKernel>,
}

/// Hashes and shape of a GGUF model: the weights hash is sha256 of the whole file, the
/// tokenizer hash is [`Tokenizer::sha256`] (its vocabulary and merges), the one users check.
pub fn identify(model: &Path) -> anyhow::Result<ModelIdentity> {
    let content = nesa_sdk::gguf::read_content(model)?;
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_else(|| "llama".into());
    let layer_count = content
        .metadata
        .get(&format!("{architecture}.block_count"))
        .and_then(|v| v.to_u32().ok())
        .ok_or_else(|| anyhow::anyhow!("{}: no {architecture}.block_count", model.display()))?;
    // The same hyperparameters the engine runs the model with.
    let shape = ModelConfig::from_gguf_metadata(&content.metadata)
        .with_context(|| format!("reading the hyperparameters of {}", model.display()))?;
    let encrypted = EncryptedKernel::from_metadata(&content.metadata)
        .with_context(|| format!("reading {}", model.display()))?;
    // An encrypted kernel carries the hash of the plaintext tokenizer its users encode with.
    let tokenizer_sha256 = match &encrypted {
        Some(kernel) => kernel.tokenizer_sha256,
        None => Tokenizer::from_gguf_metadata(&content.metadata)
            .with_context(|| format!("reading the tokenizer of {}", model.display()))?
            .sha256(),
    };
    let mut weights = Sha256::new();
    let mut reader = std::fs::File::open(model)
        .with_context(|| format!("cannot open model {}", model.display()))?;
    std::io::copy(&mut reader, &mut weights)?;
    Ok(ModelIdentity {
        weights_sha256: weights.finalize().into(),
        tokenizer_sha256,
        architecture,
        layer_count,
        vocab_size: u32::try_from(shape.vocab_size)
            .with_context(|| format!("{}: vocabulary too large", model.display()))?,
        context_length: u32::try_from(shape.context_length)
            .with_context(|| format!("{}: context too long", model.display()))?,
        encrypted,
    })
}

fn signer(
    home: &Path,
    config: &RunnerConfig,
    keyring: &KeyringArgs,
) -> anyhow::Result<(
    nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    nesa_sdk::Address,
)> {
    let keyring = keyring.open(home)?;
    let (key, address, _) = runner_key(&keyring, config)?;
    Ok((key, address))
}

/// The runner's signing key, address and secret (derived from its mnemonic; its salts and its
/// sortition key come from it).
fn runner_key(
    keyring: &Keyring,
    config: &RunnerConfig,
) -> anyhow::Result<(
    nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    nesa_sdk::Address,
    [u8; 32],
)> {
    let entry = keyring
        .show(&config.key)
        .map_err(|e| anyhow::anyhow!("{e} (run `nesa-node init` first)"))?;
    let secret: [u8; 32] = Sha256::digest(entry.mnemonic.as_bytes()).into();
    Ok((entry.signing_key()?, entry.address, secret))
}

/// Options of `nesa-node register`.
pub struct Register {
    pub name: String,
    pub price_per_input_token: u128,
    pub price_per_output_token: u128,
    pub min_redundancy: u8,
}

/// `nesa-node register`: registers the configured model as a kernel and stores its id in the
/// config.
pub async fn register(
    home: &Path,
    mut config: RunnerConfig,
    options: Register,
    keyring: &KeyringArgs,
) -> anyhow::Result<u64> {
    let (key, _) = signer(home, &config, keyring)?;
    eprintln!("hashing {} …", config.model.display());
    let identity = identify(&config.model)?;
    let client = ChainClient::new(&config.node)?;
    let contracts = client.market_contracts().await?;
    let kernel = NewKernel {
        name: options.name,
        weights_sha256: HexBinary::from(identity.weights_sha256.to_vec()),
        tokenizer_sha256: HexBinary::from(identity.tokenizer_sha256.to_vec()),
        architecture: identity.architecture,
        layer_count: identity.layer_count,
        vocab_size: identity.vocab_size,
        context_length: identity.context_length,
        shard_layout: vec![ShardRange {
            start_layer: 0,
            end_layer: identity.layer_count,
            sha256: HexBinary::from(identity.weights_sha256.to_vec()),
        }],
        encryption: if identity.encrypted.is_some() {
            Encryption::EeV1
        } else {
            Encryption::None
        },
        price_per_input_token: Uint128::new(options.price_per_input_token),
        price_per_output_token: Uint128::new(options.price_per_output_token),
        min_redundancy: options.min_redundancy,
        description: String::new(),
    };
    let outcome = client
        .execute_contract(
            &key,
            &contracts.registry,
            &RegistryMsg::Register(kernel),
            &Coins::default(),
            &SendTxOptions::default(),
        )
        .await?;
    let kernel_id: u64 = outcome
        .contract_attribute(
            nesa_market::events::registry::KERNEL_REGISTERED,
            nesa_market::events::registry::attr::KERNEL_ID,
        )
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the registry did not report a kernel id (tx {})",
                outcome.hash
            )
        })?;
    config.kernel_id = Some(kernel_id);
    config.save(home)?;
    println!("{kernel_id}");
    Ok(kernel_id)
}

/// `nesa-node bond <amount>`: bonds stake with a profile serving the configured kernel and
/// registering this node's sortition key (without one the market never draws it).
pub async fn bond(
    home: &Path,
    config: RunnerConfig,
    amount: Coin,
    keyring: &KeyringArgs,
) -> anyhow::Result<()> {
    let (key, address, secret) = runner_key(&keyring.open(home)?, &config)?;
    let kernel_id = config.kernel_id.ok_or_else(|| {
        anyhow::anyhow!("no kernel_id in the config: run `nesa-node register` or set it")
    })?;
    let client = ChainClient::new(&config.node)?;
    let contracts = client.market_contracts().await?;
    let kernel: nesa_market::registry::Kernel = client
        .query_contract(
            &contracts.registry,
            &nesa_market::registry::QueryMsg::Kernel { id: kernel_id },
        )
        .await
        .map_err(|e| anyhow::anyhow!("kernel {kernel_id}: {e}"))?;
    // The market assigns this node at most as many open queries as its work queue holds.
    let profile = NodeProfile {
        endpoint: format!("http://{}", config.api_laddr),
        kernels: vec![ServedKernel {
            kernel_id,
            start_layer: 0,
            end_layer: kernel.layer_count,
            block_micros: None,
        }],
        capacity: config.published_capacity(),
        sortition_key: Some(Sortition::from_secret(&secret).profile_key(&address.to_string())),
    };
    let outcome = client
        .execute_contract(
            &key,
            &contracts.staking,
            &StakingMsg::Bond {
                profile: Some(profile),
            },
            &Coins::from(amount.clone()),
            &SendTxOptions::default(),
        )
        .await?;
    println!(
        "bonded {amount} as {address} serving kernel {kernel_id} (tx {})",
        outcome.hash
    );
    Ok(())
}

/// Makes this node's profile register `sortition`'s key and `capacity`, when the node is
/// bonded and its profile has no key or another one (bonded before sortition, or with another
/// secret), or another capacity (the config changed): the market draws a node only with the
/// key its tickets verify under, and assigns it at most its capacity. Nothing here stops the
/// runner: without the update it still serves the queries it was assigned.
async fn sync_profile(
    client: &ChainClient,
    staking: &ContractAddress,
    key: &nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    address: &Address,
    sortition: &Sortition,
    capacity: u32,
) {
    let node: NodeResponse = match client
        .query_contract(
            staking,
            &StakingQuery::Node {
                address: address.to_string(),
            },
        )
        .await
    {
        Ok(node) => node,
        Err(ClientError::QueryFailed { log, .. }) if log.contains("not found") => {
            tracing::info!(
                "this node is not bonded: bond it (`nesa-node bond`) to be drawn for queries"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this node's profile; its sortition key is not checked");
            return;
        }
    };
    let wanted = sortition.profile_key(&address.to_string());
    let same_key = node.profile.sortition_key.as_ref() == Some(&wanted);
    if node.bonded.is_zero() || same_key && node.profile.capacity == capacity {
        return;
    }
    let reason = match (&node.profile.sortition_key, same_key) {
        (_, true) => "its profile has another capacity",
        (None, _) => "its profile has no sortition key",
        (Some(_), false) => "its profile holds another sortition key",
    };
    tracing::info!(
        public_key = %wanted.public_key,
        capacity,
        reason,
        "updating this node's profile; a new key counts for queries submitted after the update"
    );
    let profile = NodeProfile {
        sortition_key: Some(wanted),
        capacity,
        ..node.profile
    };
    match client
        .execute_contract(
            key,
            staking,
            &StakingMsg::UpdateProfile { profile },
            &Coins::default(),
            &SendTxOptions::default(),
        )
        .await
    {
        Ok(outcome) => tracing::info!(tx = %outcome.hash, "profile updated"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot update the profile: without its sortition key the market does not draw this node"
        ),
    }
}

/// `nesa-node start`: loads the model, serves the HTTP API and the chain loop.
pub async fn start(home: &Path, config: RunnerConfig, keyring: &KeyringArgs) -> anyhow::Result<()> {
    let (key, address, secret) = runner_key(&keyring.open(home)?, &config)?;
    let client = Arc::new(ChainClient::new(&config.node)?);
    let contracts = client
        .market_contracts()
        .await
        .map_err(|e| anyhow::anyhow!("cannot find the market contracts on {}: {e}", config.node))?;
    let sortition = Sortition::from_secret(&secret);
    sync_profile(
        &client,
        &contracts.staking,
        &key,
        &address,
        &sortition,
        config.published_capacity(),
    )
    .await;
    let metrics = Arc::new(Metrics::default());
    let (worker, api_state) =
        load_worker(&config, address.to_string(), metrics.clone(), None).await?;
    let runner = Runner {
        client,
        node: address,
        market: contracts.market,
        secret,
        kernel_id: config.kernel_id,
        sortition,
        worker,
        metrics,
        limits: QueueLimits {
            capacity: config.capacity.max(1) as usize,
            queue_limit: config.queue_limit as usize,
            kv_budget_bytes: config.scheduler().kv_budget_bytes,
        },
    };
    let api_address = config.api_laddr.clone();
    tokio::select! {
        result = api::serve(api_state, &api_address) => Ok(result?),
        result = runner.run(key) => Ok(result?),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("stopping; unfinished queries resume from chain state on the next start");
            Ok(())
        }
    }
}

/// Loads the configured model behind the engine (one per process) and the API state that
/// serves from it.
async fn load_worker(
    config: &RunnerConfig,
    node: String,
    metrics: Arc<Metrics>,
    layers: Option<Range<usize>>,
) -> anyhow::Result<(Arc<Worker>, Arc<ApiState>)> {
    let model_path: PathBuf = config.model.clone();
    let (model, tokenizer, stop_tokens, seconds_per_layer) = tokio::task::spawn_blocking(move || {
        let options = LoadOptions {
            layers: layers.clone(),
            ..LoadOptions::default()
        };
        let model = Model::load(&model_path, &options)?;
        let layer_count = model.config().layer_count;
        if let Some(layers) = &layers {
            anyhow::ensure!(
                layers.end <= layer_count,
                "--layers {}..{} is beyond the model's {layer_count} blocks",
                layers.start,
                layers.end
            );
            tracing::info!(
                blocks = ?layers,
                layer_count,
                "serving a shard: pipelines send hidden states for these blocks on /v1/shard/stream"
            );
        }
        let seconds_per_layer = api::measure_seconds_per_layer(&model);
        let metadata = nesa_sdk::gguf::read_content(&model_path)?.metadata;
        // An encrypted kernel has no vocabulary to read: only its (permuted) stop tokens.
        let loaded = match EncryptedKernel::from_metadata(&metadata)? {
            Some(encrypted) => {
                tracing::info!(
                    transform = %encrypted.transform,
                    "serving an ee-v1 encrypted kernel: inputs and outputs are permuted token ids"
                );
                (model, None, encrypted.stop_tokens, seconds_per_layer)
            }
            None => {
                let tokenizer = Tokenizer::from_gguf_metadata(&metadata)?;
                let stop_tokens = tokenizer.stop_tokens().to_vec();
                (model, Some(Arc::new(tokenizer)), stop_tokens, seconds_per_layer)
            }
        };
        drop(metadata);
        nesa_engine::release_freed_memory();
        Ok::<_, anyhow::Error>(loaded)
    })
    .await??;
    let scheduler = config.scheduler();
    tracing::info!(
        kv_budget_mib = scheduler.kv_budget_bytes >> 20,
        max_batch = scheduler.max_sequences,
        kv_kib_per_position = model.kv_bytes_per_position(model.config().layer_count) / 1024,
        "engine started: every query in flight shares each forward pass"
    );
    let worker = Arc::new(Worker::new(model, stop_tokens, scheduler));
    let _ = metrics.engine.set(worker.engine.stats().clone());
    let api_state = Arc::new(ApiState {
        worker: worker.clone(),
        tokenizer,
        split: Default::default(),
        metrics,
        node,
        kernel_id: config.kernel_id,
        model: config.model.display().to_string(),
        api_token: config.api_token.clone(),
        limits: api::ApiLimits::from_config(config),
        seconds_per_layer,
    });
    Ok((worker, api_state))
}

/// `nesa-node serve`: the model (or the blocks `layers` of it, a pipeline shard) and the
/// HTTP API (`/v1/generate`, split mode, the shard stream, `/metrics`) without the chain, for
/// operators to try and measure the engine.
pub async fn serve(config: RunnerConfig, layers: Option<Range<usize>>) -> anyhow::Result<()> {
    let (_worker, api_state) =
        load_worker(&config, String::new(), Arc::new(Metrics::default()), layers).await?;
    let api_address = config.api_laddr.clone();
    tokio::select! {
        result = api::serve(api_state, &api_address) => Ok(result?),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

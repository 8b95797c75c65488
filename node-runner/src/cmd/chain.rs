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
use crate::chain::shards::ShardContext;
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
    /// Ranges of the kernel's shard layout (1: served whole).
    pub shards: u32,
}

/// `shards` ranges of `layer_count` blocks, as even as they go (the first ones take the
/// remainder).
pub fn even_layout(layer_count: u32, shards: u32) -> Vec<Range<u32>> {
    let shards = shards.clamp(1, layer_count.max(1));
    let (base, extra) = (layer_count / shards, layer_count % shards);
    let mut start = 0;
    (0..shards)
        .map(|i| {
            let end = start + base + u32::from(i < extra);
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

/// sha256 of each range of blocks of `layout` in a GGUF file: every tensor of those blocks
/// (`blk.N.*`) in file order, each as its name, a zero byte, its length (u64 big-endian) and
/// its bytes. A shard is the same bytes whichever file it is cut from. The header is read and
/// every tensor hashed once for all ranges.
pub fn shard_sha256s(model: &Path, layout: &[Range<u32>]) -> anyhow::Result<Vec<[u8; 32]>> {
    use std::io::{Read, Seek, SeekFrom};
    let content = nesa_sdk::gguf::read_content(model)?;
    let file_len = std::fs::metadata(model)?.len();
    let mut tensors: Vec<(&String, u64)> = content
        .tensor_infos
        .iter()
        .map(|(name, info)| (name, info.offset))
        .collect();
    tensors.sort_by_key(|&(_, offset)| offset);
    let data_start = content.tensor_data_offset;
    let mut file = std::fs::File::open(model)?;
    let mut hashers: Vec<Sha256> = layout.iter().map(|_| Sha256::new()).collect();
    for (i, &(name, offset)) in tensors.iter().enumerate() {
        let block = name
            .strip_prefix("blk.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<u32>().ok());
        let Some(hasher) = block
            .and_then(|b| layout.iter().position(|range| range.contains(&b)))
            .map(|range| &mut hashers[range])
        else {
            continue;
        };
        let end = tensors
            .get(i + 1)
            .map_or(file_len - data_start, |&(_, next)| next);
        let len = end - offset;
        file.seek(SeekFrom::Start(data_start + offset))?;
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(len.to_be_bytes());
        std::io::copy(&mut (&mut file).take(len), hasher)?;
    }
    Ok(hashers.into_iter().map(|h| h.finalize().into()).collect())
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
    let shard_layout = if options.shards <= 1 {
        vec![ShardRange {
            start_layer: 0,
            end_layer: identity.layer_count,
            sha256: HexBinary::from(identity.weights_sha256.to_vec()),
        }]
    } else {
        anyhow::ensure!(
            options.shards <= identity.layer_count,
            "{} shards of a model with {} blocks: at most one block per shard",
            options.shards,
            identity.layer_count
        );
        let layout = even_layout(identity.layer_count, options.shards);
        let hashes = shard_sha256s(&config.model, &layout)?;
        layout
            .into_iter()
            .zip(hashes)
            .map(|(layers, sha256)| ShardRange {
                start_layer: layers.start,
                end_layer: layers.end,
                sha256: HexBinary::from(sha256.to_vec()),
            })
            .collect()
    };
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
        shard_layout,
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
    mut config: RunnerConfig,
    amount: Coin,
    shard: Option<usize>,
    keyring: &KeyringArgs,
) -> anyhow::Result<()> {
    let (key, address, secret) = runner_key(&keyring.open(home)?, &config)?;
    let kernel_id = config.kernel_id.ok_or_else(|| {
        anyhow::anyhow!("no kernel_id in the config: run `nesa-node register` or set it")
    })?;
    let client = ChainClient::new(&config.node)?;
    let contracts = client.market_contracts().await?;
    let kernel = read_kernel(&client, &contracts.registry, kernel_id).await?;
    if let Some(index) = shard {
        let range = kernel.shard_layout.get(index).ok_or_else(|| {
            anyhow::anyhow!(
                "kernel {kernel_id} has {} shard ranges; --shard {index} is not one of them",
                kernel.shard_layout.len()
            )
        })?;
        config.layers = Some([range.start_layer as usize, range.end_layer as usize]);
    }
    let span = served_span(&kernel, config.layers())?;
    // `start` serves what was bonded.
    if kernel.is_sharded() {
        config.save(home)?;
    }
    // The market assigns this node at most as many open queries as its work queue holds.
    let profile = NodeProfile {
        endpoint: format!("http://{}", config.api_laddr),
        kernels: vec![ServedKernel {
            kernel_id,
            start_layer: span.start,
            end_layer: span.end,
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
        "bonded {amount} as {address} serving kernel {kernel_id} blocks {}..{} (tx {})",
        span.start, span.end, outcome.hash
    );
    Ok(())
}

async fn read_kernel(
    client: &ChainClient,
    registry: &ContractAddress,
    kernel_id: u64,
) -> anyhow::Result<nesa_market::registry::Kernel> {
    client
        .query_contract(
            registry,
            &nesa_market::registry::QueryMsg::Kernel { id: kernel_id },
        )
        .await
        .map_err(|e| anyhow::anyhow!("kernel {kernel_id}: {e}"))
}

/// The blocks this runner serves of `kernel`: `layers`, which must be one range of a sharded
/// kernel's layout, or the whole of a kernel served whole.
pub fn served_span(
    kernel: &nesa_market::registry::Kernel,
    layers: Option<Range<usize>>,
) -> anyhow::Result<Range<u32>> {
    let ranges: Vec<String> = kernel
        .shard_layout
        .iter()
        .map(|r| format!("{}..{}", r.start_layer, r.end_layer))
        .collect();
    match layers {
        None if kernel.is_sharded() => anyhow::bail!(
            "kernel {} is sharded: serve one range of its layout with --layers (one of {})",
            kernel.id,
            ranges.join(", ")
        ),
        None => Ok(0..kernel.layer_count),
        Some(layers) => {
            let (start, end) = (layers.start as u32, layers.end as u32);
            // A kernel served whole has the one range of all its blocks.
            let in_layout = kernel
                .shard_layout
                .iter()
                .any(|r| r.start_layer == start && r.end_layer == end);
            anyhow::ensure!(
                in_layout,
                "--layers {start}..{end} is not a range of kernel {}'s shard layout ({})",
                kernel.id,
                ranges.join(", ")
            );
            Ok(start..end)
        }
    }
}

/// Makes this node's profile register `sortition`'s key, `capacity` and the blocks it
/// `serves` (with its measured time per block), when the node is bonded and its profile says
/// otherwise (bonded before sortition, with another secret, another config, or before it
/// measured itself): the market draws a node only with the key its tickets verify under, for
/// the span it serves, and assigns it at most its capacity. Nothing here stops the runner:
/// without the update it still serves the queries it was assigned.
async fn sync_profile(
    client: &ChainClient,
    staking: &ContractAddress,
    key: &nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    address: &Address,
    sortition: &Sortition,
    capacity: u32,
    serves: Option<ServedKernel>,
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
    let mut kernels = node.profile.kernels.clone();
    let mut same_kernels = true;
    if let Some(serves) = serves {
        match kernels.iter_mut().find(|k| k.kernel_id == serves.kernel_id) {
            Some(served) if same_span(served, &serves) => {}
            Some(served) => {
                *served = serves;
                same_kernels = false;
            }
            None => {
                kernels.push(serves);
                same_kernels = false;
            }
        }
    }
    if node.bonded.is_zero() || same_key && node.profile.capacity == capacity && same_kernels {
        return;
    }
    let reason = match (&node.profile.sortition_key, same_key) {
        (_, true) if !same_kernels => {
            "its profile serves other blocks or lacks their measured time"
        }
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
        kernels,
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

/// Whether a profile's entry serves the same blocks, with a measured time per block within a
/// fifth of the new one (a remeasure of the same machine is not worth a transaction).
fn same_span(served: &ServedKernel, wanted: &ServedKernel) -> bool {
    let close = match (served.block_micros, wanted.block_micros) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(old), Some(new)) => (old as f64 - new as f64).abs() <= 0.2 * new as f64,
    };
    served.start_layer == wanted.start_layer && served.end_layer == wanted.end_layer && close
}

/// `nesa-node start`: loads the model, serves the HTTP API and the chain loop.
pub async fn start(home: &Path, config: RunnerConfig, keyring: &KeyringArgs) -> anyhow::Result<()> {
    let keyring = keyring.open(home)?;
    let (key, address, secret) = runner_key(&keyring, &config)?;
    // The same account key signs the claims this node sends as a pipeline's driver.
    let (claim_key, _, _) = runner_key(&keyring, &config)?;
    let client = Arc::new(ChainClient::new(&config.node)?);
    let contracts = client
        .market_contracts()
        .await
        .map_err(|e| anyhow::anyhow!("cannot find the market contracts on {}: {e}", config.node))?;
    let sortition = Sortition::from_secret(&secret);
    // A sharded kernel is served one range of its layout at a time.
    let kernel = match config.kernel_id {
        Some(id) => Some(read_kernel(&client, &contracts.registry, id).await?),
        None => None,
    };
    let span = match &kernel {
        Some(kernel) => Some(served_span(kernel, config.layers())?),
        None => None,
    };
    let layers = span
        .as_ref()
        .filter(|_| kernel.as_ref().is_some_and(|k| k.is_sharded()))
        .map(|span| span.start as usize..span.end as usize);
    let metrics = Arc::new(Metrics::default());
    let (worker, api_state) =
        load_worker(&config, address.to_string(), metrics.clone(), layers).await?;
    let serves = config
        .kernel_id
        .zip(span)
        .map(|(kernel_id, span)| ServedKernel {
            kernel_id,
            start_layer: span.start,
            end_layer: span.end,
            block_micros: Some(
                (api_state.seconds_per_layer * 1e6)
                    .round()
                    .clamp(1.0, u32::MAX as f64) as u32,
            ),
        });
    sync_profile(
        &client,
        &contracts.staking,
        &key,
        &address,
        &sortition,
        config.published_capacity(),
        serves,
    )
    .await;
    let shards = Arc::new(ShardContext {
        client: client.clone(),
        market: contracts.market,
        staking: contracts.staking,
        node: address.to_string(),
        key: Arc::new(claim_key),
        api: api_state.clone(),
        http: reqwest::Client::new(),
    });
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
        shards,
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
        seats: Default::default(),
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

#[cfg(test)]
mod tests {
    use nesa_engine::tiny::{tiny_model_file, TinyModelSpec};

    use super::*;

    #[test]
    fn an_even_layout_tiles_every_block_with_the_remainder_first() {
        assert_eq!(even_layout(30, 2), vec![0..15, 15..30]);
        assert_eq!(even_layout(30, 4), vec![0..8, 8..16, 16..23, 23..30]);
        assert_eq!(even_layout(3, 1), vec![0..3]);
        // Never an empty range.
        assert_eq!(even_layout(2, 5), vec![0..1, 1..2]);
    }

    #[test]
    fn a_shard_hash_covers_its_blocks_and_nothing_else() {
        let spec = TinyModelSpec {
            layers: 4,
            ..Default::default()
        };
        let path = tiny_model_file(&spec).unwrap();
        let (first, second) = (0..2, 2..4);
        let layout = [first, second];
        let hashes = shard_sha256s(&path, &layout).unwrap();
        let (a, b) = (hashes[0], hashes[1]);
        assert_ne!(a, b);
        assert_eq!(
            shard_sha256s(&path, &layout).unwrap(),
            hashes,
            "deterministic"
        );

        // Scramble one tensor of block 3: only the second shard's hash moves.
        let content = nesa_sdk::gguf::read_content(&path).unwrap();
        let offset = content.tensor_infos["blk.3.ffn_down.weight"].offset;
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (content.tensor_data_offset + offset) as usize;
        bytes[at + 5] ^= 0xFF;
        let tampered =
            std::env::temp_dir().join(format!("nesa-shard-hash-{}.gguf", std::process::id()));
        std::fs::write(&tampered, bytes).unwrap();
        let after = shard_sha256s(&tampered, &layout).unwrap();
        assert_eq!(after[0], a);
        assert_ne!(after[1], b);
        std::fs::remove_file(tampered).unwrap();
    }
}

//! `nesa ask "<prompt>" --kernel <id>`: ask a kernel through the market. Tokenizes the prompt
//! with the kernel's own tokenizer, submits it with escrow, follows it to settlement on
//! stderr, prints the answer on stdout and what it cost.

mod display;
pub(super) mod summary;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use nesa_market::market::{
    QueryResponse, QueryStatus, Sampling, MAX_TEMPERATURE_MILLI, MAX_TOP_P_MILLI,
};
use nesa_market::registry::{Encryption, Kernel};
use nesa_sdk::ee::{EeKey, KeyFile, Keystore, Vocabulary};
use nesa_sdk::market::progress::{Milestone, Timeline};
use nesa_sdk::market::{MarketClient, QueryRequest};
use nesa_sdk::tokenizer::Tokenizer;
use nesa_sdk::ChainClient;

use super::output::OutputFormat;
use super::GlobalArgs;
use display::ProgressDisplay;
use summary::{describe, AskSummary};

/// Arguments of `nesa ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The question
    prompt: String,
    /// Kernel (model) to ask, by id: see `nesa query market kernels`
    #[arg(long, value_name = "ID")]
    kernel: u64,
    /// Most tokens of the answer
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_tokens: u32,
    /// Local key that pays the escrow (may be left out when the keyring holds one key)
    #[arg(long, value_name = "KEY")]
    from: Option<String>,
    /// Key file of an encrypted (ee-v1) kernel; by default the key imported with
    /// `nesa keys ee import` for the kernel's weights hash
    #[arg(long, value_name = "FILE")]
    ee_key: Option<PathBuf>,
    /// The kernel's GGUF file, for its tokenizer (the model cache: $NESA_MODELS or ~/.cache/nesa/models)
    #[arg(long, value_name = "GGUF", default_value_os_t = nesa_sdk::models::default_model_path())]
    model: PathBuf,
    /// Nodes that answer independently (k) [default: the market's, raised to the kernel's minimum]
    #[arg(long, value_name = "K")]
    redundancy: Option<u8>,
    /// Sampling temperature, 0 to 10 (0 = greedy)
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    temperature: f64,
    /// Seed of the sampler, so an answer can be reproduced [default: random when sampling]
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// System prompt [default: the model's own]
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Stop waiting for settlement after this many seconds (the query goes on without you)
    #[arg(long, value_name = "N", default_value_t = 300)]
    timeout_secs: u64,
}

/// Runs `nesa ask`.
pub async fn run(args: AskArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.prompt.trim().is_empty() {
        anyhow::bail!(
            "the prompt is empty: ask a question, e.g. nesa ask \"What is the capital of France?\" --kernel 1"
        );
    }
    let sampling = sampling(args.temperature, args.seed)?;
    let keyring = global.open_keyring()?;
    let names: Vec<&str> = keyring.list().iter().map(|k| k.name.as_str()).collect();
    let key_name = choose_key(&names, args.from.as_deref(), keyring.path())?;
    let key = keyring.signing_key(&key_name)?;

    let client = ChainClient::new(&global.node)?;
    let market = MarketClient::connect(&client).await?;
    let kernel = market
        .kernel(args.kernel)
        .await
        .map_err(super::market::kernel_lookup_error)?;
    let tokenizer = Tokenizer::load(&args.model).with_context(|| {
        format!(
            "reading the tokenizer of {} (pass --model <the kernel's GGUF>)",
            args.model.display()
        )
    })?;
    check_tokenizer(&kernel, &tokenizer, &args.model)?;
    let vocabulary = match kernel.encryption {
        Encryption::None => None,
        Encryption::EeV1 => {
            let key = match &args.ee_key {
                Some(file) => {
                    let key = EeKey::load(file)?;
                    key.check_kernel(kernel.weights_sha256.as_slice())
                        .with_context(|| {
                            format!("{} does not fit kernel {}", file.display(), kernel.id)
                        })?;
                    key
                }
                None => Keystore::open(&global.home_dir()?)
                    .find(kernel.weights_sha256.as_slice())
                    .with_context(|| format!("kernel {} is encrypted (ee-v1)", kernel.id))?,
            };
            let vocabulary = key.vocabulary();
            vocabulary.check_size(tokenizer.vocab_size())?;
            eprintln!("kernel {} is encrypted (ee-v1): token ids leave this machine permuted with your key", kernel.id);
            Some(vocabulary)
        }
    };
    let input = tokenizer.encode(&tokenizer.chat_prompt(args.system.as_deref(), &args.prompt))?;
    let input = match &vocabulary {
        Some(vocabulary) => vocabulary.encrypt(&input)?,
        None => input,
    };
    let request = QueryRequest {
        kernel_id: kernel.id,
        input,
        max_output_tokens: args.max_tokens,
        sampling,
        redundancy: args.redundancy,
    };

    let mut display = ProgressDisplay::stderr();
    let mut timeline = Timeline::default();
    let started = Instant::now();
    timeline.mark(Milestone::Submitted, Duration::ZERO);
    let submitted = market.submit(&key, &request).await?;
    display.line(&format!(
        "submitted query {} (escrow {}, tx {})",
        submitted.query_id, submitted.escrow, submitted.tx_hash
    ));
    let timeout = Duration::from_secs(args.timeout_secs);
    let followed = market
        .wait_for_settlement(&key, submitted.query_id, timeout, |state| {
            timeline.observe(state, started.elapsed());
            display.update(state);
        })
        .await;
    display.finish();
    let state = followed.with_context(|| {
        format!(
            "query {id} is still open: follow it with `nesa query market query {id}`",
            id = submitted.query_id
        )
    })?;

    let answer = answer(&state, &tokenizer, vocabulary.as_ref())?;
    let total_seconds = timeline
        .seen(Milestone::Closed)
        .map(nesa_sdk::market::progress::seconds);
    let block_seconds = block_times(
        &client,
        &nesa_sdk::market::progress::Timeline::heights(&state),
    )
    .await;
    let summary = AskSummary::new(
        &state,
        answer,
        submitted.tx_hash,
        timeline.phases_in_chain_time(&state, &block_seconds),
        total_seconds,
    );
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        OutputFormat::Text => {
            if let Some(answer) = &summary.answer {
                println!("{}", answer.trim());
            }
            eprint!("{}", describe(&summary));
        }
    }
    if summary.status == QueryStatus::Disputed {
        anyhow::bail!("{}", summary.dispute_message());
    }
    Ok(())
}

/// Sampling parameters from `--temperature` and `--seed` (top-p 1).
fn sampling(temperature: f64, seed: Option<u64>) -> anyhow::Result<Sampling> {
    sampling_with_top_p(temperature, 1.0, seed)
}

/// The market's sampling parameters: temperature and top-p in thousandths, and the seed (random
/// when sampling without one, 0 when greedy).
pub(super) fn sampling_with_top_p(
    temperature: f64,
    top_p: f64,
    seed: Option<u64>,
) -> anyhow::Result<Sampling> {
    let limit = MAX_TEMPERATURE_MILLI as f64 / 1000.0;
    if !(0.0..=limit).contains(&temperature) {
        anyhow::bail!("--temperature {temperature} is out of range: use 0 (greedy) to {limit}");
    }
    let temperature_milli = (temperature * 1000.0).round() as u32;
    let seed = match seed {
        Some(seed) => seed,
        None if temperature_milli > 0 => rand::random(),
        None => 0,
    };
    if !(top_p > 0.0 && top_p <= 1.0) {
        anyhow::bail!("top-p {top_p} is out of range: use a number above 0, at most 1");
    }
    let top_p_milli = ((top_p * 1000.0).round() as u32).clamp(1, MAX_TOP_P_MILLI);
    Ok(Sampling {
        seed,
        temperature_milli,
        top_p_milli,
    })
}

/// The key that pays: `--from`, or the only key in the keyring.
pub(super) fn choose_key(
    names: &[&str],
    from: Option<&str>,
    keyring: &Path,
) -> anyhow::Result<String> {
    match (from, names) {
        (Some(name), _) => Ok(name.to_owned()),
        (None, [only]) => Ok((*only).to_owned()),
        (None, []) => anyhow::bail!(
            "no keys in {}: create one with `nesa keys add <name>` and fund it",
            keyring.display()
        ),
        (None, several) => anyhow::bail!(
            "{} keys in {}: choose the one that pays with --from ({})",
            several.len(),
            keyring.display(),
            several.join(", ")
        ),
    }
}

/// Refuses a model whose tokenizer is not the kernel's: the nodes would read other tokens.
pub(super) fn check_tokenizer(
    kernel: &Kernel,
    tokenizer: &Tokenizer,
    model: &Path,
) -> anyhow::Result<()> {
    let ours = tokenizer.sha256();
    if kernel.tokenizer_sha256.as_slice() == ours {
        return Ok(());
    }
    anyhow::bail!(
        "the tokenizer of {} (sha256 {}) is not the one kernel {} ({}) registered (sha256 {}): you have a different model than the kernel serves; pass --model with the kernel's GGUF file",
        model.display(),
        hex::encode(ours),
        kernel.id,
        kernel.name,
        kernel.tokenizer_sha256
    )
}

/// The decoded winning output, if the query has one.
pub(super) fn answer(
    state: &QueryResponse,
    tokenizer: &Tokenizer,
    vocabulary: Option<&Vocabulary>,
) -> anyhow::Result<Option<String>> {
    if state
        .query
        .settlement
        .as_ref()
        .and_then(|s| s.output.as_ref())
        .is_none()
    {
        return Ok(None);
    }
    let ids = output_ids(state, vocabulary)?;
    Ok(Some(tokenizer.decode(&ids)?))
}

/// The winning output's token ids, mapped back with the user's key for an ee-v1 kernel
/// (empty when the query has no output).
pub(super) fn output_ids(
    state: &QueryResponse,
    vocabulary: Option<&Vocabulary>,
) -> anyhow::Result<Vec<u32>> {
    let Some(output) = state
        .query
        .settlement
        .as_ref()
        .and_then(|s| s.output.as_ref())
    else {
        return Ok(Vec::new());
    };
    let ids = nesa_market::tokens::decode_token_ids(output)
        .with_context(|| format!("query {} has a malformed output", state.query.id))?;
    Ok(match vocabulary {
        Some(vocabulary) => vocabulary.decrypt(&ids)?,
        None => ids,
    })
}

/// Block times (seconds since the epoch) of the milestones' heights; heights that cannot be
/// read are left out (the observed times stand for them).
async fn block_times(
    client: &nesa_sdk::ChainClient,
    milestones: &[(Milestone, u64)],
) -> std::collections::BTreeMap<u64, f64> {
    use tendermint_rpc::Client;
    let mut times = std::collections::BTreeMap::new();
    for (_, height) in milestones {
        let Ok(h) = nesa_sdk::tendermint::block::Height::try_from(*height) else {
            continue;
        };
        if let Ok(block) = client.rpc().block(h).await {
            let time = block.block.header.time.unix_timestamp_nanos() as f64 / 1e9;
            times.insert(*height, time);
        }
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_only_key_pays_when_none_is_named() {
        let path = Path::new("/home/u/.nesa/keyring.json");
        assert_eq!(choose_key(&["alice"], None, path).unwrap(), "alice");
        assert_eq!(
            choose_key(&["alice", "bob"], Some("bob"), path).unwrap(),
            "bob"
        );
        let several = choose_key(&["alice", "bob"], None, path)
            .unwrap_err()
            .to_string();
        assert!(several.contains("--from (alice, bob)"), "{several}");
        let none = choose_key(&[], None, path).unwrap_err().to_string();
        assert!(none.contains("nesa keys add"), "{none}");
    }

    #[test]
    fn temperature_becomes_milli_units_and_a_seed_only_when_sampling() {
        let greedy = sampling(0.0, None).unwrap();
        assert_eq!(
            (greedy.temperature_milli, greedy.seed, greedy.top_p_milli),
            (0, 0, 1000)
        );
        let seeded = sampling(0.7, Some(42)).unwrap();
        assert_eq!((seeded.temperature_milli, seeded.seed), (700, 42));
        assert!(sampling(10.5, None).is_err());
        assert!(sampling(-0.1, None).is_err());
        assert!(sampling(f64::NAN, None).is_err());
    }
}

//! `nesa swarm generate`: drive a pipeline of node runners that each serve a block range
//! (`nesa-node serve --layers a..b`). The wallet keeps the embedding and the head, measures
//! the nodes, routes through the fastest chain of them, replaces one that dies, and prints
//! who served which blocks.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use nesa_engine::{LoadOptions, Model, Sampling};
use nesa_sdk::ee::{EeKey, KeyFile};
use nesa_sdk::swarm::{probe, Pipeline, PipelineOptions, PipelineOutput};
use nesa_sdk::tokenizer::Tokenizer;

use super::output::OutputFormat;
use super::GlobalArgs;

#[derive(Subcommand)]
pub enum SwarmCommand {
    /// Generate an answer through a pipeline of shard nodes
    Generate(GenerateArgs),
}

/// Arguments of `nesa swarm generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The question; wrapped in the model's chat template unless --raw
    prompt: String,
    /// A node runner's API (repeat for every candidate shard), e.g. http://127.0.0.1:8701
    #[arg(long = "node-api", value_name = "URL", required = true)]
    nodes: Vec<String>,
    /// The kernel's GGUF file: its tokenizer, embedding and head run here
    #[arg(long, value_name = "GGUF", default_value_os_t = nesa_sdk::models::default_model_path())]
    model: PathBuf,
    /// For an encrypted (ee-v1) kernel: its key file; --encrypted-model is then the kernel
    /// the nodes serve, and token ids and hidden states leave this machine transformed
    #[arg(long, value_name = "FILE", requires = "encrypted_model")]
    ee_key: Option<PathBuf>,
    /// The encrypted kernel's GGUF (with --ee-key)
    #[arg(long, value_name = "GGUF", requires = "ee_key")]
    encrypted_model: Option<PathBuf>,
    /// Blocks run here before the first hop (0..K)
    #[arg(long, value_name = "K", default_value_t = 0)]
    local_layers: usize,
    /// Most tokens of the answer
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_tokens: usize,
    /// Feed the prompt as is, without the chat template
    #[arg(long)]
    raw: bool,
    /// Sampling temperature (0 = greedy)
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    temperature: f32,
    /// Seed of the sampler
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
}

pub async fn run(command: SwarmCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    match command {
        SwarmCommand::Generate(args) => generate(args, global.output).await,
    }
}

async fn generate(args: GenerateArgs, output: OutputFormat) -> anyhow::Result<()> {
    let tokenizer = Tokenizer::load(&args.model).with_context(|| {
        format!(
            "reading the tokenizer of {} (pass --model <the kernel's GGUF>)",
            args.model.display()
        )
    })?;
    let vocabulary = match &args.ee_key {
        Some(file) => {
            let vocabulary = EeKey::load(file)?.vocabulary();
            vocabulary.check_size(tokenizer.vocab_size())?;
            Some(vocabulary)
        }
        None => None,
    };
    let served = args.encrypted_model.clone().unwrap_or(args.model.clone());
    let local = 0..args.local_layers;
    let model = tokio::task::spawn_blocking(move || {
        Model::load(
            &served,
            &LoadOptions {
                layers: Some(local),
                ..LoadOptions::default()
            },
        )
    })
    .await??;
    let text = if args.raw {
        args.prompt.clone()
    } else {
        tokenizer.chat_prompt(None, &args.prompt)
    };
    let mut prompt = tokenizer.encode(&text)?;
    let mut stop_tokens = tokenizer.stop_tokens().to_vec();
    if let Some(vocabulary) = &vocabulary {
        prompt = vocabulary.encrypt(&prompt)?;
        stop_tokens = vocabulary.encrypt(&stop_tokens)?;
    }
    let http = reqwest::Client::new();
    let mut candidates = Vec::new();
    for node in &args.nodes {
        match probe(&http, node).await {
            Ok(candidate) => {
                eprintln!(
                    "{}: blocks {}..{}, {:.2} ms round trip, {:.3} ms per block",
                    candidate.endpoint,
                    candidate.layers.start,
                    candidate.layers.end,
                    candidate.rtt * 1e3,
                    candidate.seconds_per_layer * 1e3
                );
                candidates.push(candidate);
            }
            Err(e) => eprintln!("skipping {node}: {e}"),
        }
    }
    let pipeline = Pipeline::connect(model, candidates, PipelineOptions::default()).await?;
    let route: Vec<String> = pipeline
        .route()
        .iter()
        .map(|(node, layers)| format!("{node} [{}..{}]", layers.start, layers.end))
        .collect();
    eprintln!("route: {}", route.join(" → "));
    let sampling = if args.temperature > 0.0 {
        Sampling::Seeded {
            temperature: args.temperature,
            top_p: 1.0,
            seed: args.seed,
        }
    } else {
        Sampling::Greedy
    };
    let result = pipeline
        .generate(&prompt, args.max_tokens, sampling, &stop_tokens, |_| {})
        .await?;
    let tokens = match &vocabulary {
        Some(vocabulary) => vocabulary.decrypt(&result.tokens)?,
        None => result.tokens.clone(),
    };
    let answer = tokenizer.decode(&tokens)?;
    match output {
        OutputFormat::Json => println!("{}", report_json(&answer, &tokens, &result)),
        OutputFormat::Text => {
            println!("{answer}");
            print_report(&result);
        }
    }
    Ok(())
}

fn print_report(result: &PipelineOutput) {
    eprintln!(
        "{} tokens, {:.1} tokens/s after the first (prefill {:.0} ms)",
        result.tokens.len(),
        result.decode_tokens_per_second,
        result.prefill_seconds * 1e3
    );
    for hop in &result.hops {
        let state = match (&hop.failed, hop.root_matches) {
            (Some(reason), _) => format!("replaced: {reason}"),
            (None, Some(true)) => "commitment checked".into(),
            (None, Some(false)) => "COMMITMENT DOES NOT MATCH ITS OUTPUTS".into(),
            (None, None) => "committed".into(),
        };
        eprintln!(
            "  {} blocks {}..{}: {} positions, {:.1} KiB sent, {:.1} KiB back, {:.1} ms — {state}",
            hop.endpoint,
            hop.layers.start,
            hop.layers.end,
            hop.positions,
            hop.sent_bytes as f64 / 1024.0,
            hop.received_bytes as f64 / 1024.0,
            hop.busy_seconds * 1e3
        );
    }
    for failover in &result.failovers {
        eprintln!(
            "  failover at position {}: {} (blocks {}..{}) → {} in {:.0} ms",
            failover.position,
            failover.endpoint,
            failover.layers.start,
            failover.layers.end,
            failover.replaced_by.join(", "),
            failover.seconds * 1e3
        );
    }
}

fn report_json(answer: &str, tokens: &[u32], result: &PipelineOutput) -> serde_json::Value {
    serde_json::json!({
        "answer": answer,
        "tokens": tokens,
        "decode_tokens_per_second": result.decode_tokens_per_second,
        "prefill_ms": result.prefill_seconds * 1e3,
        "hops": result.hops.iter().map(|hop| serde_json::json!({
            "node": hop.endpoint,
            "layers": [hop.layers.start, hop.layers.end],
            "positions": hop.positions,
            "sent_bytes": hop.sent_bytes,
            "received_bytes": hop.received_bytes,
            "ms": hop.busy_seconds * 1e3,
            "activations_root": hop.activations_root,
            "root_matches": hop.root_matches,
            "failed": hop.failed,
        })).collect::<Vec<_>>(),
        "failovers": result.failovers.iter().map(|f| serde_json::json!({
            "node": f.endpoint,
            "layers": [f.layers.start, f.layers.end],
            "position": f.position,
            "reason": f.reason,
            "replaced_by": f.replaced_by,
            "ms": f.seconds * 1e3,
        })).collect::<Vec<_>>(),
    })
}

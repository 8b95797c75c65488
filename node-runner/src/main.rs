//! `nesa-node`: the Nesa node runner.

use std::ops::Range;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nesa_node::cmd::generate::{self, GenerateArgs};
use nesa_node::engine::{default_model_path, Sampling, WeightFormat};

#[derive(Parser)]
#[command(name = "nesa-node", version, about = "Nesa node runner: serves AI kernels for the inference market")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a prompt through a model locally and print the answer and tokens/s.
    Generate {
        /// GGUF model file (default: the SmolLM2 model fetched by scripts/fetch-model).
        #[arg(long, default_value_os_t = default_model_path())]
        model: PathBuf,
        /// The question; it is wrapped in the model's chat template unless --raw.
        #[arg(long)]
        prompt: String,
        /// Feed the prompt to the model as is (no chat template).
        #[arg(long)]
        raw: bool,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// Always pick the most likely token (the default unless --temperature is given).
        #[arg(long, conflicts_with = "temperature")]
        greedy: bool,
        /// Sampling temperature (seeded sampling; 0 = greedy).
        #[arg(long)]
        temperature: Option<f32>,
        /// Nucleus sampling: keep the most likely tokens up to this probability mass.
        #[arg(long, default_value_t = 1.0, requires = "temperature")]
        top_p: f32,
        /// Seed of the sampling stream.
        #[arg(long, default_value_t = 0, requires = "temperature")]
        seed: u64,
        /// Load only blocks a..b (a shard) and report the hidden states it would pass on.
        #[arg(long, value_parser = parse_layer_range)]
        layers: Option<Range<usize>>,
        /// In-memory weights: `stored` (as in the file; Q4_1 through the engine's SIMD kernel),
        /// `candle` (as stored, candle's kernels only), `q8` (Q4_1 requantized to Q8_0).
        #[arg(long, value_enum, default_value_t = Weights::Stored)]
        weights: Weights,
        /// Print one JSON line with token ids and timings.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Weights {
    Stored,
    Candle,
    Q8,
}

fn parse_layer_range(text: &str) -> Result<Range<usize>, String> {
    let (start, end) = text.split_once("..").ok_or_else(|| format!("`{text}` is not a range like 0..15"))?;
    let parse = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("`{s}` in `{text}` is not a layer number"));
    let (start, end) = (parse(start)?, parse(end)?);
    if start >= end {
        return Err(format!("layer range {start}..{end} is empty"));
    }
    Ok(start..end)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate { model, prompt, raw, max_tokens, greedy: _, temperature, top_p, seed, layers, weights, json } => {
            let sampling = match temperature {
                Some(temperature) => Sampling::Seeded { temperature, top_p, seed },
                None => Sampling::Greedy,
            };
            let format = match weights {
                Weights::Stored => WeightFormat::AsStored,
                Weights::Candle => WeightFormat::CandleKernels,
                Weights::Q8 => WeightFormat::Q4_1ToQ8_0,
            };
            generate::run(&GenerateArgs { model, prompt, raw, max_tokens, sampling, layers, format, json })
        }
    }
}

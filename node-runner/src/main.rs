//! `nesa-node`: the Nesa node runner.

use std::ops::Range;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nesa_engine::{default_model_path, Sampling, WeightFormat};
use nesa_market::devnet;
use nesa_node::cmd::chain;
use nesa_node::cmd::generate::{self, GenerateArgs};
use nesa_node::cmd::kernel;

#[derive(Parser)]
#[command(
    name = "nesa-node",
    version,
    about = "Nesa node runner: serves AI kernels for the inference market"
)]
struct Cli {
    /// Runner home: config.toml and the keyring (keyring-file.json, or keyring.json with
    /// --keyring-backend test).
    #[arg(long, global = true, env = "NESA_NODE_HOME", default_value_os_t = nesa_node::config::default_home())]
    home: PathBuf,
    /// CometBFT JSON-RPC of a Nesa node (overrides the config).
    #[arg(long, global = true, env = "NESA_NODE_RPC")]
    node: Option<String>,
    #[command(flatten)]
    keyring: nesa_sdk::keys::KeyringArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the runner's key and config (prints its address).
    Init {
        /// Key name in the runner's keyring.
        #[arg(long, default_value = "node")]
        key: String,
        /// Recover the key from a mnemonic read on stdin.
        #[arg(long)]
        recover: bool,
        /// GGUF model served.
        #[arg(long, default_value_os_t = default_model_path())]
        model: PathBuf,
        /// HTTP API listen address (also published in the on-chain profile).
        #[arg(long, default_value = "127.0.0.1:8700")]
        api_laddr: String,
        /// Kernel id served, if already registered.
        #[arg(long)]
        kernel: Option<u64>,
        /// Serve only blocks a..b of a sharded kernel (one range of its shard layout).
        #[arg(long, value_parser = parse_layer_range)]
        layers: Option<Range<usize>>,
    },
    /// Register the configured model as a kernel (prints its id and stores it in the config).
    Register {
        /// Kernel name.
        #[arg(long, default_value = devnet::KERNEL_NAME)]
        name: String,
        /// Price per input token, in unes.
        #[arg(long, default_value_t = devnet::PRICE_PER_INPUT_TOKEN)]
        price_in: u128,
        /// Price per output token, in unes.
        #[arg(long, default_value_t = devnet::PRICE_PER_OUTPUT_TOKEN)]
        price_out: u128,
        /// Least number of nodes per query (pipelines, for a sharded kernel).
        #[arg(long, default_value_t = devnet::KERNEL_MIN_REDUNDANCY)]
        min_redundancy: u8,
        /// Register a sharded kernel: its blocks split into this many ranges as evenly as
        /// they go, each served by its own runners and queries run through pipelines of them.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        shards: u32,
    },
    /// Bond stake and publish the profile serving the configured kernel, e.g. `bond 2000000unes`.
    Bond {
        /// Stake, e.g. 2000000unes.
        amount: nesa_sdk::Coin,
        /// Serve blocks a..b of a sharded kernel (default: the config's `layers`); saved in
        /// the config for `start`.
        #[arg(long, value_parser = parse_layer_range, conflicts_with = "shard")]
        layers: Option<Range<usize>>,
        /// Serve range N (from 0) of the sharded kernel's layout, as read from the chain.
        #[arg(long)]
        shard: Option<usize>,
    },
    /// Serve: load the model, follow the chain, answer assigned queries, serve the HTTP API.
    Start {
        /// Serve blocks a..b of a sharded kernel (default: the config's `layers`); the
        /// profile on chain is updated to them.
        #[arg(long, value_parser = parse_layer_range)]
        layers: Option<Range<usize>>,
    },
    /// Serve only the HTTP API (`/v1/generate`, split mode, `/health`, `/metrics`) with the
    /// batching engine, no chain: to try the node or measure it. Threads: RAYON_NUM_THREADS.
    Serve {
        /// GGUF model served (default: the config's).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Listen address (default: the config's api_laddr).
        #[arg(long)]
        api_laddr: Option<String>,
        /// MiB the engine's key/value caches may use (default: the config's kv_budget_mib).
        #[arg(long)]
        kv_budget_mib: Option<u64>,
        /// Requests computed at once, all in one batch; more are answered 503 (default: the
        /// config's api_max_concurrent).
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Load only blocks a..b and serve them as a pipeline shard on /v1/shard/stream
        /// (`nesa swarm generate` drives a pipeline of such nodes).
        #[arg(long, value_parser = parse_layer_range)]
        layers: Option<Range<usize>>,
    },
    /// Kernel files: `kernel encrypt` writes an equivariant-encrypted (ee-v1) copy.
    #[command(subcommand)]
    Kernel(KernelCommand),
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

#[derive(Subcommand)]
enum KernelCommand {
    /// Write the ee-v1 form of a GGUF kernel: vocabulary permuted, hidden dimensions permuted
    /// and sign-flipped, MLP and attention heads permuted; same format, size and speed, same
    /// answers once users map token ids with the key. Prints the new file's sha256.
    Encrypt {
        /// Plaintext GGUF kernel.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the encrypted kernel.
        #[arg(long = "out")]
        output: PathBuf,
        /// Key file: used if it exists, created (mode 0600) otherwise.
        #[arg(long)]
        key: PathBuf,
        /// Residual-stream transform of a new key: `signed-permutation` or `permutation`.
        #[arg(long, default_value = "signed-permutation")]
        transform: nesa_engine::ee::Transform,
    },
    /// Attack harness: plays a node runner that owns the public plaintext model and reports
    /// how much of the key each known attack recovers (row matching by sorted |values| and by
    /// norms, for permutation, signed permutation and a dense orthogonal Q; norm weights;
    /// frequency analysis over a text corpus).
    Attack {
        /// The plaintext GGUF model (the public weights the attacker holds).
        #[arg(long, default_value_os_t = default_model_path())]
        model: PathBuf,
        /// Embedding rows to attack (spread over the vocabulary).
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Text files for frequency analysis: the first half of their lines is the attacker's
        /// public reference, the second half stands for users' queries.
        #[arg(long)]
        corpus: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Weights {
    Stored,
    Candle,
    Q8,
}

fn parse_layer_range(text: &str) -> Result<Range<usize>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not a range like 0..15"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}` in `{text}` is not a layer number"))
    };
    let (start, end) = (parse(start)?, parse(end)?);
    if start >= end {
        return Err(format!("layer range {start}..{end} is empty"));
    }
    Ok(start..end)
}

/// The config with `--layers`, when given, in place of its own.
fn with_layers(
    config: nesa_node::config::RunnerConfig,
    layers: Option<Range<usize>>,
) -> nesa_node::config::RunnerConfig {
    match layers {
        Some(layers) => nesa_node::config::RunnerConfig {
            layers: Some([layers.start, layers.end]),
            ..config
        },
        None => config,
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = nesa_node::config::RunnerConfig::load(&cli.home)?;
    if let Some(node) = &cli.node {
        config.node = node.clone();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = || tokio::runtime::Runtime::new();
    match cli.command {
        Command::Init {
            key,
            recover,
            model,
            api_laddr,
            kernel,
            layers,
        } => {
            let config = nesa_node::config::RunnerConfig {
                key,
                model,
                api_laddr,
                kernel_id: kernel,
                layers: layers.map(|l| [l.start, l.end]),
                ..config
            };
            chain::init(&cli.home, config, recover, &cli.keyring)
        }
        Command::Register {
            name,
            price_in,
            price_out,
            min_redundancy,
            shards,
        } => {
            let options = chain::Register {
                name,
                price_per_input_token: price_in,
                price_per_output_token: price_out,
                min_redundancy,
                shards,
            };
            runtime()?
                .block_on(chain::register(&cli.home, config, options, &cli.keyring))
                .map(|_| ())
        }
        Command::Bond {
            amount,
            layers,
            shard,
        } => {
            let config = with_layers(config, layers);
            runtime()?.block_on(chain::bond(&cli.home, config, amount, shard, &cli.keyring))
        }
        Command::Start { layers } => {
            let config = with_layers(config, layers);
            runtime()?.block_on(chain::start(&cli.home, config, &cli.keyring))
        }
        Command::Serve {
            model,
            api_laddr,
            kv_budget_mib,
            max_concurrent,
            layers,
        } => {
            let config = nesa_node::config::RunnerConfig {
                model: model.unwrap_or(config.model),
                api_laddr: api_laddr.unwrap_or(config.api_laddr),
                kv_budget_mib: kv_budget_mib.unwrap_or(config.kv_budget_mib),
                api_max_concurrent: max_concurrent.unwrap_or(config.api_max_concurrent),
                ..config
            };
            runtime()?.block_on(chain::serve(config, layers))
        }
        Command::Kernel(KernelCommand::Encrypt {
            input,
            output,
            key,
            transform,
        }) => kernel::encrypt(&kernel::EncryptArgs {
            input,
            output,
            key,
            transform,
        }),
        Command::Kernel(KernelCommand::Attack {
            model,
            samples,
            corpus,
        }) => kernel::attack(&kernel::AttackArgs {
            model,
            samples,
            corpus,
        }),
        Command::Generate {
            model,
            prompt,
            raw,
            max_tokens,
            greedy: _,
            temperature,
            top_p,
            seed,
            layers,
            weights,
            json,
        } => {
            let sampling = match temperature {
                Some(temperature) => Sampling::Seeded {
                    temperature,
                    top_p,
                    seed,
                },
                None => Sampling::Greedy,
            };
            let format = match weights {
                Weights::Stored => WeightFormat::AsStored,
                Weights::Candle => WeightFormat::CandleKernels,
                Weights::Q8 => WeightFormat::Q4_1ToQ8_0,
            };
            generate::run(&GenerateArgs {
                model,
                prompt,
                raw,
                max_tokens,
                sampling,
                layers,
                format,
                json,
            })
        }
    }
}

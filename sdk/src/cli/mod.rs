//! Command-line surface of `nesa`: global flags and dispatch to `keys`, `tx`, `query`, `ask`
//! and `swarm`.

mod ask;
mod gateway;
mod keys;
mod market;
mod output;
mod query;
mod resolve;
mod swarm;
mod tx;
mod wasm;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nesa_sdk::DEFAULT_NODE;

pub use output::OutputFormat;

/// Nesa wallet: manage keys, send transactions, query the chain and ask AI kernels.
#[derive(Parser)]
#[command(name = "nesa", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts.
#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Directory holding the keyring (keyring-file.json, or keyring.json for the test backend)
    #[arg(
        long,
        global = true,
        env = "NESA_HOME",
        value_name = "DIR",
        default_value = "~/.nesa"
    )]
    home: String,
    /// CometBFT JSON-RPC endpoint of a Nesa node
    #[arg(long, global = true, env = "NESA_NODE", value_name = "URL", default_value = DEFAULT_NODE)]
    node: String,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    keyring: nesa_sdk::keys::KeyringArgs,
}

impl GlobalArgs {
    /// The home directory with a leading `~` expanded.
    fn home_dir(&self) -> anyhow::Result<PathBuf> {
        let Some(rest) = self.home.strip_prefix('~') else {
            return Ok(PathBuf::from(&self.home));
        };
        let user_home = dirs::home_dir()
            .ok_or_else(|| anyhow::anyhow!("cannot find your home directory: pass --home <dir>"))?;
        Ok(user_home.join(rest.trim_start_matches('/')))
    }

    /// The keyring of the home, with the chosen backend (asks the passphrase if needed).
    fn open_keyring(&self) -> anyhow::Result<nesa_sdk::Keyring> {
        Ok(self.keyring.open(&self.home_dir()?)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Manage local keys (create, recover, show, list, delete)
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign and broadcast transactions
    #[command(subcommand)]
    Tx(tx::TxCommand),
    /// Query chain state
    #[command(subcommand, visible_alias = "q")]
    Query(query::QueryCommand),
    /// Ask a kernel a question through the market: pays from escrow, waits for the nodes'
    /// consensus, prints the answer and what it cost
    Ask(ask::AskArgs),
    /// Serve an OpenAI-compatible API (and the web chat page) that pays for each request
    /// from a local key: any OpenAI client can then ask Nesa's kernels
    Gateway(gateway::GatewayArgs),
    /// Run a kernel through a pipeline of node runners that each serve some of its blocks
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
}

/// Parses the command line; prints help or a one-line usage error and returns `None` when it should not run.
pub fn parse_args() -> Option<Cli> {
    match Cli::try_parse() {
        Ok(cli) => Some(cli),
        Err(error) if !error.use_stderr() => {
            // --help and --version are not errors.
            let _ = error.print();
            std::process::exit(0);
        }
        Err(error)
            if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            let _ = error.print();
            None
        }
        Err(error) => {
            let rendered = error.render().to_string();
            let first_line = rendered.lines().next().unwrap_or_default();
            let message = first_line.trim_start_matches("error: ");
            eprintln!("error: {message} (see `--help` for usage)");
            None
        }
    }
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keys(command) => keys::run(command, &cli.global),
        Command::Tx(command) => tx::run(command, &cli.global).await,
        Command::Query(command) => query::run(command, &cli.global).await,
        Command::Ask(args) => ask::run(args, &cli.global).await,
        Command::Swarm(command) => swarm::run(command, &cli.global).await,
        Command::Gateway(args) => gateway::run(args, &cli.global).await,
    }
}

/// Renders an error and its causes as one line, skipping causes the message already quotes.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

//! `nesad`: the Nesa chain node.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nesa_app::cmd;
use nesa_app::home::{default_home, NodeConfig};

#[derive(Parser)]
#[command(name = "nesad", version, about = "The Nesa chain node: a private AI inference market on CometBFT")]
struct Cli {
    /// Node home directory (config, keys, state).
    #[arg(long, global = true, env = "NESAD_HOME", default_value_os_t = default_home())]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node home: validator key, genesis file and node config.
    Init {
        /// Human-readable node name.
        moniker: String,
        /// Chain id transactions are signed for, e.g. nesa-devnet-1.
        #[arg(long)]
        chain_id: String,
        /// Replace an existing genesis file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Edit the genesis file before the chain starts.
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },
    /// Run the node: `--solo` produces blocks itself and serves the RPC; otherwise it waits for
    /// CometBFT on the ABCI socket.
    Start {
        /// Run as a single-validator network with an embedded block producer and RPC.
        #[arg(long)]
        solo: bool,
        /// Solo mode RPC listen address.
        #[arg(long = "rpc.laddr")]
        rpc_laddr: Option<String>,
        /// CometBFT mode ABCI listen address.
        #[arg(long)]
        abci: Option<String>,
        /// Solo mode: longest wait before an empty block, in milliseconds.
        #[arg(long)]
        block_interval_ms: Option<u64>,
    },
}

#[derive(Subcommand)]
enum GenesisCommand {
    /// Give an account coins at genesis, e.g. `nesad genesis add-account nesa1… 1000000000unes`.
    AddAccount {
        /// Bech32 account address (nesa1…).
        address: String,
        /// Coins, e.g. 1000000000unes or 10unes,5uatom.
        coins: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let log_level = NodeConfig::load(&cli.home).map(|c| c.log_level).unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Init { moniker, chain_id, overwrite } => cmd::init(&cli.home, &moniker, &chain_id, overwrite),
        Command::Genesis { command: GenesisCommand::AddAccount { address, coins } } => {
            cmd::add_genesis_account(&cli.home, &address, &coins)
        }
        Command::Start { solo, rpc_laddr, abci, block_interval_ms } => cmd::start(cmd::StartOptions {
            home: cli.home,
            solo,
            rpc_laddr,
            abci_laddr: abci,
            block_interval_ms,
        }),
    };
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

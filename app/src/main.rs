//! `nesad`: the Nesa chain node.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nesa_app::cmd;
use nesa_app::home::{default_home, NodeConfig};

#[derive(Parser)]
#[command(
    name = "nesad",
    version,
    about = "The Nesa chain node: a private AI inference market on CometBFT"
)]
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
        /// Directory with the market contracts to deploy at genesis (default: ./artifacts if present).
        #[arg(long, env = "NESA_ARTIFACTS")]
        artifacts: Option<PathBuf>,
        /// Admin (migrations, parameters) of the genesis market contracts; default: none.
        #[arg(long)]
        market_admin: Option<String>,
    },
    /// Contract tools.
    Wasm {
        #[command(subcommand)]
        command: WasmCommand,
    },
    /// Print the chain info Keplr's `experimentalSuggestChain` takes, built from the genesis
    /// file; with `--out DIR`, write it and the cosmos chain-registry's `chain.json` and
    /// `assetlist.json` there.
    ChainInfo {
        /// The RPC address wallets reach the chain at.
        #[arg(long, default_value = "http://127.0.0.1:26657")]
        rpc: String,
        /// The REST (LCD) address wallets reach the chain at.
        #[arg(long, default_value = "http://127.0.0.1:1317")]
        rest: String,
        /// Write keplr-chain-info.json, chain.json and assetlist.json into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
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
        /// Cosmos SDK REST API (LCD) listen address, default tcp://127.0.0.1:1317;
        /// `off` serves none.
        #[arg(long = "api.laddr")]
        api_laddr: Option<String>,
        /// Cosmos SDK gRPC listen address (HTTP/2, no TLS), default
        /// tcp://127.0.0.1:9090; `off` serves none.
        #[arg(long = "grpc.laddr")]
        grpc_laddr: Option<String>,
        /// CometBFT mode: the CometBFT node's RPC the REST and gRPC APIs read blocks and
        /// transactions from, default http://127.0.0.1:26657
        #[arg(long = "cometbft.rpc")]
        cometbft_rpc: Option<String>,
        /// CometBFT mode ABCI listen address.
        #[arg(long)]
        abci: Option<String>,
        /// Solo mode: longest wait before an empty block, in milliseconds.
        #[arg(long)]
        block_interval_ms: Option<u64>,
        /// Solo mode: shortest time between two blocks, in milliseconds (default 1000, as
        /// CometBFT's timeout_commit), however many transactions arrive.
        #[arg(long)]
        min_block_interval_ms: Option<u64>,
    },
}

#[derive(Subcommand)]
enum WasmCommand {
    /// Check that wasm files are contracts this chain can run (the loader's own validation).
    Check {
        /// One or more .wasm files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    /// Store a contract code at genesis; prints its code id.
    AddWasm {
        /// The .wasm file (optionally gzipped).
        file: PathBuf,
        /// The uploader's address.
        #[arg(long)]
        creator: String,
        /// Do not keep the compiled module pinned in memory.
        #[arg(long)]
        no_pin: bool,
    },
    /// Instantiate a genesis code at genesis, e.g. `nesad genesis instantiate 1 '{}' --label market --creator nesa1…`.
    Instantiate {
        /// Code id from `add-wasm`.
        code_id: u64,
        /// The instantiate message (JSON).
        msg: String,
        #[arg(long)]
        label: String,
        /// The instantiating address.
        #[arg(long)]
        creator: String,
        /// Who may migrate the contract (none: immutable).
        #[arg(long)]
        admin: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let log_level = NodeConfig::load(&cli.home)
        .map(|c| c.log_level)
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Init {
            moniker,
            chain_id,
            overwrite,
            artifacts,
            market_admin,
        } => cmd::init(
            &cli.home,
            cmd::InitOptions {
                moniker: &moniker,
                chain_id: &chain_id,
                overwrite,
                artifacts,
                market_admin,
            },
        ),
        Command::ChainInfo { rpc, rest, out } => {
            cmd::chain_info(&cli.home, &cmd::Endpoints { rpc, rest }, out.as_deref())
        }
        Command::Genesis {
            command: GenesisCommand::AddAccount { address, coins },
        } => cmd::add_genesis_account(&cli.home, &address, &coins),
        Command::Genesis {
            command:
                GenesisCommand::AddWasm {
                    file,
                    creator,
                    no_pin,
                },
        } => cmd::add_genesis_wasm(&cli.home, &file, &creator, !no_pin),
        Command::Genesis {
            command:
                GenesisCommand::Instantiate {
                    code_id,
                    msg,
                    label,
                    creator,
                    admin,
                },
        } => cmd::add_genesis_contract(&cli.home, code_id, &msg, &label, &creator, admin),
        Command::Wasm {
            command: WasmCommand::Check { files },
        } => cmd::check_wasm(&files),
        Command::Start {
            solo,
            rpc_laddr,
            api_laddr,
            grpc_laddr,
            cometbft_rpc,
            abci,
            block_interval_ms,
            min_block_interval_ms,
        } => cmd::start(cmd::StartOptions {
            home: cli.home,
            solo,
            rpc_laddr,
            api_laddr,
            grpc_laddr,
            cometbft_rpc,
            abci_laddr: abci,
            block_interval_ms,
            min_block_interval_ms,
        }),
    };
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

//! A devnet for the end-to-end tests: `scripts/devnet` on free ports (a solo chain or a
//! CometBFT network, the market at genesis, node runners serving the real model), one at a
//! time, torn down on drop with the runners' logs shown when a test failed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use nesa_engine::{default_model_path, Tokenizer};
use nesa_sdk::Keyring;

/// Each devnet runs a chain and three runners on this machine's cores: the tests take turns,
/// so a query's commit window holds as it does on a machine running one devnet.
static ONE_DEVNET_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Devnet {
    /// This test's turn (released after the devnet is down).
    pub _turn: std::sync::MutexGuard<'static, ()>,
    pub dir: PathBuf,
    pub rpc_port: u16,
    pub api_port: u16,
    /// The solo chain's REST API.
    pub rest_port: u16,
    /// A runner serving another model file: (runner number, file).
    pub tampered: Option<(usize, PathBuf)>,
    pub encrypted: bool,
    /// 1: the solo chain; more: a CometBFT network (`scripts/localnet`).
    pub validators: usize,
    /// Ranges the kernel is sharded into (1: served whole), three runners per range.
    pub shards: usize,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn bin_dir() -> PathBuf {
    // target/<profile>/deps/e2e-… → target/<profile>
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

impl Devnet {
    pub fn script(&self, command: &str) -> std::process::Output {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let bins = bin_dir();
        let mut cmd = Command::new(repo.join("scripts/devnet"));
        cmd.arg(command)
            .env("DEVNET_DIR", &self.dir)
            .env("DEVNET_RPC_PORT", self.rpc_port.to_string())
            .env("DEVNET_API_PORT", self.api_port.to_string())
            .env("DEVNET_REST_PORT", self.rest_port.to_string())
            .env("NESAD_BIN", bins.join("nesad"))
            .env("NESA_BIN", bins.join("nesa"))
            .env("NESA_NODE_BIN", env!("CARGO_BIN_EXE_nesa-node"))
            .env("NESA_KEYRING_BACKEND", "test");
        if let Some((runner, model)) = &self.tampered {
            cmd.env(format!("RUNNER{runner}_MODEL"), model);
        }
        cmd.env("DEVNET_SHARDS", self.shards.to_string());
        if self.encrypted {
            cmd.env("DEVNET_ENCRYPTED", "1");
        }
        cmd.env("DEVNET_VALIDATORS", self.validators.to_string());
        cmd.output().unwrap()
    }

    /// `scripts/localnet <args>` on this devnet's CometBFT network.
    pub fn localnet(&self, args: &[&str]) -> std::process::Output {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let bins = bin_dir();
        Command::new(repo.join("scripts/localnet"))
            .args(args)
            .env("LOCALNET_DIR", self.dir.join("localnet"))
            .env("NESAD_BIN", bins.join("nesad"))
            .env("NESA_BIN", bins.join("nesa"))
            .output()
            .unwrap()
    }

    /// Validator `i`'s RPC (node 0's is the devnet's).
    pub fn validator_rpc(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port as usize + 100 * i)
    }

    pub fn up(name: &str, tampered_runner3: Option<PathBuf>) -> Devnet {
        Self::start(name, tampered_runner3, false)
    }

    pub fn start(name: &str, tampered_runner3: Option<PathBuf>, encrypted: bool) -> Devnet {
        Self::start_network(name, tampered_runner3, encrypted, 1)
    }

    pub fn start_network(
        name: &str,
        tampered_runner3: Option<PathBuf>,
        encrypted: bool,
        validators: usize,
    ) -> Devnet {
        Self::launch(
            name,
            tampered_runner3.map(|m| (3, m)),
            encrypted,
            validators,
            1,
        )
    }

    pub fn launch(
        name: &str,
        tampered: Option<(usize, PathBuf)>,
        encrypted: bool,
        validators: usize,
        shards: usize,
    ) -> Devnet {
        // A test that failed while holding the turn leaves nothing running: carry on.
        let turn = ONE_DEVNET_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = std::env::temp_dir().join(format!("nesa-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let api_port = loop {
            let port = free_port();
            if port < 60_000
                && (1..3 * shards as u16)
                    .all(|i| TcpListener::bind(("127.0.0.1", port + i)).is_ok())
            {
                break port;
            }
        };
        // A CometBFT network needs its RPC ports free for every validator (base + 100·i).
        let rpc_port = loop {
            let port = free_port();
            if port < 60_000
                && (0..validators as u16).all(|i| {
                    (0..3).all(|p| TcpListener::bind(("127.0.0.1", port - 1 + 100 * i + p)).is_ok())
                })
            {
                break port;
            }
        };
        let devnet = Devnet {
            _turn: turn,
            dir,
            rpc_port,
            api_port,
            rest_port: free_port(),
            tampered,
            encrypted,
            validators,
            shards,
        };
        let out = devnet.script("up");
        assert!(
            out.status.success(),
            "devnet up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        devnet
    }

    pub fn rpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    pub fn runner_address(&self, i: usize) -> String {
        let keyring = Keyring::open(&self.dir.join(format!("runner{i}"))).unwrap();
        keyring.show("node").unwrap().address.to_string()
    }

    pub fn kill_runner(&self, i: usize) {
        let pid = std::fs::read_to_string(self.dir.join(format!("runner{i}/runner.pid"))).unwrap();
        let pid = pid.trim();
        let _ = Command::new("kill")
            .args(["-9", &format!("-{pid}")])
            .status();
        let _ = Command::new("kill").args(["-9", pid]).status();
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.script("down");
        if std::thread::panicking() {
            eprintln!("runner logs kept in {}", self.dir.display());
            for i in 1..=3 * self.shards {
                let log = self.log(&format!("runner{i}/runner.log"));
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!(
                    "--- runner{i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The default model, or `None` with `test` reported as skipped (failed under `CI=true`).
pub fn model_available(test: &str) -> Option<PathBuf> {
    nesa_testkit::require_file(test, &default_model_path(), "scripts/setup fetches it")
}

/// The chat prompt the tests ask with, as token ids.
pub fn chat(tokenizer: &Tokenizer, prompt: &str) -> Vec<u32> {
    tokenizer
        .encode(&tokenizer.chat_prompt(Some("You are a helpful AI assistant."), prompt))
        .unwrap()
}

/// Runs the `nesa` wallet against the devnet; returns (success, stdout, stderr).
pub fn nesa(devnet: &Devnet, home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin_dir().join("nesa"))
        .args(args)
        .args(["--home", home.to_str().unwrap(), "--node", &devnet.rpc()])
        .args(["--keyring-backend", "test"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What one node running the whole model answers to `question`, greedy: the tokens a sharded
/// market must settle on.
pub fn whole_model_answer(
    model: &Path,
    tokenizer: &Tokenizer,
    question: &str,
    max_tokens: usize,
) -> Vec<u32> {
    use nesa_engine::{GenerateRequest, LoadOptions, Model};
    Model::load(model, &LoadOptions::default())
        .unwrap()
        .generate(
            &GenerateRequest {
                prompt: chat(tokenizer, question),
                max_tokens,
                sampling: nesa_engine::Sampling::Greedy,
                stop_tokens: tokenizer.stop_tokens().to_vec(),
                top_logprobs: 0,
            },
            |_| {},
        )
        .unwrap()
        .tokens
}

//! The two servers under test, each a child process on a loopback port: `nesa-node serve` and
//! `llama-server`. A server is killed when its handle drops, so a failed run leaves nothing
//! behind to skew the next measurement.

use std::fs::File;
use std::net::TcpListener;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a server may take to load the model and answer `/health`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Which server a process is; requests and timings differ between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `nesa-node serve`: `POST /v1/generate`.
    Nesa,
    /// `llama-server`: `POST /completion`.
    Llama,
}

impl Engine {
    /// The engine's name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Nesa => "nesa-node",
            Engine::Llama => "llama.cpp",
        }
    }
}

/// A running server, killed on drop.
pub struct Server {
    pub engine: Engine,
    pub base_url: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `nesa-node serve` with `threads` compute threads and waits until it serves.
    pub async fn nesa(binary: &Path, model: &Path, threads: usize, logs: &Path) -> Result<Self> {
        Self::nesa_blocks(binary, model, threads, None, logs).await
    }

    /// Starts `nesa-node serve`, serving only blocks `layers` when given (a pipeline shard).
    pub async fn nesa_blocks(
        binary: &Path,
        model: &Path,
        threads: usize,
        layers: Option<Range<usize>>,
        logs: &Path,
    ) -> Result<Self> {
        let port = free_port()?;
        let log = logs.join(format!("nesa-node-serve-t{threads}-{port}.log"));
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--model")
            .arg(model)
            .args(["--api-laddr", &format!("127.0.0.1:{port}")])
            // As many sequences in one batch as llama-server gets slots (-np 8).
            .args(["--max-concurrent", "8"])
            .env("RAYON_NUM_THREADS", threads.to_string());
        if let Some(layers) = layers {
            command.args(["--layers", &format!("{}..{}", layers.start, layers.end)]);
        }
        Self::start(Engine::Nesa, command, port, log).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `llama-server` with 8 slots and `threads` threads and waits until it serves.
    pub async fn llama(bin_dir: &Path, model: &Path, threads: usize, logs: &Path) -> Result<Self> {
        let port = free_port()?;
        let log = logs.join(format!("llama-server-t{threads}-{port}.log"));
        let mut command = Command::new(bin_dir.join("llama-server"));
        command
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", &threads.to_string(), "-np", "8"])
            // 1024 positions per slot: room for the 512-token memory run.
            .args(["-c", "8192"])
            // No prompt reuse: every request sends the same prompt, and the comparison is of
            // prefill too. The host-memory prompt cache would also inflate the peak RSS.
            .args(["--no-cache-prompt", "--cache-ram", "0"]);
        Self::start(Engine::Llama, command, port, log).await
    }

    async fn start(engine: Engine, mut command: Command, port: u16, log: PathBuf) -> Result<Self> {
        let output =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("cannot start {}", engine.label()))?;
        let mut server = Server {
            engine,
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let url = format!("{}/health", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before serving:\n{}",
                    self.engine.label(),
                    self.log_tail()
                );
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "{} did not answer {url} within {STARTUP_TIMEOUT:?}:\n{}",
                    self.engine.label(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process's peak resident set so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .context("no VmHWM in /proc/PID/status")?;
        Ok(kib * 1024)
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

//! Serving many concurrent queries: `nesa-node serve` (continuous batching) against llama.cpp's
//! own tools on the same GGUF, same machine, same run, the two alternating: single-stream speed
//! (`llama-bench`), aggregate throughput at 1–8 sequences (`llama-batched-bench`), latency under
//! a Poisson load and peak RSS (`llama-server`). Writes `serving.md` and `serving.svg`.
//!
//! Run by `scripts/bench serving`, which builds both sides and passes their paths:
//! `NESA_NODE_BIN`, `LLAMA_CPP_BIN_DIR`, `NESA_MODEL`, `NESA_BENCH_REPORT` (the Markdown
//! path); `NESA_BENCH_ROUNDS` (default 3) sets the alternating rounds.

#[path = "serving/chart.rs"]
mod chart;
#[path = "serving/llama_tools.rs"]
mod llama_tools;
#[path = "serving/load.rs"]
mod load;
// Shared by the serving and swarm benches; each uses part of it.
#[allow(dead_code)]
#[path = "serving/processes.rs"]
mod processes;
#[path = "serving/report.rs"]
mod report;
#[path = "serving/workload.rs"]
mod workload;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use llama_tools::{llama_batched_bench, llama_bench};
use load::{at_offsets, complete, poisson_arrivals, simultaneous, Target, Throughput};
use processes::{Engine, Server};
use report::{median, Aggregate, LatencyRun, MemoryRun, Results, Setup, SingleStream};
use workload::{prompt_ids, PROMPT_TOKENS};

const NEW_TOKENS: usize = 64;
const THREADS: [usize; 2] = [1, 2];
const SEQUENCES: [usize; 4] = [1, 2, 4, 8];
/// Single-stream requests (and llama-bench repetitions) per round.
const SINGLE_SAMPLES: usize = 3;
const POISSON_QUERIES: usize = 40;
/// Poisson arrival rates, as fractions of nesa-node's request rate at 8 sequences.
const LOADS: [f64; 2] = [0.5, 0.9];
/// The Poisson loads run at one thread count, every core of a two-core machine: at the slower
/// one they alone would take most of the run's time budget.
const POISSON_THREADS: usize = 2;
/// New tokens per sequence of the memory run: 64 + 448 = 512 positions each.
const MEMORY_NEW_TOKENS: usize = 448;
const MEMORY_THREADS: usize = 2;

/// The paths `scripts/bench serving` passes in.
struct Settings {
    nesa_node: PathBuf,
    llama_bin_dir: PathBuf,
    model: PathBuf,
    report: PathBuf,
    rounds: usize,
}

impl Settings {
    /// `None` when the bench is not run through `scripts/bench serving` (e.g. `cargo bench`).
    fn from_env() -> Result<Option<Self>> {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let (Some(nesa_node), Some(llama_bin_dir), Some(model), Some(report)) = (
            var("NESA_NODE_BIN"),
            var("LLAMA_CPP_BIN_DIR"),
            var("NESA_MODEL"),
            var("NESA_BENCH_REPORT"),
        ) else {
            return Ok(None);
        };
        let rounds = workload::rounds()?;
        for (what, path) in [
            ("NESA_NODE_BIN", &nesa_node),
            ("NESA_MODEL", &model),
            ("LLAMA_CPP_BIN_DIR", &llama_bin_dir),
        ] {
            if !path.exists() {
                bail!("{what}={} does not exist", path.display());
            }
        }
        Ok(Some(Settings {
            nesa_node,
            llama_bin_dir,
            model,
            report,
            rounds,
        }))
    }
}

/// Progress on stderr, with the time since the start.
struct Progress(Instant);

impl Progress {
    fn say(&self, message: impl AsRef<str>) {
        eprintln!(
            "[{:6.1} s] {}",
            self.0.elapsed().as_secs_f64(),
            message.as_ref()
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let Some(settings) = Settings::from_env()? else {
        eprintln!("the serving benchmark runs through `scripts/bench serving`, which builds both sides; skipped");
        return Ok(());
    };
    let progress = Progress(Instant::now());
    let logs = settings.report.with_file_name("serving-logs");
    std::fs::create_dir_all(&logs)?;
    let prompt = prompt_ids(&settings.model)?;

    let mut single = Vec::new();
    let mut aggregate = Vec::new();
    let mut latency = Vec::new();
    let mut llama_build = None;
    for threads in THREADS {
        progress.say(format!("{threads} thread(s): starting nesa-node serve"));
        let nesa = Server::nesa(&settings.nesa_node, &settings.model, threads, &logs).await?;
        let target = Target::of(&nesa)?;
        warm_up(&target, &prompt).await?;

        let (stream, build) =
            single_stream(&settings, &target, &prompt, threads, &progress).await?;
        single.push(stream);
        llama_build = build;

        let batches = aggregate_throughput(&settings, &target, &prompt, threads, &progress).await?;
        let full_rate = {
            let at_eight = batches
                .iter()
                .find(|a| a.sequences == 8)
                .context("no run at 8 sequences")?;
            8.0 / median(at_eight.nesa.iter().map(|t| t.wall_s))
        };
        aggregate.extend(batches);
        if threads != POISSON_THREADS {
            continue;
        }

        latency.extend(poisson(&target, &prompt, threads, full_rate, &progress).await?);
        drop(nesa);
        progress.say(format!("{threads} thread(s): starting llama-server"));
        let llama = Server::llama(&settings.llama_bin_dir, &settings.model, threads, &logs).await?;
        let target = Target::of(&llama)?;
        warm_up(&target, &prompt).await?;
        latency.extend(poisson(&target, &prompt, threads, full_rate, &progress).await?);
    }

    let mut memory = Vec::new();
    for engine in [Engine::Nesa, Engine::Llama] {
        progress.say(format!(
            "memory: fresh {}, 8 × {} tokens",
            engine.label(),
            PROMPT_TOKENS + MEMORY_NEW_TOKENS
        ));
        let server = match engine {
            Engine::Nesa => {
                Server::nesa(&settings.nesa_node, &settings.model, MEMORY_THREADS, &logs).await?
            }
            Engine::Llama => {
                Server::llama(
                    &settings.llama_bin_dir,
                    &settings.model,
                    MEMORY_THREADS,
                    &logs,
                )
                .await?
            }
        };
        let after_load = server.peak_rss_bytes()?;
        simultaneous(&Target::of(&server)?, &prompt, MEMORY_NEW_TOKENS, 8).await?;
        memory.push(MemoryRun {
            engine,
            threads: MEMORY_THREADS,
            after_load,
            after_run: server.peak_rss_bytes()?,
        });
    }

    let results = Results {
        setup: machine_setup(&settings, llama_build)?,
        single,
        aggregate,
        latency,
        memory,
        memory_new_tokens: MEMORY_NEW_TOKENS,
        elapsed_s: progress.0.elapsed().as_secs_f64(),
    };
    write_report(&settings.report, &results)?;
    Ok(())
}

/// A batch of 8 short generations: the first batches pay one-time costs (buffers, page faults
/// of the mapped weights) that no measurement should.
async fn warm_up(target: &Target, prompt: &[u32]) -> Result<()> {
    simultaneous(target, prompt, 8, 8).await?;
    Ok(())
}

/// Single-stream prefill and decode speed, nesa-node and llama-bench alternating; returns
/// llama.cpp's build as llama-bench reports it too.
async fn single_stream(
    settings: &Settings,
    target: &Target,
    prompt: &[u32],
    threads: usize,
    progress: &Progress,
) -> Result<(SingleStream, Option<String>)> {
    let mut stream = SingleStream {
        threads,
        nesa_prefill: Vec::new(),
        nesa_decode: Vec::new(),
        llama_prefill: Vec::new(),
        llama_decode: Vec::new(),
    };
    let mut build = None;
    for round in 1..=settings.rounds {
        for _ in 0..SINGLE_SAMPLES {
            let completion = complete(target, prompt, NEW_TOKENS, Instant::now()).await?;
            stream
                .nesa_prefill
                .push(completion.prefill_rate(PROMPT_TOKENS));
            stream.nesa_decode.push(completion.decode_rate);
        }
        let bench = llama_bench(
            &settings.llama_bin_dir,
            &settings.model,
            threads,
            PROMPT_TOKENS,
            NEW_TOKENS,
            SINGLE_SAMPLES,
        )
        .await?;
        stream.llama_prefill.extend(bench.prefill);
        stream.llama_decode.extend(bench.decode);
        build = bench.build;
        progress.say(format!(
            "{threads} thread(s), single stream, round {round}/{}: nesa-node prefill {:.0} decode {:.1} t/s; \
             llama.cpp prefill {:.0} decode {:.1} t/s (medians so far)",
            settings.rounds,
            median(stream.nesa_prefill.iter().copied()),
            median(stream.nesa_decode.iter().copied()),
            median(stream.llama_prefill.iter().copied()),
            median(stream.llama_decode.iter().copied()),
        ));
    }
    Ok((stream, build))
}

/// Throughput at every concurrency level, nesa-node and llama-batched-bench alternating.
async fn aggregate_throughput(
    settings: &Settings,
    target: &Target,
    prompt: &[u32],
    threads: usize,
    progress: &Progress,
) -> Result<Vec<Aggregate>> {
    let mut batches: Vec<Aggregate> = SEQUENCES
        .iter()
        .map(|&sequences| Aggregate {
            threads,
            sequences,
            nesa: Vec::new(),
            llama: Vec::new(),
        })
        .collect();
    for round in 1..=settings.rounds {
        for batch in &mut batches {
            let completions = simultaneous(target, prompt, NEW_TOKENS, batch.sequences).await?;
            batch.nesa.push(Throughput::of(&completions, PROMPT_TOKENS));
        }
        let rows = llama_batched_bench(
            &settings.llama_bin_dir,
            &settings.model,
            threads,
            PROMPT_TOKENS,
            NEW_TOKENS,
            &SEQUENCES,
        )
        .await?;
        for row in rows {
            let batch = batches
                .iter_mut()
                .find(|b| b.sequences == row.pl)
                .context("llama-batched-bench reported a batch size it was not asked for")?;
            batch.llama.push(row);
        }
        let summary: Vec<String> = batches
            .iter()
            .map(|b| {
                let (ours, theirs) = b.total();
                format!("N={} {ours:.0}/{theirs:.0}", b.sequences)
            })
            .collect();
        progress.say(format!(
            "{threads} thread(s), aggregate, round {round}/{}: S t/s nesa-node/llama.cpp {}",
            settings.rounds,
            summary.join(", ")
        ));
    }
    Ok(batches)
}

/// The Poisson loads on one server; `full_rate` is nesa-node's request rate at 8 sequences.
async fn poisson(
    target: &Target,
    prompt: &[u32],
    threads: usize,
    full_rate: f64,
    progress: &Progress,
) -> Result<Vec<LatencyRun>> {
    let mut runs = Vec::new();
    for (seed, load) in LOADS.into_iter().enumerate() {
        let rate = load * full_rate;
        let arrivals = poisson_arrivals(POISSON_QUERIES, rate, seed as u64);
        progress.say(format!(
            "{threads} thread(s), Poisson {:.0}% ({rate:.2} req/s, ~{:.0} s) on {}",
            load * 100.0,
            arrivals.last().copied().unwrap_or(0.0),
            target.engine().label(),
        ));
        let completions = at_offsets(target, prompt, NEW_TOKENS, &arrivals).await?;
        runs.push(LatencyRun {
            engine: target.engine(),
            threads,
            load,
            rate,
            completions,
        });
    }
    Ok(runs)
}

/// The machine and the builds, for the report's header.
fn machine_setup(settings: &Settings, llama_build: Option<String>) -> Result<Setup> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, name)| {
            name.trim().to_string()
        });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0.0);
    let profile = match settings.nesa_node.parent().and_then(Path::file_name) {
        Some(dir) if dir == "debug" => {
            "the `dev` profile users get from `scripts/setup` and the devnet runs \
             (`cargo build -p nesa-node --bin nesa-node`: dependencies and nesa-engine at opt-level 3, \
             no target-cpu flags)"
        }
        Some(dir) if dir == "release" => "the `release` profile",
        _ => "a build given through NESA_NODE_BIN",
    };
    Ok(Setup {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: memory_kib / (1024.0 * 1024.0),
        model_bytes: std::fs::metadata(&settings.model)?.len(),
        model: settings.model.clone(),
        nesa_build: format!("`{}`, {profile}", settings.nesa_node.display()),
        llama_build: format!(
            "`{}`{} (scripts/build-llama-cpp: the llama.cpp vendored in llama-cpp-python's source \
             distribution, CMake Release, static, GGML_NATIVE off and every SIMD level of this CPU but \
             AMX; its defaults otherwise: f16 KV cache, flash attention `auto`, which is on for the CPU)",
            settings.llama_bin_dir.display(),
            llama_build.map_or(String::new(), |build| format!(", build {build}")),
        ),
        prompt_tokens: PROMPT_TOKENS,
        new_tokens: NEW_TOKENS,
        rounds: settings.rounds,
    })
}

/// Writes the Markdown report and its chart next to it, then prints the report's path.
fn write_report(path: &Path, results: &Results) -> Result<()> {
    let chart_path = path.with_file_name("serving.svg");
    let chart_name = chart_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&chart_path, report::chart(results))?;
    let markdown = report::markdown(results, &chart_name);
    std::fs::write(path, &markdown)?;
    println!("{markdown}");
    println!("report: {}", path.display());
    Ok(())
}

//! Sharded inference on loopback: decode tokens/s of pipelines of 2, 3 and 4 `nesa-node serve
//! --layers` processes against one `nesa-node serve` holding the whole model, in the same run,
//! the configurations alternating round by round; per-hop overhead in ms and bytes per token;
//! the time a failover takes when the middle shard of three is killed mid-answer, and whether
//! the answer stayed the same. Writes `swarm.md` and `swarm.svg`.
//!
//! Run by `scripts/bench swarm`, which builds the binary the devnet runs and passes
//! `NESA_NODE_BIN`, `NESA_MODEL` and `NESA_BENCH_REPORT`; `NESA_BENCH_ROUNDS` (default 3).

#[path = "serving/chart.rs"]
mod chart;
// Shared by the serving and swarm benches; each uses part of it.
#[allow(dead_code)]
#[path = "serving/processes.rs"]
mod processes;
#[path = "serving/workload.rs"]
mod workload;

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use nesa_engine::{LoadOptions, Model, Sampling};
use nesa_sdk::swarm::{probe, Candidate, Pipeline, PipelineOptions, PipelineOutput};

use chart::{line_chart, Series};
use processes::Server;
use workload::{prompt_ids, PROMPT_TOKENS};

const NEW_TOKENS: usize = 64;
/// Compute threads of every process (the machine's two cores; only one shard computes at a
/// time in a single pipeline).
const THREADS: usize = 2;
/// The failover run kills the middle shard after this many tokens.
const KILL_AFTER: usize = 16;

struct Settings {
    nesa_node: PathBuf,
    model: PathBuf,
    report: PathBuf,
    rounds: usize,
}

fn settings() -> Result<Option<Settings>> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let (Some(nesa_node), Some(model), Some(report)) = (
        var("NESA_NODE_BIN"),
        var("NESA_MODEL"),
        var("NESA_BENCH_REPORT"),
    ) else {
        return Ok(None);
    };
    for (what, path) in [("NESA_NODE_BIN", &nesa_node), ("NESA_MODEL", &model)] {
        if !path.exists() {
            bail!("{what}={} does not exist", path.display());
        }
    }
    let rounds = workload::rounds()?;
    Ok(Some(Settings {
        nesa_node,
        model,
        report,
        rounds,
    }))
}

/// Block ranges of `shards` nearly equal shards of `layers` blocks.
fn even_split(layers: usize, shards: usize) -> Vec<Range<usize>> {
    (0..shards)
        .map(|i| (i * layers / shards)..((i + 1) * layers / shards))
        .collect()
}

struct Run {
    decode_tps: f64,
    output: Option<PipelineOutput>,
    tokens: Vec<u32>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn one_node(url: &str, prompt: &[u32]) -> Result<Run> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/v1/generate"))
        .json(&serde_json::json!({
            "prompt_tokens": prompt,
            "max_tokens": NEW_TOKENS,
            "ignore_eos": true,
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Run {
        decode_tps: answer["decode_tokens_per_second"]
            .as_f64()
            .context("no decode_tokens_per_second")?,
        output: None,
        tokens: Vec::new(),
    })
}

async fn pipeline_run(
    model: &Path,
    candidates: Vec<Candidate>,
    prompt: &[u32],
    mut on_token: impl FnMut(usize),
) -> Result<Run> {
    let front = Model::load(
        model,
        &LoadOptions {
            layers: Some(0..0),
            ..Default::default()
        },
    )?;
    let pipeline = Pipeline::connect(front, candidates, PipelineOptions::default()).await?;
    let mut count = 0;
    let output = pipeline
        .generate(prompt, NEW_TOKENS, Sampling::Greedy, &[], |_| {
            count += 1;
            on_token(count);
        })
        .await?;
    Ok(Run {
        decode_tps: output.decode_tokens_per_second,
        tokens: output.tokens.clone(),
        output: Some(output),
    })
}

async fn candidates_of(servers: &[Server]) -> Result<Vec<Candidate>> {
    let http = reqwest::Client::new();
    let mut candidates = Vec::new();
    for server in servers {
        candidates.push(probe(&http, &server.base_url).await?);
    }
    Ok(candidates)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let Some(settings) = settings()? else {
        eprintln!("the swarm benchmark runs through `scripts/bench swarm`, which builds nesa-node; skipped");
        return Ok(());
    };
    let started = Instant::now();
    let say = |message: String| eprintln!("[{:6.1} s] {message}", started.elapsed().as_secs_f64());
    let logs = settings
        .report
        .parent()
        .context("report path has no directory")?
        .join("swarm-logs");
    std::fs::create_dir_all(&logs)?;
    let prompt = prompt_ids(&settings.model)?;
    let front = Model::load(
        &settings.model,
        &LoadOptions {
            layers: Some(0..0),
            ..Default::default()
        },
    )?;
    let (layers, width) = (front.config().layer_count, front.config().hidden_size);
    drop(front);
    let bin = &settings.nesa_node;
    let model = &settings.model;

    say(format!(
        "starting one whole node and pipelines of 2, 3 and 4 shards of {layers} blocks"
    ));
    let whole = Server::nesa_blocks(bin, model, THREADS, None, &logs).await?;
    let mut pipelines = Vec::new();
    for shards in [2, 3, 4] {
        let mut servers = Vec::new();
        for span in even_split(layers, shards) {
            servers.push(Server::nesa_blocks(bin, model, THREADS, Some(span), &logs).await?);
        }
        pipelines.push(servers);
    }

    // Warm-up: every process computes once before anything is timed.
    one_node(&whole.base_url, &prompt).await?;
    let whole_as_hop = candidates_of(std::slice::from_ref(&whole)).await?;
    let reference = pipeline_run(model, whole_as_hop.clone(), &prompt, |_| {}).await?;
    for servers in &pipelines {
        let run = pipeline_run(model, candidates_of(servers).await?, &prompt, |_| {}).await?;
        if run.tokens != reference.tokens {
            bail!(
                "a {}-shard pipeline answered other tokens than one node",
                servers.len()
            );
        }
    }

    // Rounds: one node, one node as a single hop, 2, 3, 4 shards, alternating.
    let mut node_tps = Vec::new();
    let mut hop1_tps = Vec::new();
    let mut shard_tps = vec![Vec::new(); pipelines.len()];
    let mut last_outputs: Vec<Option<PipelineOutput>> = vec![None; pipelines.len()];
    for round in 0..settings.rounds {
        say(format!("round {} of {}", round + 1, settings.rounds));
        node_tps.push(one_node(&whole.base_url, &prompt).await?.decode_tps);
        hop1_tps.push(
            pipeline_run(model, whole_as_hop.clone(), &prompt, |_| {})
                .await?
                .decode_tps,
        );
        for (i, servers) in pipelines.iter().enumerate() {
            let run = pipeline_run(model, candidates_of(servers).await?, &prompt, |_| {}).await?;
            if run.tokens != reference.tokens {
                bail!(
                    "a {}-shard pipeline answered other tokens than one node",
                    servers.len()
                );
            }
            shard_tps[i].push(run.decode_tps);
            last_outputs[i] = run.output;
        }
    }
    drop(pipelines);

    say("failover: three shards and a far spare; the middle shard is killed mid-answer".into());
    let spans = even_split(layers, 3);
    let mut servers = Vec::new();
    for span in &spans {
        servers.push(Server::nesa_blocks(bin, model, THREADS, Some(span.clone()), &logs).await?);
    }
    let spare_span = spans[1].start..layers;
    servers.push(Server::nesa_blocks(bin, model, THREADS, Some(spare_span), &logs).await?);
    let mut candidates = candidates_of(&servers).await?;
    candidates[3].rtt = 1.0;
    let middle_pid = servers[1].pid();
    let failover_run = pipeline_run(model, candidates, &prompt, |count| {
        if count == KILL_AFTER {
            let _ = std::process::Command::new("kill")
                .args(["-9", &middle_pid.to_string()])
                .status();
        }
    })
    .await?;
    let failover_output = failover_run.output.context("pipeline output")?;
    let failover = failover_output
        .failovers
        .first()
        .context("the killed shard was not replaced")?;
    let identical = failover_run.tokens == reference.tokens;

    let node = median(&mut node_tps);
    let hop1 = median(&mut hop1_tps);
    let shards: Vec<f64> = shard_tps.iter_mut().map(|v| median(v)).collect();
    let mut md = String::new();
    writeln!(md, "# Sharded inference on loopback\n")?;
    writeln!(
        md,
        "`scripts/bench swarm`: `{}` (the dev-profile build `scripts/setup` makes and the devnet runs, dependencies optimised), model `{}` ({layers} blocks), {PROMPT_TOKENS}-token prompt, {NEW_TOKENS} greedy tokens, {THREADS} compute threads per process, median of {} rounds, all on this machine's loopback. Every pipeline answered token for token what one node answers.\n",
        bin.display(),
        model.file_name().unwrap_or_default().to_string_lossy(),
        settings.rounds
    )?;
    writeln!(
        md,
        "| configuration | decode tokens/s | vs one node | ms per token |"
    )?;
    writeln!(md, "|---|---:|---:|---:|")?;
    writeln!(
        md,
        "| one node (`/v1/generate`, engine-timed) | {node:.1} | 1.00× | {:.2} |",
        1e3 / node
    )?;
    writeln!(
        md,
        "| one node as a single pipeline hop | {hop1:.1} | {:.2}× | {:.2} |",
        hop1 / node,
        1e3 / hop1
    )?;
    for (i, tps) in shards.iter().enumerate() {
        writeln!(
            md,
            "| {} shards | {tps:.1} | {:.2}× | {:.2} |",
            i + 2,
            tps / node,
            1e3 / tps
        )?;
    }
    writeln!(md, "\nPer-hop overhead: (ms per token of the pipeline − ms per token of one node) / hops; bytes per token: what crosses one hop each way for one decode step.\n")?;
    writeln!(
        md,
        "| pipeline | overhead per hop (ms) | bytes per token per hop (to, from) |"
    )?;
    writeln!(md, "|---|---:|---|")?;
    writeln!(md, "| 1 hop | {:.3} | |", 1e3 / hop1 - 1e3 / node)?;
    for (i, tps) in shards.iter().enumerate() {
        let hops = i + 2;
        let bytes = last_outputs[i]
            .as_ref()
            .map(|o| {
                o.hops
                    .iter()
                    .map(|h| {
                        // Decode frames only: the prompt went in the first.
                        let prompt_frame = 12 + PROMPT_TOKENS * width * 4;
                        let decode = h.sent_bytes.saturating_sub(prompt_frame);
                        format!("{}", decode / h.frames.saturating_sub(1).max(1))
                    })
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default();
        writeln!(
            md,
            "| {hops} shards | {:.3} | {bytes} each way |",
            (1e3 / tps - 1e3 / node) / hops as f64
        )?;
    }
    writeln!(md, "\n## Failover\n")?;
    writeln!(
        md,
        "Shards {spans:?} and a spare serving {}..{layers} measured far away (so the route avoids it); the middle shard is killed with SIGKILL after {KILL_AFTER} tokens. The spare takes over blocks {}..{} only, rebuilding its cache by replaying the {} positions before the failed step.\n",
        spans[1].start, failover.layers.start, failover.layers.end, failover.position
    )?;
    writeln!(
        md,
        "- failover time (failure noticed → caches rebuilt): **{:.1} ms**",
        failover.seconds * 1e3
    )?;
    writeln!(md, "- failure seen as: {}", failover.reason)?;
    writeln!(
        md,
        "- answer identical to the uninterrupted one: **{}**",
        if identical { "yes" } else { "NO" }
    )?;
    writeln!(
        md,
        "- decode tokens/s of the whole run, failover included: {:.1}",
        failover_run.decode_tps
    )?;
    writeln!(md, "\n![decode tokens/s](swarm.svg)")?;

    let x: Vec<String> = ["1 node", "1 hop", "2 shards", "3 shards", "4 shards"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut measured = vec![node, hop1];
    measured.extend(&shards);
    let svg = line_chart(
        "Decode tokens/s: one node vs pipelines of shards (loopback)",
        "configuration",
        "tokens/s",
        &x,
        &[
            Series {
                label: "measured".into(),
                color: "#1f77b4",
                dashed: false,
                values: measured,
            },
            Series {
                label: "0.85 × one node".into(),
                color: "#999999",
                dashed: true,
                values: vec![0.85 * node; x.len()],
            },
        ],
    );
    std::fs::write(&settings.report, &md)?;
    std::fs::write(settings.report.with_extension("svg"), svg)?;
    println!("{md}");
    eprintln!("report: {}", settings.report.display());
    if !identical {
        bail!("the failover run answered other tokens");
    }
    Ok(())
}

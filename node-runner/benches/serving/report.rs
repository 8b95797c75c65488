//! The measurements of one run and their Markdown report, every figure of nesa-node next to
//! llama.cpp's from the same run and their ratio.

use std::fmt::Write;
use std::path::PathBuf;

use crate::chart::{line_chart, Series};
use crate::llama_tools::BatchedRow;
use crate::load::{Completion, Throughput};
use crate::processes::Engine;

/// Where the run happened and what it ran.
pub struct Setup {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub model: PathBuf,
    pub model_bytes: u64,
    pub nesa_build: String,
    pub llama_build: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub rounds: usize,
}

/// Single-stream samples (tokens/s) at one thread count.
pub struct SingleStream {
    pub threads: usize,
    pub nesa_prefill: Vec<f64>,
    pub nesa_decode: Vec<f64>,
    pub llama_prefill: Vec<f64>,
    pub llama_decode: Vec<f64>,
}

/// Aggregate throughput of `sequences` simultaneous sequences, one sample per round.
pub struct Aggregate {
    pub threads: usize,
    pub sequences: usize,
    pub nesa: Vec<Throughput>,
    pub llama: Vec<BatchedRow>,
}

impl Aggregate {
    /// Median total tokens/s (`S`) of nesa-node and of llama.cpp.
    pub fn total(&self) -> (f64, f64) {
        (
            median(self.nesa.iter().map(|t| t.total)),
            median(self.llama.iter().map(|r| r.speed)),
        )
    }

    /// Median generation tokens/s (`S_TG`) of nesa-node and of llama.cpp.
    pub fn generation(&self) -> (f64, f64) {
        (
            median(self.nesa.iter().map(|t| t.generation)),
            median(self.llama.iter().map(|r| r.speed_tg)),
        )
    }

    /// Median seconds for the whole batch: nesa-node's wall time, llama's `T_PP + T_TG`.
    pub fn seconds(&self) -> (f64, f64) {
        (
            median(self.nesa.iter().map(|t| t.wall_s)),
            median(self.llama.iter().map(|r| r.t_pp + r.t_tg)),
        )
    }
}

/// One Poisson load on one server.
pub struct LatencyRun {
    pub engine: Engine,
    pub threads: usize,
    /// The arrival rate as a fraction of nesa-node's request rate at 8 simultaneous sequences.
    pub load: f64,
    /// Requests per second.
    pub rate: f64,
    pub completions: Vec<Completion>,
}

/// Peak RSS of a fresh server process, after loading and after the 8×512-token load.
pub struct MemoryRun {
    pub engine: Engine,
    pub threads: usize,
    pub after_load: u64,
    pub after_run: u64,
}

/// Everything one run measured.
pub struct Results {
    pub setup: Setup,
    pub single: Vec<SingleStream>,
    pub aggregate: Vec<Aggregate>,
    pub latency: Vec<LatencyRun>,
    pub memory: Vec<MemoryRun>,
    pub memory_new_tokens: usize,
    pub elapsed_s: f64,
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// The nearest-rank `p`-th percentile of `values`.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ratio(ours: f64, theirs: f64) -> String {
    format!("{:.2}×", ours / theirs)
}

fn threads_label(threads: usize) -> String {
    format!("{threads} thread{}", if threads == 1 { "" } else { "s" })
}

/// The report in Markdown; `chart` is the SVG's file name, next to the report.
pub fn markdown(results: &Results, chart: &str) -> String {
    let setup = &results.setup;
    let mut out = String::new();
    let _ = writeln!(out, "# Serving benchmark: `nesa-node serve` vs llama.cpp\n");
    let _ =
        writeln!(
        out,
        "Machine: {} ({} cores, {:.0} GiB RAM). Model `{}` ({:.1} MB), the same file for both. \
         Every figure below was measured in the same run (total {:.1} min; the single-stream and \
         throughput rounds alternate between the engines); ratios are nesa-node / llama.cpp.\n",
        setup.cpu,
        setup.cores,
        setup.memory_gib,
        setup.model.file_name().unwrap_or_default().to_string_lossy(),
        setup.model_bytes as f64 / 1e6,
        results.elapsed_s / 60.0,
    );
    let _ = writeln!(out, "- nesa-node: {}", setup.nesa_build);
    let _ = writeln!(out, "- llama.cpp: {}\n", setup.llama_build);
    single_stream(&mut out, results);
    aggregate(&mut out, results, chart);
    latency(&mut out, results);
    memory(&mut out, results);
    out
}

fn single_stream(out: &mut String, results: &Results) {
    let setup = &results.setup;
    let samples = results.single.first().map_or(0, |s| s.nesa_prefill.len());
    let _ = writeln!(out, "## Single stream\n");
    let _ = writeln!(
        out,
        "One sequence: a {p}-token prompt, then {n} new tokens. llama.cpp: `llama-bench -p {p} -n {n} -t T` \
         (pp{p}, tg{n}; tg starts on an empty context). nesa-node: one request at a time, prefill = {p} / \
         `prefill_ms`, decode = the answer's `decode_tokens_per_second`. Medians of {samples} samples a side, \
         taken in {} alternating rounds.\n",
        setup.rounds,
        p = setup.prompt_tokens,
        n = setup.new_tokens,
    );
    let _ = writeln!(out, "| threads | prefill nesa-node | prefill llama.cpp | ratio | decode nesa-node | decode llama.cpp | ratio |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    for s in &results.single {
        let (np, lp) = (
            median(s.nesa_prefill.iter().copied()),
            median(s.llama_prefill.iter().copied()),
        );
        let (nd, ld) = (
            median(s.nesa_decode.iter().copied()),
            median(s.llama_decode.iter().copied()),
        );
        let _ = writeln!(
            out,
            "| {} | {np:.1} t/s | {lp:.1} t/s | {} | {nd:.1} t/s | {ld:.1} t/s | {} |",
            s.threads,
            ratio(np, lp),
            ratio(nd, ld)
        );
    }
    let _ = writeln!(out);
}

fn aggregate(out: &mut String, results: &Results, chart: &str) {
    let setup = &results.setup;
    let (p, n) = (setup.prompt_tokens, setup.new_tokens);
    let _ = writeln!(out, "## Aggregate throughput\n");
    let _ = writeln!(
        out,
        "N sequences at once, each a {p}-token prompt and {n} new tokens. llama.cpp: `llama-batched-bench -c 4096 \
         -b 2048 -ub 512 -npp {p} -ntg {n} -npl 1,2,4,8 -t T` (its own random prompt tokens, all N prompts in one \
         batch, then {n} decode passes of N tokens). nesa-node: N simultaneous `POST /v1/generate` with the same \
         {p} prompt token ids (the start of an English text), `ignore_eos`; its scheduler batches them.\n"
    );
    let _ = writeln!(
        out,
        "- **S** (total tokens/s) = N × ({p} + {n}) / T. llama.cpp: T = T_PP + T_TG, its own timers. nesa-node: \
         T = first request sent → last response received, at the client (HTTP included).\n\
         - **S_TG** (generation tokens/s) = N × decode passes / their time. llama.cpp: N × {n} / T_TG. nesa-node: \
         N × {} / (T − the moment of the last first token), where a request's first token is at its response \
         minus its `decode_ms`; its first token comes out of prefill, so {} passes follow it.\n\
         - Medians of {} rounds, the engines alternating.\n",
        n - 1,
        n - 1,
        setup.rounds,
    );
    let _ = writeln!(out, "| threads | N | S nesa-node | S llama.cpp | ratio | S_TG nesa-node | S_TG llama.cpp | ratio | T nesa-node | T llama.cpp |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for a in &results.aggregate {
        let (ns, ls) = a.total();
        let (ng, lg) = a.generation();
        let (nt, lt) = a.seconds();
        let _ = writeln!(
            out,
            "| {} | {} | {ns:.1} | {ls:.1} | {} | {ng:.1} | {lg:.1} | {} | {nt:.2} s | {lt:.2} s |",
            a.threads,
            a.sequences,
            ratio(ns, ls),
            ratio(ng, lg)
        );
    }
    let _ = writeln!(
        out,
        "\n![S, total tokens/s, against concurrency]({chart})\n"
    );
}

fn latency(out: &mut String, results: &Results) {
    let Some(first) = results.latency.first() else {
        return;
    };
    let setup = &results.setup;
    let _ = writeln!(out, "## Latency under a Poisson load\n");
    let _ = writeln!(
        out,
        "{} requests ({}-token prompt, {} new tokens, `ignore_eos`) with exponential inter-arrival times, at about \
         50% and 90% of nesa-node's request rate with 8 simultaneous sequences (8 / its T at N = 8, same threads). \
         The same arrival times (fixed seeds) go to both servers: nesa-node (`--max-concurrent 8`; a ninth \
         request in flight is answered 503 and the client sends it again 20 ms later, the wait counted in \
         its client TTFT) and `llama-server -np 8 -c 8192 --no-cache-prompt` (`/completion`, greedy; it queues \
         a ninth request itself). Milliseconds, nearest-rank \
         p50 / p90 / p99 (with {} samples p99 is nearly the maximum); ratios below 1 mean nesa-node is faster.\n",
        first.completions.len(),
        setup.prompt_tokens,
        setup.new_tokens,
        first.completions.len(),
    );
    let _ = writeln!(
        out,
        "- **TTFT, client**: request sent → response received, minus the decode time after the first token.\n\
         - **TTFT, server**: nesa-node's `queued_ms + prefill_ms`; llama-server's `timings.prompt_ms` (it \
         reports no time waiting for a slot).\n\
         - **per token**: decode time after the first token / (tokens − 1).\n"
    );
    let _ = writeln!(out, "| threads | load | req/s | engine | TTFT client | TTFT server | per token | busy (503) retries |");
    let _ = writeln!(out, "|---:|---:|---:|---|---:|---:|---:|---:|");
    let stats = |run: &LatencyRun| -> [[f64; 3]; 3] {
        let series: [Vec<f64>; 3] = [
            run.completions
                .iter()
                .map(Completion::client_ttft_ms)
                .collect(),
            run.completions.iter().map(|c| c.server_ttft_ms).collect(),
            run.completions
                .iter()
                .map(Completion::per_token_ms)
                .collect(),
        ];
        series.map(|values| [50.0, 90.0, 99.0].map(|p| percentile(&values, p)))
    };
    let cell = |s: [f64; 3]| format!("{:.0} / {:.0} / {:.0}", s[0], s[1], s[2]);
    let fine_cell = |s: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", s[0], s[1], s[2]);
    // Grouped by load: nesa-node, llama-server, then their ratio.
    let nesa_runs = results.latency.iter().filter(|r| r.engine == Engine::Nesa);
    for ours in nesa_runs {
        let theirs = results.latency.iter().find(|r| {
            r.engine == Engine::Llama && r.threads == ours.threads && r.load == ours.load
        });
        for run in std::iter::once(ours).chain(theirs) {
            let s = stats(run);
            let retries: usize = run.completions.iter().map(|c| c.busy_retries).sum();
            let _ = writeln!(
                out,
                "| {} | {:.0}% | {:.2} | {} | {} | {} | {} | {retries} |",
                run.threads,
                run.load * 100.0,
                run.rate,
                run.engine.label(),
                cell(s[0]),
                cell(s[1]),
                fine_cell(s[2]),
            );
        }
        if let Some(theirs) = theirs {
            let (o, t) = (stats(ours), stats(theirs));
            let r = |a: [f64; 3], b: [f64; 3]| {
                format!(
                    "{:.2}× / {:.2}× / {:.2}×",
                    a[0] / b[0],
                    a[1] / b[1],
                    a[2] / b[2]
                )
            };
            let _ = writeln!(
                out,
                "| {} | {:.0}% | | **ratio** | {} | {} | {} | |",
                ours.threads,
                ours.load * 100.0,
                r(o[0], t[0]),
                r(o[1], t[1]),
                r(o[2], t[2]),
            );
        }
    }
    let _ = writeln!(out);
}

fn memory(out: &mut String, results: &Results) {
    let setup = &results.setup;
    let _ = writeln!(out, "## Memory\n");
    let _ = writeln!(
        out,
        "Peak RSS (VmHWM from /proc/PID/status) of a freshly started server: once the model is loaded, and after \
         8 simultaneous sequences of {} tokens each ({} prompt + {} new). Both map the GGUF file; its pages \
         count in the RSS once touched. llama-server allocates its whole KV cache (`-c 8192`, f16) when it \
         starts; nesa-node allocates each sequence's f16 KV buffers for its worst case (prompt + max_tokens) when the sequence is admitted, within `kv_budget_mib`.\n",
        setup.prompt_tokens + results.memory_new_tokens,
        setup.prompt_tokens,
        results.memory_new_tokens,
    );
    let _ = writeln!(
        out,
        "| process | threads | after load | × model file | after 8 × {} tokens | × model file |",
        setup.prompt_tokens + results.memory_new_tokens
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let model = setup.model_bytes as f64;
    for m in &results.memory {
        let name = match m.engine {
            Engine::Nesa => "nesa-node serve",
            Engine::Llama => "llama-server -np 8",
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {:.1} MB | {:.2}× | {:.1} MB | {:.2}× |",
            m.threads,
            m.after_load as f64 / 1e6,
            m.after_load as f64 / model,
            m.after_run as f64 / 1e6,
            m.after_run as f64 / model,
        );
    }
    let nesa = results.memory.iter().find(|m| m.engine == Engine::Nesa);
    let llama = results.memory.iter().find(|m| m.engine == Engine::Llama);
    if let (Some(nesa), Some(llama)) = (nesa, llama) {
        let _ = writeln!(
            out,
            "\nnesa-node / llama-server peak RSS: {} after load, {} after the load.",
            ratio(nesa.after_load as f64, llama.after_load as f64),
            ratio(nesa.after_run as f64, llama.after_run as f64),
        );
    }
    let _ = writeln!(out);
}

/// The chart of S (total tokens/s) against concurrency, one line per engine and thread count.
pub fn chart(results: &Results) -> String {
    let mut sequences: Vec<usize> = results.aggregate.iter().map(|a| a.sequences).collect();
    sequences.sort_unstable();
    sequences.dedup();
    let mut threads: Vec<usize> = results.aggregate.iter().map(|a| a.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut series = Vec::new();
    for (engine, dashed) in [(Engine::Nesa, false), (Engine::Llama, true)] {
        for (index, &t) in threads.iter().enumerate() {
            let values = sequences
                .iter()
                .map(|&n| {
                    results
                        .aggregate
                        .iter()
                        .find(|a| a.threads == t && a.sequences == n)
                        .map_or(0.0, |a| match engine {
                            Engine::Nesa => a.total().0,
                            Engine::Llama => a.total().1,
                        })
                })
                .collect();
            series.push(Series {
                label: format!("{}, {}", engine.label(), threads_label(t)),
                color: colors[index % colors.len()],
                dashed,
                values,
            });
        }
    }
    let x: Vec<String> = sequences.iter().map(usize::to_string).collect();
    line_chart(
        &format!(
            "Aggregate throughput, {} + {} tokens a sequence",
            results.setup.prompt_tokens, results.setup.new_tokens
        ),
        "concurrent sequences (N)",
        "S, total tokens/s",
        &x,
        &series,
    )
}

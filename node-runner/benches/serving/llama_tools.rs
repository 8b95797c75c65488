//! llama.cpp's own benchmarks, run as child processes and read from their machine-readable
//! output: `llama-bench -o json` (single stream) and `llama-batched-bench --output-format jsonl`
//! (N sequences decoded in one batch).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One `llama-bench` run: per-repetition tokens/s of the prompt test and the generation test.
pub struct LlamaBench {
    pub prefill: Vec<f64>,
    pub decode: Vec<f64>,
    /// llama.cpp's build as llama-bench reports it (`b<number> (<commit>)`), when known: a
    /// tree built outside git has neither.
    pub build: Option<String>,
}

/// One row of `llama-batched-bench`: `pl` sequences of `pp` prompt and `tg` generated tokens.
#[derive(Clone, Debug, Deserialize)]
pub struct BatchedRow {
    pub pl: usize,
    /// Seconds for all prompts (one batch) and for the `tg` batched decode passes.
    pub t_pp: f64,
    pub t_tg: f64,
    /// `pl·tg / t_tg`.
    pub speed_tg: f64,
    /// `pl·(pp + tg) / (t_pp + t_tg)`.
    pub speed: f64,
}

/// `llama-bench -p PROMPT -n GENERATED -t THREADS -r REPETITIONS`.
pub async fn llama_bench(
    bin_dir: &Path,
    model: &Path,
    threads: usize,
    prompt: usize,
    generated: usize,
    repetitions: usize,
) -> Result<LlamaBench> {
    let stdout = run(
        &bin_dir.join("llama-bench"),
        &[
            "-m".into(),
            model.display().to_string(),
            "-p".into(),
            prompt.to_string(),
            "-n".into(),
            generated.to_string(),
            "-t".into(),
            threads.to_string(),
            "-r".into(),
            repetitions.to_string(),
            "-o".into(),
            "json".into(),
        ],
    )
    .await?;
    let tests: Vec<Value> = serde_json::from_str(&stdout).context("llama-bench printed no JSON")?;
    let samples = |prompt_test: bool| -> Result<Vec<f64>> {
        let test = tests
            .iter()
            .find(|test| (test["n_prompt"].as_u64().unwrap_or(0) > 0) == prompt_test)
            .context("llama-bench's JSON lacks a test")?;
        test["samples_ts"]
            .as_array()
            .context("llama-bench's JSON has no samples_ts")?
            .iter()
            .map(|sample| sample.as_f64().context("a sample is not a number"))
            .collect()
    };
    let first = tests.first().context("llama-bench ran no test")?;
    Ok(LlamaBench {
        prefill: samples(true)?,
        decode: samples(false)?,
        build: match (
            first["build_number"].as_u64(),
            first["build_commit"].as_str(),
        ) {
            (Some(number), Some(commit)) if number > 0 => Some(format!("b{number} ({commit})")),
            _ => None,
        },
    })
}

/// `llama-batched-bench` with `-npl` = `sequences`, one prompt per sequence (not shared).
pub async fn llama_batched_bench(
    bin_dir: &Path,
    model: &Path,
    threads: usize,
    prompt: usize,
    generated: usize,
    sequences: &[usize],
) -> Result<Vec<BatchedRow>> {
    let npl: Vec<String> = sequences.iter().map(usize::to_string).collect();
    let mut args: Vec<String> = vec!["-m".into(), model.display().to_string()];
    for (flag, value) in [
        ("-c", "4096".to_string()),
        ("-b", "2048".to_string()),
        ("-ub", "512".to_string()),
        ("-npp", prompt.to_string()),
        ("-ntg", generated.to_string()),
        ("-npl", npl.join(",")),
        ("-t", threads.to_string()),
        ("--output-format", "jsonl".to_string()),
    ] {
        args.push(flag.into());
        args.push(value);
    }
    let stdout = run(&bin_dir.join("llama-batched-bench"), &args).await?;
    let rows: Vec<BatchedRow> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("llama-batched-bench printed a line that is not a result")?;
    if rows.len() != sequences.len() {
        bail!(
            "llama-batched-bench printed {} results for {} batch sizes",
            rows.len(),
            sequences.len()
        );
    }
    Ok(rows)
}

async fn run(binary: &Path, args: &[String]) -> Result<String> {
    let output = tokio::process::Command::new(binary)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        bail!(
            "{} failed ({}):\n{}",
            binary.display(),
            output.status,
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

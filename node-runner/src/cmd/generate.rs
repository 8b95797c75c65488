//! `nesa-node generate`: run a prompt through the engine locally and print the answer and its
//! speed. For operators checking a model file, and for the inference benchmark.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;

use anyhow::{bail, Context};

use nesa_engine::{
    FinishReason, GenerateRequest, LoadOptions, Model, Sampling, Tokenizer, WeightFormat,
};

/// What `nesa-node generate` was asked to do.
#[derive(Clone, Debug)]
pub struct GenerateArgs {
    /// GGUF model file.
    pub model: PathBuf,
    /// The user's message (wrapped in the chat template unless `raw`).
    pub prompt: String,
    /// Feed the prompt as is, without the chat template.
    pub raw: bool,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Greedy or seeded sampling.
    pub sampling: Sampling,
    /// Blocks to load; `None` = all. A partial range only reports the hidden states' shape.
    pub layers: Option<Range<usize>>,
    /// In-memory format of the quantized matrices.
    pub format: WeightFormat,
    /// Print one JSON line (tokens, timings) instead of the text report.
    pub json: bool,
}

/// Loads the model, generates, prints the answer as it comes and the speed after it.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty: pass --prompt \"<question>\"");
    }
    let load_started = std::time::Instant::now();
    let tokenizer = Tokenizer::load(&args.model)?;
    let model = Model::load(
        &args.model,
        &LoadOptions {
            layers: args.layers.clone(),
            format: args.format,
        },
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let load_ms = load_started.elapsed().as_secs_f64() * 1000.0;
    let text = if args.raw {
        args.prompt.clone()
    } else {
        tokenizer.chat_prompt(None, &args.prompt)
    };
    let prompt = tokenizer.encode(&text)?;

    if model.loaded_layers() != (0..model.config().layer_count) {
        return run_shard(&model, &prompt);
    }

    let request = GenerateRequest {
        prompt: prompt.clone(),
        max_tokens: args.max_tokens,
        sampling: args.sampling,
        stop_tokens: tokenizer.stop_tokens().to_vec(),
        top_logprobs: if args.json { 2 } else { 0 },
    };
    let mut stdout = std::io::stdout();
    let mut stream = tokenizer.stream_decoder();
    let output = model.generate(&request, |token| {
        if !args.json {
            if let Ok(piece) = stream.push(token) {
                let _ = write!(stdout, "{piece}");
                let _ = stdout.flush();
            }
        }
    })?;
    let prefill_tps = output.prefill_tokens_per_second(prompt.len());
    let decode_tps = output.decode_tokens_per_second();
    if args.json {
        let finish = match output.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        };
        let ids = |ids: &[u32]| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let top2 = output
            .top_logprobs
            .iter()
            .map(|top| {
                format!(
                    "[{}]",
                    top.iter()
                        .map(|(id, lp)| format!("[{id},{lp:.4}]"))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let peak_rss_kb = peak_rss_kb().map_or("null".to_string(), |kb| kb.to_string());
        writeln!(
            stdout,
            "{{\"prompt_tokens\":[{}],\"tokens\":[{}],\"top2\":[{top2}],\"finish\":\"{finish}\",\"load_ms\":{load_ms:.1},\"prefill_ms\":{:.3},\"decode_ms\":{:.3},\"decode_steps\":{},\"prefill_tps\":{prefill_tps:.2},\"decode_tps\":{decode_tps:.2},\"peak_rss_kb\":{peak_rss_kb}}}",
            ids(&prompt),
            ids(&output.tokens),
            output.prefill_ms,
            output.decode_ms,
            output.decode_steps(),
        )?;
    } else {
        writeln!(stdout)?;
        eprintln!(
            "\n{} prompt tokens, {} generated ({:?}); load {:.0} ms; prefill {:.1} tokens/s; decode {:.1} tokens/s",
            prompt.len(),
            output.tokens.len(),
            output.finish_reason,
            load_ms,
            prefill_tps,
            decode_tps,
        );
    }
    Ok(())
}

/// With only some blocks loaded there is no answer to print: run the prompt through them
/// from the embedding and report what a shard would send on.
fn run_shard(model: &Model, prompt: &[u32]) -> anyhow::Result<()> {
    let layers = model.loaded_layers();
    let mut cache = model.new_cache(layers.clone());
    let started = std::time::Instant::now();
    let hidden = model.forward_layers(&model.embed(prompt)?, layers.clone(), 0, &mut cache)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let values = hidden.to_vec()?;
    let norm = values
        .iter()
        .map(|v| (*v as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    println!(
        "layers {}..{}: {} positions × {} hidden values (L2 norm {norm:.3}) in {ms:.1} ms",
        layers.start,
        layers.end,
        hidden.positions(),
        hidden.width()
    );
    Ok(())
}

/// Peak resident memory of this process (Linux `VmHWM`), for the benchmark.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

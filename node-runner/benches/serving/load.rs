//! The client side: generation requests to either server, sent all at once (throughput) or at
//! Poisson arrival times (latency under load), each timed by the client and by the server.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::processes::{Engine, Server};

/// How long one request may take, queueing included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Wait before resending a request the server turned away as busy (503).
const BUSY_RETRY: Duration = Duration::from_millis(20);

/// Where requests go: a server's engine and address.
#[derive(Clone)]
pub struct Target {
    engine: Engine,
    base_url: String,
    http: reqwest::Client,
}

impl Target {
    /// Requests to `server`.
    pub fn of(server: &Server) -> Result<Self> {
        Ok(Target {
            engine: server.engine,
            base_url: server.base_url.clone(),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?,
        })
    }

    /// The engine behind the target.
    pub fn engine(&self) -> Engine {
        self.engine
    }
}

/// One finished generation, timed by both sides.
#[derive(Clone, Debug)]
pub struct Completion {
    /// Seconds from the start of the load to sending the request.
    pub sent_s: f64,
    /// Request sent → full response received, as the client saw it (ms).
    pub latency_ms: f64,
    /// The server's own time to the first token: queued + prefill for nesa-node, prompt
    /// processing for llama-server (which reports no queueing time).
    pub server_ttft_ms: f64,
    /// First forward pass → first token (ms).
    pub prefill_ms: f64,
    /// After the first token (ms).
    pub decode_ms: f64,
    /// Tokens generated.
    pub tokens: usize,
    /// Decode tokens/s as the server reports it.
    pub decode_rate: f64,
    /// 503 answers before the server took the request.
    pub busy_retries: usize,
}

impl Completion {
    /// Time to first token as the client sees it: everything but the decode after it.
    pub fn client_ttft_ms(&self) -> f64 {
        self.latency_ms - self.decode_ms
    }

    /// Decode time per token after the first.
    pub fn per_token_ms(&self) -> f64 {
        self.decode_ms / (self.tokens.max(2) - 1) as f64
    }

    /// Seconds from the start of the load to the first token.
    pub fn first_token_s(&self) -> f64 {
        self.sent_s + self.client_ttft_ms() / 1000.0
    }

    /// Seconds from the start of the load to the response.
    pub fn done_s(&self) -> f64 {
        self.sent_s + self.latency_ms / 1000.0
    }

    /// Prefill tokens/s of this request's prompt.
    pub fn prefill_rate(&self, prompt_tokens: usize) -> f64 {
        prompt_tokens as f64 * 1000.0 / self.prefill_ms
    }
}

/// nesa-node's `/v1/generate` answer (the fields timed here).
#[derive(Deserialize)]
struct NesaAnswer {
    tokens: usize,
    queued_ms: f64,
    prefill_ms: f64,
    decode_ms: f64,
    decode_tokens_per_second: f64,
}

/// llama-server's `/completion` answer (the fields timed here).
#[derive(Deserialize)]
struct LlamaAnswer {
    timings: LlamaTimings,
}

#[derive(Deserialize)]
struct LlamaTimings {
    prompt_ms: f64,
    predicted_n: usize,
    predicted_ms: f64,
    predicted_per_second: f64,
}

/// Generates `max_tokens` tokens (end of sequence ignored) after `prompt`; `origin` is the start
/// of the load the request belongs to.
pub async fn complete(
    target: &Target,
    prompt: &[u32],
    max_tokens: usize,
    origin: Instant,
) -> Result<Completion> {
    let (url, body) = match target.engine {
        Engine::Nesa => (
            format!("{}/v1/generate", target.base_url),
            json!({"prompt_tokens": prompt, "max_tokens": max_tokens, "ignore_eos": true}),
        ),
        Engine::Llama => (
            format!("{}/completion", target.base_url),
            // Greedy, as nesa-node generates; no prompt reuse between requests.
            json!({"prompt": prompt, "n_predict": max_tokens, "ignore_eos": true,
                   "cache_prompt": false, "temperature": 0.0, "stream": false}),
        ),
    };
    let sent = Instant::now();
    let mut busy_retries = 0;
    let response = loop {
        let response = target.http.post(&url).json(&body).send().await?;
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        busy_retries += 1;
        tokio::time::sleep(BUSY_RETRY).await;
    };
    let status = response.status();
    let text = response.text().await?;
    let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("{} answered {status}: {text}", target.engine.label());
    }
    let completion = match target.engine {
        Engine::Nesa => {
            let answer: NesaAnswer = serde_json::from_str(&text)
                .with_context(|| format!("unexpected /v1/generate answer: {text}"))?;
            Completion {
                sent_s: (sent - origin).as_secs_f64(),
                latency_ms,
                server_ttft_ms: answer.queued_ms + answer.prefill_ms,
                prefill_ms: answer.prefill_ms,
                decode_ms: answer.decode_ms,
                tokens: answer.tokens,
                decode_rate: answer.decode_tokens_per_second,
                busy_retries,
            }
        }
        Engine::Llama => {
            let answer: LlamaAnswer = serde_json::from_str(&text)
                .with_context(|| format!("unexpected /completion answer: {text}"))?;
            let timings = answer.timings;
            Completion {
                sent_s: (sent - origin).as_secs_f64(),
                latency_ms,
                server_ttft_ms: timings.prompt_ms,
                prefill_ms: timings.prompt_ms,
                decode_ms: timings.predicted_ms,
                tokens: timings.predicted_n,
                decode_rate: timings.predicted_per_second,
                busy_retries,
            }
        }
    };
    if completion.tokens != max_tokens {
        bail!(
            "{} generated {} tokens, not the {max_tokens} asked for with ignore_eos",
            target.engine.label(),
            completion.tokens
        );
    }
    Ok(completion)
}

/// `sequences` identical requests sent at once.
pub async fn simultaneous(
    target: &Target,
    prompt: &[u32],
    max_tokens: usize,
    sequences: usize,
) -> Result<Vec<Completion>> {
    at_offsets(target, prompt, max_tokens, &vec![0.0; sequences]).await
}

/// One request per offset (seconds from now), each sent at its offset; in sending order.
pub async fn at_offsets(
    target: &Target,
    prompt: &[u32],
    max_tokens: usize,
    offsets: &[f64],
) -> Result<Vec<Completion>> {
    let origin = Instant::now();
    let mut requests = JoinSet::new();
    for &offset in offsets {
        let (target, prompt) = (target.clone(), prompt.to_vec());
        requests.spawn(async move {
            tokio::time::sleep_until((origin + Duration::from_secs_f64(offset)).into()).await;
            complete(&target, &prompt, max_tokens, origin).await
        });
    }
    let mut completions = Vec::with_capacity(offsets.len());
    while let Some(joined) = requests.join_next().await {
        completions.push(joined??);
    }
    completions.sort_by(|a, b| a.sent_s.total_cmp(&b.sent_s));
    Ok(completions)
}

/// `count` arrival times (seconds) of a Poisson process of `rate` per second, from a fixed
/// seed so every engine gets the same schedule.
pub fn poisson_arrivals(count: usize, rate: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut at = 0.0;
    (0..count)
        .map(|_| {
            let arrival = at;
            at += -(1.0 - rng.gen::<f64>()).ln() / rate;
            arrival
        })
        .collect()
}

/// Throughput of `sequences` simultaneous requests, defined as llama-batched-bench defines its
/// columns so the two compare directly.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// First request sent → last response (s).
    pub wall_s: f64,
    /// All prompt and generated tokens over the wall time (llama-batched-bench's `S`).
    pub total: f64,
    /// Decode passes × sequences after the last first token (llama-batched-bench's `S_TG`).
    pub generation: f64,
}

impl Throughput {
    /// Throughput of one batch of simultaneous requests.
    pub fn of(completions: &[Completion], prompt_tokens: usize) -> Self {
        let sequences = completions.len() as f64;
        let wall_s = completions
            .iter()
            .map(Completion::done_s)
            .fold(0.0, f64::max);
        let last_first_token = completions
            .iter()
            .map(Completion::first_token_s)
            .fold(0.0, f64::max);
        let generated = completions[0].tokens;
        Throughput {
            wall_s,
            total: sequences * (prompt_tokens + generated) as f64 / wall_s,
            // The first token comes out of prefill; the other `generated - 1` each take a pass.
            generation: sequences * (generated - 1) as f64 / (wall_s - last_first_token),
        }
    }
}

//! Split mode, client side: the client holds the (encrypted) kernel's embedding, head and
//! optionally its first blocks; a node runner's `/v1/split/forward` runs the rest. The node
//! receives hidden states in the key's basis only, never token ids.

use std::time::Instant;

use anyhow::Context;

use crate::api::split::{ForwardRequest, ForwardResponse};
use crate::engine::{argmax, Hidden, KvCache, Model};

/// A split-mode session with one node runner.
pub struct SplitClient {
    model: Model,
    cache: KvCache,
    node: String,
    session: String,
    http: reqwest::Client,
    /// Bytes of hidden states sent so far.
    pub sent_bytes: usize,
}

/// A finished split generation.
#[derive(Debug)]
pub struct SplitOutput {
    /// Generated ids, in the kernel's vocabulary, without the stop token.
    pub tokens: Vec<u32>,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_second: f64,
}

impl SplitClient {
    /// `model` is the kernel loaded with the blocks the client runs (`0..k`, usually `0..0`
    /// or `0..1`); `node` is the runner's API base URL.
    pub fn new(model: Model, node: &str) -> Self {
        let cache = model.new_cache(model.loaded_layers());
        let session = format!("s{}-{:016x}", std::process::id(), rand::random::<u64>());
        Self {
            model,
            cache,
            node: node.trim_end_matches('/').to_string(),
            session,
            http: reqwest::Client::new(),
            sent_bytes: 0,
        }
    }

    /// One step: `tokens` at `position` through the client's blocks, the node's blocks, and
    /// the head; returns the logits of the last position.
    async fn step(&mut self, tokens: &[u32], position: usize) -> anyhow::Result<Vec<f32>> {
        let layers = self.model.loaded_layers();
        let mut hidden = self.model.embed(tokens)?;
        if !layers.is_empty() {
            hidden =
                self.model
                    .forward_layers(&hidden, layers.clone(), position, &mut self.cache)?;
        }
        let request = ForwardRequest {
            session: self.session.clone(),
            first_layer: layers.end,
            position,
            hidden: hidden.to_vec()?,
        };
        self.sent_bytes += request.hidden.len() * 4;
        let response = self
            .http
            .post(format!("{}/v1/split/forward", self.node))
            .json(&request)
            .send()
            .await
            .with_context(|| format!("node runner at {} unreachable", self.node))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("node runner at {} answered {status}: {body}", self.node);
        }
        let answer: ForwardResponse = response.json().await?;
        let width = self.model.config().hidden_size;
        Ok(self.model.head(&Hidden::from_vec(answer.hidden, width)?)?)
    }

    /// Greedy generation of up to `max_tokens` after `prompt` (ids in the kernel's vocabulary).
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        stop_tokens: &[u32],
    ) -> anyhow::Result<SplitOutput> {
        let mut logits = self.step(prompt, 0).await?;
        let decode_started = Instant::now();
        let mut tokens = Vec::new();
        while tokens.len() < max_tokens {
            let token = argmax(&logits);
            if stop_tokens.contains(&token) {
                break;
            }
            tokens.push(token);
            if tokens.len() == max_tokens {
                break;
            }
            logits = self.step(&[token], prompt.len() + tokens.len() - 1).await?;
        }
        let steps = tokens.len().saturating_sub(1);
        let seconds = decode_started.elapsed().as_secs_f64();
        // Best effort: the node drops idle sessions on its own.
        let _ = self
            .http
            .delete(format!("{}/v1/split/sessions/{}", self.node, self.session))
            .send()
            .await;
        Ok(SplitOutput {
            tokens,
            decode_tokens_per_second: if seconds > 0.0 {
                steps as f64 / seconds
            } else {
                0.0
            },
        })
    }
}

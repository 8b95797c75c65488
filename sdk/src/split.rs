//! Split mode, client side: the client holds the (encrypted) kernel's embedding, head and
//! optionally its first blocks; a node runner's `/v1/split/forward` runs the rest. The node
//! receives hidden states in the key's basis only, never token ids.

use std::time::Instant;

use nesa_engine::{argmax, EngineError, Hidden, KvCache, Model};
use serde::{Deserialize, Serialize};

/// Header that carries a session's token on `DELETE /v1/split/sessions/{session}`.
pub const SESSION_TOKEN_HEADER: &str = "x-nesa-session-token";

/// One forward step of a session (the body of `POST /v1/split/forward`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// Client-chosen session id (1–64 of `A-Za-z0-9_-`).
    pub session: String,
    /// The session token the node answered to the session's first step; required on every
    /// later step (absent on the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// First block the node runs (the blocks before it ran on the client); the node runs
    /// through its last loaded block.
    pub first_layer: usize,
    /// Position of the first row of `hidden` in the sequence.
    pub position: usize,
    /// `positions × hidden_size` values, row-major.
    pub hidden: Vec<f32>,
}

/// The last position's hidden state after the node's blocks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardResponse {
    /// `hidden_size` values.
    pub hidden: Vec<f32>,
    /// Blocks run, `[start, end)`.
    pub layers: [usize; 2],
    /// On a session's first step: the token that binds the session to this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// What can go wrong in a split generation.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("node runner at {node} unreachable: {source}")]
    Unreachable {
        node: String,
        source: reqwest::Error,
    },
    #[error("node runner at {node} answered {status}: {body}")]
    Refused {
        node: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("node runner at {node} sent an unreadable answer: {source}")]
    BadAnswer {
        node: String,
        source: reqwest::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A split-mode session with one node runner.
pub struct SplitClient {
    model: Model,
    cache: KvCache,
    node: String,
    session: String,
    token: Option<String>,
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
            token: None,
            http: reqwest::Client::new(),
            sent_bytes: 0,
        }
    }

    /// One step: `tokens` at `position` through the client's blocks, the node's blocks, and
    /// the head; returns the logits of the last position.
    async fn step(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, SplitError> {
        let layers = self.model.loaded_layers();
        let mut hidden = self.model.embed(tokens)?;
        if !layers.is_empty() {
            hidden =
                self.model
                    .forward_layers(&hidden, layers.clone(), position, &mut self.cache)?;
        }
        let request = ForwardRequest {
            session: self.session.clone(),
            token: self.token.clone(),
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
            .map_err(|source| SplitError::Unreachable {
                node: self.node.clone(),
                source,
            })?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(SplitError::Refused {
                node: self.node.clone(),
                status,
                body,
            });
        }
        let answer: ForwardResponse =
            response
                .json()
                .await
                .map_err(|source| SplitError::BadAnswer {
                    node: self.node.clone(),
                    source,
                })?;
        if answer.token.is_some() {
            self.token = answer.token;
        }
        let width = self.model.config().hidden_size;
        Ok(self.model.head(&Hidden::from_vec(answer.hidden, width)?)?)
    }

    /// Greedy generation of up to `max_tokens` after `prompt` (ids in the kernel's vocabulary).
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        stop_tokens: &[u32],
    ) -> Result<SplitOutput, SplitError> {
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
        let mut close = self
            .http
            .delete(format!("{}/v1/split/sessions/{}", self.node, self.session));
        if let Some(token) = &self.token {
            close = close.header(SESSION_TOKEN_HEADER, token);
        }
        let _ = close.send().await;
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

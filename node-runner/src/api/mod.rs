//! The node runner's HTTP API: `/health`, Prometheus `/metrics`, `/v1/generate` for the
//! operator to try a plaintext model locally, and `/v1/split/forward` for split-mode clients,
//! which run the embedding and head themselves and send only hidden states.

pub mod split;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use nesa_engine::{GenerateRequest, Sampling, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::chain::Worker;
use crate::metrics::Metrics;

/// What the API answers from.
pub struct ApiState {
    /// The model and its stop tokens.
    pub worker: Arc<Worker>,
    /// `None` for an encrypted kernel: the node cannot read its token ids.
    pub tokenizer: Option<Arc<Tokenizer>>,
    /// Sessions of split-mode clients.
    pub split: split::Sessions,
    /// The runner's metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// This node's address, as `/health` reports it.
    pub node: String,
    /// The kernel served, when registered.
    pub kernel_id: Option<u64>,
    /// The model file served, as `/health` reports it.
    pub model: String,
}

/// A local generation request.
#[derive(Deserialize)]
pub struct GenerateBody {
    pub prompt: String,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

fn default_max_tokens() -> usize {
    64
}

/// A local generation answer.
#[derive(Serialize)]
pub struct GenerateAnswer {
    pub text: String,
    pub tokens: usize,
    pub decode_tokens_per_second: f64,
}

/// The API router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/generate", post(generate))
        .route("/v1/split/forward", post(split::forward))
        .route(
            "/v1/split/sessions/{session}",
            axum::routing::delete(split::close),
        )
        .with_state(state)
}

async fn health(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "node": state.node,
        "kernel_id": state.kernel_id,
        "model": state.model,
        "height": state.metrics.block_height.load(Ordering::Relaxed),
    }))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn generate(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<GenerateBody>,
) -> impl IntoResponse {
    if body.prompt.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "prompt is empty"})),
        )
            .into_response();
    }
    let Some(tokenizer) = state.tokenizer.clone() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "this node serves an encrypted (ee-v1) kernel: it has no vocabulary to turn text into tokens; ask through the chain with the kernel's key, or use split mode"})),
        )
            .into_response();
    };
    let max_tokens = body.max_tokens.clamp(1, 512);
    let outcome = tokio::task::spawn_blocking(move || {
        let prompt = tokenizer.encode(&tokenizer.chat_prompt(None, &body.prompt))?;
        let request = GenerateRequest {
            prompt,
            max_tokens,
            sampling: Sampling::Greedy,
            stop_tokens: state.worker.stop_tokens.clone(),
            top_logprobs: 0,
        };
        let output = state.worker.model.generate(&request, |_| {})?;
        let text = tokenizer.decode(&output.tokens)?;
        Ok::<_, nesa_engine::EngineError>(GenerateAnswer {
            text,
            tokens: output.tokens.len(),
            decode_tokens_per_second: output.decode_tokens_per_second(),
        })
    })
    .await;
    match outcome {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// The API server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("the HTTP API stopped: {0}")]
    Serve(std::io::Error),
}

/// Serves the API on `address` until the process stops.
pub async fn serve(state: Arc<ApiState>, address: &str) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Listen {
            address: address.to_string(),
            source,
        })?;
    tracing::info!(%address, "HTTP API: /health /metrics /v1/generate /v1/split/forward");
    axum::serve(listener, router(state))
        .await
        .map_err(ServeError::Serve)
}

//! The node runner's HTTP API: `/health`, Prometheus `/metrics`, `/v1/generate` for the
//! operator to try a plaintext model locally, `/v1/split/forward` for split-mode clients,
//! which run the embedding and head themselves and send only hidden states, and the shard
//! stream `/v1/shard/stream` (a WebSocket) for pipelines that run the node's blocks as one hop.
//!
//! The listen address is published on chain for split mode, so strangers reach it: the
//! operator's `/v1/generate` answers loopback peers, or others with the configured bearer
//! token; compute is limited to a few requests at once (503 beyond), bodies are bounded, and
//! split sessions are capped (see [`split`]).

pub mod shard;
pub mod split;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nesa_engine::{EngineError, GenerateRequest, Sampling, Tokenizer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::chain::Worker;
use crate::config::RunnerConfig;
use crate::metrics::Metrics;

/// Largest `/v1/generate` body.
pub const GENERATE_BODY_LIMIT: usize = 64 * 1024;

/// How much the API takes on.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Compute slots shared by `/v1/generate` and `/v1/split/forward`; none free: 503.
    pub slots: Arc<Semaphore>,
    /// Open split sessions; beyond: 429.
    pub max_sessions: usize,
    /// KV-cache bytes all split sessions may hold together; beyond: 503.
    pub kv_budget_bytes: usize,
    /// An idle split session is closed after this long.
    pub session_idle: Duration,
    /// Largest `/v1/split/forward` body.
    pub split_body_bytes: usize,
}

impl ApiLimits {
    /// The limits a runner config sets.
    pub fn from_config(config: &RunnerConfig) -> Self {
        ApiLimits {
            slots: Arc::new(Semaphore::new(config.api_max_concurrent.max(1) as usize)),
            max_sessions: config.split_max_sessions as usize,
            kv_budget_bytes: (config.split_kv_budget_mib as usize).saturating_mul(1 << 20),
            session_idle: Duration::from_secs(config.split_session_idle_secs),
            ..ApiLimits::default()
        }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        let config = RunnerConfig::default();
        ApiLimits {
            slots: Arc::new(Semaphore::new(config.api_max_concurrent as usize)),
            max_sessions: config.split_max_sessions as usize,
            kv_budget_bytes: (config.split_kv_budget_mib as usize) << 20,
            session_idle: Duration::from_secs(config.split_session_idle_secs),
            split_body_bytes: 16 << 20,
        }
    }
}

/// What the API answers from.
pub struct ApiState {
    /// The model and its stop tokens.
    pub worker: Arc<Worker>,
    /// `None` for an encrypted kernel: the node cannot read its token ids.
    pub tokenizer: Option<Arc<Tokenizer>>,
    /// Sessions of split-mode clients.
    pub split: split::Sessions,
    /// Pipeline seats this node holds past span 0, whose claimed streams it records.
    pub seats: shard::Seats,
    /// The runner's metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// This node's address, as `/health` reports it.
    pub node: String,
    /// The kernel served, when registered.
    pub kernel_id: Option<u64>,
    /// The model file served, as `/health` reports it.
    pub model: String,
    /// Bearer token that admits peers other than loopback to `/v1/generate`.
    pub api_token: Option<String>,
    /// What the API takes on at once.
    pub limits: ApiLimits,
    /// Measured time of one decode step through one of the loaded blocks (`/health`, for
    /// pipeline drivers choosing a route).
    pub seconds_per_layer: f64,
}

/// A JSON error answer.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

/// 503 with a hint to retry.
pub(crate) fn busy(message: impl Into<String>) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// Whether a `/v1/generate` caller may use the engine: a loopback peer always; anyone else
/// only with `Authorization: Bearer <api_token>`.
pub fn generate_allowed(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    api_token: Option<&str>,
) -> Result<(), (StatusCode, &'static str)> {
    if peer.is_some_and(|peer| peer.ip().is_loopback()) {
        return Ok(());
    }
    let Some(expected) = api_token else {
        return Err((
            StatusCode::FORBIDDEN,
            "/v1/generate answers loopback only: set api_token in the runner's config.toml and send it as a bearer token",
        ));
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let matches = offered.is_some_and(|offered| {
        let (a, b) = (Sha256::digest(offered), Sha256::digest(expected));
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    });
    if matches {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token for /v1/generate",
        ))
    }
}

/// A local generation request: a text prompt (wrapped in the model's chat template unless
/// `raw`) or the prompt's token ids.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub prompt_tokens: Option<Vec<u32>>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Feed the text prompt as is, without the chat template.
    #[serde(default)]
    pub raw: bool,
    /// Keep generating past the model's stop tokens, up to `max_tokens` (benchmarks).
    #[serde(default)]
    pub ignore_eos: bool,
}

fn default_max_tokens() -> usize {
    64
}

/// Most tokens one `/v1/generate` request may ask for.
pub const GENERATE_MAX_TOKENS: usize = 1024;

/// A local generation answer, with where the time went.
#[derive(Serialize)]
pub struct GenerateAnswer {
    pub text: String,
    /// Tokens generated.
    pub tokens: usize,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Waiting for a place in the engine's batch.
    pub queued_ms: f64,
    /// From the first forward pass to the first token.
    pub prefill_ms: f64,
    /// Everything after the first token.
    pub decode_ms: f64,
    pub decode_tokens_per_second: f64,
}

/// The API router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/generate", post(generate))
        .route(
            "/v1/split/forward",
            post(split::forward).layer(DefaultBodyLimit::max(state.limits.split_body_bytes)),
        )
        .route(
            "/v1/split/sessions/{session}",
            axum::routing::delete(split::close),
        )
        .route(nesa_sdk::swarm::protocol::STREAM_PATH, get(shard::stream))
        .with_state(state)
}

async fn health(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let model = state.worker.model();
    let layers = model.loaded_layers();
    Json(serde_json::json!({
        "status": "ok",
        "node": state.node,
        "kernel_id": state.kernel_id,
        "model": state.model,
        "height": state.metrics.block_height.load(Ordering::Relaxed),
        "layers": [layers.start, layers.end],
        "layer_count": model.config().layer_count,
        "hidden_size": model.config().hidden_size,
        "seconds_per_layer": state.seconds_per_layer,
    }))
}

/// Times one decode step through the loaded blocks (the fastest of 15, after a warm-up)
/// and divides by their number.
pub fn measure_seconds_per_layer(model: &nesa_engine::Model) -> f64 {
    let layers = model.loaded_layers();
    if layers.is_empty() {
        return 0.0;
    }
    let width = model.config().hidden_size;
    let mut best = f64::INFINITY;
    let mut cache = model.new_cache(layers.clone());
    for position in 0..16 {
        let Ok(hidden) = nesa_engine::Hidden::from_vec(vec![0.01; width], width) else {
            return 0.0;
        };
        let started = std::time::Instant::now();
        if model
            .forward_layers(&hidden, layers.clone(), position, &mut cache)
            .is_err()
        {
            return 0.0;
        }
        if position > 0 {
            best = best.min(started.elapsed().as_secs_f64());
        }
    }
    best / layers.len() as f64
}

async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn generate(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    if let Err((status, message)) =
        generate_allowed(peer, request.headers(), state.api_token.as_deref())
    {
        return error(status, message);
    }
    let bytes = match axum::body::to_bytes(request.into_body(), GENERATE_BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {GENERATE_BODY_LIMIT} bytes"),
            )
        }
    };
    let body: GenerateBody = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    if !(1..=GENERATE_MAX_TOKENS).contains(&body.max_tokens) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("max_tokens must be 1 to {GENERATE_MAX_TOKENS}"),
        );
    }
    let model = state.worker.model();
    if model.loaded_layers() != (0..model.config().layer_count) {
        let layers = model.loaded_layers();
        return error(
            StatusCode::CONFLICT,
            format!(
                "this node serves blocks {}..{} of {} (a shard): generate through a pipeline ({})",
                layers.start,
                layers.end,
                model.config().layer_count,
                nesa_sdk::swarm::protocol::STREAM_PATH
            ),
        );
    }
    let prompt = match (&body.prompt, body.prompt_tokens) {
        (Some(_), Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give prompt or prompt_tokens, not both",
            )
        }
        (None, None) => return error(StatusCode::BAD_REQUEST, "prompt is missing"),
        (None, Some(tokens)) => tokens,
        (Some(text), None) => {
            if text.trim().is_empty() {
                return error(StatusCode::BAD_REQUEST, "prompt is empty");
            }
            let Some(tokenizer) = state.tokenizer.as_ref() else {
                return error(StatusCode::BAD_REQUEST, ENCRYPTED_KERNEL);
            };
            let text = if body.raw {
                text.clone()
            } else {
                tokenizer.chat_prompt(None, text)
            };
            match tokenizer.encode(&text) {
                Ok(tokens) => tokens,
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
    };
    let Ok(_permit) = state.limits.slots.clone().try_acquire_owned() else {
        return busy("the node is busy computing other requests; retry shortly");
    };
    let prompt_tokens = prompt.len();
    let request = GenerateRequest {
        prompt,
        max_tokens: body.max_tokens,
        sampling: Sampling::Greedy,
        stop_tokens: if body.ignore_eos {
            Vec::new()
        } else {
            state.worker.stop_tokens.clone()
        },
        top_logprobs: 0,
    };
    // Dropped with the connection: the engine then stops the generation.
    let output = match state.worker.generate(request).await {
        Ok(output) => output,
        Err(e) => {
            let status = match e {
                EngineError::EmptyPrompt
                | EngineError::TokenOutOfRange { .. }
                | EngineError::ContextOverflow { .. } => StatusCode::BAD_REQUEST,
                EngineError::KvBudget { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return error(status, e.to_string());
        }
    };
    let text = match &state.tokenizer {
        Some(tokenizer) => match tokenizer.decode(&output.tokens) {
            Ok(text) => text,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        // An encrypted kernel's ids mean nothing here: the caller maps them with its key.
        None => String::new(),
    };
    Json(GenerateAnswer {
        text,
        tokens: output.tokens.len(),
        prompt_tokens,
        queued_ms: output.queued_ms,
        prefill_ms: output.prefill_ms,
        decode_ms: output.decode_ms,
        decode_tokens_per_second: output.decode_tokens_per_second(),
    })
    .into_response()
}

const ENCRYPTED_KERNEL: &str = "this node serves an encrypted (ee-v1) kernel: it has no vocabulary to turn text into tokens; send prompt_tokens in the kernel's permuted ids, ask through the chain with the kernel's key, or use split mode";

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
    tracing::info!(%address, generate = if state.api_token.is_some() { "loopback or bearer token" } else { "loopback only" }, "HTTP API: /health /metrics /v1/generate /v1/split/forward /v1/shard/stream");
    serve_on(listener, state).await
}

/// Serves the API on a bound listener, telling handlers each connection's peer address.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
) -> Result<(), ServeError> {
    use axum::serve::ListenerExt;
    // Pipeline steps are small frames answered at once: no waiting to coalesce them.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .map_err(ServeError::Serve)
}

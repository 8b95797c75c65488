//! The HTTP API against strangers: `/v1/generate` only for loopback peers or the bearer token,
//! split sessions bound to the client that opened them, capped in number and KV memory, and
//! overload answered 429/503 with a JSON error.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use nesa_engine::tiny::{tiny_model_file, TinyModelSpec};
use nesa_engine::{LoadOptions, Model, Tokenizer};
use nesa_node::api::{self, ApiLimits, ApiState};
use nesa_node::chain::Worker;
use nesa_node::metrics::Metrics;
use nesa_sdk::split::{ForwardRequest, SESSION_TOKEN_HEADER};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// KV bytes one position of the tiny model takes over all its blocks: 4 blocks × (K, V) ×
/// 2 KV heads × 16 dims × 2 bytes (f16).
const KV_BYTES_PER_POSITION: usize = 4 * 2 * 2 * 16 * 2;
const WIDTH: usize = nesa_engine::tiny::TINY_HIDDEN;

fn state(limits: ApiLimits, api_token: Option<&str>) -> Arc<ApiState> {
    let path = tiny_model_file(&TinyModelSpec::default()).unwrap();
    let tokenizer = Tokenizer::load(&path).unwrap();
    Arc::new(ApiState {
        worker: Arc::new(Worker::new(
            Model::load(&path, &LoadOptions::default()).unwrap(),
            tokenizer.stop_tokens().to_vec(),
            Default::default(),
        )),
        tokenizer: Some(Arc::new(tokenizer)),
        split: Default::default(),
        seats: Default::default(),
        metrics: Arc::new(Metrics::default()),
        node: "api-test".into(),
        kernel_id: None,
        model: "tiny".into(),
        api_token: api_token.map(str::to_owned),
        limits,
        seconds_per_layer: 0.0,
    })
}

/// Serves `state` on a loopback port; returns the base URL.
async fn serve(state: Arc<ApiState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve_on(listener, state));
    url
}

fn step(session: &str, token: Option<&str>, position: usize, rows: usize) -> ForwardRequest {
    ForwardRequest {
        session: session.into(),
        token: token.map(str::to_owned),
        first_layer: 0,
        position,
        hidden: vec![0.01; rows * WIDTH],
    }
}

/// POSTs a split step; returns the status and the JSON answer.
async fn forward(url: &str, request: &ForwardRequest) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/split/forward"))
        .json(request)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

/// POSTs `body` to `/v1/generate` from loopback.
async fn generate(url: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/generate"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn open(url: &str, session: &str, rows: usize) -> String {
    let (status, body) = forward(url, &step(session, None, 0, rows)).await;
    assert_eq!(status, 200, "{body}");
    body["token"]
        .as_str()
        .expect("a new session answers its token")
        .to_owned()
}

async fn close(url: &str, session: &str, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().delete(format!("{url}/v1/split/sessions/{session}"));
    if let Some(token) = token {
        request = request.header(SESSION_TOKEN_HEADER, token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_step_hijack_or_close_another_clients_split_session() {
    let url = serve(state(ApiLimits::default(), None)).await;
    let token = open(&url, "alice", 3).await;

    let (status, body) = forward(&url, &step("alice", None, 3, 1)).await;
    assert_eq!(status, 403, "no token: {body}");
    assert!(body["error"].as_str().unwrap().contains("another client"));
    let (status, _) = forward(&url, &step("alice", Some("guess"), 3, 1)).await;
    assert_eq!(status, 403, "wrong token");
    // Restarting the session at position 0 under its id would reuse alice's cache.
    let (status, _) = forward(&url, &step("alice", None, 0, 2)).await;
    assert_eq!(status, 403, "hijack at position 0");
    assert_eq!(close(&url, "alice", None).await, 403);
    assert_eq!(close(&url, "alice", Some("guess")).await, 403);

    let (status, body) = forward(&url, &step("alice", Some(&token), 3, 1)).await;
    assert_eq!(status, 200, "the owner goes on: {body}");
    assert!(body.get("token").is_none(), "the token is given once");
    assert_eq!(close(&url, "alice", Some(&token)).await, 204);
    assert_eq!(close(&url, "alice", Some(&token)).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_sessions_beyond_the_cap_are_answered_429_and_none_is_evicted() {
    let limits = ApiLimits {
        max_sessions: 2,
        ..ApiLimits::default()
    };
    let url = serve(state(limits, None)).await;
    let first = open(&url, "first", 1).await;
    let second = open(&url, "second", 1).await;
    let (status, body) = forward(&url, &step("third", None, 0, 1)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    for (session, token) in [("first", &first), ("second", &second)] {
        let (status, body) = forward(&url, &step(session, Some(token), 1, 1)).await;
        assert_eq!(status, 200, "{session} is still open: {body}");
    }
    assert_eq!(close(&url, "first", Some(&first)).await, 204);
    open(&url, "third", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_sessions_beyond_the_kv_memory_budget_are_answered_503() {
    let limits = ApiLimits {
        kv_budget_bytes: 4 * KV_BYTES_PER_POSITION,
        ..ApiLimits::default()
    };
    let url = serve(state(limits, None)).await;
    let token = open(&url, "big", 3).await;
    let (status, body) = forward(&url, &step("other", None, 0, 2)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("memory"), "{body}");
    // The session itself cannot grow past the budget either.
    let (status, _) = forward(&url, &step("big", Some(&token), 3, 1)).await;
    assert_eq!(status, 200);
    let (status, _) = forward(&url, &step("big", Some(&token), 4, 1)).await;
    assert_eq!(status, 503);
    assert_eq!(close(&url, "big", Some(&token)).await, 204);
    open(&url, "other", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_compute_slots_are_answered_503_with_a_json_error() {
    let limits = ApiLimits {
        slots: Arc::new(Semaphore::new(0)),
        ..ApiLimits::default()
    };
    let url = serve(state(limits, None)).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/split/forward"))
        .json(&step("s", None, 0, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
    let response = generate(
        &url,
        serde_json::json!({"prompt": "hello", "max_tokens": 2}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_overlong_sequences_are_refused() {
    let limits = ApiLimits {
        split_body_bytes: 4096,
        ..ApiLimits::default()
    };
    let url = serve(state(limits, None)).await;
    let (status, _) = forward(&url, &step("wide", None, 0, 64)).await;
    assert_eq!(status, 413);
    let context = nesa_engine::tiny::TINY_CONTEXT;
    let mut late = step("late", None, context, 1);
    late.position = context;
    let (status, body) = forward(&url, &late).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("context"),
        "{body}"
    );
    let response = generate(
        &url,
        serde_json::json!({"prompt": "x".repeat(api::GENERATE_BODY_LIMIT + 1)}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_answers_loopback_peers_without_a_token() {
    let url = serve(state(ApiLimits::default(), None)).await;
    let response = generate(
        &url,
        serde_json::json!({"prompt": "hello", "max_tokens": 2}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["tokens"].as_u64().unwrap() >= 1, "{body}");
}

/// `/v1/generate` as a peer at `peer` with an optional `Authorization` value.
async fn generate_from(
    state: Arc<ApiState>,
    peer: &str,
    authorization: Option<&str>,
) -> StatusCode {
    let mut request = Request::post("/v1/generate").header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let mut request = request
        .body(Body::from(r#"{"prompt":"hello","max_tokens":2}"#))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    api::router(state).oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_from_another_host_needs_the_configured_bearer_token() {
    let stranger = "203.0.113.5:40000";
    let open = state(ApiLimits::default(), None);
    assert_eq!(
        generate_from(open.clone(), stranger, None).await,
        StatusCode::FORBIDDEN,
        "no token configured: loopback only"
    );
    assert_eq!(
        generate_from(open, "127.0.0.1:40000", None).await,
        StatusCode::OK
    );
    let guarded = state(ApiLimits::default(), Some("operator-secret"));
    for wrong in [None, Some("Bearer nope"), Some("operator-secret")] {
        assert_eq!(
            generate_from(guarded.clone(), stranger, wrong).await,
            StatusCode::UNAUTHORIZED,
            "{wrong:?}"
        );
    }
    assert_eq!(
        generate_from(guarded, stranger, Some("Bearer operator-secret")).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_health_stay_open_to_other_hosts() {
    let state = state(ApiLimits::default(), None);
    let mut request = Request::get("/health").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "203.0.113.5:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = api::router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

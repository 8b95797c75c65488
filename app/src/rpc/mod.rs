//! The CometBFT 0.38 JSON-RPC subset served by the solo node, with the same JSON shapes, so
//! tendermint-rpc, CosmJS and curl users talk to it as to a CometBFT node. Both JSON-RPC POST
//! (single or batch) and URI GET (`/status`, `/tx?hash=0x…`) are accepted.

pub mod grpc;
mod methods;
pub mod node;
mod params;
pub mod rest;
mod websocket;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub use methods::RpcContext;
use params::Params;

/// Largest accepted request body (a max-size tx, base64-encoded, with room to spare).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A JSON-RPC error.
#[derive(Debug)]
pub struct RpcError {
    code: i64,
    message: &'static str,
    data: String,
}

impl RpcError {
    /// Bad or missing parameters (-32602).
    pub fn invalid_params(data: impl Into<String>) -> Self {
        RpcError {
            code: -32602,
            message: "Invalid params",
            data: data.into(),
        }
    }

    /// A failure while serving a valid request (-32603), as CometBFT reports them.
    pub fn internal(data: impl Into<String>) -> Self {
        RpcError {
            code: -32603,
            message: "Internal error",
            data: data.into(),
        }
    }

    fn method_not_found(method: &str) -> Self {
        RpcError {
            code: -32601,
            message: "Method not found",
            data: format!("method `{method}` is not served by nesad"),
        }
    }
}

/// The axum router serving the RPC.
pub fn router(context: Arc<RpcContext>) -> Router {
    Router::new()
        .route("/", post(json_rpc))
        .route("/websocket", get(websocket::upgrade))
        .route("/{method}", get(uri_call))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

/// Serves the RPC on `address` until the process ends.
pub async fn serve(context: Arc<RpcContext>, address: &str) -> anyhow::Result<()> {
    listen(router(context), address, "CometBFT-compatible RPC").await
}

/// Serves `router` (the `what` of the log lines) on `address` until the process ends.
async fn listen(router: Router, address: &str, what: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for the {what} on {address}: {e}"))?;
    tracing::info!(%address, "serving the {what}");
    axum::serve(listener, router).await?;
    Ok(())
}

fn envelope(id: Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.code, "message": e.message, "data": e.data } })
        }
    }
}

async fn call(context: &Arc<RpcContext>, request: Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(json!(-1));
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return envelope(
            id,
            Err(RpcError {
                code: -32600,
                message: "Invalid Request",
                data: "missing method".into(),
            }),
        );
    };
    let params = match request.get("params") {
        None | Some(Value::Null) => Params::new(Map::new()),
        Some(Value::Object(map)) => Params::new(map.clone()),
        Some(Value::Array(items)) if items.is_empty() => Params::new(Map::new()),
        Some(_) => {
            return envelope(
                id,
                Err(RpcError::invalid_params(
                    "params must be an object of named parameters",
                )),
            )
        }
    };
    envelope(id, dispatch(context, method, params).await)
}

async fn dispatch(
    context: &Arc<RpcContext>,
    method: &str,
    params: Params,
) -> Result<Value, RpcError> {
    let context = context.clone();
    match method {
        "health" => Ok(json!({})),
        "status" => context.status(),
        "abci_info" => context.abci_info(),
        "abci_query" => bounded_query(move || context.abci_query(&params)).await,
        "broadcast_tx_sync" | "broadcast_tx_async" => {
            blocking(move || context.broadcast_tx_sync(&params)).await
        }
        "broadcast_tx_commit" => context.broadcast_tx_commit(&params).await,
        "block" => context.block(&params),
        "block_results" => context.block_results(&params),
        "tx" => context.tx(&params),
        "tx_search" => blocking(move || context.tx_search(&params)).await,
        "block_search" => blocking(move || context.block_search(&params)).await,
        "validators" => context.validators(&params),
        "commit" => blocking(move || context.commit(&params)).await,
        "header" => blocking(move || context.header(&params)).await,
        "consensus_params" => context.consensus_params(&params),
        "genesis" => context.genesis(),
        "num_unconfirmed_txs" | "unconfirmed_txs" => context.unconfirmed_txs(),
        other => Err(RpcError::method_not_found(other)),
    }
}

/// How long a query waits for a free slot before the node answers that it is busy.
const QUERY_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the RPC waits for a query's answer (its gas limit bounds the work itself).
const QUERY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Threads that may run queries at once: all cores but one, which stays free for blocks.
fn query_slots() -> &'static Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)))
    })
}

/// Runs an `abci_query` (which may run contracts: simulations, smart queries) on a bounded
/// number of threads, so that anyone who can reach the RPC cannot take every core from block
/// production, and answers within a deadline.
async fn bounded_query<T, F>(work: F) -> Result<T, RpcError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RpcError> + Send + 'static,
{
    let busy =
        || RpcError::internal("the node is busy with other queries; retry later".to_string());
    let permit = tokio::time::timeout(QUERY_SLOT_WAIT, query_slots().clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    });
    match tokio::time::timeout(QUERY_DEADLINE, task).await {
        Ok(joined) => joined.map_err(|e| RpcError::internal(e.to_string()))?,
        Err(_) => Err(RpcError::internal(format!(
            "the query did not finish within {} s",
            QUERY_DEADLINE.as_secs()
        ))),
    }
}

async fn blocking<F>(work: F) -> Result<Value, RpcError>
where
    F: FnOnce() -> Result<Value, RpcError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?
}

async fn json_rpc(
    State(context): State<Arc<RpcContext>>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let error = RpcError {
                code: -32700,
                message: "Parse error",
                data: format!("invalid JSON: {e}"),
            };
            return (StatusCode::OK, Json(envelope(json!(-1), Err(error))));
        }
    };
    let response = match request {
        Value::Array(batch) => {
            let mut responses = Vec::with_capacity(batch.len());
            for item in batch {
                responses.push(call(&context, item).await);
            }
            Value::Array(responses)
        }
        single => call(&context, single).await,
    };
    (StatusCode::OK, Json(response))
}

async fn uri_call(
    State(context): State<Arc<RpcContext>>,
    Path(method): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> impl IntoResponse {
    let params = Params::from_uri(query);
    let outcome = dispatch(&context, &method, params).await;
    (StatusCode::OK, Json(envelope(json!(-1), outcome)))
}

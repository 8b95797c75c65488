//! `nesa gateway`: an OpenAI-compatible API in front of the market, paying from one local key.
//! `GET /v1/models` lists the kernels it can serve; `POST /v1/chat/completions` turns a chat
//! into an on-chain query with escrow (token ids permuted with the user's own key for an ee-v1
//! kernel, so no plaintext leaves this machine), waits for settlement and answers in OpenAI's
//! shape, with the settlement in an extra `nesa` field. Every request needs the gateway's own
//! API key, so other local programs cannot spend the wallet; caps bound the escrow of one
//! request and the spending of a day. The web chat page is served at `/`.

mod chat;
mod models;
mod openai;
mod spending;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::ee::Keystore;
use nesa_sdk::market::MarketClient;
use nesa_sdk::tokenizer::Tokenizer;
use nesa_sdk::{Address, AddressExt, ChainClient, MarketContracts};
use serde_json::json;

use self::openai::ApiError;
use self::spending::{Caps, Ledger};
use super::GlobalArgs;

/// Largest request body (a long conversation is far smaller).
const MAX_BODY_BYTES: usize = 1 << 20;

/// The web chat page (one file: markup, style and script).
const CHAT_PAGE: &str = include_str!("../../../../web/index.html");

/// Arguments of `nesa gateway`.
#[derive(Args)]
pub struct GatewayArgs {
    /// Local key that pays for every request (may be left out when the keyring holds one key)
    #[arg(long, value_name = "KEY")]
    from: Option<String>,
    /// Address to serve on; keep it on loopback unless a proxy in front adds TLS
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The gateway's API key: clients send it as `Authorization: Bearer <key>` [default: read
    /// from --api-key-file, created there on first start]
    #[arg(
        long,
        env = "NESA_GATEWAY_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// File holding the API key [default: <home>/gateway/api-key]
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// GGUF files whose tokenizers the gateway may use, matched to kernels by tokenizer hash
    /// [default: every .gguf in the model cache, $NESA_MODELS or ~/.cache/nesa/models]
    #[arg(long = "model", value_name = "GGUF")]
    models: Vec<PathBuf>,
    /// Most escrow one request may lock, in unes
    #[arg(long, value_name = "UNES", default_value_t = 1_000_000)]
    max_per_request: u128,
    /// Most the gateway spends in a UTC day, in unes (escrows count until their refund)
    #[arg(long, value_name = "UNES", default_value_t = 10_000_000)]
    max_per_day: u128,
    /// Most requests waiting for settlement at once; more are refused with 429
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_in_flight: usize,
    /// Nodes that answer each request independently [default: the market's]
    #[arg(long, value_name = "K")]
    redundancy: Option<u8>,
    /// Give up waiting for a query's settlement after this many seconds
    #[arg(long, value_name = "N", default_value_t = 300)]
    timeout_secs: u64,
}

/// What every request handler shares.
pub struct Gateway {
    client: ChainClient,
    contracts: MarketContracts,
    key: SigningKey,
    address: Address,
    key_name: String,
    home: PathBuf,
    api_key: String,
    tokenizers: Vec<Arc<Tokenizer>>,
    ledger: Ledger,
    /// Submissions go one at a time: each takes the wallet's next sequence.
    submitting: tokio::sync::Mutex<()>,
    in_flight: Arc<tokio::sync::Semaphore>,
    redundancy: Option<u8>,
    timeout: Duration,
}

impl Gateway {
    fn market(&self) -> MarketClient<'_> {
        MarketClient {
            client: &self.client,
            contracts: self.contracts.clone(),
        }
    }

    fn keystore(&self) -> Keystore {
        Keystore::open(&self.home)
    }

    /// Refuses a request without the gateway's API key.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(key) if same_secret(key.as_bytes(), self.api_key.as_bytes()) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds since the epoch.
fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The API key: `--api-key`, else the key file's, else a new one written there (mode 0600).
fn api_key(args: &GatewayArgs, file: &Path) -> anyhow::Result<String> {
    if let Some(key) = &args.api_key {
        let key = key.trim();
        if key.len() < 16 {
            anyhow::bail!(
                "--api-key is too short to keep other programs out: use 16 characters or more"
            );
        }
        return Ok(key.to_owned());
    }
    if file.exists() {
        let key = std::fs::read_to_string(file)
            .with_context(|| format!("reading the API key from {}", file.display()))?;
        let key = key.trim().to_owned();
        if key.is_empty() {
            anyhow::bail!("{} is empty: delete it to get a new key", file.display());
        }
        return Ok(key);
    }
    let key = format!("nesa-{}", hex::encode(rand::random::<[u8; 24]>()));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(file, key.as_bytes())
        .with_context(|| format!("writing the new API key to {}", file.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    out.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(file, bytes)
}

/// The tokenizers of `models`, or of every GGUF in the model cache.
fn load_tokenizers(models: &[PathBuf]) -> anyhow::Result<Vec<Arc<Tokenizer>>> {
    let files: Vec<PathBuf> = if models.is_empty() {
        let dir = nesa_engine::models::model_cache_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if files.is_empty() {
            anyhow::bail!(
                "no GGUF model in {}: fetch one with scripts/fetch-model, or pass --model <GGUF>",
                dir.display()
            );
        }
        files
    } else {
        models.to_vec()
    };
    let mut tokenizers: Vec<Arc<Tokenizer>> = Vec::new();
    for file in &files {
        let tokenizer = Tokenizer::load(file)
            .with_context(|| format!("reading the tokenizer of {}", file.display()))?;
        if !tokenizers.iter().any(|t| t.sha256() == tokenizer.sha256()) {
            tokenizers.push(Arc::new(tokenizer));
        }
    }
    Ok(tokenizers)
}

/// The gateway's routes.
fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::one))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/nesa/v1/wallet", get(wallet))
        .fallback(unknown_path)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gateway)
}

async fn page() -> Html<&'static str> {
    Html(CHAT_PAGE)
}

async fn unknown_path(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: Some("unknown_url"),
        param: None,
        message: format!(
            "Unknown request URL: {}. This gateway serves /v1/models and /v1/chat/completions",
            uri.path()
        ),
    }
}

/// `GET /nesa/v1/wallet`: the paying account, its balance and today's spending.
async fn wallet(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(error) = gateway.authorize(&headers) {
        return error.into_response();
    }
    let balance = match gateway.client.balance(&gateway.address, "unes").await {
        Ok(coin) => coin.amount,
        Err(nesa_sdk::ClientError::AccountNotFound(_)) => 0,
        Err(error) => {
            return ApiError::upstream("chain_unavailable", error.to_string()).into_response()
        }
    };
    let caps = gateway.ledger.caps();
    Json(json!({
        "address": gateway.address.to_string(),
        "key": gateway.key_name,
        "denom": "unes",
        "balance": balance.to_string(),
        "spent_today": gateway.ledger.spent_today(now_seconds()).to_string(),
        "max_per_request": caps.per_request.to_string(),
        "max_per_day": caps.per_day.to_string(),
    }))
    .into_response()
}

/// Runs `nesa gateway` until interrupted.
pub async fn run(args: GatewayArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.max_in_flight == 0 {
        anyhow::bail!("--max-in-flight must be at least 1");
    }
    let home = global.home_dir()?;
    let keyring = global.open_keyring()?;
    let names: Vec<&str> = keyring.list().iter().map(|k| k.name.as_str()).collect();
    let key_name = super::ask::choose_key(&names, args.from.as_deref(), keyring.path())?;
    let key = keyring.signing_key(&key_name)?;
    let address = Address::from_public_key(&key.public_key())?;
    let client = ChainClient::new(&global.node)?;
    let contracts = client
        .market_contracts()
        .await
        .with_context(|| format!("reading the market's contracts from {}", global.node))?;
    let tokenizers = load_tokenizers(&args.models)?;
    let api_key_file = args
        .api_key_file
        .clone()
        .unwrap_or_else(|| home.join("gateway").join("api-key"));
    let api_key = api_key(&args, &api_key_file)?;
    let ledger = Ledger::open(
        Caps {
            per_request: args.max_per_request,
            per_day: args.max_per_day,
        },
        Some(&home.join("gateway").join("spending.json")),
    )?;
    let gateway = Arc::new(Gateway {
        client,
        contracts,
        key,
        address,
        key_name,
        home,
        api_key,
        tokenizers,
        ledger,
        submitting: tokio::sync::Mutex::new(()),
        in_flight: Arc::new(tokio::sync::Semaphore::new(args.max_in_flight)),
        redundancy: args.redundancy,
        timeout: Duration::from_secs(args.timeout_secs),
    });

    let served = models::served(&gateway).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        eprintln!("warning: serving on {bound}, beyond this machine: the API key is all that guards the wallet, and it travels in clear without TLS");
    }
    eprintln!(
        "Nesa gateway on http://{bound}/v1 (chat page: http://{bound}/), paying from {} ({})",
        gateway.key_name, gateway.address
    );
    match served.is_empty() {
        true => eprintln!("no kernel is servable yet: GET /v1/models lists them once one is registered with a tokenizer this gateway holds"),
        false => eprintln!("models: {}", served.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")),
    }
    match &args.api_key {
        Some(_) => eprintln!("API key: the one given with --api-key / NESA_GATEWAY_API_KEY"),
        None => eprintln!(
            "API key: in {} (send it as the bearer token; OPENAI_API_KEY for OpenAI clients)",
            api_key_file.display()
        ),
    }
    eprintln!(
        "caps: {}unes per request, {}unes per day ({}unes spent today)",
        args.max_per_request,
        args.max_per_day,
        gateway.ledger.spent_today(now_seconds())
    );
    axum::serve(listener, router(gateway))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the gateway stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"nesa-abc", b"nesa-abc"));
        assert!(!same_secret(b"nesa-abc", b"nesa-abd"));
        assert!(!same_secret(b"nesa-ab", b"nesa-abc"));
        assert!(!same_secret(b"", b"x"));
    }
}

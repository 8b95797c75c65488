//! `nesa gateway`: an OpenAI-compatible API in front of the market, paying from one local key.
//! `GET /v1/models` lists the kernels it can serve; `POST /v1/chat/completions` turns a chat
//! into an on-chain query with escrow (token ids permuted with the user's own key for an ee-v1
//! kernel, so no plaintext leaves this machine), waits for settlement and answers in OpenAI's
//! shape, with the settlement in an extra `nesa` field. Every request needs the gateway's own
//! API key, so other local programs cannot spend the wallet; caps bound the escrow of one
//! request and the spending of a day. The web chat page is served at `/`.

mod chat;
mod keplr;
mod models;
mod openai;
mod spending;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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
    /// File holding the API key clients send as `Authorization: Bearer <key>`, created (owner
    /// only) on first start; the NESA_GATEWAY_API_KEY environment variable overrides it
    /// [default: <home>/gateway/api-key]
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// GGUF files whose tokenizers the gateway may use, matched to kernels by tokenizer hash
    /// [default: every .gguf in the model cache, $NESA_MODELS or ~/.cache/nesa/models]
    #[arg(long = "model", value_name = "GGUF")]
    models: Vec<PathBuf>,
    /// Most escrow one request may lock, in unes
    #[arg(long, value_name = "UNES", default_value_t = 1_000_000)]
    max_per_request: u128,
    /// Most the gateway spends in a UTC day, in unes (escrows count until their refund, and
    /// each submission's transaction fee once it is paid)
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
    /// Keplr chain info (`nesad chain-info` prints it) the page offers Keplr when Keplr does
    /// not know the chain yet
    #[arg(long, value_name = "FILE")]
    keplr_chain_info: Option<PathBuf>,
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
    /// Submissions prepared for the user's own wallet to sign.
    unsigned: keplr::Unsigned,
    /// Keplr's chain info for the page, when the operator gave it.
    chain_info: Option<serde_json::Value>,
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
    pub(super) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
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

/// Shortest API key accepted: guessing it must be out of reach.
const MIN_API_KEY_CHARS: usize = 16;

/// The API key: `NESA_GATEWAY_API_KEY` (never a flag: other users can read a command line),
/// else the key file's, else a new one written there (mode 0600).
fn api_key(from_env: Option<String>, file: &Path) -> anyhow::Result<String> {
    let checked = |key: &str, source: &str| {
        if key.len() < MIN_API_KEY_CHARS {
            anyhow::bail!("the API key in {source} is too short to keep other programs out: use {MIN_API_KEY_CHARS} characters or more (or delete the file to get a new key)");
        }
        Ok(key.to_owned())
    };
    if let Some(key) = from_env {
        return checked(key.trim(), "NESA_GATEWAY_API_KEY");
    }
    if file.exists() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file)?.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{} can be read by other users (mode {:o}): `chmod 600` it, or delete it to get a new key",
                    file.display(),
                    mode & 0o777
                );
            }
        }
        let key = std::fs::read_to_string(file)
            .with_context(|| format!("reading the API key from {}", file.display()))?;
        return checked(key.trim(), &file.display().to_string());
    }
    let key = format!("nesa-{}", hex::encode(rand::random::<[u8; 24]>()));
    if let Some(dir) = file.parent() {
        nesa_types::private::create_private_dir(dir)?;
    }
    nesa_types::private::write_private_file(file, key.as_bytes())
        .with_context(|| format!("writing the new API key to {}", file.display()))?;
    Ok(key)
}

/// Held while a gateway runs on a home: a second gateway there would share its wallet's
/// sequence and its day's spending, and is refused. A lock left by a gateway that died is
/// taken over.
struct HomeLock {
    file: PathBuf,
}

impl HomeLock {
    fn take(dir: &Path) -> anyhow::Result<HomeLock> {
        nesa_types::private::create_private_dir(dir)?;
        let file = dir.join("gateway.pid");
        let running = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|&pid| pid != std::process::id() && process_alive(pid));
        if let Some(pid) = running {
            anyhow::bail!(
                "another nesa gateway (pid {pid}) already runs on this home ({}): stop it, or give this one its own --home (delete the file if that process is not a gateway)",
                file.display()
            );
        }
        nesa_types::private::write_private_file(&file, std::process::id().to_string().as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(HomeLock { file })
    }
}

impl Drop for HomeLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Whether process `pid` exists (on systems with `/proc`; elsewhere, assumed gone).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
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

/// The gateway's routes. The API routes check the key before a body is read; every route
/// checks the Host header (a page on another site cannot reach the gateway through DNS
/// rebinding), and body-size and method refusals come in OpenAI's error shape.
fn router(gateway: Arc<Gateway>, bound: SocketAddr) -> Router {
    let api = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*model}", get(models::one))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/nesa/v1/wallet", get(wallet))
        .route("/nesa/v1/accounts/{address}", get(account))
        .route("/nesa/v1/keplr/chain-info", get(chain_info))
        .route("/nesa/v1/keplr/prepare", post(keplr::prepare_submission))
        .route("/nesa/v1/keplr/submit", post(keplr::submit_signed))
        .route_layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            require_key,
        ));
    let hosts = Arc::new(allowed_hosts(bound));
    Router::new()
        .route("/", get(page))
        .merge(api)
        .fallback(unknown_path)
        .layer(axum::middleware::map_response(openai_refusals))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(move |request, next| {
            let hosts = hosts.clone();
            async move { check_host(&hosts, request, next).await }
        }))
        .with_state(gateway)
}

/// The Host headers a loopback gateway answers (any, when it listens beyond loopback: the
/// operator put it behind their own name).
fn allowed_hosts(bound: SocketAddr) -> Option<Vec<String>> {
    if !bound.ip().is_loopback() {
        return None;
    }
    let port = bound.port();
    Some(vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ])
}

async fn check_host(
    hosts: &Option<Vec<String>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    match hosts {
        Some(hosts) if !hosts.contains(&host) => ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "invalid_request_error",
            code: Some("host_not_allowed"),
            param: None,
            message: format!(
                "Host `{host}` is not this gateway: use http://{}/",
                hosts[0]
            ),
            no_retry: true,
        }
        .into_response(),
        _ => next.run(request).await,
    }
}

async fn require_key(
    State(gateway): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match gateway.authorize(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// axum's own refusals (body too large, wrong method) in OpenAI's shape.
async fn openai_refusals(response: Response) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| {
            t.as_bytes().starts_with(b"application/json")
                || t.as_bytes().starts_with(b"text/event-stream")
                || t.as_bytes().starts_with(b"text/html")
        });
    if json || response.status().is_success() {
        return response;
    }
    let message = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than {MAX_BODY_BYTES} bytes")
        }
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this path".to_owned(),
        other => format!("the request was refused ({other})"),
    };
    ApiError {
        status: response.status(),
        kind: "invalid_request_error",
        code: None,
        param: None,
        message,
        no_retry: true,
    }
    .into_response()
}

async fn page() -> Response {
    let mut response = Html(CHAT_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
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
        no_retry: true,
    }
}

/// `GET /nesa/v1/wallet`: the paying account, its balance and today's spending, and the chain.
async fn wallet(State(gateway): State<Arc<Gateway>>) -> Response {
    let (balance, chain_id) =
        match tokio::try_join!(chat::balance_of(&gateway, &gateway.address), async {
            gateway
                .client
                .chain_id()
                .await
                .map_err(|e| ApiError::upstream("chain_unavailable", e.to_string()))
        }) {
            Ok(read) => read,
            Err(error) => return error.into_response(),
        };
    let caps = gateway.ledger.caps();
    Json(json!({
        "address": gateway.address.to_string(),
        "key": gateway.key_name,
        "chain_id": chain_id.to_string(),
        "denom": "unes",
        "balance": balance.to_string(),
        "spent_today": gateway.ledger.spent_today(now_seconds()).to_string(),
        "max_per_request": caps.per_request.to_string(),
        "max_per_day": caps.per_day.to_string(),
    }))
    .into_response()
}

/// `GET /nesa/v1/accounts/{address}`: an account's balance (the page shows the Keplr
/// wallet's).
async fn account(
    State(gateway): State<Arc<Gateway>>,
    axum::extract::Path(address): axum::extract::Path<String>,
) -> Response {
    let address: Address = match address.parse() {
        Ok(address) => address,
        Err(error) => {
            return ApiError::invalid(Some("address"), format!("{address:?}: {error}"))
                .into_response()
        }
    };
    match chat::balance_of(&gateway, &address).await {
        Ok(balance) => Json(json!({
            "address": address.to_string(),
            "denom": "unes",
            "balance": balance.to_string(),
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /nesa/v1/keplr/chain-info`: the chain info given with `--keplr-chain-info`.
async fn chain_info(State(gateway): State<Arc<Gateway>>) -> Response {
    match &gateway.chain_info {
        Some(info) => Json(info.clone()).into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("no_chain_info"),
            param: None,
            message: "this gateway was started without --keplr-chain-info: add the chain to Keplr from `nesad chain-info`".to_owned(),
            no_retry: true,
        }
        .into_response(),
    }
}

/// Runs `nesa gateway` until interrupted.
pub async fn run(args: GatewayArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.max_in_flight == 0 {
        anyhow::bail!("--max-in-flight must be at least 1");
    }
    let home = global.home_dir()?;
    let _lock = HomeLock::take(&home.join("gateway"))?;
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
    let from_env = std::env::var("NESA_GATEWAY_API_KEY").ok();
    let key_from_env = from_env.is_some();
    let api_key = api_key(from_env, &api_key_file)?;
    let ledger = Ledger::open(
        Caps {
            per_request: args.max_per_request,
            per_day: args.max_per_day,
        },
        Some(&home.join("gateway").join("spending.json")),
    )?;
    let chain_info = match &args.keplr_chain_info {
        Some(file) => Some(
            serde_json::from_slice(
                &std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
            )
            .with_context(|| format!("{} is not JSON chain info", file.display()))?,
        ),
        None => None,
    };
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
        unsigned: keplr::Unsigned::default(),
        chain_info,
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
    match key_from_env {
        true => eprintln!("API key: the one in NESA_GATEWAY_API_KEY"),
        false => eprintln!(
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
    axum::serve(listener, router(gateway, bound))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the gateway stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    const KEY: &str = "nesa-test-key-0123456789";
    /// 64 zero bytes, base64: a signature of the right length.
    const BASE64_64: &str =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

    /// A gateway whose chain is unreachable: what it answers here it answers before any
    /// chain call.
    fn gateway() -> Router {
        let key = SigningKey::random();
        let address = Address::from_public_key(&key.public_key()).unwrap();
        let contract = nesa_sdk::ContractAddress::from_bytes([7; 32]);
        let gateway = Gateway {
            client: ChainClient::new("http://127.0.0.1:9").unwrap(),
            contracts: MarketContracts {
                registry: contract,
                staking: contract,
                market: contract,
            },
            key,
            address,
            key_name: "test".into(),
            home: std::env::temp_dir(),
            api_key: KEY.into(),
            tokenizers: Vec::new(),
            ledger: Ledger::open(
                Caps {
                    per_request: 1,
                    per_day: 1,
                },
                None,
            )
            .unwrap(),
            submitting: tokio::sync::Mutex::new(()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(1)),
            redundancy: None,
            timeout: Duration::from_secs(1),
            unsigned: keplr::Unsigned::default(),
            chain_info: None,
        };
        router(Arc::new(gateway), "127.0.0.1:8080".parse().unwrap())
    }

    async fn send(
        request: axum::http::request::Builder,
        body: impl Into<Body>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = gateway()
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    fn post(path: &str) -> axum::http::request::Builder {
        axum::http::Request::post(path).header(header::HOST, "127.0.0.1:8080")
    }

    #[tokio::test]
    async fn every_api_route_needs_the_key_before_its_body_is_read() {
        for path in [
            "/v1/models",
            "/v1/models/x",
            "/nesa/v1/wallet",
            "/nesa/v1/accounts/nesa1x",
            "/nesa/v1/keplr/chain-info",
        ] {
            let request = axum::http::Request::get(path).header(header::HOST, "127.0.0.1:8080");
            let (status, _, body) = send(request, Body::empty()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(body["error"]["code"], "invalid_api_key");
        }
        let (status, _, _) = send(
            post("/v1/chat/completions")
                .header(header::AUTHORIZATION, "Bearer nesa-wrong-key-000000000"),
            vec![b'x'; 2 * MAX_BODY_BYTES],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "refused before the body");
        for path in ["/nesa/v1/keplr/prepare", "/nesa/v1/keplr/submit"] {
            let (status, _, _) = send(post(path), "{}").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }

    #[tokio::test]
    async fn a_signed_submission_that_was_never_prepared_is_refused_before_the_chain() {
        let authorized = |path| post(path).header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        let (status, _, body) = send(
            authorized("/nesa/v1/keplr/submit"),
            json!({"id": "00", "body_bytes": "", "auth_info_bytes": "", "signature": BASE64_64})
                .to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "unknown_submission");
        let (status, _, body) = send(
            authorized("/nesa/v1/keplr/submit"),
            json!({"id": "00", "body_bytes": "", "auth_info_bytes": "", "signature": "AAAA"})
                .to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["param"], "signature");
        let (status, _, body) = send(
            authorized("/nesa/v1/keplr/prepare"),
            json!({"request": {"model": "m", "messages": []}, "pub_key": "AAAA"}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["param"], "pub_key");
    }

    #[tokio::test]
    async fn a_foreign_host_is_refused_even_with_the_key() {
        let request = axum::http::Request::get("/v1/models")
            .header(header::HOST, "attacker.example:8080")
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        let (status, _, body) = send(request, Body::empty()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "host_not_allowed");
        let page = axum::http::Request::get("/").header(header::HOST, "rebound.example:8080");
        assert_eq!(send(page, Body::empty()).await.0, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn refusals_come_in_openais_shape_and_the_page_cannot_be_framed() {
        let authorized =
            || post("/v1/chat/completions").header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        let (status, _, body) = send(authorized(), vec![b' '; MAX_BODY_BYTES + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let (status, _, body) = send(authorized(), "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a chat completion request"));
        let (status, _, body) = send(
            axum::http::Request::get("/v1/chat/completions")
                .header(header::HOST, "localhost:8080")
                .header(header::AUTHORIZATION, format!("Bearer {KEY}")),
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let (status, _, body) = send(post("/v2/anything"), Body::empty()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "unknown_url");
        let (status, headers, _) = send(
            axum::http::Request::get("/").header(header::HOST, "127.0.0.1:8080"),
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }

    #[test]
    fn an_api_key_file_others_can_read_or_a_short_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("nesa-gateway-key-{}", std::process::id()));
        let file = dir.join("api-key");
        let created = api_key(None, &file).unwrap();
        assert!(created.len() >= MIN_API_KEY_CHARS);
        assert_eq!(api_key(None, &file).unwrap(), created, "read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(api_key(None, &file)
                .unwrap_err()
                .to_string()
                .contains("chmod 600"));
        }
        assert!(api_key(Some("short".into()), &file).is_err());
        assert_eq!(api_key(Some(KEY.into()), &file).unwrap(), KEY);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_gateway_on_the_same_home_is_refused_and_a_dead_ones_lock_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("nesa-gateway-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = HomeLock::take(&dir).unwrap();
        // Another live process holds it: pid 1 always exists.
        std::fs::write(dir.join("gateway.pid"), "1").unwrap();
        let refused = HomeLock::take(&dir).err().unwrap().to_string();
        assert!(refused.contains("pid 1"), "{refused}");
        // A pid no process has.
        std::fs::write(dir.join("gateway.pid"), "4294967").unwrap();
        let second = HomeLock::take(&dir).unwrap();
        drop(first);
        drop(second);
        assert!(!dir.join("gateway.pid").exists(), "released on exit");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"nesa-abc", b"nesa-abc"));
        assert!(!same_secret(b"nesa-abc", b"nesa-abd"));
        assert!(!same_secret(b"nesa-ab", b"nesa-abc"));
        assert!(!same_secret(b"", b"x"));
    }
}

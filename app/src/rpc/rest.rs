//! The Cosmos SDK REST API (the gRPC gateway's paths, `127.0.0.1:1317` by default) that Keplr,
//! block explorers and REST clients read: accounts, balances, contract smart queries,
//! simulation and broadcast of signed transactions, node info and blocks. Every query goes
//! through the same ABCI query router as the RPC's `abci_query`; JSON is rendered as the
//! gateway renders proto3 (field names as in the .proto files, 64-bit integers as strings,
//! bytes in base64, `Any` inlined with its `@type`), errors as `{code, message, details}`
//! with the gRPC code and its HTTP status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cosmrs::proto::cosmos::auth::v1beta1::{
    BaseAccount, QueryAccountRequest, QueryAccountResponse,
};
use cosmrs::proto::cosmos::bank::v1beta1::{
    QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest, QueryBalanceResponse,
};
use cosmrs::proto::cosmos::base::v1beta1::Coin as ProtoCoin;
use cosmrs::proto::cosmos::tx::v1beta1::{SimulateRequest, SimulateResponse, Tx};
use cosmrs::proto::cosmwasm::wasm::v1::{
    QuerySmartContractStateRequest, QuerySmartContractStateResponse,
};
use cosmrs::proto::Any;
use prost::Message;
use serde_json::{json, Value};
use tendermint_proto::v0_38::abci::RequestQuery;

use super::methods::{base64_encode, events_json, tx_hash};
use super::node::{ApiContext, BlockError, CommittedTx, SearchFailure};
use super::{bounded_query, MAX_BODY_BYTES};
use crate::query::SIMULATE_PATH;

/// Bech32 prefix of validator consensus addresses (`sdk_block.header.proposer_address`).
const VALCONS_PREFIX: &str = "nesavalcons";

/// The header a client sets to query at a past height (as with the Cosmos SDK).
const HEIGHT_HEADER: &str = "x-cosmos-block-height";

/// The REST API's router.
pub fn router(context: Arc<ApiContext>) -> Router {
    Router::new()
        .route("/cosmos/auth/v1beta1/accounts/{address}", get(account))
        .route("/cosmos/bank/v1beta1/balances/{address}", get(balances))
        .route(
            "/cosmos/bank/v1beta1/balances/{address}/by_denom",
            get(balance_by_denom),
        )
        .route(
            "/cosmwasm/wasm/v1/contract/{address}/smart/{query}",
            get(smart_query),
        )
        .route("/cosmos/tx/v1beta1/simulate", post(simulate))
        .route("/cosmos/tx/v1beta1/txs", post(broadcast).get(search_txs))
        .route("/cosmos/tx/v1beta1/txs/{hash}", get(get_tx))
        .route("/cosmos/base/tendermint/v1beta1/node_info", get(node_info))
        .route(
            "/cosmos/base/tendermint/v1beta1/blocks/latest",
            get(latest_block),
        )
        .route(
            "/cosmos/base/tendermint/v1beta1/blocks/{height}",
            get(block_at),
        )
        .fallback(unknown_path)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

/// Serves the REST API on `address` until the process ends.
pub async fn serve(context: Arc<ApiContext>, address: &str) -> anyhow::Result<()> {
    super::listen(router(context), address, "Cosmos SDK REST API").await
}

/// A REST error: the gRPC status code, its HTTP status, and a message.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    code: i32,
    message: String,
}

impl RestError {
    fn invalid(message: impl Into<String>) -> Self {
        RestError {
            status: StatusCode::BAD_REQUEST,
            code: 3,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        RestError {
            status: StatusCode::NOT_FOUND,
            code: 5,
            message: message.into(),
        }
    }

    /// The node behind the API could not answer (503, gRPC Unavailable).
    fn unavailable(message: impl std::fmt::Display) -> Self {
        RestError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: 14,
            message: message.to_string(),
        }
    }

    fn internal(message: impl std::fmt::Display) -> Self {
        RestError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: 13,
            message: message.to_string(),
        }
    }

    /// A failed ABCI query, by its SDK code: not found, bad request or height, unknown path;
    /// anything else (a contract's error, say) is gRPC's Unknown, as the gateway answers.
    fn from_query(code: u32, log: &str) -> Self {
        let message = log
            .split_once(" desc = ")
            .filter(|(prefix, _)| prefix.starts_with("rpc error: code = "))
            .map_or(log, |(_, rest)| rest)
            .to_string();
        let (status, code) = match code {
            22 => (StatusCode::NOT_FOUND, 5),
            18 | 26 => (StatusCode::BAD_REQUEST, 3),
            6 => (StatusCode::NOT_IMPLEMENTED, 12),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, 2),
        };
        RestError {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "code": self.code, "message": self.message, "details": [] })),
        )
            .into_response()
    }
}

type Answer = Result<Json<Value>, RestError>;

/// The height a query reads at: the `x-cosmos-block-height` header, or the latest (0).
fn query_height(headers: &HeaderMap) -> Result<i64, RestError> {
    match headers.get(HEIGHT_HEADER) {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|h| *h >= 0)
            .ok_or_else(|| RestError::invalid(format!("{HEIGHT_HEADER} must be a height"))),
    }
}

/// Runs an ABCI query on the node's bounded query threads and decodes its answer.
async fn abci<Response: Message + Default + 'static>(
    context: &Arc<ApiContext>,
    path: &'static str,
    request: impl Message,
    height: i64,
) -> Result<Response, RestError> {
    let app = context.app.clone();
    let data = request.encode_to_vec();
    let response = bounded_query(move || {
        Ok(app.query(RequestQuery {
            path: path.into(),
            data: data.into(),
            height,
            prove: false,
        }))
    })
    .await
    .map_err(|e| RestError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: 14,
        message: e.data,
    })?;
    if response.code != 0 {
        return Err(RestError::from_query(response.code, &response.log));
    }
    Response::decode(response.value.as_ref()).map_err(RestError::internal)
}

async fn account(
    State(context): State<Arc<ApiContext>>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let response: QueryAccountResponse = abci(
        &context,
        "/cosmos.auth.v1beta1.Query/Account",
        QueryAccountRequest { address },
        query_height(&headers)?,
    )
    .await?;
    let account = response
        .account
        .ok_or_else(|| RestError::internal("the account query returned no account"))?;
    Ok(Json(json!({ "account": account_json(&account)? })))
}

async fn balances(
    State(context): State<Arc<ApiContext>>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let response: QueryAllBalancesResponse = abci(
        &context,
        "/cosmos.bank.v1beta1.Query/AllBalances",
        QueryAllBalancesRequest {
            address,
            ..Default::default()
        },
        query_height(&headers)?,
    )
    .await?;
    let pagination = response.pagination.unwrap_or_default();
    Ok(Json(json!({
        "balances": response.balances.iter().map(coin_json).collect::<Vec<_>>(),
        "pagination": {
            "next_key": bytes_or_null(&pagination.next_key),
            "total": pagination.total.to_string(),
        },
    })))
}

#[derive(serde::Deserialize)]
struct DenomQuery {
    denom: Option<String>,
}

async fn balance_by_denom(
    State(context): State<Arc<ApiContext>>,
    Path(address): Path<String>,
    axum::extract::Query(query): axum::extract::Query<DenomQuery>,
    headers: HeaderMap,
) -> Answer {
    let response: QueryBalanceResponse = abci(
        &context,
        "/cosmos.bank.v1beta1.Query/Balance",
        QueryBalanceRequest {
            address,
            denom: query.denom.unwrap_or_default(),
        },
        query_height(&headers)?,
    )
    .await?;
    Ok(Json(
        json!({ "balance": response.balance.as_ref().map(coin_json) }),
    ))
}

async fn smart_query(
    State(context): State<Arc<ApiContext>>,
    Path((address, query)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let query_data = decode_base64(&query)
        .ok_or_else(|| RestError::invalid("the query must be base64-encoded JSON"))?;
    let response: QuerySmartContractStateResponse = abci(
        &context,
        "/cosmwasm.wasm.v1.Query/SmartContractState",
        QuerySmartContractStateRequest {
            address,
            query_data,
        },
        query_height(&headers)?,
    )
    .await?;
    Ok(Json(json!({ "data": raw_json(&response.data) })))
}

/// The transaction bytes of a simulate or broadcast body (`tx_bytes`, base64).
fn tx_bytes(body: &Value) -> Result<Vec<u8>, RestError> {
    let encoded = body
        .get("tx_bytes")
        .or_else(|| body.get("txBytes"))
        .and_then(Value::as_str)
        .ok_or_else(|| RestError::invalid("the body must carry tx_bytes (base64)"))?;
    decode_base64(encoded).ok_or_else(|| RestError::invalid("tx_bytes is not valid base64"))
}

fn json_body(body: &[u8]) -> Result<Value, RestError> {
    serde_json::from_slice(body).map_err(|e| RestError::invalid(format!("invalid JSON: {e}")))
}

async fn simulate(State(context): State<Arc<ApiContext>>, body: axum::body::Bytes) -> Answer {
    let tx_bytes = tx_bytes(&json_body(&body)?)?;
    let response: SimulateResponse = abci(
        &context,
        SIMULATE_PATH,
        SimulateRequest {
            tx_bytes,
            ..Default::default()
        },
        0,
    )
    .await?;
    let gas = response.gas_info.unwrap_or_default();
    let result = response.result.unwrap_or_default();
    // Deprecated in favour of `msg_responses`, and still rendered by the SDK's gateway.
    #[allow(deprecated)]
    let data = base64_encode(&result.data);
    Ok(Json(json!({
        "gas_info": {
            "gas_wanted": gas.gas_wanted.to_string(),
            "gas_used": gas.gas_used.to_string(),
        },
        "result": {
            "data": data,
            "log": result.log,
            "events": events_json(&result.events),
            "msg_responses": result.msg_responses.iter().map(any_json).collect::<Vec<_>>(),
        },
    })))
}

async fn broadcast(State(context): State<Arc<ApiContext>>, body: axum::body::Bytes) -> Answer {
    let body = json_body(&body)?;
    let tx = tx_bytes(&body)?;
    match body.get("mode") {
        None => {}
        Some(Value::String(mode))
            if matches!(
                mode.as_str(),
                "BROADCAST_MODE_SYNC" | "BROADCAST_MODE_ASYNC"
            ) => {}
        Some(Value::Number(mode)) if matches!(mode.as_u64(), Some(2 | 3)) => {}
        Some(mode) => {
            return Err(RestError::invalid(format!(
            "unsupported broadcast mode {mode}: use BROADCAST_MODE_SYNC or BROADCAST_MODE_ASYNC \
                 (BROADCAST_MODE_BLOCK was removed from the Cosmos SDK)"
        )))
        }
    }
    let hash = hex::encode_upper(tx_hash(&tx).as_bytes());
    let checked = context
        .broadcast(tx)
        .await
        .map_err(RestError::unavailable)?;
    let (code, codespace, log) = (checked.code, checked.codespace, checked.log);
    Ok(Json(json!({
        "tx_response": {
            "height": "0",
            "txhash": hash,
            "codespace": codespace,
            "code": code,
            "data": "",
            "raw_log": log,
            "logs": [],
            "info": "",
            "gas_wanted": "0",
            "gas_used": "0",
            "tx": null,
            "timestamp": "",
            "events": [],
        }
    })))
}

async fn get_tx(State(context): State<Arc<ApiContext>>, Path(hash): Path<String>) -> Answer {
    let hash_bytes: [u8; 32] = hex::decode(hash.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RestError::invalid(format!("{hash:?} is not a 32-byte hex hash")))?;
    let found = context
        .committed_tx(hash_bytes)
        .await
        .map_err(RestError::unavailable)?
        .ok_or_else(|| RestError::not_found(format!("tx not found: {}", hash.to_uppercase())))?;
    let (tx, tx_response) = committed_json(&found);
    Ok(Json(json!({ "tx": tx, "tx_response": tx_response })))
}

/// Most transactions one page of `GET /cosmos/tx/v1beta1/txs` returns (CometBFT's largest).
const MAX_TXS_PAGE: u64 = 100;

/// `GET /cosmos/tx/v1beta1/txs?query=…&page=&limit=&order_by=`: the transactions whose events
/// satisfy `query` (CometBFT's query language; the older `events=` parameters, each one
/// condition, are joined with AND), as the SDK's `GetTxsEvent` answers.
async fn search_txs(
    State(context): State<Arc<ApiContext>>,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> Answer {
    let values = |name: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let number = |names: &[&str], default: u64| -> Result<u64, RestError> {
        match names.iter().find_map(|n| values(n).first().copied()) {
            None | Some("") => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                RestError::invalid(format!("{} must be a number, got {text:?}", names[0]))
            }),
        }
    };
    let query = match values("query").first() {
        Some(query) if !query.trim().is_empty() => query.to_string(),
        _ => {
            let events = values("events");
            if events.is_empty() {
                return Err(RestError::invalid("query cannot be empty"));
            }
            events.join(" AND ")
        }
    };
    let descending = match values("order_by").first().copied().unwrap_or("") {
        "" | "ORDER_BY_UNSPECIFIED" | "0" | "ORDER_BY_ASC" | "1" => false,
        "ORDER_BY_DESC" | "2" => true,
        other => return Err(RestError::invalid(format!("invalid order_by {other:?}"))),
    };
    let page = number(&["page"], 1)?.max(1);
    // As the SDK: 0 (or none) is the default, 100.
    let limit = match number(&["limit", "pagination.limit"], MAX_TXS_PAGE)? {
        0 => MAX_TXS_PAGE,
        limit => limit.min(MAX_TXS_PAGE),
    };
    let (found, total) = context
        .search_txs(
            &query,
            u32::try_from(page).unwrap_or(u32::MAX),
            limit as u8,
            descending,
        )
        .await
        .map_err(|e| match e {
            SearchFailure::Invalid(message) => RestError::invalid(message),
            SearchFailure::Internal(message) => RestError::unavailable(message),
        })?;
    let (txs, responses): (Vec<Value>, Vec<Value>) = found.iter().map(committed_json).unzip();
    Ok(Json(json!({
        "txs": txs,
        "tx_responses": responses,
        "pagination": null,
        "total": total.to_string(),
    })))
}

/// A committed transaction as the gateway renders `Tx` and `TxResponse`.
fn committed_json(found: &CommittedTx) -> (Value, Value) {
    let raw = &found.tx;
    let result = &found.result;
    let tx = Tx::decode(raw.as_slice())
        .map(|tx| tx_json(&tx))
        .unwrap_or(Value::Null);
    let mut typed = tx.clone();
    if typed.is_object() {
        typed["@type"] = json!("/cosmos.tx.v1beta1.Tx");
    }
    let response = json!({
        "height": found.height.to_string(),
        "txhash": hex::encode_upper(tx_hash(raw).as_bytes()),
        "codespace": result.codespace,
        "code": result.code,
        "data": hex::encode_upper(&result.data),
        "raw_log": result.log,
        "logs": [],
        "info": result.info,
        "gas_wanted": result.gas_wanted.to_string(),
        "gas_used": result.gas_used.to_string(),
        "tx": typed,
        "timestamp": found.time,
        "events": events_json(&result.events),
    });
    (tx, response)
}

async fn node_info(State(context): State<Arc<ApiContext>>) -> Answer {
    let status = context.status().await.map_err(RestError::unavailable)?;
    let node = &status["node_info"];
    Ok(Json(json!({
        "default_node_info": {
            "protocol_version": node["protocol_version"],
            "default_node_id": node["id"],
            "listen_addr": node["listen_addr"],
            "network": node["network"],
            "version": node["version"],
            "channels": base64_encode(
                &hex::decode(node["channels"].as_str().unwrap_or_default()).unwrap_or_default()
            ),
            "moniker": node["moniker"],
            "other": node["other"],
        },
        "application_version": {
            "name": "nesa",
            "app_name": "nesad",
            "version": env!("CARGO_PKG_VERSION"),
            "git_commit": "",
            "build_tags": "",
            "go_version": "",
            "build_deps": [],
            "cosmos_sdk_version": "",
        },
    })))
}

async fn latest_block(State(context): State<Arc<ApiContext>>) -> Answer {
    block_json(&context, None).await
}

async fn block_at(State(context): State<Arc<ApiContext>>, Path(height): Path<String>) -> Answer {
    let height = height
        .parse::<u64>()
        .ok()
        .filter(|h| *h > 0)
        .ok_or_else(|| RestError::invalid(format!("invalid height {height:?}")))?;
    block_json(&context, Some(height)).await
}

async fn unknown_path(uri: axum::http::Uri) -> RestError {
    RestError {
        status: StatusCode::NOT_IMPLEMENTED,
        code: 12,
        message: format!("{} is not served by nesad's REST API", uri.path()),
    }
}

async fn block_json(context: &ApiContext, height: Option<u64>) -> Answer {
    let (id, block) = context.block(height).await.map_err(|e| match e {
        BlockError::TooHigh { height, latest } => RestError::invalid(format!(
            "requested block height {height} is bigger than the chain length {latest}"
        )),
        BlockError::Missing(height) => {
            RestError::not_found(format!("no block stored at height {height}"))
        }
        BlockError::Internal(e) => RestError::internal(e),
    })?;
    let header = block.header.unwrap_or_default();
    let header_json = header_json(&header);
    let mut sdk_header = header_json.clone();
    sdk_header["proposer_address"] = json!(cosmrs::AccountId::new(
        VALCONS_PREFIX,
        &header.proposer_address
    )
    .map(|id| id.to_string())
    .unwrap_or_default());
    let rest = json!({
        "data": { "txs": block.data.unwrap_or_default().txs.iter().map(|t| base64_encode(t)).collect::<Vec<_>>() },
        "evidence": { "evidence": [] },
        "last_commit": block.last_commit.map(|commit| json!({
            "height": commit.height.to_string(),
            "round": commit.round,
            "block_id": block_id_json(commit.block_id.as_ref()),
            "signatures": commit.signatures.iter().map(|s| json!({
                "block_id_flag": block_id_flag(s.block_id_flag),
                "validator_address": base64_encode(&s.validator_address),
                "timestamp": timestamp_json(s.timestamp.as_ref()),
                "signature": bytes_or_null(&s.signature),
            })).collect::<Vec<_>>(),
        })),
    });
    let with_header = |header: Value| {
        let mut block = rest.clone();
        block["header"] = header;
        block
    };
    Ok(Json(json!({
        "block_id": block_id_json(Some(&id)),
        "block": with_header(header_json),
        "sdk_block": with_header(sdk_header),
    })))
}

fn header_json(header: &tendermint_proto::v0_38::types::Header) -> Value {
    let version = header.version.unwrap_or_default();
    json!({
        "version": { "block": version.block.to_string(), "app": version.app.to_string() },
        "chain_id": header.chain_id,
        "height": header.height.to_string(),
        "time": timestamp_json(header.time.as_ref()),
        "last_block_id": block_id_json(header.last_block_id.as_ref()),
        "last_commit_hash": base64_encode(&header.last_commit_hash),
        "data_hash": base64_encode(&header.data_hash),
        "validators_hash": base64_encode(&header.validators_hash),
        "next_validators_hash": base64_encode(&header.next_validators_hash),
        "consensus_hash": base64_encode(&header.consensus_hash),
        "app_hash": base64_encode(&header.app_hash),
        "last_results_hash": base64_encode(&header.last_results_hash),
        "evidence_hash": base64_encode(&header.evidence_hash),
        "proposer_address": base64_encode(&header.proposer_address),
    })
}

fn block_id_json(id: Option<&tendermint_proto::v0_38::types::BlockId>) -> Value {
    let id = id.cloned().unwrap_or_default();
    let parts = id.part_set_header.unwrap_or_default();
    json!({
        "hash": base64_encode(&id.hash),
        "part_set_header": { "total": parts.total, "hash": base64_encode(&parts.hash) },
    })
}

fn block_id_flag(flag: i32) -> &'static str {
    match flag {
        1 => "BLOCK_ID_FLAG_ABSENT",
        2 => "BLOCK_ID_FLAG_COMMIT",
        3 => "BLOCK_ID_FLAG_NIL",
        _ => "BLOCK_ID_FLAG_UNKNOWN",
    }
}

fn timestamp_json(time: Option<&tendermint_proto::google::protobuf::Timestamp>) -> Value {
    time.and_then(|t| tendermint::Time::try_from(*t).ok())
        .map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

fn coin_json(coin: &ProtoCoin) -> Value {
    json!({ "denom": coin.denom, "amount": coin.amount })
}

/// Empty bytes render as `null`, as the gateway renders them.
fn bytes_or_null(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        json!(base64_encode(bytes))
    }
}

/// A contract's JSON answer inline, as wasmd renders `RawContractMessage`; bytes that are not
/// JSON in base64.
fn raw_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| json!(base64_encode(bytes)))
}

fn account_json(any: &Any) -> Result<Value, RestError> {
    if any.type_url != "/cosmos.auth.v1beta1.BaseAccount" {
        return Ok(any_json(any));
    }
    let account = BaseAccount::decode(any.value.as_slice()).map_err(RestError::internal)?;
    Ok(json!({
        "@type": any.type_url,
        "address": account.address,
        "pub_key": account.pub_key.as_ref().map(any_json),
        "account_number": account.account_number.to_string(),
        "sequence": account.sequence.to_string(),
    }))
}

/// An `Any` inlined with its `@type`, for the types this chain produces; others carry their
/// bytes in `value`.
fn any_json(any: &Any) -> Value {
    use cosmrs::proto::cosmwasm::wasm::v1 as wasm;
    let fields = match any.type_url.as_str() {
        "/cosmos.crypto.secp256k1.PubKey" => {
            cosmrs::proto::cosmos::crypto::secp256k1::PubKey::decode(any.value.as_slice())
                .ok()
                .map(|key| json!({ "key": base64_encode(&key.key) }))
        }
        "/cosmos.bank.v1beta1.MsgSendResponse" => Some(json!({})),
        "/cosmos.bank.v1beta1.MsgSend" => {
            cosmrs::proto::cosmos::bank::v1beta1::MsgSend::decode(any.value.as_slice())
                .ok()
                .map(|m| {
                    json!({
                        "from_address": m.from_address,
                        "to_address": m.to_address,
                        "amount": coins_json(&m.amount),
                    })
                })
        }
        "/cosmwasm.wasm.v1.MsgExecuteContract" => {
            wasm::MsgExecuteContract::decode(any.value.as_slice())
                .ok()
                .map(|m| {
                    json!({
                        "sender": m.sender,
                        "contract": m.contract,
                        "msg": raw_json(&m.msg),
                        "funds": coins_json(&m.funds),
                    })
                })
        }
        "/cosmwasm.wasm.v1.MsgInstantiateContract" => {
            wasm::MsgInstantiateContract::decode(any.value.as_slice())
                .ok()
                .map(|m| {
                    json!({
                        "sender": m.sender,
                        "admin": m.admin,
                        "code_id": m.code_id.to_string(),
                        "label": m.label,
                        "msg": raw_json(&m.msg),
                        "funds": coins_json(&m.funds),
                    })
                })
        }
        "/cosmwasm.wasm.v1.MsgStoreCode" => wasm::MsgStoreCode::decode(any.value.as_slice())
            .ok()
            .map(|m| {
                json!({
                    "sender": m.sender,
                    "wasm_byte_code": base64_encode(&m.wasm_byte_code),
                    "instantiate_permission": null,
                })
            }),
        "/cosmwasm.wasm.v1.MsgExecuteContractResponse" => {
            wasm::MsgExecuteContractResponse::decode(any.value.as_slice())
                .ok()
                .map(|r| json!({ "data": base64_encode(&r.data) }))
        }
        "/cosmwasm.wasm.v1.MsgInstantiateContractResponse" => {
            wasm::MsgInstantiateContractResponse::decode(any.value.as_slice())
                .ok()
                .map(|r| json!({ "address": r.address, "data": base64_encode(&r.data) }))
        }
        "/cosmwasm.wasm.v1.MsgStoreCodeResponse" => wasm::MsgStoreCodeResponse::decode(
            any.value.as_slice(),
        )
        .ok()
        .map(
            |r| json!({ "code_id": r.code_id.to_string(), "checksum": base64_encode(&r.checksum) }),
        ),
        _ => None,
    };
    let mut value = fields.unwrap_or_else(|| json!({ "value": base64_encode(&any.value) }));
    value["@type"] = json!(any.type_url);
    value
}

fn coins_json(coins: &[ProtoCoin]) -> Value {
    Value::Array(coins.iter().map(coin_json).collect())
}

/// A transaction as the gateway renders `cosmos.tx.v1beta1.Tx`.
fn tx_json(tx: &Tx) -> Value {
    let body = tx.body.clone().unwrap_or_default();
    let auth = tx.auth_info.clone().unwrap_or_default();
    let fee = auth.fee.unwrap_or_default();
    json!({
        "body": {
            "messages": body.messages.iter().map(any_json).collect::<Vec<_>>(),
            "memo": body.memo,
            "timeout_height": body.timeout_height.to_string(),
            "extension_options": body.extension_options.iter().map(any_json).collect::<Vec<_>>(),
            "non_critical_extension_options":
                body.non_critical_extension_options.iter().map(any_json).collect::<Vec<_>>(),
        },
        "auth_info": {
            "signer_infos": auth.signer_infos.iter().map(|signer| json!({
                "public_key": signer.public_key.as_ref().map(any_json),
                "mode_info": mode_info_json(signer.mode_info.as_ref()),
                "sequence": signer.sequence.to_string(),
            })).collect::<Vec<_>>(),
            "fee": {
                "amount": coins_json(&fee.amount),
                "gas_limit": fee.gas_limit.to_string(),
                "payer": fee.payer,
                "granter": fee.granter,
            },
            "tip": null,
        },
        "signatures": tx.signatures.iter().map(|s| base64_encode(s)).collect::<Vec<_>>(),
    })
}

fn mode_info_json(mode: Option<&cosmrs::proto::cosmos::tx::v1beta1::ModeInfo>) -> Value {
    use cosmrs::proto::cosmos::tx::signing::v1beta1::SignMode;
    use cosmrs::proto::cosmos::tx::v1beta1::mode_info::Sum;
    match mode.and_then(|m| m.sum.as_ref()) {
        Some(Sum::Single(single)) => {
            let name = SignMode::try_from(single.mode)
                .map(|m| m.as_str_name())
                .unwrap_or("SIGN_MODE_UNSPECIFIED");
            json!({ "single": { "mode": name } })
        }
        Some(Sum::Multi(_)) => json!({ "multi": {} }),
        None => Value::Null,
    }
}

/// Standard or URL-safe base64, padded or not (path segments often arrive either way).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

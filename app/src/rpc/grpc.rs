//! The Cosmos SDK gRPC services (`127.0.0.1:9090` by default) that relayers and most SDKs use,
//! over HTTP/2 with gRPC's framing. Every query service the ABCI query router answers (auth,
//! bank, wasm, the tx service's Simulate, the market's contract set) is served by that same
//! router — the request's protobuf goes to it unchanged, so gRPC and `abci_query` can never
//! disagree; the few methods that are not state queries (BroadcastTx, GetTx, blocks, node info,
//! the node's config) are answered here from the mempool and the block store. A past height is
//! read with the `x-cosmos-block-height` metadata, as with the Cosmos SDK.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cosmrs::proto::cosmos::base::abci::v1beta1::TxResponse;
use cosmrs::proto::cosmos::base::node::v1beta1::{ConfigRequest, ConfigResponse};
use cosmrs::proto::cosmos::base::tendermint::v1beta1::{
    GetBlockByHeightRequest, GetBlockByHeightResponse, GetLatestBlockResponse, GetNodeInfoResponse,
    VersionInfo,
};
use cosmrs::proto::cosmos::tx::v1beta1::{
    BroadcastTxRequest, BroadcastTxResponse, GetTxRequest, GetTxResponse, GetTxsEventRequest,
    GetTxsEventResponse, OrderBy, Tx,
};
use http_body_util::BodyExt;
use prost::Message;
use tendermint_proto::v0_38::abci::RequestQuery;

use super::methods::tx_hash;
use super::node::{ApiContext, BlockError, CommittedTx, SearchFailure};
use super::{bounded_query, MAX_BODY_BYTES};

/// gRPC status codes (grpc/doc/statuscodes.md).
mod code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const NOT_FOUND: u32 = 5;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
}

/// The header a client sets to query at a past height.
const HEIGHT_HEADER: &str = "x-cosmos-block-height";

/// A gRPC error status.
#[derive(Debug, PartialEq)]
pub struct Status {
    code: u32,
    message: String,
}

impl Status {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    /// An ABCI query's failure as the Cosmos SDK maps it to gRPC.
    fn from_query(abci_code: u32, log: &str) -> Self {
        let message = log
            .split_once(" desc = ")
            .filter(|(prefix, _)| prefix.starts_with("rpc error: code = "))
            .map_or(log, |(_, rest)| rest);
        let code = match abci_code {
            22 => code::NOT_FOUND,
            18 | 26 => code::INVALID_ARGUMENT,
            6 => code::UNIMPLEMENTED,
            _ => code::INTERNAL,
        };
        Status::new(code, message)
    }
}

impl IntoResponse for Status {
    /// A "trailers-only" response: the status rides in the headers, with no message.
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(self.code));
        if let Ok(message) = HeaderValue::from_str(&percent_encode(&self.message)) {
            headers.insert("grpc-message", message);
        }
        response
    }
}

/// gRPC's percent-encoding of `grpc-message` (printable ASCII except `%` stays as is).
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One message in gRPC's length-prefixed framing, then `grpc-status: 0` in the trailers.
fn reply(message: &impl Message) -> Response {
    let bytes = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + bytes.len());
    framed.push(0);
    framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    framed.extend_from_slice(&bytes);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code::OK));
    let frames = futures_util::stream::iter([
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(framed))),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    let mut response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The one message of a unary request body.
fn unframe(body: &[u8]) -> Result<&[u8], Status> {
    let invalid = |why: &str| Status::new(code::INVALID_ARGUMENT, why);
    let (&compressed, rest) = body
        .split_first()
        .ok_or_else(|| invalid("the request carries no message"))?;
    if compressed != 0 {
        return Err(Status::new(
            code::UNIMPLEMENTED,
            "compressed messages are not supported: send them uncompressed (grpc-encoding identity)",
        ));
    }
    let length: [u8; 4] = rest
        .get(..4)
        .and_then(|l| l.try_into().ok())
        .ok_or_else(|| invalid("truncated message frame"))?;
    let length = u32::from_be_bytes(length) as usize;
    let message = &rest[4..];
    if message.len() != length {
        return Err(invalid("a unary call carries exactly one whole message"));
    }
    Ok(message)
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| {
        Status::new(
            code::INVALID_ARGUMENT,
            format!("invalid request message: {e}"),
        )
    })
}

/// The gRPC server's router: every path goes to [`call`].
pub fn router(context: Arc<ApiContext>) -> Router {
    Router::new()
        .fallback(call)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

/// Serves the gRPC services on `address` until the process ends (HTTP/2 without TLS, as
/// `grpc.address` in a Cosmos SDK node).
pub async fn serve(context: Arc<ApiContext>, address: &str) -> anyhow::Result<()> {
    super::listen(router(context), address, "Cosmos SDK gRPC services").await
}

async fn call(State(context): State<Arc<ApiContext>>, request: Request) -> Response {
    match answer(context, request).await {
        Ok(response) => response,
        Err(status) => status.into_response(),
    }
}

async fn answer(context: Arc<ApiContext>, request: Request) -> Result<Response, Status> {
    let (parts, body) = request.into_parts();
    if parts.method != axum::http::Method::POST
        || !parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/grpc"))
    {
        return Ok((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this port serves gRPC (HTTP/2, application/grpc); the REST API is on the api.laddr port",
        )
            .into_response());
    }
    let height = match parts.headers.get(HEIGHT_HEADER) {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|h| *h >= 0)
            .ok_or_else(|| {
                Status::new(
                    code::INVALID_ARGUMENT,
                    format!("{HEIGHT_HEADER} must be a block height"),
                )
            })?,
    };
    let body = body
        .collect()
        .await
        .map_err(|e| Status::new(code::RESOURCE_EXHAUSTED, format!("request body: {e}")))?
        .to_bytes();
    let message = unframe(&body)?;
    let path = parts.uri.path();
    match path {
        "/cosmos.tx.v1beta1.Service/BroadcastTx" => broadcast(&context, decode(message)?).await,
        "/cosmos.tx.v1beta1.Service/GetTx" => get_tx(&context, decode(message)?).await,
        "/cosmos.tx.v1beta1.Service/GetTxsEvent" => get_txs_event(&context, decode(message)?).await,
        "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock" => {
            let (block_id, block) = block(&context, None).await?;
            #[allow(deprecated)]
            Ok(reply(&GetLatestBlockResponse {
                block_id,
                block,
                sdk_block: None,
            }))
        }
        "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight" => {
            let request: GetBlockByHeightRequest = decode(message)?;
            let height = u64::try_from(request.height)
                .ok()
                .filter(|h| *h > 0)
                .ok_or_else(|| Status::new(code::INVALID_ARGUMENT, "height must be positive"))?;
            let (block_id, block) = block(&context, Some(height)).await?;
            #[allow(deprecated)]
            Ok(reply(&GetBlockByHeightResponse {
                block_id,
                block,
                sdk_block: None,
            }))
        }
        "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo" => Ok(reply(&GetNodeInfoResponse {
            default_node_info: node_info(&context).await,
            application_version: Some(VersionInfo {
                name: "nesa".into(),
                app_name: "nesad".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
        })),
        "/cosmos.base.node.v1beta1.Service/Config" => {
            let _: ConfigRequest = decode(message)?;
            Ok(reply(&ConfigResponse {
                minimum_gas_price: minimum_gas_price(&context.genesis),
                ..Default::default()
            }))
        }
        _ => query(&context, path.to_owned(), message.to_vec(), height).await,
    }
}

/// The CometBFT node's identity, from its status.
async fn node_info(
    context: &ApiContext,
) -> Option<cosmrs::proto::tendermint::p2p::DefaultNodeInfo> {
    let status = context.status().await.ok()?;
    let node = &status["node_info"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    Some(cosmrs::proto::tendermint::p2p::DefaultNodeInfo {
        default_node_id: text(&node["id"]),
        listen_addr: text(&node["listen_addr"]),
        network: text(&node["network"]),
        version: text(&node["version"]),
        channels: hex::decode(text(&node["channels"])).unwrap_or_default(),
        moniker: text(&node["moniker"]),
        ..Default::default()
    })
}

/// The genesis minimum gas price with its denomination (`0.025unes`), as `minimum-gas-prices`.
fn minimum_gas_price(genesis: &serde_json::Value) -> String {
    let params = &genesis["app_state"]["params"];
    format!(
        "{}{}",
        params["min_gas_price"].as_str().unwrap_or_default(),
        params["fee_denom"].as_str().unwrap_or_default()
    )
}

/// A state query, through the ABCI query router.
async fn query(
    context: &Arc<ApiContext>,
    path: String,
    data: Vec<u8>,
    height: i64,
) -> Result<Response, Status> {
    let app = context.app.clone();
    let response = bounded_query(move || {
        Ok(app.query(RequestQuery {
            path,
            data: data.into(),
            height,
            prove: false,
        }))
    })
    .await
    .map_err(|e| Status::new(code::UNAVAILABLE, e.data))?;
    if response.code != 0 {
        return Err(Status::from_query(response.code, &response.log));
    }
    Ok(reply(&RawMessage(response.value.to_vec())))
}

/// Bytes already encoded as the response message.
#[derive(Debug, Default)]
struct RawMessage(Vec<u8>);

impl Message for RawMessage {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        _: u32,
        _: prost::encoding::WireType,
        _: &mut impl prost::bytes::Buf,
        _: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        Err(prost::DecodeError::new("raw messages are only encoded"))
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

async fn broadcast(
    context: &Arc<ApiContext>,
    request: BroadcastTxRequest,
) -> Result<Response, Status> {
    // BROADCAST_MODE_SYNC (2) and ASYNC (3); BLOCK (1) was removed from the Cosmos SDK.
    if !matches!(request.mode, 0 | 2 | 3) {
        return Err(Status::new(
            code::INVALID_ARGUMENT,
            format!(
                "unsupported broadcast mode {}: use BROADCAST_MODE_SYNC or BROADCAST_MODE_ASYNC",
                request.mode
            ),
        ));
    }
    let tx = request.tx_bytes;
    let hash = hex::encode_upper(tx_hash(&tx).as_bytes());
    let checked = context
        .broadcast(tx)
        .await
        .map_err(|e| Status::new(code::UNAVAILABLE, e))?;
    let (code, codespace, raw_log) = (checked.code, checked.codespace, checked.log);
    Ok(reply(&BroadcastTxResponse {
        tx_response: Some(TxResponse {
            txhash: hash,
            code,
            codespace,
            raw_log,
            ..Default::default()
        }),
    }))
}

async fn get_tx(context: &Arc<ApiContext>, request: GetTxRequest) -> Result<Response, Status> {
    let hash: [u8; 32] = hex::decode(request.hash.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Status::new(
                code::INVALID_ARGUMENT,
                format!("{:?} is not a 32-byte hex hash", request.hash),
            )
        })?;
    let found = context
        .committed_tx(hash)
        .await
        .map_err(|e| Status::new(code::UNAVAILABLE, e))?
        .ok_or_else(|| {
            Status::new(
                code::NOT_FOUND,
                format!("tx not found: {}", request.hash.to_uppercase()),
            )
        })?;
    let (tx, tx_response) = committed_proto(&found);
    Ok(reply(&GetTxResponse {
        tx,
        tx_response: Some(tx_response),
    }))
}

/// `GetTxsEvent`: the transactions whose events satisfy `query` (or the older `events`, joined
/// with AND), a page of at most 100 (`page` from 1, `limit`), in height order.
async fn get_txs_event(
    context: &Arc<ApiContext>,
    request: GetTxsEventRequest,
) -> Result<Response, Status> {
    // Clients before the SDK's v0.50 send `events`, one condition each.
    #[allow(deprecated)]
    let events = request.events;
    let query = if request.query.trim().is_empty() {
        events.join(" AND ")
    } else {
        request.query
    };
    if query.trim().is_empty() {
        return Err(Status::new(code::INVALID_ARGUMENT, "query cannot be empty"));
    }
    let limit = match request.limit {
        0 => 100,
        limit => limit.min(100),
    };
    let descending = request.order_by == OrderBy::Desc as i32;
    let (found, total) = context
        .search_txs(
            &query,
            u32::try_from(request.page.max(1)).unwrap_or(u32::MAX),
            limit as u8,
            descending,
        )
        .await
        .map_err(|e| match e {
            SearchFailure::Invalid(message) => Status::new(code::INVALID_ARGUMENT, message),
            SearchFailure::Internal(message) => Status::new(code::UNAVAILABLE, message),
        })?;
    let (txs, tx_responses): (Vec<Option<Tx>>, Vec<TxResponse>) =
        found.iter().map(committed_proto).unzip();
    #[allow(deprecated)]
    Ok(reply(&GetTxsEventResponse {
        txs: txs.into_iter().map(Option::unwrap_or_default).collect(),
        tx_responses,
        pagination: None,
        total: u64::from(total),
    }))
}

/// A committed transaction as the tx service returns it.
fn committed_proto(found: &CommittedTx) -> (Option<Tx>, TxResponse) {
    let raw = &found.tx;
    let result = &found.result;
    let tx = Tx::decode(raw.as_slice()).ok();
    let response = TxResponse {
        height: found.height,
        txhash: hex::encode_upper(tx_hash(raw).as_bytes()),
        codespace: result.codespace.clone(),
        code: result.code,
        data: hex::encode_upper(&result.data),
        raw_log: result.log.clone(),
        info: result.info.clone(),
        gas_wanted: result.gas_wanted,
        gas_used: result.gas_used,
        tx: tx.as_ref().map(|tx| cosmrs::Any {
            type_url: "/cosmos.tx.v1beta1.Tx".into(),
            value: tx.encode_to_vec(),
        }),
        timestamp: found.time.clone(),
        ..Default::default()
    };
    (tx, response)
}

/// The block at `height` (the latest when `None`), as the tendermint service returns it.
async fn block(
    context: &Arc<ApiContext>,
    height: Option<u64>,
) -> Result<
    (
        Option<tendermint_proto::v0_38::types::BlockId>,
        Option<tendermint_proto::v0_38::types::Block>,
    ),
    Status,
> {
    match context.block(height).await {
        Ok((id, block)) => Ok((Some(id), Some(block))),
        Err(BlockError::TooHigh { height, latest }) => Err(Status::new(
            code::INVALID_ARGUMENT,
            format!("requested block height {height} is bigger than the chain length {latest}"),
        )),
        Err(BlockError::Missing(height)) => Err(Status::new(
            code::NOT_FOUND,
            format!("no block stored at height {height}"),
        )),
        Err(BlockError::Internal(e)) => Err(Status::new(code::INTERNAL, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unary_body_holds_exactly_one_uncompressed_message() {
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 8, 1]).unwrap(), &[8, 1]);
        assert_eq!(unframe(&[0, 0, 0, 0, 0]).unwrap(), &[] as &[u8]);
        assert_eq!(unframe(&[]).unwrap_err().code, code::INVALID_ARGUMENT);
        assert_eq!(
            unframe(&[0, 0, 0]).unwrap_err().code,
            code::INVALID_ARGUMENT
        );
        assert_eq!(
            unframe(&[0, 0, 0, 0, 3, 8, 1]).unwrap_err().code,
            code::INVALID_ARGUMENT
        );
        assert_eq!(
            unframe(&[1, 0, 0, 0, 0]).unwrap_err().code,
            code::UNIMPLEMENTED
        );
    }

    #[test]
    fn query_failures_map_to_the_sdks_grpc_codes_and_messages_are_percent_encoded() {
        assert_eq!(
            Status::from_query(
                22,
                "rpc error: code = NotFound desc = account nesa1x not found"
            ),
            Status::new(code::NOT_FOUND, "account nesa1x not found")
        );
        assert_eq!(
            Status::from_query(6, "unknown path").code,
            code::UNIMPLEMENTED
        );
        assert_eq!(percent_encode("a b%c\né"), "a b%25c%0A%C3%A9");
    }
}

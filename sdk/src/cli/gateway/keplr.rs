//! Paying from the user's own wallet (Keplr's `window.keplr` in the page) instead of the
//! gateway's: the gateway still reads the chat, maps the ids of an ee-v1 kernel with the
//! user's key and follows the settlement, but the submission is signed in the wallet.
//!
//! `POST /nesa/v1/keplr/prepare` takes a chat completion request and the wallet's public key,
//! checks and prices the request exactly as `/v1/chat/completions` does, simulates the
//! submission from the wallet's account, and answers the `SignDoc` for Keplr's `signDirect`
//! under an id. `POST /nesa/v1/keplr/submit` takes that id, the signed doc and the signature,
//! broadcasts the transaction and answers as `/v1/chat/completions` would (streamed when the
//! prepared request asked for it). The wallet may change the fee it pays (its own auth info),
//! never the messages: the body must be the one prepared. A prepared submission is used once
//! and kept at most [`PREPARED_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cosmrs::crypto::PublicKey;
use nesa_sdk::market::SubmitError;
use nesa_sdk::{Address, AddressExt, ClientError, SignDocParts};
use serde::Deserialize;
use serde_json::json;

use super::chat::{self, answer, balance_of, in_flight_slot, prepare, Pending, Prepared};
use super::openai::{read_body as read, ApiError, ChatRequest};
use super::Gateway;

/// How long a prepared submission waits for its signature.
pub const PREPARED_TTL: Duration = Duration::from_secs(600);
/// Most prepared submissions kept at once.
const MAX_PREPARED: usize = 64;

/// Submissions waiting for the wallet's signature, by id.
#[derive(Default)]
pub struct Unsigned {
    waiting: Mutex<HashMap<String, Waiting>>,
}

struct Waiting {
    prepared: Prepared,
    doc: SignDocParts,
    signer: Address,
    since: Instant,
}

impl Unsigned {
    fn insert(&self, waiting: Waiting) -> Result<String, ApiError> {
        let mut map = self.waiting.lock().expect("unsigned submissions lock");
        map.retain(|_, w| w.since.elapsed() < PREPARED_TTL);
        if map.len() >= MAX_PREPARED {
            return Err(ApiError::busy(format!(
                "{MAX_PREPARED} submissions already wait for a signature: sign or let them expire"
            )));
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        map.insert(id.clone(), waiting);
        Ok(id)
    }

    fn take(&self, id: &str) -> Option<Waiting> {
        let mut map = self.waiting.lock().expect("unsigned submissions lock");
        map.remove(id).filter(|w| w.since.elapsed() < PREPARED_TTL)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    /// The chat completion request, as `/v1/chat/completions` takes it.
    request: ChatRequest,
    /// The wallet's compressed secp256k1 public key (Keplr's `getKey().pubKey`), base64.
    pub_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    id: String,
    /// `signed.bodyBytes` of Keplr's `signDirect` answer, base64.
    body_bytes: String,
    /// `signed.authInfoBytes`, base64 (the wallet may have changed the fee).
    auth_info_bytes: String,
    /// `signature.signature`, base64 (64 bytes r ‖ s).
    signature: String,
}

/// `POST /nesa/v1/keplr/prepare`.
pub async fn prepare_submission(
    State(gateway): State<Arc<Gateway>>,
    body: axum::body::Bytes,
) -> Response {
    let request: PrepareRequest = match read(&body, "a prepare request") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    match prepared(&gateway, request).await {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn prepared(
    gateway: &Arc<Gateway>,
    request: PrepareRequest,
) -> Result<serde_json::Value, ApiError> {
    let public_key = decode_base64(&request.pub_key, "pub_key")
        .ok()
        .filter(|bytes| bytes.len() == 33)
        .and_then(|bytes| k256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes).ok())
        .map(PublicKey::from)
        .ok_or_else(|| {
            ApiError::invalid(
                Some("pub_key"),
                "pub_key must be a compressed secp256k1 public key (33 bytes), base64",
            )
        })?;
    let signer = Address::from_public_key(&public_key)
        .map_err(|e| ApiError::invalid(Some("pub_key"), e.to_string()))?;
    let prepared = prepare(gateway, request.request).await?;
    let balance = balance_of(gateway, &signer).await?;
    if balance < prepared.escrow.amount {
        return Err(ApiError::insufficient_quota(format!(
            "the wallet {signer} holds {balance}unes and this request escrows {}unes plus the transaction fee. Nothing was spent.",
            prepared.escrow.amount
        )));
    }
    let doc = gateway
        .market()
        .submission_to_sign(public_key, &prepared.query, &prepared.escrow)
        .await
        .map_err(|error| match error {
            SubmitError::Client(ClientError::AccountNotFound(address)) => {
                ApiError::insufficient_quota(format!("the wallet {address} has never been funded"))
            }
            other => chat::submit_error(other),
        })?;
    let escrow = prepared.escrow.clone();
    let answer = json!({
        "sign_doc": {
            "body_bytes": BASE64.encode(&doc.body_bytes),
            "auth_info_bytes": BASE64.encode(&doc.auth_info_bytes),
            "chain_id": doc.chain_id,
            "account_number": doc.account_number.to_string(),
        },
        "signer": signer.to_string(),
        "escrow": {"denom": escrow.denom, "amount": escrow.amount.to_string()},
        "expires_in": PREPARED_TTL.as_secs(),
    });
    let id = gateway.unsigned.insert(Waiting {
        prepared,
        doc,
        signer,
        since: Instant::now(),
    })?;
    let mut answer = answer;
    answer["id"] = json!(id);
    Ok(answer)
}

/// `POST /nesa/v1/keplr/submit`.
pub async fn submit_signed(
    State(gateway): State<Arc<Gateway>>,
    body: axum::body::Bytes,
) -> Response {
    let request: SubmitRequest = match read(&body, "a signed submission") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    // The answer is followed in its own task: a page that goes away does not lose the query.
    match tokio::spawn(async move {
        match submitted(&gateway, request).await {
            Ok(pending) => answer(gateway, pending).await,
            Err(error) => error.into_response(),
        }
    })
    .await
    {
        Ok(response) => response,
        Err(error) => ApiError::upstream("internal_error", error.to_string())
            .after_submission()
            .into_response(),
    }
}

async fn submitted(gateway: &Arc<Gateway>, request: SubmitRequest) -> Result<Pending, ApiError> {
    let body_bytes = decode_base64(&request.body_bytes, "body_bytes")?;
    let auth_info_bytes = decode_base64(&request.auth_info_bytes, "auth_info_bytes")?;
    let signature = decode_base64(&request.signature, "signature")?;
    if signature.len() != 64 {
        return Err(ApiError::invalid(
            Some("signature"),
            format!("a signature is 64 bytes (r ‖ s), got {}", signature.len()),
        ));
    }
    let permit = in_flight_slot(gateway)?;
    let waiting = gateway.unsigned.take(&request.id).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: Some("unknown_submission"),
        param: Some("id"),
        message: format!(
            "no prepared submission {:?}: it was used, or it expired after {} s; prepare it again",
            request.id,
            PREPARED_TTL.as_secs()
        ),
        no_retry: true,
    })?;
    if body_bytes != waiting.doc.body_bytes {
        return Err(ApiError::invalid(
            Some("body_bytes"),
            "the signed transaction's messages are not the ones prepared; nothing was sent",
        ));
    }
    let doc = SignDocParts {
        auth_info_bytes,
        ..waiting.doc
    };
    let tx = doc.with_signature(signature);
    let submitted = gateway
        .market()
        .submit_signed(&tx, waiting.prepared.escrow.clone())
        .await
        .map_err(|error| match error {
            SubmitError::Client(ClientError::CheckTx { log, .. }) => ApiError::invalid(
                None,
                format!(
                    "the chain refused the signed transaction of {}: {log}; nothing was spent",
                    waiting.signer
                ),
            ),
            // Past CheckTx the transaction may be in a block: never invite a second payment.
            other => ApiError::upstream(
                "submission_unconfirmed",
                format!(
                    "transaction {} was accepted but its result could not be read ({other}): look it up with `nesa query tx {}` before asking again",
                    tx.hash, tx.hash
                ),
            )
            .after_submission(),
        })?;
    Ok(Pending::new(waiting.prepared, submitted, None, permit))
}

fn decode_base64(text: &str, param: &'static str) -> Result<Vec<u8>, ApiError> {
    BASE64
        .decode(text.trim())
        .map_err(|e| ApiError::invalid(Some(param), format!("{param} is not base64: {e}")))
}

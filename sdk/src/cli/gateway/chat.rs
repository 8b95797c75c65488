//! `POST /v1/chat/completions`: a chat becomes one query on chain. Everything that can refuse
//! the request — the API key, the request itself, the model, the context, the caps, the
//! wallet's balance, the market's quote and a simulation of the submission — runs before any
//! funds move, and answers with an OpenAI error. Once submitted, the gateway waits for the
//! nodes' settlement: the answer arrives whole (commit–reveal lets no node show tokens early),
//! then is returned, or streamed as OpenAI's chunks, with SSE comments reporting the query's
//! phases while it waits.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nesa_market::market::{QueryResponse, QueryStatus};
use nesa_market::registry::Unrunnable;
use nesa_sdk::ee::Vocabulary;
use nesa_sdk::market::{QueryRequest, SubmitError, Submitted};
use nesa_sdk::{Address, ClientError, Coin};
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::models::{resolve, Model};
use super::openai::{apply_stop, read_body, ApiError, ChatRequest, Checked, Usage};
use super::spending::Reservation;
use super::{now_seconds, Gateway};
use crate::cli::ask::summary::AskSummary;

/// A request checked and priced by the market, not yet submitted.
pub(super) struct Prepared {
    model: Model,
    vocabulary: Option<Vocabulary>,
    checked: Checked,
    pub(super) query: QueryRequest,
    pub(super) escrow: Coin,
    stream: bool,
    include_usage: bool,
}

/// A submitted request waiting for its settlement.
pub(super) struct Pending {
    submitted: Submitted,
    prepared: Prepared,
    /// The escrow counted against the gateway wallet's caps; none when another wallet paid.
    reservation: Option<Reservation>,
    created: u64,
    started: Instant,
    _permit: OwnedSemaphorePermit,
}

impl Pending {
    pub(super) fn new(
        prepared: Prepared,
        submitted: Submitted,
        reservation: Option<Reservation>,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        Pending {
            submitted,
            prepared,
            reservation,
            created: now_seconds(),
            started: Instant::now(),
            _permit: permit,
        }
    }
}

/// A settled answer.
struct Completion {
    /// The answer's tokens as text pieces, in order (their concatenation is `text`).
    pieces: Vec<String>,
    finish_reason: &'static str,
    usage: Usage,
    /// The settlement: query, nodes, payments, refund, cost.
    nesa: Value,
}

/// `POST /v1/chat/completions` (the API key was checked before the body was read). The work
/// runs in its own task: a client that goes away does not cancel a query it paid for, and its
/// cost is still recorded.
pub async fn completions(State(gateway): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let request: ChatRequest = match read_body(&body, "a chat completion request") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    match tokio::spawn(serve(gateway, request)).await {
        Ok(response) => response,
        Err(error) => ApiError::upstream("internal_error", error.to_string())
            .after_submission()
            .into_response(),
    }
}

async fn serve(gateway: Arc<Gateway>, request: ChatRequest) -> Response {
    let pending = match submit(&gateway, request).await {
        Ok(pending) => pending,
        Err(error) => return error.into_response(),
    };
    answer(gateway, pending).await
}

/// The answer to a submitted request once settled: one JSON completion, or OpenAI's stream.
pub(super) async fn answer(gateway: Arc<Gateway>, pending: Pending) -> Response {
    let stream = pending.prepared.stream;
    tracing::info!(
        query = pending.submitted.query_id,
        model = %pending.prepared.model.id,
        escrow = %pending.submitted.escrow,
        stream,
        "submitted"
    );
    if stream {
        return streamed(gateway, pending);
    }
    let (id, model, created) = (
        pending.submitted.query_id,
        pending.prepared.model.id.clone(),
        pending.created,
    );
    match finish(&gateway, pending, |_| {}).await {
        Ok(completion) => Json(json!({
            "id": completion_id(id),
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": Value::Null,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion.pieces.concat(), "refusal": Value::Null},
                "logprobs": Value::Null,
                "finish_reason": completion.finish_reason,
            }],
            "usage": completion.usage,
            "nesa": completion.nesa,
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

fn completion_id(query_id: u64) -> String {
    format!("chatcmpl-nesa-{query_id}")
}

/// A slot among the requests the gateway waits on at once.
pub(super) fn in_flight_slot(gateway: &Arc<Gateway>) -> Result<OwnedSemaphorePermit, ApiError> {
    gateway.in_flight.clone().try_acquire_owned().map_err(|_| {
        ApiError::busy(
            "the gateway is waiting on as many queries as it allows (--max-in-flight): retry shortly",
        )
    })
}

/// Checks `request` and turns it into a query the market prices: the model, the prompt's
/// tokens (permuted for an ee-v1 kernel), the context, the sampling, the quoted escrow.
pub(super) async fn prepare(gateway: &Gateway, request: ChatRequest) -> Result<Prepared, ApiError> {
    let checked = request.check()?;
    let model = resolve(gateway, &request.model).await?;
    let vocabulary = model.vocabulary(gateway)?;
    let prompt = model.tokenizer.chat_conversation(&checked.conversation());
    let input = model
        .tokenizer
        .encode(&prompt)
        .map_err(|e| ApiError::invalid(Some("messages"), e.to_string()))?;
    match model.kernel.check_runnable(&input, checked.max_tokens) {
        Ok(()) => {}
        Err(Unrunnable::ContextExceeded { .. }) => {
            return Err(ApiError::context_too_long(format!(
                "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the messages, {} in the completion). Please reduce the length of the messages or completion.",
                model.kernel.context_length,
                input.len() as u64 + u64::from(checked.max_tokens),
                input.len(),
                checked.max_tokens
            )))
        }
        Err(other) => return Err(ApiError::invalid(Some("model"), other.to_string())),
    }
    let input = match &vocabulary {
        Some(vocabulary) => vocabulary
            .encrypt(&input)
            .map_err(|e| ApiError::invalid(Some("model"), e.to_string()))?,
        None => input,
    };
    let sampling =
        crate::cli::ask::sampling_with_top_p(checked.temperature, checked.top_p, checked.seed)
            .map_err(|e| ApiError::invalid(Some("temperature"), e.to_string()))?;
    let query = QueryRequest {
        kernel_id: model.kernel.id,
        input,
        max_output_tokens: checked.max_tokens,
        sampling,
        redundancy: gateway.redundancy,
    };
    let escrow = gateway.market().quote(&query).await.map_err(submit_error)?;
    Ok(Prepared {
        model,
        vocabulary,
        checked,
        query,
        escrow,
        stream: request.stream.unwrap_or(false),
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
    })
}

/// Checks `request` and submits it as a query paid from the gateway's wallet; any refusal
/// comes before funds move.
async fn submit(gateway: &Arc<Gateway>, request: ChatRequest) -> Result<Pending, ApiError> {
    let permit = in_flight_slot(gateway)?;
    let prepared = prepare(gateway, request).await?;
    let escrow = prepared.escrow.clone();
    let reservation = gateway
        .ledger
        .reserve(escrow.amount, now_seconds())
        .map_err(|e| ApiError::insufficient_quota(e.to_string()))?;
    let submitted = async {
        let balance = balance_of(gateway, &gateway.address).await?;
        if balance < escrow.amount {
            return Err(empty_wallet(gateway, balance, escrow.amount));
        }
        let escrowed = escrow.amount;
        let _turn = gateway.submitting.lock().await;
        gateway
            .market()
            .submit_with_escrow(&gateway.key, &prepared.query, escrow)
            .await
            .map_err(|error| match submit_error(error) {
                // The escrow fits the balance: the fee is what runs short.
                e if e.code == Some("insufficient_quota") => {
                    empty_wallet(gateway, balance, escrowed)
                }
                e => e,
            })
    }
    .await;
    match submitted {
        Ok(submitted) => Ok(Pending::new(prepared, submitted, Some(reservation), permit)),
        Err(error) => {
            gateway.ledger.settle(reservation, 0);
            Err(error)
        }
    }
}

/// `address`'s balance of unes (none for an account never funded).
pub(super) async fn balance_of(gateway: &Gateway, address: &Address) -> Result<u128, ApiError> {
    match gateway.client.balance(address, "unes").await {
        Ok(coin) => Ok(coin.amount),
        Err(ClientError::AccountNotFound(_)) => Ok(0),
        Err(error) => Err(ApiError::upstream("chain_unavailable", error.to_string())),
    }
}

fn empty_wallet(gateway: &Gateway, balance: u128, escrow: u128) -> ApiError {
    let needs = format!("this request escrows {escrow}unes plus the transaction fee");
    ApiError::insufficient_quota(format!(
        "You exceeded your current quota: the gateway's wallet {} ({}) holds {balance}unes and {needs}. Fund it (e.g. nesa tx bank send <from> {} <amount>unes). Nothing was spent.",
        gateway.key_name, gateway.address, gateway.address
    ))
}

/// A refusal of the chain or the market as an OpenAI error.
pub(super) fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Refused(reason) if reason.contains("insufficient funds") => {
            ApiError::insufficient_quota(reason)
        }
        SubmitError::Refused(reason) => ApiError::invalid(None, reason),
        SubmitError::Client(ClientError::AccountNotFound(address)) => ApiError::insufficient_quota(
            format!("the gateway's wallet {address} has never been funded"),
        ),
        other => ApiError::upstream("chain_unavailable", other.to_string()),
    }
}

/// Waits for `pending`'s settlement and reads the answer; records its cost against the day.
async fn finish(
    gateway: &Gateway,
    pending: Pending,
    progress: impl FnMut(&QueryResponse),
) -> Result<Completion, ApiError> {
    let Pending {
        submitted,
        prepared:
            Prepared {
                model,
                vocabulary,
                checked,
                ..
            },
        reservation,
        started,
        ..
    } = pending;
    let settle = |cost: u128| {
        if let Some(reservation) = reservation {
            gateway.ledger.settle(reservation, cost);
        }
    };
    let id = submitted.query_id;
    let followed = gateway
        .market()
        .wait_for_settlement(&gateway.key, id, gateway.timeout, progress)
        .await;
    let state = match followed {
        Ok(state) => state,
        Err(error) => {
            // Still open: its escrow stays reserved until the day is over.
            settle(submitted.escrow.amount + submitted.fee);
            return Err(ApiError::upstream(
                "settlement_timeout",
                format!("query {id} is not settled ({error}): follow it with `nesa query market query {id}`; a query that fails refunds its escrow"),
            )
            .after_submission());
        }
    };
    let summary = AskSummary::new(
        &state,
        None,
        submitted.tx_hash.clone(),
        Vec::new(),
        Some(started.elapsed().as_secs_f64()),
    );
    let cost = state
        .query
        .escrow
        .amount
        .u128()
        .saturating_sub(summary.refunded.u128());
    settle(cost + submitted.fee);
    tracing::info!(query = id, status = ?state.query.status, cost, "closed");
    if state.query.status != QueryStatus::Settled {
        return Err(
            ApiError::upstream("query_disputed", summary.dispute_message()).after_submission(),
        );
    }
    let mut nesa = serde_json::to_value(&summary).unwrap_or(Value::Null);
    nesa["cost"] = json!(cost.to_string());
    nesa["fee"] = json!(submitted.fee.to_string());
    nesa["encrypted"] = json!(vocabulary.is_some());
    nesa["model"] = json!(model.id);

    let unreadable_answer = |e: &dyn std::fmt::Display| {
        ApiError::upstream("unreadable_answer", e.to_string()).after_submission()
    };
    let ids = crate::cli::ask::output_ids(&state, vocabulary.as_ref())
        .map_err(|e| unreadable_answer(&e))?;
    let mut decoder = model.tokenizer.stream_decoder();
    let mut pieces = Vec::with_capacity(ids.len());
    for &token in &ids {
        let piece = decoder.push(token).map_err(|e| unreadable_answer(&e))?;
        if !piece.is_empty() {
            pieces.push(piece);
        }
    }
    let whole = model
        .tokenizer
        .decode(&ids)
        .map_err(|e| unreadable_answer(&e))?;
    let (text, stopped) = apply_stop(&whole, &checked.stop);
    let pieces = cut_pieces(pieces, &text);
    let output_tokens = summary.output_tokens;
    let ended = ids
        .last()
        .is_some_and(|t| model.tokenizer.stop_tokens().contains(t));
    let finish_reason = if !stopped && !ended && output_tokens >= checked.max_tokens {
        "length"
    } else {
        "stop"
    };
    Ok(Completion {
        pieces,
        finish_reason,
        usage: Usage::new(summary.input_tokens, output_tokens),
        nesa,
    })
}

/// `pieces` cut to `text`, a prefix of their concatenation (an answer cut at a stop sequence),
/// with whatever the decoder still held back appended.
fn cut_pieces(pieces: Vec<String>, text: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut at = 0;
    for piece in pieces {
        if at >= text.len() {
            break;
        }
        let end = (at + piece.len()).min(text.len());
        match text.get(at..end) {
            Some(part) => out.push(part.to_owned()),
            None => break,
        }
        at = end;
    }
    if at < text.len() {
        out.push(text[at..].to_owned());
    }
    out
}

/// The answer as OpenAI's stream: the role first, SSE comments while the query runs, the
/// content piece by piece once settled, the finish reason with the settlement, usage when
/// asked for, then `[DONE]`. An error after the stream began is sent as an `error` object.
fn streamed(gateway: Arc<Gateway>, pending: Pending) -> Response {
    let (events, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let id = completion_id(pending.submitted.query_id);
    let query_id = pending.submitted.query_id;
    let (model, created, include_usage) = (
        pending.prepared.model.id.clone(),
        pending.created,
        pending.prepared.include_usage,
    );
    let chunk = move |delta: Value, finish_reason: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": Value::Null,
            "choices": [{"index": 0, "delta": delta, "logprobs": Value::Null, "finish_reason": finish_reason}],
        })
    };
    let data = |value: &Value| Event::default().data(value.to_string());
    let _ = events.send(data(&chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )));
    let _ = events.send(Event::default().comment(format!("query {query_id} submitted")));
    tokio::spawn(async move {
        let phases = events.clone();
        let mut last_phase = String::new();
        let finished = finish(&gateway, pending, |state| {
            let phase = format!("{:?}", state.phase).to_lowercase();
            if phase != last_phase {
                let _ = phases.send(Event::default().comment(format!("query {query_id} {phase}")));
                last_phase = phase;
            }
        })
        .await;
        match finished {
            Ok(completion) => {
                for piece in &completion.pieces {
                    let _ = events.send(data(&chunk(json!({"content": piece}), Value::Null)));
                }
                let mut last = chunk(json!({}), json!(completion.finish_reason));
                last["nesa"] = completion.nesa;
                let _ = events.send(data(&last));
                if include_usage {
                    let mut usage = chunk(json!({}), Value::Null);
                    usage["choices"] = json!([]);
                    usage["usage"] = json!(completion.usage);
                    let _ = events.send(data(&usage));
                }
            }
            Err(error) => {
                let _ = events.send(data(&error.body()));
            }
        }
        let _ = events.send(Event::default().data("[DONE]"));
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_at_a_stop_keep_the_text_exactly() {
        let pieces = vec!["Par".to_owned(), "is".to_owned(), " END".to_owned()];
        assert_eq!(cut_pieces(pieces.clone(), "Paris "), ["Par", "is", " "]);
        assert_eq!(
            cut_pieces(pieces.clone(), "Paris END"),
            ["Par", "is", " END"]
        );
        assert_eq!(cut_pieces(pieces, "Paris END!"), ["Par", "is", " END", "!"]);
        assert!(cut_pieces(vec!["a".to_owned()], "").is_empty());
    }
}

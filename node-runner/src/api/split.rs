//! Split mode, node side: a client keeps the embedding and the head (and optionally the first
//! blocks) and sends hidden states; the node runs the remaining blocks with a KV cache per
//! client session and returns the last position's hidden state. No token id crosses this API.
//!
//! The endpoint is public (it is published on chain), so every session is bound to the client
//! that opened it: the first step answers a session token that later steps and the close must
//! carry. Sessions are capped in number and in KV-cache memory, idle ones expire, and requests
//! beyond the compute slots are answered 503 rather than queued without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use nesa_engine::{Hidden, KvCache};
use nesa_sdk::split::{ForwardRequest, ForwardResponse, SESSION_TOKEN_HEADER};

use super::{busy, error, ApiLimits, ApiState};

struct Session {
    cache: KvCache,
    first_layer: usize,
}

/// One open session: who owns it, what memory it holds, and its cache unless a step is
/// computing on it.
struct Entry {
    token_digest: [u8; 32],
    /// KV bytes the session holds (or will hold once its running step ends).
    kv_bytes: usize,
    last_used: Instant,
    /// `None` while a step computes on it.
    session: Option<Session>,
}

/// Open split sessions. A session is taken out while it computes, so sessions run in
/// parallel and one session's steps cannot interleave.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Entry>>);

impl Sessions {
    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.0.lock().expect("sessions lock").len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts a session that lives as long as a connection (a shard stream) against the
    /// same caps as split sessions; it holds no KV bytes yet and never expires on its own.
    pub(super) fn admit_stream(&self, limits: &ApiLimits) -> Result<String, String> {
        let mut sessions = self.0.lock().expect("sessions lock");
        let now = make_room(&mut sessions, limits).map_err(|open| {
            format!("this node has {open} sessions open, its limit; retry later")
        })?;
        let id = format!("stream-{}", new_token());
        sessions.insert(
            id.clone(),
            Entry {
                token_digest: digest(&new_token()),
                kv_bytes: 0,
                last_used: now,
                session: None,
            },
        );
        Ok(id)
    }

    /// Lets session `id` hold `kv_bytes` if all sessions together stay within the budget.
    pub(super) fn resize(&self, id: &str, kv_bytes: usize, limits: &ApiLimits) -> bool {
        let mut sessions = self.0.lock().expect("sessions lock");
        if over_budget(&sessions, id, kv_bytes, limits) {
            return false;
        }
        if let Some(entry) = sessions.get_mut(id) {
            entry.kv_bytes = kv_bytes;
            entry.last_used = Instant::now();
        }
        true
    }

    /// Ends session `id`.
    pub(super) fn remove(&self, id: &str) {
        self.0.lock().expect("sessions lock").remove(id);
    }
}

/// Whether session `id` holding `kv_bytes` would take all sessions past the KV budget.
fn over_budget(
    sessions: &HashMap<String, Entry>,
    id: &str,
    kv_bytes: usize,
    limits: &ApiLimits,
) -> bool {
    let held_by_others: usize = sessions
        .iter()
        .filter(|(other, _)| *other != id)
        .map(|(_, e)| e.kv_bytes)
        .sum();
    held_by_others + kv_bytes > limits.kv_budget_bytes
}

/// Closes idle sessions; the time now if another session fits under the cap, else the
/// number open.
fn make_room(sessions: &mut HashMap<String, Entry>, limits: &ApiLimits) -> Result<Instant, usize> {
    let now = Instant::now();
    sessions.retain(|_, e| {
        e.session.is_none() || now.duration_since(e.last_used) < limits.session_idle
    });
    if sessions.len() >= limits.max_sessions {
        return Err(sessions.len());
    }
    Ok(now)
}

fn valid_session(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares digests in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn owns(entry: &Entry, token: Option<&str>) -> bool {
    token.is_some_and(|token| same(&entry.token_digest, &digest(token)))
}

fn not_owner() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "this session belongs to another client: send the token its first step returned",
    )
}

/// A fresh random session token (256 bits, hex).
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

pub(super) async fn forward(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<ForwardRequest>,
) -> Response {
    if !valid_session(&request.session) {
        return error(
            StatusCode::BAD_REQUEST,
            "session must be 1-64 characters of A-Z a-z 0-9 _ -",
        );
    }
    let model = state.worker.model();
    let loaded = model.loaded_layers();
    if request.first_layer < loaded.start || request.first_layer > loaded.end {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "first_layer {} is outside the blocks this node serves ({}..{})",
                request.first_layer, loaded.start, loaded.end
            ),
        );
    }
    let config = model.config();
    let width = config.hidden_size;
    let rows = request.hidden.len().div_ceil(width.max(1));
    let end = request.position.saturating_add(rows);
    if end > config.context_length {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "positions {}..{end} exceed the model's context length {}",
                request.position, config.context_length
            ),
        );
    }
    let layers = request.first_layer..loaded.end;
    let bytes_per_position = model.kv_bytes_per_position(layers.len());
    let kv_bytes = end * bytes_per_position;
    let Ok(permit) = state.limits.slots.clone().try_acquire_owned() else {
        return busy("the node is busy computing other requests; retry shortly");
    };
    let limits = &state.limits;
    let (session, token) = {
        let mut sessions = state.split.0.lock().expect("sessions lock");
        let over_budget = over_budget(&sessions, &request.session, kv_bytes, limits);
        match sessions.get_mut(&request.session) {
            Some(entry) => {
                if !owns(entry, request.token.as_deref()) {
                    return not_owner();
                }
                let Some(session) = entry.session.take() else {
                    return error(StatusCode::CONFLICT, "session is busy with another step");
                };
                if session.first_layer != request.first_layer {
                    let first = session.first_layer;
                    entry.session = Some(session);
                    return error(
                        StatusCode::CONFLICT,
                        format!(
                            "session started at layer {first}, not {}",
                            request.first_layer
                        ),
                    );
                }
                if over_budget {
                    entry.session = Some(session);
                    return busy("the node's split-mode memory is full; retry shortly");
                }
                entry.kv_bytes = kv_bytes;
                entry.last_used = Instant::now();
                (session, None)
            }
            None => {
                if request.position != 0 {
                    return error(
                        StatusCode::NOT_FOUND,
                        "unknown session (expired or never started): start again at position 0",
                    );
                }
                let now = match make_room(&mut sessions, limits) {
                    Ok(now) => now,
                    Err(open) => {
                        return error(
                            StatusCode::TOO_MANY_REQUESTS,
                            format!(
                                "this node has {open} split sessions open, its limit; retry later"
                            ),
                        )
                    }
                };
                if over_budget {
                    return busy("the node's split-mode memory is full; retry shortly");
                }
                let token = new_token();
                sessions.insert(
                    request.session.clone(),
                    Entry {
                        token_digest: digest(&token),
                        kv_bytes,
                        last_used: now,
                        session: None,
                    },
                );
                let session = Session {
                    cache: model.new_cache(layers.clone()),
                    first_layer: request.first_layer,
                };
                (session, Some(token))
            }
        }
    };
    let id = request.session.clone();
    let owner = match (&token, &request.token) {
        (Some(token), _) | (None, Some(token)) => digest(token),
        (None, None) => unreachable!("an existing session was checked for its token"),
    };
    let created = token.is_some();
    let worker = state.worker.clone();
    let (values, position) = (request.hidden, request.position);
    // The step runs in the engine's shared batch; the session's cache travels with it.
    let outcome = tokio::spawn(async move {
        let _permit = permit;
        let Session { cache, first_layer } = session;
        let hidden = match Hidden::from_vec(values, width) {
            Ok(hidden) => hidden,
            Err(e) => return (Some(Session { cache, first_layer }), Err(e)),
        };
        let (result, cache) = worker
            .forward(hidden, layers.clone(), position, cache)
            .await;
        let result = result.and_then(|out| {
            let values = out.to_vec()?;
            Ok(values[values.len() - width..].to_vec())
        });
        (cache.map(|cache| Session { cache, first_layer }), result)
    })
    .await;
    let mut sessions = state.split.0.lock().expect("sessions lock");
    // The session may have been closed by its owner while the step ran.
    let still_open = sessions
        .get(&id)
        .is_some_and(|e| same(&e.token_digest, &owner));
    let (session, result) = match outcome {
        Ok((Some(session), result)) => (session, result),
        Ok((None, _)) | Err(_) => {
            if still_open {
                sessions.remove(&id);
            }
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the engine stopped during the step",
            );
        }
    };
    if still_open && created && result.is_err() {
        // A session whose first step failed holds nothing worth keeping.
        sessions.remove(&id);
    } else if let Some(entry) = sessions.get_mut(&id).filter(|_| still_open) {
        entry.kv_bytes = session.cache.len() * bytes_per_position;
        entry.last_used = Instant::now();
        entry.session = Some(session);
    }
    match result {
        Ok(hidden) if still_open => Json(ForwardResponse {
            hidden,
            layers: [request.first_layer, loaded.end],
            token,
        })
        .into_response(),
        Ok(_) => error(StatusCode::NOT_FOUND, "the session was closed"),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(super) async fn close(
    State(state): State<Arc<ApiState>>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = headers
        .get(SESSION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    let mut sessions = state.split.0.lock().expect("sessions lock");
    match sessions.get(&session) {
        None => error(StatusCode::NOT_FOUND, "unknown session"),
        Some(entry) if !owns(entry, token) => not_owner(),
        Some(_) => {
            sessions.remove(&session);
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

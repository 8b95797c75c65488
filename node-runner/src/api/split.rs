//! Split mode, node side: a client keeps the embedding and the head (and optionally the first
//! blocks) and sends hidden states; the node runs the remaining blocks with a KV cache per
//! client session and returns the last position's hidden state. No token id crosses this API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use nesa_engine::{Hidden, KvCache};
use nesa_sdk::split::{ForwardRequest, ForwardResponse};

use super::ApiState;

/// Most sessions kept; the least recently used one is dropped beyond this.
const MAX_SESSIONS: usize = 32;

struct Session {
    cache: KvCache,
    first_layer: usize,
    last_used: Instant,
}

/// Open split sessions. A session is taken out while it computes, so sessions run in
/// parallel and one session's steps cannot interleave.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Option<Session>>>);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

fn valid_session(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
    let loaded = state.worker.model.loaded_layers();
    if request.first_layer < loaded.start || request.first_layer > loaded.end {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "first_layer {} is outside the blocks this node serves ({}..{})",
                request.first_layer, loaded.start, loaded.end
            ),
        );
    }
    let layers = request.first_layer..loaded.end;
    let session = {
        let mut sessions = state.split.0.lock().expect("sessions lock");
        match sessions.get_mut(&request.session) {
            Some(slot) => match slot.take() {
                Some(session) if session.first_layer == request.first_layer => session,
                Some(session) => {
                    let first = session.first_layer;
                    *slot = Some(session);
                    return error(
                        StatusCode::CONFLICT,
                        format!(
                            "session started at layer {first}, not {}",
                            request.first_layer
                        ),
                    );
                }
                None => return error(StatusCode::CONFLICT, "session is busy with another step"),
            },
            None => {
                if request.position != 0 {
                    return error(
                        StatusCode::NOT_FOUND,
                        "unknown session (expired or never started): start again at position 0",
                    );
                }
                evict_oldest(&mut sessions);
                sessions.insert(request.session.clone(), None);
                Session {
                    cache: state.worker.model.new_cache(layers.clone()),
                    first_layer: request.first_layer,
                    last_used: Instant::now(),
                }
            }
        }
    };
    let id = request.session.clone();
    let worker = state.worker.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut session = session;
        let width = worker.model.config().hidden_size;
        let result = Hidden::from_vec(request.hidden, width).and_then(|hidden| {
            let out = worker.model.forward_layers(
                &hidden,
                layers.clone(),
                request.position,
                &mut session.cache,
            )?;
            let values = out.to_vec()?;
            Ok(values[values.len() - width..].to_vec())
        });
        session.last_used = Instant::now();
        (session, result)
    })
    .await;
    let mut sessions = state.split.0.lock().expect("sessions lock");
    match outcome {
        Ok((session, result)) => {
            sessions.insert(id, Some(session));
            match result {
                Ok(hidden) => Json(ForwardResponse {
                    hidden,
                    layers: [request.first_layer, loaded.end],
                })
                .into_response(),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        Err(e) => {
            sessions.remove(&id);
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

fn evict_oldest(sessions: &mut HashMap<String, Option<Session>>) {
    while sessions.len() >= MAX_SESSIONS {
        let oldest = sessions
            .iter()
            .filter_map(|(id, s)| s.as_ref().map(|s| (id.clone(), s.last_used)))
            .min_by_key(|(_, used)| *used);
        match oldest {
            Some((id, _)) => sessions.remove(&id),
            None => return,
        };
    }
}

pub(super) async fn close(
    State(state): State<Arc<ApiState>>,
    Path(session): Path<String>,
) -> Response {
    match state
        .split
        .0
        .lock()
        .expect("sessions lock")
        .remove(&session)
    {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown session"),
    }
}

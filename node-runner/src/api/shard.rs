//! The shard stream, node side (`GET /v1/shard/stream`, a WebSocket): a pipeline driver opens
//! a session over some of the blocks this node loaded, then sends hidden states step by step;
//! each step runs through those blocks in the engine's shared batch against the session's KV
//! cache, and the output goes back at once (every row, or the last only).
//!
//! The endpoint is public: a session counts against the same caps as split sessions (number,
//! KV bytes), it must open within the idle timeout and is closed when idle, frames are bounded
//! by the split body limit, and a step must continue the session's cache exactly, so a stream
//! can neither rewind another's work nor grow past the model's context. The node hashes every
//! output row as it goes and answers `Commit` with the Merkle root over positions.
//!
//! A node assigned a seat past span 0 of a market pipeline registers it in [`Seats`]; the
//! stream whose `open` carries the pipeline driver's valid [`Claim`] on that seat is the one
//! the node records: it hashes that stream's inputs as well as its outputs, and on `Commit`
//! hands the runner the [`SeatRecord`] it commits to on chain. Every other stream (a spare
//! serving another pipeline, a client trying the node) is served the same, unrecorded.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use nesa_engine::{Hidden, KvCache};
use nesa_market::{activation_leaf, activations_root, ActivationRecord, Hash32, SeatRecord};
use nesa_sdk::swarm::protocol::{row_bytes, Control, HiddenFrame};
use nesa_sdk::swarm::Claim;
use tokio::sync::oneshot;

use super::{ApiLimits, ApiState};
use crate::worker::Worker;

pub(super) async fn stream(
    State(state): State<Arc<ApiState>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limit = state.limits.split_body_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let mut stream = Stream { socket, state };
            if let Err(reason) = stream.serve().await {
                tracing::debug!(%reason, "shard stream ended with an error");
                stream.refuse(reason).await;
            }
        })
}

/// Why a stream ended; sent to the driver as [`Control::Error`] before the close.
type Refusal = String;

/// How long an `open` with a claim waits for the runner to register the seat (it learns of
/// its assignment in the same block as the driver) before asking the driver to try again.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// A pipeline seat this node holds past span 0, as the chain assigned it.
#[derive(Clone, Debug)]
pub struct SeatExpectation {
    /// The market contract (claims are signed for it).
    pub market: String,
    pub pipeline: u8,
    /// The blocks of the seat's span.
    pub layers: Range<usize>,
    /// Address of the node holding span 0 of the pipeline: the one whose claim counts.
    pub driver: String,
    /// Positions of the query's prompt.
    pub prompt_len: usize,
}

struct Seat {
    expectation: SeatExpectation,
    /// Where the claimed stream's record goes; taken by the first valid claim.
    record: Option<oneshot::Sender<SeatRecord>>,
}

/// The pipeline seats this node was assigned, by query.
#[derive(Default)]
pub struct Seats {
    seats: Mutex<HashMap<u64, Seat>>,
}

/// What a stream's claim makes of it.
enum Claimed {
    /// The seat's stream: record it.
    Record(Recording),
    /// Served, not recorded (another pipeline's seat, or one already claimed).
    Helper,
}

impl Seats {
    /// Registers the seat this node holds in `query_id`; the receiver gets the record of the
    /// stream its driver claims, once that stream commits.
    pub fn expect(
        &self,
        query_id: u64,
        expectation: SeatExpectation,
    ) -> oneshot::Receiver<SeatRecord> {
        let (sender, receiver) = oneshot::channel();
        self.seats.lock().expect("seats lock").insert(
            query_id,
            Seat {
                expectation,
                record: Some(sender),
            },
        );
        receiver
    }

    /// Forgets a seat (its query is done, or the runner stopped waiting).
    pub fn forget(&self, query_id: u64) {
        self.seats.lock().expect("seats lock").remove(&query_id);
    }

    /// Resolves `claim` on a stream over `layers`: `None` while the seat is not registered.
    fn resolve(&self, claim: &Claim, layers: &Range<usize>) -> Option<Result<Claimed, Refusal>> {
        let mut seats = self.seats.lock().expect("seats lock");
        let seat = seats.get_mut(&claim.query_id)?;
        let expected = &seat.expectation;
        if claim.pipeline != expected.pipeline || *layers != expected.layers {
            return Some(Ok(Claimed::Helper));
        }
        let signer = match claim.signer(&expected.market, layers) {
            Ok(signer) => signer,
            Err(e) => return Some(Err(format!("the pipeline claim is refused: {e}"))),
        };
        if signer.to_string() != expected.driver {
            return Some(Err(format!(
                "the pipeline claim is signed by {signer}, not by the driver of pipeline {} of query {}",
                claim.pipeline, claim.query_id
            )));
        }
        Some(Ok(match seat.record.take() {
            Some(sender) => Claimed::Record(Recording {
                prompt_len: expected.prompt_len,
                sender,
                input_leaves: Vec::new(),
            }),
            None => Claimed::Helper,
        }))
    }
}

/// The claimed stream's inputs so far, and where its record goes.
struct Recording {
    prompt_len: usize,
    sender: oneshot::Sender<SeatRecord>,
    input_leaves: Vec<Hash32>,
}

impl Recording {
    fn finish(self, output_leaves: &[Hash32]) {
        let record = SeatRecord {
            outputs: ActivationRecord::from_leaves(output_leaves, self.prompt_len),
            input_digest: Some(
                ActivationRecord::from_leaves(&self.input_leaves, self.prompt_len).digest(),
            ),
        };
        let _ = self.sender.send(record);
    }
}

struct Stream {
    socket: WebSocket,
    state: Arc<ApiState>,
}

/// Removes the session from the node's count when the stream ends, however it ends.
struct Admission {
    state: Arc<ApiState>,
    id: String,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.state.split.remove(&self.id);
    }
}

impl Stream {
    async fn send(&mut self, control: &Control) -> Result<(), Refusal> {
        let text = serde_json::to_string(control).expect("control serializes");
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("cannot send: {e}"))
    }

    async fn refuse(&mut self, message: Refusal) {
        let _ = self
            .send(&Control::Error {
                message: message.clone(),
                retry: false,
            })
            .await;
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::POLICY,
                reason: truncate(&message, 120).into(),
            })))
            .await;
    }

    /// The next data message, or `None` when the driver closed; an idle driver is refused.
    async fn next(&mut self) -> Result<Option<Message>, Refusal> {
        let idle = self.state.limits.session_idle;
        loop {
            let message = tokio::time::timeout(idle, self.socket.recv())
                .await
                .map_err(|_| {
                    format!("no message for {}s: the session is closed", idle.as_secs())
                })?;
            match message {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(e)) => return Err(format!("the stream failed: {e}")),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Ok(Some(message)),
            }
        }
    }

    async fn serve(&mut self) -> Result<(), Refusal> {
        let (layers, claim) = match self.next().await? {
            None => return Ok(()),
            Some(Message::Text(text)) => match serde_json::from_str::<Control>(&text) {
                Ok(Control::Open { layers, claim }) => (layers[0]..layers[1], claim),
                Ok(other) => return Err(format!("the first message must be open, not {other:?}")),
                Err(e) => return Err(format!("invalid control message: {e}")),
            },
            Some(_) => return Err("the first message must be an open (JSON text)".into()),
        };
        let worker = self.state.worker.clone();
        let model = worker.model();
        let loaded = model.loaded_layers();
        if layers.is_empty() || layers.start < loaded.start || layers.end > loaded.end {
            return Err(format!(
                "blocks {}..{} are not within the blocks this node serves ({}..{})",
                layers.start, layers.end, loaded.start, loaded.end
            ));
        }
        let admission = Admission {
            id: self.state.split.admit_stream(&self.state.limits)?,
            state: self.state.clone(),
        };
        let state = self.state.clone();
        let mut recording = match &claim {
            None => None,
            Some(claim) => match resolve_claim(&state.seats, claim, &layers).await {
                Ok(Some(Claimed::Record(recording))) => Some(recording),
                Ok(Some(Claimed::Helper)) => None,
                Ok(None) => {
                    // Not registered yet: the driver tries again shortly.
                    self.send(&Control::Error {
                        message: format!(
                            "this node holds no seat of query {} yet; retry shortly",
                            claim.query_id
                        ),
                        retry: true,
                    })
                    .await?;
                    return Ok(());
                }
                Err(refusal) => return Err(refusal),
            },
        };
        if recording.is_some() {
            tracing::info!(
                query_id = claim.as_ref().map(|c| c.query_id),
                pipeline = claim.as_ref().map(|c| c.pipeline),
                blocks = ?layers,
                "the pipeline's driver opened this node's seat"
            );
        }
        let config = model.config();
        let (width, context_length) = (config.hidden_size, config.context_length);
        self.send(&Control::Opened {
            layers: [layers.start, layers.end],
            hidden_size: width,
            context_length,
        })
        .await?;
        let bytes_per_position = model.kv_bytes_per_position(layers.len());
        let mut cache = Some(model.new_cache(layers.clone()));
        let mut leaves: Vec<Hash32> = Vec::new();
        while let Some(message) = self.next().await? {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Text(text) => match serde_json::from_str::<Control>(&text) {
                    Ok(Control::Commit) => {
                        if let Some(recording) = recording.take() {
                            recording.finish(&leaves);
                        }
                        self.send(&Control::Committed {
                            positions: leaves.len(),
                            activations_root: hex::encode(activations_root(&leaves)),
                        })
                        .await?;
                        continue;
                    }
                    Ok(other) => return Err(format!("unexpected control message {other:?}")),
                    Err(e) => return Err(format!("invalid control message: {e}")),
                },
                _ => continue,
            };
            let frame = HiddenFrame::decode(&bytes, width).map_err(|e| e.to_string())?;
            drop(bytes);
            let current = cache.as_ref().map_or(0, KvCache::len);
            let (position, rows) = (frame.position as usize, frame.rows(width));
            if position != current {
                return Err(format!(
                    "a step at position {position} does not continue the session, which holds positions 0..{current}"
                ));
            }
            let end = position + rows;
            if end > context_length {
                return Err(format!(
                    "positions {position}..{end} exceed the model's context length {context_length}"
                ));
            }
            if !self
                .state
                .split
                .resize(&admission.id, end * bytes_per_position, &self.state.limits)
            {
                self.send(&Control::Error {
                    message: "the node's session memory is full; retry shortly".into(),
                    retry: true,
                })
                .await?;
                continue;
            }
            if let Some(recording) = recording.as_mut() {
                for (offset, row) in frame.values.chunks_exact(width).enumerate() {
                    recording
                        .input_leaves
                        .push(activation_leaf((position + offset) as u32, &row_bytes(row)));
                }
            }
            let output = forward(
                &worker,
                &self.state.limits,
                frame.values,
                layers.clone(),
                position,
                &mut cache,
            )
            .await?;
            for (offset, row) in output.chunks_exact(width).enumerate() {
                leaves.push(activation_leaf((position + offset) as u32, &row_bytes(row)));
            }
            let answer = if frame.last_row_only {
                let last = &output[output.len() - width..];
                HiddenFrame::encode_rows((end - 1) as u32, true, last, width)
            } else {
                HiddenFrame::encode_rows(frame.position, false, &output, width)
            };
            self.socket
                .send(Message::Binary(answer.into()))
                .await
                .map_err(|e| format!("cannot send: {e}"))?;
        }
        Ok(())
    }
}

/// Waits up to [`CLAIM_WAIT`] for the runner to register the claimed seat.
async fn resolve_claim(
    seats: &Seats,
    claim: &Claim,
    layers: &Range<usize>,
) -> Result<Option<Claimed>, Refusal> {
    let started = Instant::now();
    loop {
        if let Some(outcome) = seats.resolve(claim, layers) {
            return outcome.map(Some);
        }
        if started.elapsed() >= CLAIM_WAIT {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One step through the engine, within the node's compute slots.
async fn forward(
    worker: &Worker,
    limits: &ApiLimits,
    values: Vec<f32>,
    layers: Range<usize>,
    position: usize,
    cache: &mut Option<KvCache>,
) -> Result<Vec<f32>, Refusal> {
    let width = worker.model().config().hidden_size;
    let hidden = Hidden::from_vec(values, width).map_err(|e| e.to_string())?;
    let Some(session_cache) = cache.take() else {
        return Err("the session lost its cache".into());
    };
    let _permit = limits
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "the node is stopping".to_string())?;
    let (result, back) = worker
        .forward(hidden, layers, position, session_cache)
        .await;
    *cache = back;
    Ok(result.map_err(|e| e.to_string())?.into_values())
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

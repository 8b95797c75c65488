//! The pipeline driver: holds the kernel's embedding and head (and optionally its first
//! blocks), keeps one shard stream open per hop, and sends each step's hidden states through
//! the hops in order.
//!
//! Every hop's inputs are kept, chunk by chunk as they were sent, so a hop that dies (closed
//! stream, error, no answer in time) is replaced for its span only: a new route for the span
//! is planned over the live candidates, the new hops rebuild their caches from the same
//! chunks in the same order, and generation goes on from the step that failed. Because the
//! engine computes a chunk the same way wherever it runs, the answer is bit for bit the one an
//! uninterrupted pipeline (or a single node) gives.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use nesa_engine::{
    top_logprobs, EngineError, Hidden, KvCache, Model, Sampler, Sampling, PREFILL_CHUNK,
};
use nesa_market::{activation_leaf, activations_root, Hash32};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::claim::Claimer;
use super::protocol::{row_bytes, Control, HiddenFrame, STREAM_PATH};
use super::route::{plan, Candidate, Hop, NoRoute};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How patient the driver is.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Longest wait for a hop to connect and open its session.
    pub connect_timeout: Duration,
    /// Longest wait for a hop's answer to one frame; beyond it the hop is taken for dead.
    pub step_timeout: Duration,
    /// Times a busy hop (`retry: true`) is asked again before it is routed around.
    pub busy_retries: u32,
    /// Largest frame accepted from a hop.
    pub max_frame_bytes: usize,
    /// The most likely tokens and their log-probabilities kept per generated token.
    pub top_logprobs: usize,
    /// The route to open first (a market pipeline's own seats); any later one is planned.
    pub route: Option<Vec<Hop>>,
    /// Signs a claim on each hop's seat, for a market query.
    pub claimer: Option<Arc<Claimer>>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            step_timeout: Duration::from_secs(30),
            busy_retries: 5,
            max_frame_bytes: 64 << 20,
            top_logprobs: 0,
            route: None,
            claimer: None,
        }
    }
}

/// What can end a pipelined generation.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    NoRoute(#[from] NoRoute),
    #[error("no live node could take over blocks {}..{} after {tries} tries; last failure: {last}", .layers.start, .layers.end)]
    Exhausted {
        layers: Range<usize>,
        tries: usize,
        last: String,
    },
    #[error("the driver's model serves blocks {}..{}, but a pipeline must start where they end", .0.start, .0.end)]
    ClientLayers(Range<usize>),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What one hop did, in pipeline order (a replaced hop stays listed, with why it failed).
#[derive(Clone, Debug, PartialEq)]
pub struct HopReport {
    pub endpoint: String,
    pub layers: Range<usize>,
    /// Positions it computed (replayed ones included).
    pub positions: usize,
    /// Frames sent to it.
    pub frames: usize,
    pub sent_bytes: usize,
    pub received_bytes: usize,
    /// Time from sending a frame to its answer, summed.
    pub busy_seconds: f64,
    /// The Merkle root over its output rows it committed to at the end (hex).
    pub activations_root: Option<String>,
    /// Whether that root is the one over the rows the driver received (`None` when the driver
    /// did not see every row, as for the last hop).
    pub root_matches: Option<bool>,
    /// Why it was replaced, if it was.
    pub failed: Option<String>,
}

/// A hop that died and what took its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Failover {
    pub endpoint: String,
    pub layers: Range<usize>,
    /// Position of the step it failed on.
    pub position: usize,
    pub reason: String,
    pub replaced_by: Vec<String>,
    /// From the failure to the replacement's rebuilt caches.
    pub seconds: f64,
}

/// A finished pipelined generation.
#[derive(Clone, Debug)]
pub struct PipelineOutput {
    /// Generated ids, in the kernel's vocabulary, without the stop token.
    pub tokens: Vec<u32>,
    /// Every hop that served, in the order it joined.
    pub hops: Vec<HopReport>,
    pub failovers: Vec<Failover>,
    /// From the prompt's first frame to the first token.
    pub prefill_seconds: f64,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_second: f64,
    /// Per generated token, the most likely tokens and their log-probabilities
    /// ([`PipelineOptions::top_logprobs`] of them), as the engine reports them.
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
    /// Leaves of the rows the driver's own blocks produced, by position from 0 (none when it
    /// runs no blocks).
    pub local_leaves: Vec<Hash32>,
}

/// Inputs sent to a hop, as sent.
#[derive(Clone)]
struct Chunk {
    position: usize,
    values: Vec<f32>,
}

/// A hop that failed this time.
struct Fault {
    reason: String,
    busy: bool,
}

impl Fault {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            busy: false,
        }
    }
}

struct Link {
    candidate: usize,
    layers: Range<usize>,
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    sent: Vec<Chunk>,
    /// Leaves of the output rows received, while every row was.
    leaves: Option<Vec<Hash32>>,
    report: usize,
}

/// A generation through a pipeline of shards.
pub struct Pipeline {
    model: Arc<Model>,
    cache: KvCache,
    candidates: Vec<Candidate>,
    dead: BTreeSet<usize>,
    links: Vec<Link>,
    options: PipelineOptions,
    hops: Vec<HopReport>,
    failovers: Vec<Failover>,
    local_leaves: Vec<Hash32>,
}

/// `ws://` or `wss://` for a node's `http://` or `https://` base URL.
pub fn stream_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}{STREAM_PATH}")
}

impl Pipeline {
    /// Plans the fastest route through the blocks after `model`'s own (the driver's model is
    /// the kernel loaded with blocks `0..k`, usually `0..0`) and opens a stream to every hop.
    pub async fn connect(
        model: impl Into<Arc<Model>>,
        candidates: Vec<Candidate>,
        mut options: PipelineOptions,
    ) -> Result<Self, PipelineError> {
        let model = model.into();
        let own = model.loaded_layers();
        let first_route = options.route.take();
        if own.start != 0 {
            return Err(PipelineError::ClientLayers(own));
        }
        let cache = model.new_cache(own.clone());
        let mut pipeline = Self {
            model,
            cache,
            candidates,
            dead: BTreeSet::new(),
            links: Vec::new(),
            options,
            hops: Vec::new(),
            failovers: Vec::new(),
            local_leaves: Vec::new(),
        };
        let span = own.end..pipeline.model.config().layer_count;
        pipeline.links = pipeline.open_route(span, &[], first_route).await?;
        Ok(pipeline)
    }

    /// The hops now serving, in order: endpoint and blocks.
    pub fn route(&self) -> Vec<(String, Range<usize>)> {
        self.links
            .iter()
            .map(|l| {
                (
                    self.candidates[l.candidate].endpoint.clone(),
                    l.layers.clone(),
                )
            })
            .collect()
    }

    /// Opens a route over `span` (`first` when given, then planned ones) and rebuilds its
    /// caches from `history` (the chunks the span's first block received so far); hops that
    /// fail are routed around until no candidate is left.
    async fn open_route(
        &mut self,
        span: Range<usize>,
        history: &[Chunk],
        mut first: Option<Vec<Hop>>,
    ) -> Result<Vec<Link>, PipelineError> {
        let mut tries = 0;
        let mut last = String::new();
        loop {
            let planned = match first.take() {
                Some(route) => Ok(route),
                None => plan(&self.candidates, span.clone(), &self.dead),
            };
            let route = match planned {
                Ok(route) => route,
                Err(no_route) if tries == 0 => return Err(no_route.into()),
                Err(_) => {
                    return Err(PipelineError::Exhausted {
                        layers: span,
                        tries,
                        last,
                    })
                }
            };
            tries += 1;
            let mut links = Vec::with_capacity(route.len());
            let mut failed = None;
            for hop in &route {
                match self.open_patiently(hop.candidate, hop.layers.clone()).await {
                    Ok(link) => links.push(link),
                    Err(fault) => {
                        failed = Some((hop.candidate, fault));
                        break;
                    }
                }
            }
            if failed.is_none() {
                let replays_last_hop = span.end == self.model.config().layer_count;
                failed = self
                    .replay(&mut links, history, replays_last_hop)
                    .await
                    .err();
            }
            match failed {
                None => return Ok(links),
                Some((candidate, fault)) => {
                    last = format!("{}: {}", self.candidates[candidate].endpoint, fault.reason);
                    tracing::warn!(node = %self.candidates[candidate].endpoint, reason = %fault.reason, "pipeline hop failed to open; routing around it");
                    self.dead.insert(candidate);
                    for link in &links {
                        self.hops[link.report].failed = Some(if link.candidate == candidate {
                            fault.reason.clone()
                        } else {
                            "its route was given up when another hop of it failed".into()
                        });
                    }
                }
            }
        }
    }

    /// Opens a hop, asking a busy one again with backoff.
    async fn open_patiently(
        &mut self,
        candidate: usize,
        layers: Range<usize>,
    ) -> Result<Link, Fault> {
        let mut tries = 0;
        loop {
            match self.open(candidate, layers.clone()).await {
                Err(fault) if fault.busy && tries < self.options.busy_retries => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 << tries.min(4))).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn open(&mut self, candidate: usize, layers: Range<usize>) -> Result<Link, Fault> {
        let endpoint = self.candidates[candidate].endpoint.clone();
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.options.max_frame_bytes))
            .max_frame_size(Some(self.options.max_frame_bytes));
        let connecting =
            tokio_tungstenite::connect_async_with_config(stream_url(&endpoint), Some(config), true);
        let (mut socket, _) = tokio::time::timeout(self.options.connect_timeout, connecting)
            .await
            .map_err(|_| Fault::new("no connection in time"))?
            .map_err(|e| Fault::new(format!("cannot connect: {e}")))?;
        let open = Control::Open {
            layers: [layers.start, layers.end],
            claim: self.options.claimer.as_ref().map(|c| c.claim(&layers)),
        };
        socket
            .send(Message::text(
                serde_json::to_string(&open).expect("control serializes"),
            ))
            .await
            .map_err(|e| Fault::new(format!("cannot open a session: {e}")))?;
        let (sink, mut stream) = socket.split();
        let answer = tokio::time::timeout(self.options.connect_timeout, next_message(&mut stream))
            .await
            .map_err(|_| Fault::new("no answer to open in time"))??;
        let width = self.model.config().hidden_size;
        match answer {
            Message::Text(text) => match serde_json::from_str::<Control>(&text) {
                Ok(Control::Opened {
                    layers: opened,
                    hidden_size,
                    ..
                }) if opened == [layers.start, layers.end] && hidden_size == width => {}
                Ok(Control::Opened {
                    layers: opened,
                    hidden_size,
                    ..
                }) => {
                    return Err(Fault::new(format!(
                        "opened blocks {}..{} of width {hidden_size}, not {}..{} of width {width}",
                        opened[0], opened[1], layers.start, layers.end
                    )))
                }
                Ok(Control::Error { message, retry }) => {
                    return Err(Fault {
                        reason: message,
                        busy: retry,
                    })
                }
                Ok(other) => return Err(Fault::new(format!("answered open with {other:?}"))),
                Err(e) => return Err(Fault::new(format!("unreadable answer to open: {e}"))),
            },
            other => return Err(Fault::new(format!("answered open with {other:?}"))),
        }
        self.hops.push(HopReport {
            endpoint,
            layers: layers.clone(),
            positions: 0,
            frames: 0,
            sent_bytes: 0,
            received_bytes: 0,
            busy_seconds: 0.0,
            activations_root: None,
            root_matches: None,
            failed: None,
        });
        Ok(Link {
            candidate,
            layers,
            sink,
            stream,
            sent: Vec::new(),
            leaves: Some(Vec::new()),
            report: self.hops.len() - 1,
        })
    }

    /// Runs `history` through freshly opened `links` in order, so their caches hold what the
    /// hops they replace held; the last link's outputs are dropped.
    async fn replay(
        &mut self,
        links: &mut [Link],
        history: &[Chunk],
        ends_pipeline: bool,
    ) -> Result<(), (usize, Fault)> {
        if history.is_empty() {
            return Ok(());
        }
        let mut inputs = history.to_vec();
        let count = links.len();
        for (i, link) in links.iter_mut().enumerate() {
            let last_only = ends_pipeline && i + 1 == count;
            let outputs = exchange(
                link,
                &mut self.hops,
                &inputs,
                last_only,
                self.model.config().hidden_size,
                self.options.step_timeout,
            )
            .await
            .map_err(|fault| (link.candidate, fault))?;
            inputs = outputs;
        }
        Ok(())
    }

    /// One step: `tokens` at `position` through the driver's blocks, every hop and the head;
    /// the logits of the last position.
    async fn step(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, PipelineError> {
        let own = self.model.loaded_layers();
        let mut hidden = self.model.embed(tokens)?;
        if !own.is_empty() {
            hidden = self
                .model
                .forward_layers(&hidden, own, position, &mut self.cache)?;
        }
        let width = self.model.config().hidden_size;
        if !self.model.loaded_layers().is_empty() {
            for (offset, row) in hidden.values().chunks_exact(width).enumerate() {
                self.local_leaves
                    .push(activation_leaf((position + offset) as u32, &row_bytes(row)));
            }
        }
        let rows = hidden.positions();
        let values = hidden.into_values();
        // The same chunks the engine would cut, so no frame outgrows a hop's limit.
        let mut chunks: Vec<Chunk> = (0..rows)
            .step_by(PREFILL_CHUNK)
            .map(|start| {
                let len = PREFILL_CHUNK.min(rows - start);
                Chunk {
                    position: position + start,
                    values: values[start * width..(start + len) * width].to_vec(),
                }
            })
            .collect();
        let mut i = 0;
        let mut busy_tries = 0;
        while i < self.links.len() {
            let last_only = i + 1 == self.links.len();
            let started = Instant::now();
            let outcome = exchange(
                &mut self.links[i],
                &mut self.hops,
                &chunks,
                last_only,
                width,
                self.options.step_timeout,
            )
            .await;
            match outcome {
                Ok(outputs) => {
                    chunks = outputs;
                    i += 1;
                    busy_tries = 0;
                }
                Err(fault) if fault.busy && busy_tries < self.options.busy_retries => {
                    busy_tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 << busy_tries.min(4))).await;
                }
                Err(fault) => {
                    busy_tries = 0;
                    self.fail_over(i, position, fault, started).await?;
                }
            }
        }
        let last = chunks.last().expect("a step has rows");
        let row = &last.values[last.values.len() - width..];
        Ok(self.model.head(&Hidden::from_vec(row.to_vec(), width)?)?)
    }

    /// Replaces hop `i` (which failed at `position`) by a new route over its blocks, rebuilt
    /// from the chunks it had received before this step.
    async fn fail_over(
        &mut self,
        i: usize,
        position: usize,
        fault: Fault,
        started: Instant,
    ) -> Result<(), PipelineError> {
        let link = self.links.remove(i);
        let endpoint = self.candidates[link.candidate].endpoint.clone();
        tracing::warn!(node = %endpoint, blocks = ?link.layers, position, reason = %fault.reason, "pipeline hop failed; replacing it for its blocks");
        self.dead.insert(link.candidate);
        self.hops[link.report].failed = Some(fault.reason.clone());
        let history: Vec<Chunk> = link
            .sent
            .iter()
            .filter(|c| c.position < position)
            .cloned()
            .collect();
        let replacement = self.open_route(link.layers.clone(), &history, None).await?;
        self.failovers.push(Failover {
            endpoint,
            layers: link.layers.clone(),
            position,
            reason: fault.reason,
            replaced_by: replacement
                .iter()
                .map(|l| self.candidates[l.candidate].endpoint.clone())
                .collect(),
            seconds: started.elapsed().as_secs_f64(),
        });
        self.links.splice(i..i, replacement);
        Ok(())
    }

    /// Generates up to `max_tokens` after `prompt` (ids in the kernel's vocabulary), choosing
    /// tokens as the engine does, and collects every hop's activation commitment; `on_token`
    /// sees each token as soon as it is chosen.
    pub async fn generate(
        mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: Sampling,
        stop_tokens: &[u32],
        mut on_token: impl FnMut(u32),
    ) -> Result<PipelineOutput, PipelineError> {
        let mut sampler = Sampler::new(sampling)?;
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt.into());
        }
        let started = Instant::now();
        let mut logits = self.step(prompt, 0).await?;
        let prefill_seconds = started.elapsed().as_secs_f64();
        let decode_started = Instant::now();
        let mut tokens = Vec::new();
        let mut top = Vec::new();
        while tokens.len() < max_tokens {
            let token = sampler.sample(&logits);
            if stop_tokens.contains(&token) {
                break;
            }
            if self.options.top_logprobs > 0 {
                top.push(top_logprobs(&logits, self.options.top_logprobs));
            }
            tokens.push(token);
            on_token(token);
            if tokens.len() == max_tokens {
                break;
            }
            logits = self.step(&[token], prompt.len() + tokens.len() - 1).await?;
        }
        let steps = tokens.len().saturating_sub(1);
        let seconds = decode_started.elapsed().as_secs_f64();
        self.commit_all().await;
        Ok(PipelineOutput {
            tokens,
            hops: self.hops,
            failovers: self.failovers,
            prefill_seconds,
            decode_tokens_per_second: if seconds > 0.0 {
                steps as f64 / seconds
            } else {
                0.0
            },
            top_logprobs: top,
            local_leaves: self.local_leaves,
        })
    }

    /// Asks every live hop for its activation root and closes its stream.
    async fn commit_all(&mut self) {
        let timeout = self.options.step_timeout;
        for link in &mut self.links {
            let report = &mut self.hops[link.report];
            let commit = serde_json::to_string(&Control::Commit).expect("control serializes");
            if link.sink.send(Message::text(commit)).await.is_err() {
                continue;
            }
            let answer = tokio::time::timeout(timeout, next_message(&mut link.stream)).await;
            if let Ok(Ok(Message::Text(text))) = answer {
                if let Ok(Control::Committed {
                    activations_root: root,
                    ..
                }) = serde_json::from_str::<Control>(&text)
                {
                    report.root_matches = link
                        .leaves
                        .as_ref()
                        .map(|leaves| hex::encode(activations_root(leaves)) == root);
                    report.activations_root = Some(root);
                }
            }
            let _ = link.sink.send(Message::Close(None)).await;
        }
    }
}

/// The next data message (pings and pongs are answered by the socket itself).
async fn next_message(stream: &mut SplitStream<Socket>) -> Result<Message, Fault> {
    loop {
        match stream.next().await {
            None => return Err(Fault::new("the stream closed")),
            Some(Err(e)) => return Err(Fault::new(format!("the stream failed: {e}"))),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                return Err(Fault::new(match frame {
                    Some(frame) if !frame.reason.is_empty() => {
                        format!("the node closed the stream: {}", frame.reason)
                    }
                    _ => "the node closed the stream".to_string(),
                }))
            }
            Some(Ok(message)) => return Ok(message),
        }
    }
}

/// Sends `chunks` to a hop and reads its answer to each (sending and reading at once, so
/// neither side's buffers fill while the other waits); the answers, all rows or each chunk's
/// last.
async fn exchange(
    link: &mut Link,
    hops: &mut [HopReport],
    chunks: &[Chunk],
    last_only: bool,
    width: usize,
    timeout: Duration,
) -> Result<Vec<Chunk>, Fault> {
    let started = Instant::now();
    let frames: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| HiddenFrame::encode_rows(c.position as u32, last_only, &c.values, width))
        .collect();
    let sent_bytes: usize = frames.iter().map(Vec::len).sum();
    let sink = &mut link.sink;
    let sending = async move {
        for frame in frames {
            sink.feed(Message::binary(frame))
                .await
                .map_err(|e| Fault::new(format!("cannot send: {e}")))?;
        }
        sink.flush()
            .await
            .map_err(|e| Fault::new(format!("cannot send: {e}")))
    };
    let stream = &mut link.stream;
    let receiving = async move {
        let mut answers = Vec::with_capacity(chunks.len());
        let mut received = 0;
        for chunk in chunks {
            let message = tokio::time::timeout(timeout, next_message(stream))
                .await
                .map_err(|_| Fault::new(format!("no answer within {timeout:?}")))??;
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Text(text) => {
                    return Err(match serde_json::from_str::<Control>(&text) {
                        Ok(Control::Error { message, retry }) => Fault {
                            reason: message,
                            busy: retry,
                        },
                        _ => Fault::new(format!("unexpected message: {text}")),
                    })
                }
                other => return Err(Fault::new(format!("unexpected message: {other:?}"))),
            };
            received += bytes.len();
            let frame = HiddenFrame::decode(&bytes, width)
                .map_err(|e| Fault::new(format!("bad frame: {e}")))?;
            let rows = chunk.values.len() / width;
            let expected_rows = if last_only { 1 } else { rows };
            let expected_position = chunk.position + rows - expected_rows;
            if frame.position as usize != expected_position || frame.rows(width) != expected_rows {
                return Err(Fault::new(format!(
                    "answered {} rows at {} for {expected_rows} at {expected_position}",
                    frame.rows(width),
                    frame.position
                )));
            }
            answers.push(Chunk {
                position: expected_position,
                values: frame.values,
            });
        }
        Ok((answers, received))
    };
    // Whichever side fails first ends the exchange: a node that stopped reading must not
    // leave the driver blocked on a full send buffer.
    let ((), (answers, received_bytes)) = tokio::try_join!(sending, receiving)?;
    let report = &mut hops[link.report];
    report.frames += chunks.len();
    report.sent_bytes += sent_bytes;
    report.received_bytes += received_bytes;
    report.busy_seconds += started.elapsed().as_secs_f64();
    report.positions += chunks.iter().map(|c| c.values.len() / width).sum::<usize>();
    if last_only {
        link.leaves = None;
    } else if let Some(leaves) = link.leaves.as_mut() {
        for answer in &answers {
            for (offset, row) in answer.values.chunks_exact(width).enumerate() {
                leaves.push(activation_leaf(
                    (answer.position + offset) as u32,
                    &row_bytes(row),
                ));
            }
        }
    }
    link.sent.extend(chunks.iter().cloned());
    Ok(answers)
}

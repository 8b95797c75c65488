//! Sharded inference over loopback: node runners serving block ranges, driven as a pipeline
//! of shard streams, answer token for token what one node answers, for plaintext and ee-v1
//! kernels; a middle shard killed mid-generation is replaced for its span and the answer does
//! not change; hostile streams get clear errors and cost the node nothing.

use std::net::TcpListener as StdListener;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use futures_util::{SinkExt, StreamExt};
use nesa_engine::ee::{encrypt_kernel, EeKey, Transform};
use nesa_engine::tiny::{tiny_model_file, TinyModelSpec};
use nesa_engine::{GenerateRequest, LoadOptions, Model, Sampling, Tokenizer};
use nesa_market::ActivationRecord;
use nesa_node::api::shard::SeatExpectation;
use nesa_node::api::{self, ApiLimits, ApiState};
use nesa_node::chain::Worker;
use nesa_node::metrics::Metrics;
use nesa_sdk::address::AddressExt;
use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::swarm::pipeline::stream_url;
use nesa_sdk::swarm::protocol::{Control, HiddenFrame};
use nesa_sdk::swarm::{probe, Candidate, Claimer, Pipeline, PipelineOptions};
use nesa_sdk::Address;
use tokio_tungstenite::tungstenite::Message;

fn spec() -> TinyModelSpec {
    TinyModelSpec {
        weight_dtype: GgmlDType::Q4_1,
        layers: 4,
        hidden: 128,
        heads: 4,
        kv_heads: 2,
        ffn: 256,
        ..Default::default()
    }
}

fn load(path: &Path, layers: Range<usize>) -> Model {
    Model::load(
        path,
        &LoadOptions {
            layers: Some(layers),
            ..Default::default()
        },
    )
    .unwrap()
}

fn state(model: Model, limits: ApiLimits) -> Arc<ApiState> {
    Arc::new(ApiState {
        worker: Arc::new(Worker::new(model, vec![], Default::default())),
        tokenizer: None,
        split: Default::default(),
        seats: Default::default(),
        metrics: Arc::new(Metrics::default()),
        node: "swarm-test".into(),
        kernel_id: None,
        model: "tiny".into(),
        api_token: None,
        limits,
        seconds_per_layer: 0.001,
    })
}

/// Serves blocks `layers` of `path` on a loopback port; returns the base URL.
async fn serve(path: &Path, layers: Range<usize>, limits: ApiLimits) -> String {
    serve_state(path, layers, limits).await.0
}

/// [`serve`], with the node's API state.
async fn serve_state(
    path: &Path,
    layers: Range<usize>,
    limits: ApiLimits,
) -> (String, Arc<ApiState>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = state(load(path, layers), limits);
    tokio::spawn(api::serve_on(listener, state.clone()));
    (url, state)
}

fn expected(path: &Path, prompt: &[u32], max_tokens: usize, sampling: Sampling) -> Vec<u32> {
    Model::load(path, &LoadOptions::default())
        .unwrap()
        .generate(
            &GenerateRequest {
                prompt: prompt.to_vec(),
                max_tokens,
                sampling,
                stop_tokens: vec![],
                top_logprobs: 0,
            },
            |_| {},
        )
        .unwrap()
        .tokens
}

async fn candidates(urls: &[String]) -> Vec<Candidate> {
    let http = reqwest::Client::new();
    let mut candidates = Vec::new();
    for url in urls {
        candidates.push(probe(&http, url).await.unwrap());
    }
    candidates
}

const PROMPT: [u32; 9] = [1, 40, 75, 250, 3, 99, 100, 2, 17];

fn splits() -> Vec<Vec<Range<usize>>> {
    vec![
        vec![0..2, 2..4],
        vec![0..1, 1..3, 3..4],
        vec![0..1, 1..2, 2..3, 3..4],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_three_and_four_shard_pipelines_answer_what_one_node_answers() {
    let path = tiny_model_file(&spec()).unwrap();
    let seeded = Sampling::Seeded {
        temperature: 0.9,
        top_p: 0.95,
        seed: 11,
    };
    for sampling in [Sampling::Greedy, seeded] {
        let want = expected(&path, &PROMPT, 16, sampling);
        for shards in splits() {
            let mut urls = Vec::new();
            for layers in &shards {
                urls.push(serve(&path, layers.clone(), ApiLimits::default()).await);
            }
            let pipeline = Pipeline::connect(
                load(&path, 0..0),
                candidates(&urls).await,
                PipelineOptions::default(),
            )
            .await
            .unwrap();
            let route: Vec<Range<usize>> = pipeline.route().into_iter().map(|(_, l)| l).collect();
            assert_eq!(route, shards);
            let output = pipeline
                .generate(&PROMPT, 16, sampling, &[], |_| {})
                .await
                .unwrap();
            assert_eq!(output.tokens, want, "{} shards, {sampling:?}", shards.len());
            assert!(output.failovers.is_empty());
            let width = spec().hidden;
            for (i, hop) in output.hops.iter().enumerate() {
                let last = i + 1 == output.hops.len();
                // The prompt and 15 decode steps each went through every hop.
                assert_eq!(hop.positions, PROMPT.len() + 15, "{hop:?}");
                assert_eq!(hop.frames, 16);
                assert_eq!(hop.sent_bytes, 16 * 12 + (PROMPT.len() + 15) * width * 4);
                assert!(hop.activations_root.is_some());
                // The driver saw every output row of the hops before the last, so it checks
                // their commitments; the last hop sends only the row the head needs.
                assert_eq!(hop.root_matches, if last { None } else { Some(true) });
                let rows_back = if last { 16 } else { PROMPT.len() + 15 };
                assert_eq!(hop.received_bytes, 16 * 12 + rows_back * width * 4);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_kernel_runs_sharded_with_the_plaintext_answer() {
    let plain = tiny_model_file(&spec()).unwrap();
    let vocab = Tokenizer::load(&plain).unwrap().vocab_size() as u32;
    let mut key = EeKey::from_seed([5; 32], Transform::SignedPermutation, vocab);
    let encrypted = std::env::temp_dir().join(format!("nesa-swarm-ee-{}.gguf", std::process::id()));
    encrypt_kernel(&plain, &encrypted, &mut key).unwrap();
    let vocabulary = key.vocabulary();
    let want = expected(&plain, &PROMPT, 12, Sampling::Greedy);
    // The driver keeps the embedding and the head, and in the last case the first block too.
    let mut layouts: Vec<(usize, Vec<Range<usize>>)> =
        splits().into_iter().map(|shards| (0, shards)).collect();
    layouts.push((1, vec![1..2, 2..4]));
    for (front, shards) in layouts {
        let mut urls = Vec::new();
        for layers in &shards {
            urls.push(serve(&encrypted, layers.clone(), ApiLimits::default()).await);
        }
        let pipeline = Pipeline::connect(
            load(&encrypted, 0..front),
            candidates(&urls).await,
            PipelineOptions::default(),
        )
        .await
        .unwrap();
        let output = pipeline
            .generate(
                &vocabulary.encrypt(&PROMPT).unwrap(),
                12,
                Sampling::Greedy,
                &[],
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(
            vocabulary.decrypt(&output.tokens).unwrap(),
            want,
            "driver runs {front} block(s), {} shards",
            shards.len()
        );
    }
    std::fs::remove_file(&encrypted).ok();
}

/// A `nesa-node serve --layers` process on a free loopback port.
struct Shard {
    child: Child,
    url: String,
    home: PathBuf,
}

impl Shard {
    fn spawn(model: &Path, layers: Range<usize>) -> Shard {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home =
            std::env::temp_dir().join(format!("nesa-swarm-shard-{}-{port}", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_nesa-node"))
            .arg("--home")
            .arg(&home)
            .arg("serve")
            .arg("--model")
            .arg(model)
            .args(["--api-laddr", &format!("127.0.0.1:{port}")])
            .args(["--layers", &format!("{}..{}", layers.start, layers.end)])
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Shard {
            child,
            url: format!("http://127.0.0.1:{port}"),
            home,
        }
    }

    async fn ready(&self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http
            .get(format!("{}/health", self.url))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not start",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.home).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middle_shard_killed_mid_answer_is_replaced_and_the_answer_is_unchanged() {
    let path = tiny_model_file(&spec()).unwrap();
    let want = expected(&path, &PROMPT, 24, Sampling::Greedy);
    let shards = [
        Shard::spawn(&path, 0..2),
        Shard::spawn(&path, 2..3),
        Shard::spawn(&path, 3..4),
        Shard::spawn(&path, 2..4),
    ];
    for shard in &shards {
        shard.ready().await;
    }
    let urls: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let mut candidates = candidates(&urls).await;
    // The spare is far away: the route goes through the middle shard until it dies.
    candidates[3].rtt = 1.0;
    let pipeline = Pipeline::connect(load(&path, 0..0), candidates, PipelineOptions::default())
        .await
        .unwrap();
    assert_eq!(
        pipeline.route(),
        vec![
            (urls[0].clone(), 0..2),
            (urls[1].clone(), 2..3),
            (urls[2].clone(), 3..4)
        ]
    );
    let middle_pid = shards[1].child.id();
    let mut seen = 0;
    let output = pipeline
        .generate(&PROMPT, 24, Sampling::Greedy, &[], |_| {
            seen += 1;
            if seen == 8 {
                // SIGKILL: no close frame, no goodbye.
                Command::new("kill")
                    .args(["-9", &middle_pid.to_string()])
                    .status()
                    .unwrap();
            }
        })
        .await
        .unwrap();
    assert_eq!(output.tokens, want, "the answer of an uninterrupted run");
    assert_eq!(output.failovers.len(), 1, "{:?}", output.failovers);
    let failover = &output.failovers[0];
    assert_eq!(failover.endpoint, urls[1]);
    assert_eq!(failover.layers, 2..3);
    assert_eq!(failover.replaced_by, vec![urls[3].clone()]);
    assert_eq!(failover.position, PROMPT.len() + 7);
    let dead = output.hops.iter().find(|h| h.endpoint == urls[1]).unwrap();
    assert!(dead.failed.is_some() && dead.activations_root.is_none());
    let spare = output.hops.iter().find(|h| h.endpoint == urls[3]).unwrap();
    assert_eq!(
        spare.layers,
        2..3,
        "the spare ran only the dead shard's block"
    );
    // It rebuilt the whole prefix, then carried on to the end.
    assert_eq!(spare.positions, PROMPT.len() + 23);
    assert_eq!(spare.root_matches, Some(true));
    let last = output.hops.iter().find(|h| h.endpoint == urls[2]).unwrap();
    assert_eq!(
        last.positions,
        PROMPT.len() + 23,
        "the last shard lost nothing"
    );
}

async fn open_stream(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(stream_url(url))
        .await
        .unwrap()
        .0
}

async fn send_control(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    control: &Control,
) {
    socket
        .send(Message::text(serde_json::to_string(control).unwrap()))
        .await
        .unwrap();
}

/// The node's next control message, or `None` once it closed.
async fn next_control(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Control> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the node answers")
        {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Binary(_))) => panic!("a frame where a control message was due"),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

fn refused(control: Option<Control>, needle: &str) {
    match control {
        Some(Control::Error { message, retry }) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            assert!(!retry);
        }
        other => panic!("expected an error about {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_streams_get_clear_errors_and_hold_nothing() {
    let path = tiny_model_file(&spec()).unwrap();
    let width = spec().hidden;
    let limits = ApiLimits {
        max_sessions: 1,
        split_body_bytes: 64 * 1024,
        ..ApiLimits::default()
    };
    let url = serve(&path, 1..3, limits).await;

    // Blocks the node does not hold.
    let mut socket = open_stream(&url).await;
    send_control(
        &mut socket,
        &Control::Open {
            layers: [0, 3],
            claim: None,
        },
    )
    .await;
    refused(next_control(&mut socket).await, "not within the blocks");

    // A frame before any open.
    let mut socket = open_stream(&url).await;
    socket.send(Message::binary(vec![1u8; 20])).await.unwrap();
    refused(
        next_control(&mut socket).await,
        "first message must be an open",
    );

    // Not JSON.
    let mut socket = open_stream(&url).await;
    socket.send(Message::text("{open")).await.unwrap();
    refused(next_control(&mut socket).await, "invalid control message");

    // A session that skips positions, then one that sends a frame of the wrong width.
    for (frame, needle) in [
        (
            HiddenFrame {
                position: 5,
                last_row_only: false,
                values: vec![0.1; width],
            }
            .encode(width),
            "does not continue the session",
        ),
        (
            HiddenFrame {
                position: 0,
                last_row_only: false,
                values: vec![0.1; width - 1],
            }
            .encode(width - 1),
            "carries",
        ),
    ] {
        let mut socket = open_stream(&url).await;
        send_control(
            &mut socket,
            &Control::Open {
                layers: [1, 3],
                claim: None,
            },
        )
        .await;
        assert!(matches!(
            next_control(&mut socket).await,
            Some(Control::Opened { layers: [1, 3], hidden_size, .. }) if hidden_size == width
        ));
        socket.send(Message::binary(frame)).await.unwrap();
        refused(next_control(&mut socket).await, needle);
    }

    // One session at a time on this node: a second is refused while the first is open, and
    // admitted once it closed.
    let mut first = open_stream(&url).await;
    send_control(
        &mut first,
        &Control::Open {
            layers: [1, 2],
            claim: None,
        },
    )
    .await;
    assert!(matches!(
        next_control(&mut first).await,
        Some(Control::Opened { .. })
    ));
    let mut second = open_stream(&url).await;
    send_control(
        &mut second,
        &Control::Open {
            layers: [1, 2],
            claim: None,
        },
    )
    .await;
    refused(next_control(&mut second).await, "sessions open");
    // An empty session commits to the root of nothing.
    send_control(&mut first, &Control::Commit).await;
    match next_control(&mut first).await {
        Some(Control::Committed {
            positions: 0,
            activations_root,
        }) => assert_eq!(
            activations_root,
            hex::encode(nesa_market::activations_root(&[]))
        ),
        other => panic!("{other:?}"),
    }
    // A frame over the node's limit ends the stream.
    let oversized = HiddenFrame {
        position: 0,
        last_row_only: false,
        values: vec![0.0; width * 200],
    }
    .encode(width);
    let _ = first.send(Message::binary(oversized)).await;
    let reason = next_control(&mut first).await;
    refused(reason, "too long");
    assert!(
        next_control(&mut first).await.is_none(),
        "then the node closes"
    );
    drop(first);
    let started = Instant::now();
    loop {
        let mut again = open_stream(&url).await;
        send_control(
            &mut again,
            &Control::Open {
                layers: [1, 2],
                claim: None,
            },
        )
        .await;
        match next_control(&mut again).await {
            Some(Control::Opened { .. }) => break,
            _ if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("the closed session was not released: {other:?}"),
        }
    }

    // A shard cannot answer whole-model generation, and says why.
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/generate"))
        .json(&serde_json::json!({"prompt_tokens": [1, 2, 3], "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("a shard"));
}

fn claimer(secret: u8, query_id: u64, pipeline: u8) -> Claimer {
    Claimer {
        key: Arc::new(SigningKey::from_slice(&[secret; 32]).unwrap()),
        market: "nesa1market".into(),
        query_id,
        pipeline,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_records_only_the_stream_its_driver_claims() {
    let path = tiny_model_file(&spec()).unwrap();
    let (url, shard) = serve_state(&path, 2..4, ApiLimits::default()).await;
    let driver = claimer(3, 5, 1);
    let driver_address = Address::from_public_key(&driver.key.public_key()).unwrap();
    let open = |claimer: &Claimer| Control::Open {
        layers: [2, 4],
        claim: Some(claimer.claim(&(2..4))),
    };

    // Before the runner registers its seat, a claimed open is asked to come back.
    let mut socket = open_stream(&url).await;
    send_control(&mut socket, &open(&driver)).await;
    match next_control(&mut socket).await {
        Some(Control::Error { message, retry }) => {
            assert!(retry, "{message}");
            assert!(message.contains("no seat of query 5"), "{message}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }

    let record = shard.seats.expect(
        5,
        SeatExpectation {
            market: "nesa1market".into(),
            pipeline: 1,
            layers: 2..4,
            driver: driver_address.to_string(),
            prompt_len: PROMPT.len(),
        },
    );
    // Another key's claim on the seat is refused, and takes nothing from it.
    let mut socket = open_stream(&url).await;
    send_control(&mut socket, &open(&claimer(4, 5, 1))).await;
    refused(next_control(&mut socket).await, "not by the driver");

    // The driver runs blocks 0..2 itself and the seat's 2..4 through the shard.
    let options = PipelineOptions {
        claimer: Some(Arc::new(driver)),
        ..PipelineOptions::default()
    };
    let candidates = candidates(std::slice::from_ref(&url)).await;
    let pipeline = Pipeline::connect(load(&path, 0..2), candidates, options)
        .await
        .unwrap();
    let output = pipeline
        .generate(&PROMPT, 8, Sampling::Greedy, &[], |_| {})
        .await
        .unwrap();
    assert_eq!(output.tokens, expected(&path, &PROMPT, 8, Sampling::Greedy));
    // The shard recorded the claimed stream: its inputs are exactly the rows the driver's
    // own blocks produced (prompt and the 7 tokens fed back), and as many outputs.
    let record = tokio::time::timeout(Duration::from_secs(10), record)
        .await
        .expect("the claimed stream's record")
        .unwrap();
    assert_eq!(output.local_leaves.len(), PROMPT.len() + 7);
    let driver_record = ActivationRecord::from_leaves(&output.local_leaves, PROMPT.len());
    assert_eq!(record.input_digest, Some(driver_record.digest()));
    assert_eq!(record.outputs.decode_leaves.len(), 7);
    assert_ne!(record.outputs, driver_record);

    // Replaying the driver's claim opens a stream that is served but records nothing.
    let mut socket = open_stream(&url).await;
    send_control(&mut socket, &open(&claimer(3, 5, 1))).await;
    assert!(matches!(
        next_control(&mut socket).await,
        Some(Control::Opened { .. })
    ));
}

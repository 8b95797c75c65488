//! Split mode over HTTP: the client keeps embedding, head and the first block of an encrypted
//! kernel, a node runner's API runs the rest, and the answer is the plaintext model's.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use nesa_engine::ee::{encrypt_kernel, KernelMaps};
use nesa_engine::ee::{EeKey, Transform};
use nesa_engine::tiny::{tiny_model_file, TinyModelSpec};
use nesa_engine::{GenerateRequest, LoadOptions, Model, Sampling, Tokenizer};
use nesa_node::api::{self, ApiState};
use nesa_node::chain::Worker;
use nesa_node::metrics::Metrics;
use nesa_sdk::split::{ForwardRequest, SplitClient};

fn spec() -> TinyModelSpec {
    TinyModelSpec {
        weight_dtype: GgmlDType::Q4_1,
        hidden: 128,
        heads: 4,
        kv_heads: 2,
        ffn: 256,
        ..Default::default()
    }
}

/// Serves `model` on a loopback port; returns the base URL.
async fn serve(model: Model) -> String {
    let state = Arc::new(ApiState {
        worker: Arc::new(Worker::new(model, vec![], Default::default())),
        tokenizer: None,
        split: Default::default(),
        seats: Default::default(),
        metrics: Arc::new(Metrics::default()),
        node: "split-test".into(),
        kernel_id: None,
        model: "encrypted tiny".into(),
        api_token: None,
        limits: Default::default(),
        seconds_per_layer: 0.0,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve_on(listener, state));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_generation_over_http_equals_local_plaintext_generation() {
    let plain_path = tiny_model_file(&spec()).unwrap();
    let vocab = Tokenizer::load(&plain_path).unwrap().vocab_size() as u32;
    let mut key = EeKey::from_seed([3; 32], Transform::SignedPermutation, vocab);
    let encrypted =
        std::env::temp_dir().join(format!("nesa-split-test-{}.gguf", std::process::id()));
    encrypt_kernel(&plain_path, &encrypted, &mut key).unwrap();
    let vocabulary = key.vocabulary();

    let plain = Model::load(&plain_path, &LoadOptions::default()).unwrap();
    let prompt: Vec<u32> = vec![1, 40, 75, 250, 3, 99, 100, 2, 17];
    let expected = plain
        .generate(
            &GenerateRequest {
                prompt: prompt.clone(),
                max_tokens: 10,
                sampling: Sampling::Greedy,
                stop_tokens: vec![],
                top_logprobs: 0,
            },
            |_| {},
        )
        .unwrap()
        .tokens;

    let url = serve(Model::load(&encrypted, &LoadOptions::default()).unwrap()).await;
    for client_layers in [0, 1] {
        let client_model = Model::load(
            &encrypted,
            &LoadOptions {
                layers: Some(0..client_layers),
                ..Default::default()
            },
        )
        .unwrap();
        let mut client = SplitClient::new(client_model, &url);
        let output = client
            .generate(&vocabulary.encrypt(&prompt).unwrap(), 10, &[])
            .await
            .unwrap();
        assert_eq!(
            vocabulary.decrypt(&output.tokens).unwrap(),
            expected,
            "client runs {client_layers} block(s)"
        );
        assert!(client.sent_bytes > 0);
    }

    // What the node receives after the client's first block: the plaintext hidden states
    // under the key's signed permutation, not the plaintext ones.
    let mut plain_cache = plain.new_cache(0..1);
    let plain_hidden = plain
        .forward_layers(&plain.embed(&prompt).unwrap(), 0..1, 0, &mut plain_cache)
        .unwrap()
        .to_vec()
        .unwrap();
    let front = Model::load(
        &encrypted,
        &LoadOptions {
            layers: Some(0..1),
            ..Default::default()
        },
    )
    .unwrap();
    let mut cache = front.new_cache(0..1);
    let sent = front
        .forward_layers(
            &front.embed(&vocabulary.encrypt(&prompt).unwrap()).unwrap(),
            0..1,
            0,
            &mut cache,
        )
        .unwrap()
        .to_vec()
        .unwrap();
    let maps = KernelMaps::derive(&key, plain.config());
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    assert!(close(&sent, &maps.encrypt_hidden(&plain_hidden)));
    assert!(!close(&sent, &plain_hidden));

    // Bad requests get clear errors.
    let http = reqwest::Client::new();
    let post = |request: ForwardRequest| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .post(format!("{url}/v1/split/forward"))
                .json(&request)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let request = |session: &str, position: usize, width: usize| ForwardRequest {
        session: session.into(),
        token: None,
        first_layer: 0,
        position,
        hidden: vec![0.1; width],
    };
    let (status, body) = post(request("never-started", 5, 128)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(request("bad id!", 0, 128)).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(request("narrow", 0, 100)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("hidden"), "{body}");
    std::fs::remove_file(&encrypted).unwrap();
}

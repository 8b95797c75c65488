//! Equivariant encryption and split mode, measured against plaintext in the same process:
//! decode tokens/s of the encrypted kernel vs the plaintext one (same prompts, interleaved
//! rounds), and of split mode over loopback HTTP vs running the whole encrypted kernel locally.
//! Writes `$CARGO_TARGET_DIR/bench/ee.md`.

use std::sync::Arc;

use nesa_engine::ee::encrypt_kernel;
use nesa_engine::ee::{EeKey, Transform};
use nesa_engine::{default_model_path, GenerateRequest, LoadOptions, Model, Sampling, Tokenizer};
use nesa_node::api::{self, ApiState};
use nesa_node::chain::Worker;
use nesa_node::metrics::Metrics;
use nesa_sdk::split::SplitClient;

const QUESTIONS: [&str; 3] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
];
const MAX_TOKENS: usize = 48;
const ROUNDS: usize = 3;

fn decode_rate(model: &Model, prompt: &[u32]) -> (f64, Vec<u32>) {
    let request = GenerateRequest {
        prompt: prompt.to_vec(),
        max_tokens: MAX_TOKENS,
        sampling: Sampling::Greedy,
        stop_tokens: vec![],
        top_logprobs: 0,
    };
    let output = model.generate(&request, |_| {}).unwrap();
    (output.decode_tokens_per_second(), output.tokens)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let path = default_model_path();
    if !path.exists() {
        eprintln!("{} not found: run scripts/fetch-model", path.display());
        return;
    }
    let tokenizer = Tokenizer::load(&path).unwrap();
    let mut key = EeKey::from_seed(
        [5; 32],
        Transform::SignedPermutation,
        tokenizer.vocab_size() as u32,
    );
    let encrypted_path = std::env::temp_dir().join("nesa-bench-ee.gguf");
    let report = encrypt_kernel(&path, &encrypted_path, &mut key).unwrap();
    let vocabulary = key.vocabulary();
    let plain = Model::load(&path, &LoadOptions::default()).unwrap();
    let encrypted = Arc::new(Model::load(&encrypted_path, &LoadOptions::default()).unwrap());
    let prompts: Vec<Vec<u32>> = QUESTIONS
        .iter()
        .map(|q| {
            tokenizer
                .encode(&tokenizer.chat_prompt(Some("You are a helpful AI assistant."), q))
                .unwrap()
        })
        .collect();

    // Plaintext vs encrypted, interleaved so load changes hit both alike.
    let (mut plain_rates, mut encrypted_rates) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for prompt in &prompts {
            let (p, plain_tokens) = decode_rate(&plain, prompt);
            let (e, encrypted_tokens) =
                decode_rate(&encrypted, &vocabulary.encrypt(prompt).unwrap());
            assert_eq!(vocabulary.decrypt(&encrypted_tokens).unwrap(), plain_tokens);
            plain_rates.push(p);
            encrypted_rates.push(e);
        }
        eprintln!("round {}/{ROUNDS} done", round + 1);
    }
    let (plain_rate, encrypted_rate) = (median(plain_rates), median(encrypted_rates));

    // Split (client: embedding + head; node: all 30 blocks over loopback HTTP) vs local.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (local_rates, split_rates, sent) = runtime.block_on(async {
        let state = Arc::new(ApiState {
            worker: Arc::new(Worker::new(
                Model::load(&encrypted_path, &LoadOptions::default()).unwrap(),
                vec![],
                Default::default(),
            )),
            tokenizer: None,
            split: Default::default(),
            seats: Default::default(),
            metrics: Arc::new(Metrics::default()),
            node: "bench".into(),
            kernel_id: None,
            model: "encrypted".into(),
            api_token: None,
            limits: Default::default(),
            seconds_per_layer: 0.0,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
        let (mut local, mut split, mut sent) = (Vec::new(), Vec::new(), 0);
        for _ in 0..ROUNDS {
            for prompt in &prompts {
                let ids = vocabulary.encrypt(prompt).unwrap();
                let model = encrypted.clone();
                let ids_local = ids.clone();
                let (rate, local_tokens) =
                    tokio::task::spawn_blocking(move || decode_rate(&model, &ids_local))
                        .await
                        .unwrap();
                local.push(rate);
                let front = Model::load(
                    &encrypted_path,
                    &LoadOptions {
                        layers: Some(0..0),
                        ..Default::default()
                    },
                )
                .unwrap();
                let mut client = SplitClient::new(front, &url);
                let output = client.generate(&ids, MAX_TOKENS, &[]).await.unwrap();
                assert_eq!(output.tokens, local_tokens, "split equals local");
                split.push(output.decode_tokens_per_second);
                sent = client.sent_bytes;
            }
        }
        (local, split, sent)
    });
    let (local_rate, split_rate) = (median(local_rates), median(split_rates));

    let text = format!(
        "# Equivariant encryption and split mode (SmolLM2-135M Q4_1, greedy, {MAX_TOKENS} tokens, {} prompts × {ROUNDS} rounds, medians)\n\n\
| run | decode tokens/s | ratio |\n|---|---:|---:|\n\
| plaintext kernel (baseline) | {plain_rate:.1} | 1.00 |\n\
| ee-v1 kernel (signed permutation) | {encrypted_rate:.1} | {:.3}× time |\n\
| ee-v1 local (baseline) | {local_rate:.1} | 1.00 |\n\
| ee-v1 split over loopback HTTP (client: embedding + head) | {split_rate:.1} | {:.3}× time |\n\n\
Encrypting the kernel took {:.1} s; same file size ({:.1} MB). Greedy outputs were equal token for token in every run. \
Split mode sent {} bytes of hidden states for the last prompt ({} per generated token).\n",
        QUESTIONS.len(),
        plain_rate / encrypted_rate,
        local_rate / split_rate,
        report.seconds,
        report.bytes as f64 / 1e6,
        sent,
        4 * 576,
    );
    print!("{text}");
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ee.md"), text).unwrap();
    let _ = std::fs::remove_file(&encrypted_path);
}

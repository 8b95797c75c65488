//! Tests against the real default model, SmolLM2-135M-Instruct Q4_1. They run when the model
//! is in the model cache (scripts/setup and CI fetch it) and are reported as skipped by name otherwise (they fail under `CI=true`).
//! (The tokenizer's own test against llama.cpp's ids lives with it, in `nesa-sdk`.)

use std::path::PathBuf;

use nesa_engine::{default_model_path, GenerateRequest, LoadOptions, Model, Sampling, Tokenizer};

/// The default model, or `None` with `test` reported as skipped (failed under `CI=true`).
fn model_path(test: &str) -> Option<PathBuf> {
    nesa_testkit::require_file(test, &default_model_path(), "run scripts/fetch-model")
}

#[test]
fn greedy_answer_names_the_capital_of_france() {
    let Some(path) = model_path("greedy_answer_names_the_capital_of_france") else {
        return;
    };
    let tokenizer = Tokenizer::load(&path).unwrap();
    let model = Model::load(&path, &LoadOptions::default()).unwrap();
    let prompt = tokenizer
        .encode(&tokenizer.chat_prompt(
            Some("You are a helpful AI assistant."),
            "What is the capital of France?",
        ))
        .unwrap();
    let request = GenerateRequest {
        prompt,
        max_tokens: 24,
        sampling: Sampling::Greedy,
        stop_tokens: tokenizer.stop_tokens().to_vec(),
        top_logprobs: 4,
    };
    let output = model.generate(&request, |_| {}).unwrap();
    let answer = tokenizer.decode(&output.tokens).unwrap();
    assert!(answer.contains("Paris"), "answer: {answer:?}");
    assert_eq!(output.top_logprobs.len(), output.tokens.len());
    assert_eq!(
        model.generate(&request, |_| {}).unwrap().tokens,
        output.tokens,
        "greedy is deterministic"
    );
}

/// What the market compares: tokens and the bits of every reported log-probability.
fn answer(output: &nesa_engine::GenerationOutput) -> (Vec<u32>, Vec<Vec<(u32, u32)>>) {
    (
        output.tokens.clone(),
        output
            .top_logprobs
            .iter()
            .map(|top| top.iter().map(|(t, lp)| (*t, lp.to_bits())).collect())
            .collect(),
    )
}

#[test]
fn eight_queries_in_one_batch_give_the_same_bits_as_each_alone() {
    use std::sync::Arc;
    let Some(path) = model_path("eight_queries_in_one_batch_give_the_same_bits_as_each_alone")
    else {
        return;
    };
    let tokenizer = Tokenizer::load(&path).unwrap();
    let model = Arc::new(Model::load(&path, &LoadOptions::default()).unwrap());
    let questions = [
        "What is the capital of France?",
        "Name three primary colors.",
        "Write a haiku about the sea.",
        "What is 12 times 12?",
        "Explain photosynthesis in one sentence.",
        "Translate 'thank you' into German.",
        "Give me a synonym for happy.",
        // A long prompt: prefilled in several chunks while the others decode.
        &"Summarize: the quick brown fox jumps over the lazy dog. ".repeat(20),
    ];
    let requests: Vec<GenerateRequest> = questions
        .iter()
        .enumerate()
        .map(|(i, question)| GenerateRequest {
            prompt: tokenizer
                .encode(&tokenizer.chat_prompt(None, question))
                .unwrap(),
            max_tokens: 24,
            sampling: if i % 2 == 0 {
                Sampling::Greedy
            } else {
                Sampling::Seeded {
                    temperature: 0.8,
                    top_p: 0.95,
                    seed: i as u64,
                }
            },
            stop_tokens: tokenizer.stop_tokens().to_vec(),
            top_logprobs: 4,
        })
        .collect();
    let alone: Vec<_> = requests
        .iter()
        .map(|r| answer(&model.generate(r, |_| {}).unwrap()))
        .collect();
    let engine = nesa_engine::Engine::start(model, Default::default());
    // Submitted a little apart, so later ones join a batch already decoding.
    let handles: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(30 * i as u64));
                engine.generate_blocking(request, |_| {}).unwrap()
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(answer(&handle.join().unwrap()), alone[i], "query {i}");
    }
    let batch = engine
        .stats()
        .max_batch
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        batch >= 4,
        "the queries shared forward passes (largest batch {batch})"
    );
}

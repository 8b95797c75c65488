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

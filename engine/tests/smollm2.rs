//! Tests against the real default model, SmolLM2-135M-Instruct Q4_1. They run when the model
//! is in the model cache (scripts/setup and CI fetch it) and print a skip message otherwise.
//! (The tokenizer's own test against llama.cpp's ids lives with it, in `nesa-sdk`.)

use std::path::PathBuf;

use nesa_engine::{default_model_path, GenerateRequest, LoadOptions, Model, Sampling, Tokenizer};

fn model_path() -> Option<PathBuf> {
    let path = default_model_path();
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} not found (run scripts/fetch-model)",
            path.display()
        );
        None
    }
}

#[test]
fn greedy_answer_names_the_capital_of_france() {
    let Some(path) = model_path() else { return };
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

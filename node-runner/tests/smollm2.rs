//! Tests against the real default model, SmolLM2-135M-Instruct Q4_1. They run when the model
//! is in the model cache (scripts/setup and CI fetch it) and print a skip message otherwise.

use std::path::PathBuf;

use nesa_node::engine::{
    default_model_path, GenerateRequest, LoadOptions, Model, Sampling, Tokenizer,
};

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
fn tokenizer_matches_llama_cpp_on_mixed_text() {
    let Some(path) = model_path() else { return };
    let tokenizer = Tokenizer::load(&path).unwrap();
    let ids = tokenizer
        .encode("<|im_start|>user\nHello, world! 12345 café 你好<|im_end|>")
        .unwrap();
    assert_eq!(
        ids,
        [
            1, 4093, 198, 19556, 28, 905, 17, 216, 33, 34, 35, 36, 37, 37366, 216, 18645, 250,
            48392, 138, 2
        ]
    );
    assert_eq!(
        tokenizer.decode(&ids).unwrap(),
        "user\nHello, world! 12345 café 你好"
    );
}

#[test]
fn greedy_answer_names_the_capital_of_france() {
    let Some(path) = model_path() else { return };
    let tokenizer = Tokenizer::load(&path).unwrap();
    let model = Model::load(&path, &LoadOptions::default()).unwrap();
    let prompt = tokenizer
        .encode(&tokenizer.chat_prompt(
            Some("You are a helpful assistant."),
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

//! The engine's error type: what went wrong while loading a model or running it.

use std::path::PathBuf;

/// Every way loading or running a model can fail.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot open model file {path}: {source} (run scripts/fetch-model for the default model)"
    )]
    ModelFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path} is not a GGUF file this engine can read: {source}")]
    NotGguf {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error(transparent)]
    Metadata(#[from] crate::gguf::MetadataError),
    #[error("unsupported model architecture `{0}`: only llama-family GGUF files are supported")]
    Architecture(String),
    #[error("GGUF tensor `{name}` is missing or malformed: {reason}")]
    Tensor { name: String, reason: String },
    #[error("layer range {start}..{end} is not within the {loaded} layers loaded ({first}..{last_exclusive})", last_exclusive = first + loaded)]
    LayerRange {
        start: usize,
        end: usize,
        first: usize,
        loaded: usize,
    },
    #[error("the sequence would reach position {needed}, past the model's context length {context_length}")]
    ContextOverflow {
        needed: usize,
        context_length: usize,
    },
    #[error("the key/value cache of layer {layer} holds {cached} positions but the input starts at position {position}: send the missing prefix first")]
    CacheGap {
        layer: usize,
        cached: usize,
        position: usize,
    },
    #[error("hidden states have {got} values per position, the model expects {expected}")]
    HiddenSize { got: usize, expected: usize },
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange { token: u32, vocab_size: usize },
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    #[error("the generation needs up to {needed} bytes of key/value cache, more than this node's whole budget of {budget} bytes: ask for fewer tokens")]
    KvBudget { needed: usize, budget: usize },
    #[error("the generation was cancelled")]
    Cancelled,
    #[error("the engine stopped before the work was done")]
    Stopped,
    #[error("a batched forward pass failed: {0}")]
    Batch(String),
    #[error("invalid sampling parameters: {0}")]
    Sampling(String),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Results of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

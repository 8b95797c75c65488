//! The inference engine: a llama-family model from a GGUF file on CPU with candle.
//!
//! The pieces a node runner, a shard in a pipeline, or a client in split mode call:
//! - [`Model::load`] a whole model or a layer range ([`LoadOptions`]);
//! - [`Model::embed`] token ids → [`Hidden`], [`Model::forward_layers`] over `[start, end)`
//!   with a [`KvCache`], [`Model::head`] → logits of the last position;
//! - [`Model::generate`] the whole loop with [`Sampling`] (greedy or seeded), returning
//!   [`GenerationOutput`] with the per-position top log-probabilities the market's logit
//!   fingerprint is built from;
//! - [`Tokenizer`] built from the same file, with the model's chat format.

mod config;
mod error;
mod generate;
mod layers;
mod linear;
mod model;
mod q4_1;
mod sampling;
pub mod tiny;
mod tokenizer;
mod weights;

pub use config::ModelConfig;
pub use error::{EngineError, Result};
pub use generate::{FinishReason, GenerateRequest, GenerationOutput};
pub use layers::{KvCache, LayerKvCache};
pub use model::{Hidden, LoadOptions, Model};
pub use sampling::{argmax, top_logprobs, Sampler, Sampling};
pub use tokenizer::{TextStream, Tokenizer};
pub use weights::WeightFormat;

/// File name of the default model in the model cache.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model cache: `$NESA_MODELS`, or `~/.cache/nesa/models` (where scripts/fetch-model puts
/// the default model).
pub fn model_cache_dir() -> std::path::PathBuf {
    match std::env::var_os("NESA_MODELS") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_default()
            .join(".cache/nesa/models"),
    }
}

/// Path of the default model in the model cache.
pub fn default_model_path() -> std::path::PathBuf {
    model_cache_dir().join(DEFAULT_MODEL_FILE)
}

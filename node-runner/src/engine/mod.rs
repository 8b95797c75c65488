//! The inference engine: a llama-family model from a GGUF file on CPU with candle.
//!
//! The pieces a node runner, a shard in a pipeline, or a client in split mode call:
//! - [`Model::load`] a whole model or a layer range ([`LoadOptions`]);
//! - [`Model::embed`] token ids → [`Hidden`], [`Model::forward_layers`] over `[start, end)`
//!   with a [`KvCache`], [`Model::head`] → logits of the last position;
//! - [`Model::generate`] the whole loop with [`Sampling`] (greedy or seeded), returning
//!   [`GenerationOutput`] with the per-position top log-probabilities the market's logit
//!   fingerprint is built from;
//! - [`Tokenizer`] built from the same file, with the model's chat format (it lives in
//!   `nesa_sdk::tokenizer`, so users and node runners tokenize with the same code).

mod config;
mod error;
mod generate;
mod layers;
mod linear;
mod model;
mod q4_1;
mod sampling;
pub mod tiny;
mod weights;

pub use config::ModelConfig;
pub use error::{EngineError, Result};
pub use generate::{FinishReason, GenerateRequest, GenerationOutput};
pub use layers::{KvCache, LayerKvCache};
pub use model::{Hidden, LoadOptions, Model};
pub use sampling::{argmax, top_logprobs, Sampler, Sampling};
pub use weights::WeightFormat;

pub use nesa_sdk::models::{default_model_path, model_cache_dir, DEFAULT_MODEL_FILE};
pub use nesa_sdk::tokenizer::{TextStream, Tokenizer};

//! Nesa's inference engine: a llama-family model from a GGUF file on CPU with candle, and
//! its equivariant encryption ([`ee`]).
//!
//! The pieces a node runner, a shard in a pipeline, or a client in split mode call:
//! - [`Model::load`] a whole model or a layer range ([`LoadOptions`]);
//! - [`Model::embed`] token ids → [`Hidden`], [`Model::forward_layers`] over `[start, end)`
//!   with a [`KvCache`], [`Model::head`] → logits of the last position;
//! - [`Model::generate`] the whole loop with [`Sampling`] (greedy or seeded), returning
//!   [`GenerationOutput`] with the per-position top log-probabilities the market's logit
//!   fingerprint is built from;
//! - [`Engine`]: one thread per process that batches every sequence in flight
//!   ([`Scheduler`], continuous batching within a key/value memory budget), bit for bit the
//!   same tokens as [`Model::generate`] alone;
//! - [`Tokenizer`] built from the same file, with the model's chat format ([`tokenizer`]; the
//!   wallet re-exports it, so users and node runners tokenize with the same code);
//! - [`gguf`] typed metadata reads, [`models`] where model files live on this machine.
//!
//! Test fixtures (a tiny random model writer, a small tokenizer) come with the `testing`
//! feature.

mod batch;
mod config;
pub mod ee;
mod error;
mod generate;
pub mod gguf;
mod layers;
mod linear;
mod model;
pub mod models;
mod qmatmul;
mod runtime;
mod sampling;
#[cfg(any(test, feature = "testing"))]
pub mod tiny;
pub mod tokenizer;
mod weights;

pub use batch::{
    Cancellation, EngineStats, ForwardDone, ForwardJob, GenerateJob, Job, OnToken, Scheduler,
    SchedulerConfig,
};
pub use config::ModelConfig;
pub use error::{EngineError, Result};
pub use generate::{FinishReason, GenerateRequest, GenerationOutput};
pub use layers::{KvCache, LayerKvCache};
pub use model::{release_freed_memory, Hidden, LoadOptions, Model, PREFILL_CHUNK};
pub use models::{default_model_path, model_cache_dir, DEFAULT_MODEL_FILE};
pub use runtime::Engine;
pub use sampling::{argmax, top_logprobs, Sampler, Sampling};
pub use tokenizer::{Role, TextStream, Tokenizer, Turn};
pub use weights::WeightFormat;

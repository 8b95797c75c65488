//! Where model files live on this machine: the model cache that `scripts/fetch-model` fills
//! and that the node runner and `nesa ask` read from.

use std::path::PathBuf;

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1) in the model cache.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model cache: `$NESA_MODELS`, or `~/.cache/nesa/models`.
pub fn model_cache_dir() -> PathBuf {
    match std::env::var_os("NESA_MODELS") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".cache/nesa/models"),
    }
}

/// Path of the default model in the model cache.
pub fn default_model_path() -> PathBuf {
    model_cache_dir().join(DEFAULT_MODEL_FILE)
}

//! Model hyperparameters, read from the GGUF metadata (`llama.*` keys).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use super::error::{EngineError, Result};

/// The shape of a llama-family model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Number of transformer blocks.
    pub layer_count: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Inner width of the MLP.
    pub ffn_size: usize,
    /// Query heads per block.
    pub head_count: usize,
    /// Key/value heads per block (grouped-query attention when fewer than query heads).
    pub kv_head_count: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Longest sequence the model was trained for.
    pub context_length: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base frequency.
    pub rope_freq_base: f32,
}

impl ModelConfig {
    /// Reads the hyperparameters of a `general.architecture = llama` GGUF file.
    pub fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Result<Self> {
        let architecture = metadata_string(metadata, "general.architecture")?;
        if architecture != "llama" {
            return Err(EngineError::Architecture(architecture.to_string()));
        }
        let head_count = metadata_usize(metadata, "llama.attention.head_count")?;
        let hidden_size = metadata_usize(metadata, "llama.embedding_length")?;
        let config = Self {
            layer_count: metadata_usize(metadata, "llama.block_count")?,
            hidden_size,
            ffn_size: metadata_usize(metadata, "llama.feed_forward_length")?,
            head_count,
            kv_head_count: match metadata.get("llama.attention.head_count_kv") {
                Some(_) => metadata_usize(metadata, "llama.attention.head_count_kv")?,
                None => head_count,
            },
            vocab_size: match metadata.get("llama.vocab_size") {
                Some(_) => metadata_usize(metadata, "llama.vocab_size")?,
                None => metadata
                    .get("tokenizer.ggml.tokens")
                    .and_then(|v| v.to_vec().ok())
                    .map(Vec::len)
                    .ok_or_else(|| missing("llama.vocab_size"))?,
            },
            context_length: metadata_usize(metadata, "llama.context_length")?,
            rms_norm_eps: metadata_f32(metadata, "llama.attention.layer_norm_rms_epsilon")?,
            rope_freq_base: match metadata.get("llama.rope.freq_base") {
                Some(_) => metadata_f32(metadata, "llama.rope.freq_base")?,
                None => 10_000.0,
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.head_count
    }

    fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(EngineError::Metadata {
                key: "llama.*".into(),
                reason,
            })
        };
        if self.head_count == 0 || !self.hidden_size.is_multiple_of(self.head_count) {
            return bad(format!(
                "embedding length {} is not a multiple of {} heads",
                self.hidden_size, self.head_count
            ));
        }
        if self.kv_head_count == 0 || !self.head_count.is_multiple_of(self.kv_head_count) {
            return bad(format!(
                "{} query heads are not a multiple of {} key/value heads",
                self.head_count, self.kv_head_count
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head dimension {} is odd, RoPE needs pairs",
                self.head_dim()
            ));
        }
        Ok(())
    }
}

fn missing(key: &str) -> EngineError {
    EngineError::Metadata {
        key: key.into(),
        reason: "not present".into(),
    }
}

fn lookup<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    metadata.get(key).ok_or_else(|| missing(key))
}

fn wrong_type(key: &str, err: candle_core::Error) -> EngineError {
    EngineError::Metadata {
        key: key.into(),
        reason: err.to_string(),
    }
}

/// Reads an unsigned integer metadata value of any width.
pub(crate) fn metadata_usize(metadata: &HashMap<String, Value>, key: &str) -> Result<usize> {
    let value = lookup(metadata, key)?;
    let number = match value {
        Value::U8(v) => *v as u64,
        Value::U16(v) => *v as u64,
        Value::U32(v) => *v as u64,
        Value::U64(v) => *v,
        Value::I32(v) if *v >= 0 => *v as u64,
        Value::I64(v) if *v >= 0 => *v as u64,
        other => {
            return Err(EngineError::Metadata {
                key: key.into(),
                reason: format!(
                    "expected an unsigned integer, found {:?}",
                    other.value_type()
                ),
            })
        }
    };
    Ok(number as usize)
}

pub(crate) fn metadata_f32(metadata: &HashMap<String, Value>, key: &str) -> Result<f32> {
    match lookup(metadata, key)? {
        Value::F64(v) => Ok(*v as f32),
        other => other.to_f32().map_err(|e| wrong_type(key, e)),
    }
}

pub(crate) fn metadata_string<'a>(
    metadata: &'a HashMap<String, Value>,
    key: &str,
) -> Result<&'a str> {
    lookup(metadata, key)?
        .to_string()
        .map(String::as_str)
        .map_err(|e| wrong_type(key, e))
}

pub(crate) fn metadata_array<'a>(
    metadata: &'a HashMap<String, Value>,
    key: &str,
) -> Result<&'a [Value]> {
    lookup(metadata, key)?
        .to_vec()
        .map(Vec::as_slice)
        .map_err(|e| wrong_type(key, e))
}

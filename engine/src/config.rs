//! Model hyperparameters, read from the GGUF metadata (`llama.*` keys).

use crate::gguf::{metadata_f32, metadata_string, metadata_usize, Metadata, MetadataError};

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
    pub fn from_gguf_metadata(metadata: &Metadata) -> Result<Self> {
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
                    .ok_or_else(|| MetadataError::new("llama.vocab_size", "not present"))?,
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
        let bad =
            |reason: String| Err(EngineError::Metadata(MetadataError::new("llama.*", reason)));
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

//! Rotary position embedding in GGUF's interleaved layout (pairs of adjacent channels rotate
//! together: llama.cpp's converter permutes q/k weights so that this is the right pairing).

use candle_core::{DType, Device, Tensor};

use crate::error::{EngineError, Result};

#[derive(Debug)]
pub(crate) struct RotaryEmbedding {
    /// `[max_positions, head_dim / 2]`
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
}

impl RotaryEmbedding {
    pub(crate) fn new(head_dim: usize, freq_base: f32, max_positions: usize) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / freq_base.powf(i as f32 / head_dim as f32))
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, head_dim / 2), &Device::Cpu)?;
        let positions = Tensor::arange(0u32, max_positions as u32, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let angles = positions.matmul(&inv_freq)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
            max_positions,
        })
    }

    /// Rotates `x` (`[1, heads, seq, head_dim]`, contiguous) whose first row sits at `position`.
    pub(crate) fn apply(&self, x: &Tensor, position: usize) -> Result<Tensor> {
        let seq_len = x.dim(2)?;
        if position + seq_len > self.max_positions {
            return Err(EngineError::ContextOverflow {
                needed: position + seq_len,
                context_length: self.max_positions,
            });
        }
        let cos = self.cos.narrow(0, position, seq_len)?;
        let sin = self.sin.narrow(0, position, seq_len)?;
        Ok(candle_nn::rotary_emb::rope_i(x, &cos, &sin)?)
    }
}

//! Rotary position embedding in GGUF's interleaved layout (pairs of adjacent channels rotate
//! together: llama.cpp's converter permutes q/k weights so that this is the right pairing).

use crate::error::{EngineError, Result};

#[derive(Debug)]
pub(crate) struct RotaryEmbedding {
    /// `cos(position · θ_i)` and `sin(position · θ_i)`, `head_dim / 2` per position.
    cos: Vec<f32>,
    sin: Vec<f32>,
    pairs: usize,
    max_positions: usize,
}

impl RotaryEmbedding {
    pub(crate) fn new(head_dim: usize, freq_base: f32, max_positions: usize) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / freq_base.powf(i as f32 / head_dim as f32))
            .collect();
        let angles = || (0..max_positions).flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f));
        Ok(Self {
            cos: angles().map(f32::cos).collect(),
            sin: angles().map(f32::sin).collect(),
            pairs: head_dim / 2,
            max_positions,
        })
    }

    /// Rotates one head's values (`head_dim`) at `position`.
    pub(crate) fn apply(&self, head: &mut [f32], position: usize) -> Result<()> {
        if position >= self.max_positions {
            return Err(EngineError::ContextOverflow {
                needed: position + 1,
                context_length: self.max_positions,
            });
        }
        let at = position * self.pairs;
        let (cos, sin) = (
            &self.cos[at..at + self.pairs],
            &self.sin[at..at + self.pairs],
        );
        for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (x, y) = (pair[0], pair[1]);
            pair[0] = x * c - y * s;
            pair[1] = x * s + y * c;
        }
        Ok(())
    }
}

//! One transformer block: pre-norm attention and pre-norm MLP, each added to the residual.

use candle_core::Tensor;

use super::{Attention, Mlp, RmsNorm, RotaryEmbedding, Segment};
use crate::error::Result;

#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) attention_norm: RmsNorm,
    pub(crate) attention: Attention,
    pub(crate) mlp_norm: RmsNorm,
    pub(crate) mlp: Mlp,
}

impl Block {
    /// `x`: `[1, rows, hidden]`, the rows of the sequences in `segments` stacked.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        segments: &mut [Segment<'_>],
        rope: &RotaryEmbedding,
    ) -> Result<Tensor> {
        let attended = self
            .attention
            .forward(&self.attention_norm.forward(x)?, segments, rope)?;
        let x = (x + attended)?;
        let transformed = self.mlp.forward(&self.mlp_norm.forward(&x)?)?;
        Ok((x + transformed)?)
    }
}

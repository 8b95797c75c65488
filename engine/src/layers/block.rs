//! One transformer block: pre-norm attention and pre-norm MLP, each added to the residual.

use candle_core::Tensor;

use super::{Attention, LayerKvCache, Mlp, RmsNorm, RotaryEmbedding};
use crate::error::Result;

#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) attention_norm: RmsNorm,
    pub(crate) attention: Attention,
    pub(crate) mlp_norm: RmsNorm,
    pub(crate) mlp: Mlp,
}

impl Block {
    /// `x`: `[1, seq, hidden]` whose first row sits at `position`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        position: usize,
        rope: &RotaryEmbedding,
        cache: &mut LayerKvCache,
    ) -> Result<Tensor> {
        let attended =
            self.attention
                .forward(&self.attention_norm.forward(x)?, position, rope, cache)?;
        let x = (x + attended)?;
        let transformed = self.mlp.forward(&self.mlp_norm.forward(&x)?)?;
        Ok((x + transformed)?)
    }
}

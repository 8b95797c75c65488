//! One transformer block: pre-norm attention and pre-norm MLP, each added to the residual.

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
    /// `x`: rows of the hidden width, the rows of the sequences in `segments` stacked;
    /// updated in place.
    pub(crate) fn forward(
        &self,
        x: &mut [f32],
        segments: &mut [Segment<'_>],
        rope: &RotaryEmbedding,
    ) -> Result<()> {
        let attended = self
            .attention
            .forward(&self.attention_norm.forward(x), segments, rope)?;
        add(x, &attended);
        let transformed = self.mlp.forward(&self.mlp_norm.forward(x))?;
        add(x, &transformed);
        Ok(())
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

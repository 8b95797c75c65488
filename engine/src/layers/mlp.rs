//! The gated feed-forward network: `down(silu(gate(x)) * up(x))`.

use candle_core::Tensor;

use crate::error::Result;
use crate::linear::{Linear, StackedProjection};

#[derive(Debug)]
pub(crate) struct Mlp {
    /// gate and up, stacked.
    gate_up: StackedProjection,
    down: Linear,
}

impl Mlp {
    pub(crate) fn new(gate_up: StackedProjection, down: Linear) -> Self {
        Self { gate_up, down }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [gate, up]: [Tensor; 2] = self
            .gate_up
            .forward(x)?
            .try_into()
            .expect("gate and up projections");
        let activated = (candle_nn::ops::silu(&gate)? * up)?;
        self.down.forward(&activated)
    }
}

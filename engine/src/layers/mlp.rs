//! The gated feed-forward network: `down(silu(gate(x)) * up(x))`.

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

    /// `x`: rows of the hidden width.
    pub(crate) fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        let gate_up = self.gate_up.forward(x)?;
        let inner = self.down.cols();
        let activated: Vec<f32> = gate_up
            .chunks_exact(2 * inner)
            .flat_map(|row| {
                let (gate, up) = row.split_at(inner);
                gate.iter()
                    .zip(up)
                    .map(|(&g, &u)| g / ((-g).exp() + 1.0) * u)
            })
            .collect();
        self.down.forward(&activated)
    }
}

//! RMSNorm: scale-free normalisation of the residual stream, then a learned per-channel gain.

use candle_core::Tensor;

use crate::error::Result;

#[derive(Debug)]
pub(crate) struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    pub(crate) fn new(weight: Tensor, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: weight.to_vec1()?,
            eps,
        })
    }

    /// Normalises each row of `x` (rows of the weight's width). The mean square is summed in
    /// f64, where each square of an f32 is exact, so the result does not depend on the order
    /// of the channels (an encrypted kernel permutes them).
    pub(crate) fn forward(&self, x: &[f32]) -> Vec<f32> {
        let width = self.weight.len();
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(width) {
            let squares: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
            let mean = (squares / width as f64) as f32;
            let scale = 1.0 / (mean + self.eps).sqrt();
            out.extend(row.iter().zip(&self.weight).map(|(v, g)| v * scale * g));
        }
        out
    }
}

//! RMSNorm: scale-free normalisation of the residual stream, then a learned per-channel gain.

use candle_core::Tensor;

use crate::error::Result;

#[derive(Debug)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub(crate) fn new(weight: Tensor, eps: f32) -> Self {
        Self { weight, eps }
    }

    /// The mean square is summed in f64, where each square of an f32 is exact, so the result
    /// does not depend on the order of the channels (an encrypted kernel permutes them).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let width = *dims.last().expect("at least one dimension");
        let weight: Vec<f32> = self.weight.to_vec1()?;
        let mut values: Vec<f32> = x.flatten_all()?.to_vec1()?;
        for row in values.chunks_exact_mut(width) {
            let squares: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
            let mean = (squares / width as f64) as f32;
            let scale = 1.0 / (mean + self.eps).sqrt();
            for (v, g) in row.iter_mut().zip(&weight) {
                *v = *v * scale * g;
            }
        }
        Ok(Tensor::from_vec(values, dims, x.device())?)
    }
}

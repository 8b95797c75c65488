//! Linear maps over quantized weights: the engine's own Q4_1 and Q8_0 kernels, or candle's
//! `QMatMul` for other types.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};

use super::error::{EngineError, Result};
use super::qmatmul::{Q4_1Matrix, Q8_0Matrix};
use super::weights::WeightFormat;

/// `y = x · Wᵀ` for a quantized `W` `[rows, cols]`.
#[derive(Debug)]
pub(crate) enum Linear {
    Candle(QMatMul),
    Q4_1(Q4_1Matrix),
    /// Shared with the token embedding when the file ties them.
    Q8_0(Arc<Q8_0Matrix>),
}

impl Linear {
    pub(crate) fn new(tensor: QTensor, format: WeightFormat) -> Result<Self> {
        match (tensor.dtype(), format) {
            (GgmlDType::Q4_1, WeightFormat::AsStored) => {
                Ok(Linear::Q4_1(Q4_1Matrix::from_qtensor(&tensor)?))
            }
            (GgmlDType::Q8_0, WeightFormat::AsStored) => {
                Ok(Linear::Q8_0(Arc::new(Q8_0Matrix::from_qtensor(&tensor)?)))
            }
            _ => Ok(Linear::Candle(QMatMul::from_arc(Arc::new(tensor))?)),
        }
    }

    /// `x`: rows of `cols()` values; returns as many rows of `rows()` values.
    pub(crate) fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        match self {
            Linear::Candle(matmul) => {
                let cols = self.cols();
                if !x.len().is_multiple_of(cols) {
                    return Err(EngineError::HiddenSize {
                        got: x.len(),
                        expected: cols,
                    });
                }
                let x = Tensor::from_slice(x, (x.len() / cols, cols), &Device::Cpu)?;
                Ok(matmul.forward(&x)?.flatten_all()?.to_vec1()?)
            }
            Linear::Q4_1(matrix) => matrix.forward(x),
            Linear::Q8_0(matrix) => matrix.forward(x),
        }
    }

    /// Values per input row (the weight matrix's columns).
    pub(crate) fn cols(&self) -> usize {
        match self {
            Linear::Candle(QMatMul::QTensor(tensor)) => tensor.shape().dims()[1],
            Linear::Candle(QMatMul::Tensor(tensor) | QMatMul::TensorF16(tensor)) => {
                tensor.dims()[1]
            }
            Linear::Q4_1(matrix) => matrix.shape().1,
            Linear::Q8_0(matrix) => matrix.shape().1,
        }
    }
}

/// Several linear maps over the same input, run as few matmuls as their storage types allow.
#[derive(Debug)]
pub(crate) struct StackedProjection {
    /// Each matmul and the output widths it produces, in order.
    groups: Vec<(Linear, Vec<usize>)>,
}

impl StackedProjection {
    pub(crate) fn new(tensors: Vec<QTensor>, cols: usize, format: WeightFormat) -> Result<Self> {
        let mut groups: Vec<(GgmlDType, Vec<QTensor>)> = Vec::new();
        for tensor in tensors {
            match groups.last_mut() {
                Some((dtype, members)) if *dtype == tensor.dtype() => members.push(tensor),
                _ => groups.push((tensor.dtype(), vec![tensor])),
            }
        }
        let groups = groups
            .into_iter()
            .map(|(dtype, members)| {
                let widths: Vec<usize> = members.iter().map(|t| t.shape().dims()[0]).collect();
                let stacked = if members.len() == 1 {
                    members.into_iter().next().expect("one member")
                } else {
                    // Rows are stored one after another, so stacking rows is concatenating bytes.
                    let mut bytes = Vec::new();
                    for member in &members {
                        bytes.extend_from_slice(&member.data()?);
                    }
                    let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype)?;
                    QTensor::new(storage, (widths.iter().sum::<usize>(), cols))?
                };
                Ok((Linear::new(stacked, format)?, widths))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { groups })
    }

    /// Applies every map to `x` (rows of `cols` values): per row, the outputs of every map
    /// side by side, in load order.
    pub(crate) fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut outputs = self
            .groups
            .iter()
            .map(|(linear, _)| linear.forward(x))
            .collect::<Result<Vec<_>>>()?;
        if outputs.len() == 1 {
            return Ok(outputs.pop().expect("one group"));
        }
        let widths: Vec<usize> = self
            .groups
            .iter()
            .map(|(_, widths)| widths.iter().sum())
            .collect();
        let rows = outputs[0].len() / widths[0];
        let mut stacked = Vec::with_capacity(rows * widths.iter().sum::<usize>());
        for row in 0..rows {
            for (output, &width) in outputs.iter().zip(&widths) {
                stacked.extend_from_slice(&output[row * width..(row + 1) * width]);
            }
        }
        Ok(stacked)
    }
}

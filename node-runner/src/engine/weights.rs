//! Reads weights by name from a GGUF file, with a progress bar on a terminal and optional
//! requantization of Q4_1 matrices at load time.

use std::borrow::Cow;
use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::error::{EngineError, Result};

/// How quantized matrices are stored in memory after loading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// Keep every tensor as the file stores it.
    #[default]
    AsStored,
    /// Requantize Q4_1 matrices to Q8_0: candle's Q4_1 dot product is scalar while Q8_0 has
    /// SIMD kernels, so this trades ~1.7× the memory of those matrices for decode speed.
    Q4_1ToQ8_0,
}

impl WeightFormat {
    fn target(self, stored: GgmlDType) -> Option<GgmlDType> {
        match (self, stored) {
            (WeightFormat::Q4_1ToQ8_0, GgmlDType::Q4_1) => Some(GgmlDType::Q8_0),
            _ => None,
        }
    }
}

/// An open GGUF file: its metadata and a reader for its tensors.
pub(crate) struct GgufFile {
    pub(crate) path: PathBuf,
    pub(crate) content: gguf_file::Content,
    file: File,
    format: WeightFormat,
    progress: ProgressBar,
}

impl GgufFile {
    pub(crate) fn open(path: &Path, format: WeightFormat) -> Result<Self> {
        let mut file = File::open(path)
            .map_err(|source| EngineError::ModelFile { path: path.to_owned(), source })?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|source| EngineError::NotGguf { path: path.to_owned(), source })?;
        Ok(Self { path: path.to_owned(), content, file, format, progress: ProgressBar::hidden() })
    }

    /// Shows a progress bar on stderr (only when it is a terminal) over the bytes of `names`.
    pub(crate) fn show_progress(&mut self, names: &[String]) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let total: u64 = names.iter().filter_map(|name| self.stored_size(name)).sum();
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("loading {msg} [{bar:30}] {bytes}/{total_bytes}")
                .expect("static progress template")
                .progress_chars("=> "),
        );
        bar.set_message(
            self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        );
        self.progress = bar;
    }

    pub(crate) fn finish_progress(&self) {
        self.progress.finish_and_clear();
    }

    fn stored_size(&self, name: &str) -> Option<u64> {
        let info = self.content.tensor_infos.get(name)?;
        let dtype = info.ggml_dtype;
        Some((info.shape.elem_count() / dtype.block_size() * dtype.type_size()) as u64)
    }

    pub(crate) fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads one tensor as the file stores it.
    pub(crate) fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        let tensor = self
            .content
            .tensor(&mut self.file, name, &Device::Cpu)
            .map_err(|e| EngineError::Tensor { name: name.into(), reason: e.to_string() })?;
        self.progress.inc(self.stored_size(name).unwrap_or(0));
        Ok(tensor)
    }

    /// Reads a 1-D f32 vector (norm weights), checking its length.
    pub(crate) fn vector(&mut self, name: &str, len: usize) -> Result<Tensor> {
        let tensor = self.qtensor(name)?.dequantize(&Device::Cpu)?;
        if tensor.dims() != [len] {
            return Err(EngineError::Tensor {
                name: name.into(),
                reason: format!("expected shape [{len}], found {:?}", tensor.dims()),
            });
        }
        Ok(tensor)
    }

    /// Reads a matrix `[rows, cols]` (rows = outputs) in the configured weight format.
    pub(crate) fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<QTensor> {
        let tensor = self.qtensor(name)?;
        if tensor.shape().dims() != [rows, cols] {
            return Err(EngineError::Tensor {
                name: name.into(),
                reason: format!("expected shape [{rows}, {cols}], found {:?}", tensor.shape().dims()),
            });
        }
        match self.format.target(tensor.dtype()) {
            Some(target) => Ok(QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, target)?),
            None => Ok(tensor),
        }
    }

    /// Reads several matrices with the same input width and stacks their rows into one
    /// projection, so a block runs one matmul where the file has several (q/k/v, gate/up).
    pub(crate) fn stacked(&mut self, parts: &[(&str, usize)], cols: usize) -> Result<StackedProjection> {
        let mut tensors = Vec::with_capacity(parts.len());
        for &(name, rows) in parts {
            tensors.push(self.matrix(name, rows, cols)?);
        }
        StackedProjection::new(tensors, cols)
    }
}

/// Several linear maps over the same input, run as few matmuls as their storage types allow.
#[derive(Debug)]
pub(crate) struct StackedProjection {
    /// Each matmul and the output widths it produces, in order.
    groups: Vec<(QMatMul, Vec<usize>)>,
}

impl StackedProjection {
    fn new(tensors: Vec<QTensor>, cols: usize) -> Result<Self> {
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
                Ok((QMatMul::from_arc(Arc::new(stacked))?, widths))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { groups })
    }

    /// Applies every map to `x` (`[.., cols]`) and returns the outputs in load order.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        use candle_core::Module;
        let mut outputs = Vec::new();
        for (matmul, widths) in &self.groups {
            let y = matmul.forward(x)?;
            if widths.len() == 1 {
                outputs.push(y);
                continue;
            }
            let mut offset = 0;
            for &width in widths {
                outputs.push(y.narrow(candle_core::D::Minus1, offset, width)?);
                offset += width;
            }
        }
        Ok(outputs)
    }
}

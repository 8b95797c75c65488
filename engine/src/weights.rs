//! Reads weights by name from a GGUF file, with a progress bar on a terminal and optional
//! requantization of Q4_1 matrices at load time.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::error::{EngineError, Result};
use super::linear::{Linear, StackedProjection};

/// How quantized matrices are stored and multiplied after loading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// Keep every tensor as the file stores it; Q4_1 matrices use the engine's SIMD kernel.
    #[default]
    AsStored,
    /// Keep every tensor as stored and multiply everything with candle's own kernels (its
    /// Q4_1 one is scalar): the baseline the benchmark compares against.
    CandleKernels,
    /// Requantize Q4_1 matrices to Q8_0 (candle's kernels): ~1.7× the memory of those
    /// matrices, and the rounding can change near-tied greedy choices.
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
        let mut file = File::open(path).map_err(|source| EngineError::ModelFile {
            path: path.to_owned(),
            source,
        })?;
        let content =
            gguf_file::Content::read(&mut file).map_err(|source| EngineError::NotGguf {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            content,
            file,
            format,
            progress: ProgressBar::hidden(),
        })
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
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
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
            .map_err(|e| EngineError::Tensor {
                name: name.into(),
                reason: e.to_string(),
            })?;
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
                reason: format!(
                    "expected shape [{rows}, {cols}], found {:?}",
                    tensor.shape().dims()
                ),
            });
        }
        // candle's Q4_1/Q5_0/Q5_1 dot products handle blocks in pairs and panic otherwise (the
        // engine's own Q4_1 kernel does not care).
        let dtype = tensor.dtype();
        let through_candle = match dtype {
            GgmlDType::Q4_1 => self.format == WeightFormat::CandleKernels,
            GgmlDType::Q5_0 | GgmlDType::Q5_1 => true,
            _ => false,
        };
        if through_candle && !(cols / dtype.block_size()).is_multiple_of(2) {
            return Err(EngineError::Tensor {
                name: name.into(),
                reason: format!("{dtype:?} rows of {cols} values are an odd number of blocks, which this engine cannot multiply"),
            });
        }
        match self.format.target(dtype) {
            Some(target) => Ok(QTensor::quantize(
                &tensor.dequantize(&Device::Cpu)?,
                target,
            )?),
            None => Ok(tensor),
        }
    }

    /// Reads several matrices with the same input width and stacks their rows into one
    /// projection, so a block runs one matmul where the file has several (q/k/v, gate/up).
    pub(crate) fn stacked(
        &mut self,
        parts: &[(&str, usize)],
        cols: usize,
    ) -> Result<StackedProjection> {
        let mut tensors = Vec::with_capacity(parts.len());
        for &(name, rows) in parts {
            tensors.push(self.matrix(name, rows, cols)?);
        }
        StackedProjection::new(tensors, cols, self.format)
    }

    /// Reads one matrix as a linear map.
    pub(crate) fn linear(&mut self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let tensor = self.matrix(name, rows, cols)?;
        Linear::new(tensor, self.format)
    }
}

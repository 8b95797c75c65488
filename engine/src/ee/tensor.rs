//! Exact rearrangements of GGUF tensors in their stored formats: permuting and negating rows
//! and columns without dequantizing.
//!
//! A matrix is `rows × cols` with each row stored as consecutive blocks of `block` values
//! along the columns (1 for F32/F16, 32 for Q4_0/Q4_1/Q8_0). Rows move freely. A row is
//! negated by negating its scales (`-(d·q + m) = (-d)·q + (-m)`, exact). Columns move only
//! block onto block (with any order inside the block), since values sharing a scale must stay
//! together; a column is negated only where each value has its own sign (F32, F16, Q8_0).

use candle_core::quantized::GgmlDType;

/// Why a tensor cannot be rearranged exactly.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("tensor {name}: format {dtype:?} cannot be rearranged exactly (supported: F32, F16, Q4_0, Q4_1, Q8_0)")]
    Unsupported { name: String, dtype: GgmlDType },
    #[error("tensor {name}: the column permutation does not move whole {block}-value blocks")]
    NotBlockAligned { name: String, block: usize },
    #[error("tensor {name}: {dtype:?} columns cannot change sign exactly")]
    NoColumnSigns { name: String, dtype: GgmlDType },
    #[error("tensor {name}: a Q8_0 value of -128 cannot be negated")]
    Q8Overflow { name: String },
    #[error("tensor {name}: {reason}")]
    Shape { name: String, reason: String },
}

/// Byte layout of one block of a supported format.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Values per block.
    block: usize,
    /// Bytes per block.
    bytes: usize,
    /// Byte offsets of the f16 scales negated to negate a whole block.
    scales: &'static [usize],
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    F32,
    F16,
    /// 32 four-bit values after `header` bytes: value `j` is the low nibble of byte `j`,
    /// value `j + 16` the high nibble.
    Nibbles {
        header: usize,
    },
    /// 32 signed bytes after a 2-byte scale.
    Q8,
}

fn layout(name: &str, dtype: GgmlDType) -> Result<Layout, TensorError> {
    Ok(match dtype {
        GgmlDType::F32 => Layout {
            block: 1,
            bytes: 4,
            scales: &[],
            kind: Kind::F32,
        },
        GgmlDType::F16 => Layout {
            block: 1,
            bytes: 2,
            scales: &[],
            kind: Kind::F16,
        },
        GgmlDType::Q4_0 => Layout {
            block: 32,
            bytes: 18,
            scales: &[0],
            kind: Kind::Nibbles { header: 2 },
        },
        GgmlDType::Q4_1 => Layout {
            block: 32,
            bytes: 20,
            scales: &[0, 2],
            kind: Kind::Nibbles { header: 4 },
        },
        GgmlDType::Q8_0 => Layout {
            block: 32,
            bytes: 34,
            scales: &[0],
            kind: Kind::Q8,
        },
        _ => {
            return Err(TensorError::Unsupported {
                name: name.into(),
                dtype,
            })
        }
    })
}

/// A matrix's raw bytes with its format and shape.
pub struct RawMatrix<'a> {
    pub name: &'a str,
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
}

impl RawMatrix<'_> {
    fn layout(&self) -> Result<Layout, TensorError> {
        let layout = layout(self.name, self.dtype)?;
        let row_bytes = self.cols / layout.block * layout.bytes;
        if !self.cols.is_multiple_of(layout.block) || self.data.len() != self.rows * row_bytes {
            return Err(TensorError::Shape {
                name: self.name.into(),
                reason: format!(
                    "{} bytes do not hold {}×{} {:?} values",
                    self.data.len(),
                    self.rows,
                    self.cols,
                    self.dtype
                ),
            });
        }
        Ok(layout)
    }

    fn row_bytes(&self, layout: &Layout) -> usize {
        self.cols / layout.block * layout.bytes
    }

    /// Row `r` of the result is row `perm[r]` of the input.
    pub fn permute_rows(&mut self, perm: &[u32]) -> Result<(), TensorError> {
        let layout = self.layout()?;
        self.check_len(perm.len(), self.rows, "row permutation")?;
        let width = self.row_bytes(&layout);
        let mut out = Vec::with_capacity(self.data.len());
        for &source in perm {
            let start = source as usize * width;
            out.extend_from_slice(&self.data[start..start + width]);
        }
        self.data = out;
        Ok(())
    }

    /// Negates the rows where `signs[r]`.
    pub fn negate_rows(&mut self, signs: &[bool]) -> Result<(), TensorError> {
        let layout = self.layout()?;
        self.check_len(signs.len(), self.rows, "row signs")?;
        let width = self.row_bytes(&layout);
        for (row, _) in signs.iter().enumerate().filter(|(_, &s)| s) {
            let bytes = &mut self.data[row * width..(row + 1) * width];
            for block in bytes.chunks_exact_mut(layout.bytes) {
                negate_block(&layout, block);
            }
        }
        Ok(())
    }

    /// Column `c` of the result is column `perm[c]` of the input; `perm` must move whole
    /// blocks.
    pub fn permute_cols(&mut self, perm: &[u32]) -> Result<(), TensorError> {
        let layout = self.layout()?;
        self.check_len(perm.len(), self.cols, "column permutation")?;
        let block = layout.block;
        // For each target block: the source block and where each value comes from inside it.
        let mut plan = Vec::with_capacity(self.cols / block);
        for target in perm.chunks_exact(block) {
            let source = target[0] as usize / block;
            let inner: Vec<usize> = target.iter().map(|&c| c as usize % block).collect();
            if target.iter().any(|&c| c as usize / block != source) {
                return Err(TensorError::NotBlockAligned {
                    name: self.name.into(),
                    block,
                });
            }
            plan.push((source, inner));
        }
        let width = self.row_bytes(&layout);
        let mut out = vec![0u8; self.data.len()];
        for (row_in, row_out) in self
            .data
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(width))
        {
            for (target, (source, inner)) in plan.iter().enumerate() {
                let from = &row_in[source * layout.bytes..(source + 1) * layout.bytes];
                let to = &mut row_out[target * layout.bytes..(target + 1) * layout.bytes];
                permute_block(&layout, from, to, inner);
            }
        }
        self.data = out;
        Ok(())
    }

    /// Negates the columns where `signs[c]` (F32, F16, Q8_0 only).
    pub fn negate_cols(&mut self, signs: &[bool]) -> Result<(), TensorError> {
        let layout = self.layout()?;
        self.check_len(signs.len(), self.cols, "column signs")?;
        if !signs.iter().any(|&s| s) {
            return Ok(());
        }
        let width = self.row_bytes(&layout);
        let name = self.name;
        for row in self.data.chunks_exact_mut(width) {
            for (col, _) in signs.iter().enumerate().filter(|(_, &s)| s) {
                match layout.kind {
                    Kind::F32 => row[col * 4 + 3] ^= 0x80,
                    Kind::F16 => row[col * 2 + 1] ^= 0x80,
                    Kind::Q8 => {
                        let at = col / 32 * layout.bytes + 2 + col % 32;
                        let value = row[at] as i8;
                        if value == i8::MIN {
                            return Err(TensorError::Q8Overflow { name: name.into() });
                        }
                        row[at] = (-value) as u8;
                    }
                    Kind::Nibbles { .. } => {
                        return Err(TensorError::NoColumnSigns {
                            name: name.into(),
                            dtype: self.dtype,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    fn check_len(&self, got: usize, expected: usize, what: &str) -> Result<(), TensorError> {
        if got != expected {
            return Err(TensorError::Shape {
                name: self.name.into(),
                reason: format!("{what} of {got} for {expected}"),
            });
        }
        Ok(())
    }
}

fn negate_block(layout: &Layout, block: &mut [u8]) {
    match layout.kind {
        Kind::F32 => block[3] ^= 0x80,
        Kind::F16 => block[1] ^= 0x80,
        // Scales are little-endian f16: the sign is the top bit of the second byte.
        _ => layout.scales.iter().for_each(|&at| block[at + 1] ^= 0x80),
    }
}

fn permute_block(layout: &Layout, from: &[u8], to: &mut [u8], inner: &[usize]) {
    match layout.kind {
        Kind::F32 | Kind::F16 => to.copy_from_slice(from),
        Kind::Q8 => {
            to[..2].copy_from_slice(&from[..2]);
            for (j, &i) in inner.iter().enumerate() {
                to[2 + j] = from[2 + i];
            }
        }
        Kind::Nibbles { header } => {
            to[..header].copy_from_slice(&from[..header]);
            let nibble = |i: usize| {
                let byte = from[header + i % 16];
                if i < 16 {
                    byte & 0x0f
                } else {
                    byte >> 4
                }
            };
            for j in 0..16 {
                to[header + j] = nibble(inner[j]) | (nibble(inner[j + 16]) << 4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{QStorage, QTensor};
    use candle_core::{Device, Tensor};
    use std::borrow::Cow;

    fn values(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect()
    }

    fn raw(dtype: GgmlDType, rows: usize, cols: usize) -> (Vec<f32>, RawMatrix<'static>) {
        let tensor = Tensor::from_vec(values(rows, cols), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&tensor, dtype).unwrap();
        let stored: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let data = q.data().unwrap().into_owned();
        (
            stored,
            RawMatrix {
                name: "t",
                dtype,
                rows,
                cols,
                data,
            },
        )
    }

    fn dequantize(m: &RawMatrix) -> Vec<f32> {
        let storage = QStorage::from_data(Cow::Borrowed(&m.data), &Device::Cpu, m.dtype).unwrap();
        QTensor::new(storage, (m.rows, m.cols))
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// A block-structured permutation of `n` columns: blocks reversed, values inside each
    /// block rotated.
    fn block_perm(n: usize, block: usize) -> Vec<u32> {
        let blocks = n / block;
        (0..n)
            .map(|c| {
                let (b, j) = (c / block, c % block);
                ((blocks - 1 - b) * block + (j + 5) % block) as u32
            })
            .collect()
    }

    #[test]
    fn rearrangements_are_exact_in_every_supported_format() {
        let (rows, cols) = (6, 64);
        for dtype in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
        ] {
            let (plain, mut m) = raw(dtype, rows, cols);
            let row_perm = [3u32, 0, 5, 1, 4, 2];
            let row_signs = [true, false, true, true, false, false];
            let col_perm = block_perm(cols, 32);
            m.permute_rows(&row_perm).unwrap();
            m.negate_rows(&row_signs).unwrap();
            m.permute_cols(&col_perm).unwrap();
            let col_signs: Vec<bool> = (0..cols).map(|c| c % 3 == 0).collect();
            let column_signs_exact = !matches!(dtype, GgmlDType::Q4_0 | GgmlDType::Q4_1);
            if column_signs_exact {
                m.negate_cols(&col_signs).unwrap();
            } else {
                assert!(matches!(
                    m.negate_cols(&col_signs),
                    Err(TensorError::NoColumnSigns { .. })
                ));
            }
            let got = dequantize(&m);
            for r in 0..rows {
                for c in 0..cols {
                    let mut expected = plain[row_perm[r] as usize * cols + col_perm[c] as usize];
                    if row_signs[r] {
                        expected = -expected;
                    }
                    if column_signs_exact && col_signs[c] {
                        expected = -expected;
                    }
                    assert_eq!(got[r * cols + c], expected, "{dtype:?} at {r},{c}");
                }
            }
        }
    }

    #[test]
    fn columns_may_not_leave_their_block_in_quantized_formats() {
        let (_, mut m) = raw(GgmlDType::Q4_1, 2, 64);
        let mut perm: Vec<u32> = (0..64).collect();
        perm.swap(0, 40);
        assert!(matches!(
            m.permute_cols(&perm),
            Err(TensorError::NotBlockAligned { .. })
        ));
        let (_, mut f) = raw(GgmlDType::F32, 2, 64);
        f.permute_cols(&perm).unwrap();
    }
}

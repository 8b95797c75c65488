//! Q4_1 matrix × f32 activations with AVX2, chosen at run time. candle 0.11's Q4_1 dot product
//! is scalar (and its SIMD paths for other types are compile-time gated), which made Q4_1
//! models the slowest case; this kernel follows ggml's arithmetic (activations quantized to
//! Q8_1, an exact integer dot product per block), so results stay within rounding of
//! llama.cpp's. Blocks are summed in f64, where every term is exact, which makes the result
//! independent of the order of the columns (see `dot_portable`).
//!
//! The portable fallback computes exactly the same integers and f64 operations in the same
//! order as the AVX2 path, so a node's output does not depend on its CPU's features.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;

use super::error::{EngineError, Result};

const BLOCK: usize = 32;

/// How far ahead of the current weight block the AVX2 kernel prefetches.
const PREFETCH_BYTES: usize = 8192;

/// One Q4_1 block as GGUF stores it: `value = d * q + m` for 32 4-bit `q`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct BlockQ4_1 {
    d: f16,
    m: f16,
    /// Byte j holds value j in its low nibble and value j + 16 in its high nibble.
    qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// One block of activations quantized to 8 bits (ggml's Q8_1): `value ≈ d * q`, `s = d * Σq`.
#[derive(Clone, Copy, Debug)]
struct BlockQ8_1 {
    d: f32,
    s: f32,
    qs: [i8; BLOCK],
}

/// A Q4_1 weight matrix `[rows, cols]` (rows = outputs).
#[derive(Debug)]
pub(crate) struct Q4_1Matrix {
    blocks: Vec<BlockQ4_1>,
    rows: usize,
    cols: usize,
}

impl Q4_1Matrix {
    /// Takes the blocks of a Q4_1 `QTensor` of shape `[rows, cols]`.
    pub(crate) fn from_qtensor(tensor: &QTensor) -> Result<Self> {
        let bad = |reason: String| EngineError::Tensor {
            name: "Q4_1 matrix".into(),
            reason,
        };
        if tensor.dtype() != GgmlDType::Q4_1 {
            return Err(bad(format!("expected Q4_1, found {:?}", tensor.dtype())));
        }
        let (rows, cols) = tensor.shape().dims2()?;
        if !cols.is_multiple_of(BLOCK) {
            return Err(bad(format!(
                "{cols} columns are not whole blocks of {BLOCK}"
            )));
        }
        let bytes = tensor.data()?;
        let blocks = bytes
            .chunks_exact(20)
            .map(|b| BlockQ4_1 {
                d: f16::from_le_bytes([b[0], b[1]]),
                m: f16::from_le_bytes([b[2], b[3]]),
                qs: b[4..20].try_into().expect("16 bytes"),
            })
            .collect::<Vec<_>>();
        if blocks.len() != rows * cols / BLOCK {
            return Err(bad(format!(
                "{} blocks for a {rows}×{cols} matrix",
                blocks.len()
            )));
        }
        Ok(Self { blocks, rows, cols })
    }

    /// `x · selfᵀ` for `x` of shape `[.., cols]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (&cols, batch) = dims.split_last().expect("at least one dimension");
        if cols != self.cols {
            return Err(EngineError::HiddenSize {
                got: cols,
                expected: self.cols,
            });
        }
        let m: usize = batch.iter().product();
        let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let blocks_per_row = self.cols / BLOCK;
        let mut activations = Vec::with_capacity(m * blocks_per_row);
        for chunk in input.chunks_exact(BLOCK) {
            activations.push(quantize_q8_1(chunk));
        }
        let mut output = vec![0f32; m * self.rows];
        let out_ptr = output.as_mut_ptr() as usize;
        let kernel = Kernel::detect();
        // Groups of 4 weight rows share each activation load; the pool splits the groups.
        let groups = self.rows.div_ceil(4);
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for group in range {
                let first = group * 4;
                let count = (self.rows - first).min(4);
                let row = |r: usize| {
                    let row = first + r.min(count - 1);
                    &self.blocks[row * blocks_per_row..(row + 1) * blocks_per_row]
                };
                let rows = [row(0), row(1), row(2), row(3)];
                for i in 0..m {
                    let acts = &activations[i * blocks_per_row..(i + 1) * blocks_per_row];
                    let dots = kernel.dot4(rows, acts);
                    debug_assert!(i * self.rows + first + count <= m * self.rows);
                    // SAFETY: `first + count <= self.rows` and `i < m`, so the `count` values
                    // written lie inside `output` (`m * self.rows` values), which outlives the
                    // pool; each (i, row) element is written by exactly one group.
                    unsafe {
                        let out = (out_ptr as *mut f32).add(i * self.rows + first);
                        std::ptr::copy_nonoverlapping(dots.as_ptr(), out, count);
                    }
                }
            }
        });
        let mut out_dims = batch.to_vec();
        out_dims.push(self.rows);
        Ok(Tensor::from_vec(output, out_dims, &Device::Cpu)?)
    }
}

/// ggml's `quantize_row_q8_1` for one block (scale and sum rounded through f16 as ggml does).
fn quantize_q8_1(xs: &[f32]) -> BlockQ8_1 {
    let amax = xs.iter().fold(0f32, |a, x| a.max(x.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; BLOCK];
    let mut sum = 0i32;
    for (q, x) in qs.iter_mut().zip(xs) {
        *q = (x * id).round() as i8;
        sum += *q as i32;
    }
    let d16 = f16::from_f32(d);
    BlockQ8_1 {
        d: d16.to_f32(),
        s: (f16::from_f32(sum as f32) * d16).to_f32(),
        qs,
    }
}

#[derive(Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Dot products of four weight rows with one activation row (each row's arithmetic is
    /// the same as alone; interleaving only lets the CPU overlap them).
    ///
    /// Panics if a row has fewer blocks than `acts`.
    fn dot4(self, rows: [&[BlockQ4_1]; 4], acts: &[BlockQ8_1]) -> [f32; 4] {
        assert!(
            rows.iter().all(|row| row.len() >= acts.len()),
            "a weight row is shorter than the activations"
        );
        match self {
            Kernel::Portable => rows.map(|weights| dot_portable(weights, acts)),
            // SAFETY: the CPU supports AVX2, FMA and F16C (checked in `detect`), and every
            // row holds at least `acts.len()` blocks (asserted above).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { dot4_avx2(rows, acts) },
        }
    }
}

/// Integer dot product of one weight block with one activation block (exact).
fn block_dot(w: &BlockQ4_1, a: &BlockQ8_1) -> i32 {
    (0..BLOCK)
        .map(|k| {
            let q = if k < 16 {
                w.qs[k] & 0x0F
            } else {
                w.qs[k - 16] >> 4
            };
            q as i32 * a.qs[k] as i32
        })
        .sum()
}

/// Each block adds `isum · (d_w · d_a)` and `m_w · s_a` to an f64 accumulator. Every product
/// is exact in f64 (at most 16 + 22 bits), so the result does not depend on the order of the
/// values inside a block nor, short of a 53-bit carry, on the order of the blocks: a kernel
/// whose columns were permuted block-wise (equivariant encryption) computes the same f32.
fn dot_portable(weights: &[BlockQ4_1], acts: &[BlockQ8_1]) -> f32 {
    let mut acc = 0f64;
    for (w, a) in weights.iter().zip(acts) {
        let scale = w.d.to_f64() * a.d as f64;
        acc = (block_dot(w, a) as f64).mul_add(scale, acc);
        acc = w.m.to_f64().mul_add(a.s as f64, acc);
    }
    acc as f32
}

/// The AVX2 form of [`dot_portable`] for four rows, with the same operations in the same order.
///
/// # Safety
///
/// The CPU supports AVX2, FMA and F16C, and every row holds at least `acts.len()` blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot4_avx2(rows: [&[BlockQ4_1]; 4], acts: &[BlockQ8_1]) -> [f32; 4] {
    use std::arch::x86_64::*;
    debug_assert!(rows.iter().all(|row| row.len() >= acts.len()));
    let low_nibbles = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_pd();
    for (b, a) in acts.iter().enumerate() {
        let q8 = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
        let mut lanes = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            // SAFETY: `b < acts.len() <= rows[r].len()` (the caller's precondition).
            let w = rows[r].get_unchecked(b);
            // Weights stream from memory once per token: ask for the next group's bytes early.
            // Near the end of the weights that address is past the buffer: `wrapping_add` only
            // computes it (no out-of-bounds pointer arithmetic), and a prefetch never faults
            // nor reads into the program.
            let ahead = (w as *const BlockQ4_1 as *const i8).wrapping_add(PREFETCH_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            let packed = _mm_loadu_si128(w.qs.as_ptr() as *const __m128i);
            let low = _mm_and_si128(packed, low_nibbles);
            let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
            let q4 = _mm256_set_m128i(high, low);
            // u8 × i8 pairs → i16 (at most 2·15·127, no saturation), then pairs → i32 lanes.
            lanes[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(q4, q8), ones);
        }
        // Four rows' eight lanes → one exact integer per row.
        let sums = _mm256_hadd_epi32(
            _mm256_hadd_epi32(lanes[0], lanes[1]),
            _mm256_hadd_epi32(lanes[2], lanes[3]),
        );
        let sums = _mm_add_epi32(
            _mm256_castsi256_si128(sums),
            _mm256_extracti128_si256::<1>(sums),
        );
        // SAFETY: as above, `b < rows[r].len()`.
        let w = |r: usize| rows[r].get_unchecked(b);
        let halves = |field: fn(&BlockQ4_1) -> f16| {
            _mm256_cvtps_pd(_mm_cvtph_ps(_mm_setr_epi16(
                field(w(0)).to_bits() as i16,
                field(w(1)).to_bits() as i16,
                field(w(2)).to_bits() as i16,
                field(w(3)).to_bits() as i16,
                0,
                0,
                0,
                0,
            )))
        };
        let scales = _mm256_mul_pd(halves(|w| w.d), _mm256_set1_pd(a.d as f64));
        acc = _mm256_fmadd_pd(_mm256_cvtepi32_pd(sums), scales, acc);
        acc = _mm256_fmadd_pd(halves(|w| w.m), _mm256_set1_pd(a.s as f64), acc);
    }
    let mut dots = [0f64; 4];
    _mm256_storeu_pd(dots.as_mut_ptr(), acc);
    dots.map(|d| d as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_matrix(rows: usize, cols: usize, seed: u64) -> (Tensor, QTensor) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect();
        let dense = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        let quantized = QTensor::quantize(&dense, GgmlDType::Q4_1).unwrap();
        (dense, quantized)
    }

    /// The matrix's outputs for `x`, flattened.
    fn outputs(matrix: &Q4_1Matrix, x: &Tensor) -> Vec<f32> {
        matrix
            .forward(x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn matches_candles_q4_1_matmul_within_rounding() {
        use candle_core::Module;
        let (_, weights) = random_matrix(40, 128, 1);
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let candle = candle_core::quantized::QMatMul::from_qtensor(weights).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let x: Vec<f32> = (0..3 * 128).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
        let x = Tensor::from_vec(x, (1, 3, 128), &Device::Cpu).unwrap();
        let ours = outputs(&matrix, &x);
        let theirs: Vec<f32> = candle
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn rows_of_an_odd_number_of_blocks_work() {
        // candle's own Q4_1 kernel panics on these; ours compares with the dequantized matrix.
        let (_, weights) = random_matrix(5, 96, 5);
        let dense = weights.dequantize(&Device::Cpu).unwrap();
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let x = Tensor::from_vec(
            (0..96).map(|i| (i as f32 / 20.0).sin()).collect::<Vec<_>>(),
            (1, 96),
            &Device::Cpu,
        )
        .unwrap();
        let ours = outputs(&matrix, &x);
        let exact: Vec<f32> = x
            .matmul(&dense.t().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in ours.iter().zip(&exact) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
    }

    #[test]
    fn permuting_columns_block_wise_gives_the_same_bits() {
        // Blocks reversed and values rotated inside each block, in weights and activations.
        let (dense, _) = random_matrix(6, 192, 6);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let x: Vec<f32> = (0..192).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
        let perm: Vec<usize> = (0..192)
            .map(|c| (5 - c / BLOCK) * BLOCK + (c % BLOCK + 11) % BLOCK)
            .collect();
        let dense: Vec<f32> = dense.flatten_all().unwrap().to_vec1().unwrap();
        let permuted_dense: Vec<f32> = (0..6 * 192)
            .map(|i| dense[i / 192 * 192 + perm[i % 192]])
            .collect();
        let permuted_x: Vec<f32> = perm.iter().map(|&c| x[c]).collect();
        let run = |w: Vec<f32>, x: Vec<f32>| -> Vec<u32> {
            let w = Tensor::from_vec(w, (6, 192), &Device::Cpu).unwrap();
            let matrix =
                Q4_1Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q4_1).unwrap()).unwrap();
            let x = Tensor::from_vec(x, (1, 192), &Device::Cpu).unwrap();
            outputs(&matrix, &x).into_iter().map(f32::to_bits).collect()
        };
        assert_eq!(run(dense, x), run(permuted_dense, permuted_x));
    }

    #[test]
    fn the_portable_and_simd_paths_agree_bit_for_bit() {
        let (_, weights) = random_matrix(8, 576, 3);
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let x: Vec<f32> = (0..576).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        let row = |r: usize| &matrix.blocks[r * 18..(r + 1) * 18];
        for first in [0, 4] {
            let rows = [row(first), row(first + 1), row(first + 2), row(first + 3)];
            let portable = Kernel::Portable.dot4(rows, &acts);
            let detected = Kernel::detect().dot4(rows, &acts);
            assert_eq!(
                portable.map(f32::to_bits),
                detected.map(f32::to_bits),
                "rows {first}.."
            );
        }
    }

    /// The scalar reference for `x · wᵀ`: [`dot_portable`] per (activation row, weight row).
    fn scalar_reference(matrix: &Q4_1Matrix, x: &[f32]) -> Vec<u32> {
        let blocks_per_row = matrix.cols / BLOCK;
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        acts.chunks_exact(blocks_per_row)
            .flat_map(|acts| {
                (0..matrix.rows).map(move |r| {
                    let row = &matrix.blocks[r * blocks_per_row..(r + 1) * blocks_per_row];
                    dot_portable(row, acts).to_bits()
                })
            })
            .collect()
    }

    #[test]
    fn the_kernel_at_the_edges_of_the_weights_matches_the_scalar_reference_bit_for_bit() {
        // Minimal buffers (one block), single rows, row counts that leave a partial group of
        // four, and several activation rows: the last rows and blocks are read (and prefetched
        // past) at the very end of the weight buffer.
        let shapes = [
            (1, 32),
            (1, 64),
            (2, 32),
            (3, 96),
            (4, 32),
            (5, 32),
            (7, 160),
            (9, 64),
            (13, 32),
            (17, 96),
        ];
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        for (seed, &(rows, cols)) in shapes.iter().enumerate() {
            let (_, weights) = random_matrix(rows, cols, 100 + seed as u64);
            let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
            assert_eq!(matrix.blocks.len(), rows * cols / BLOCK);
            for m in [1, 3] {
                let x: Vec<f32> = (0..m * cols).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
                let tensor = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap();
                let ours: Vec<u32> = outputs(&matrix, &tensor)
                    .into_iter()
                    .map(f32::to_bits)
                    .collect();
                assert_eq!(
                    ours,
                    scalar_reference(&matrix, &x),
                    "{rows}×{cols}, {m} rows"
                );
            }
        }
    }

    #[test]
    fn four_rows_on_a_one_block_buffer_match_the_scalar_reference() {
        let (_, weights) = random_matrix(1, 32, 9);
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let only = &matrix.blocks[..];
        assert_eq!(only.len(), 1);
        let x: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).cos()).collect();
        let acts = [quantize_q8_1(&x)];
        let portable = Kernel::Portable.dot4([only; 4], &acts);
        let detected = Kernel::detect().dot4([only; 4], &acts);
        assert_eq!(portable.map(f32::to_bits), detected.map(f32::to_bits));
        assert_eq!(portable[0].to_bits(), dot_portable(only, &acts).to_bits());
    }

    #[test]
    #[should_panic(expected = "shorter than the activations")]
    fn a_row_shorter_than_the_activations_is_refused() {
        let (_, weights) = random_matrix(1, 32, 10);
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let x: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        let row = &matrix.blocks[..];
        Kernel::detect().dot4([row; 4], &acts);
    }
}

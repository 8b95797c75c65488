//! Quantized matrices (Q4_1 and Q8_0) × f32 activations with AVX2, chosen at run time.
//! candle 0.11's Q4_1 dot product is scalar and its SIMD paths for other types are
//! compile-time gated (a portable build runs them scalar); these kernels follow ggml's
//! arithmetic (activations quantized to 8 bits per block, an exact integer dot product per
//! block), so results stay within rounding of llama.cpp's. Blocks are summed in f64, where
//! every term is exact, which makes the result independent of the order of the columns (see
//! `dot_portable_q4_1`).
//!
//! The portable fallback computes exactly the same integers and f64 operations in the same
//! order as the AVX2 path, so a node's output does not depend on its CPU's features; and every
//! (weight row, activation row) pair goes through the same operations whichever other rows
//! share a call, so it does not depend on the batch either.

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
pub(crate) struct BlockQ4_1 {
    d: f16,
    m: f16,
    /// Byte j holds value j in its low nibble and value j + 16 in its high nibble.
    qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// One block of activations quantized to 8 bits (ggml's Q8_1): `value ≈ d * q`, `s = d * Σq`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ8_1 {
    d: f32,
    s: f32,
    qs: [i8; BLOCK],
}

/// One Q8_0 block as GGUF stores it: `value = d * q` for 32 signed 8-bit `q`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct BlockQ8_0 {
    d: f16,
    qs: [i8; BLOCK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// A weight block type the kernels multiply.
pub(crate) trait WeightBlock: Copy + Send + Sync + std::fmt::Debug {
    const DTYPE: GgmlDType;
    /// Bytes of one block in the file.
    const BYTES: usize;
    /// Reads one block from its `BYTES` little-endian bytes.
    fn read(bytes: &[u8]) -> Self;
    /// The block's 32 values, as ggml dequantizes them.
    fn values(&self) -> [f32; BLOCK];
    /// The exact dot product of one weight row with one activation row (f64-accumulated,
    /// block by block, in order).
    fn dot_portable(weights: &[Self], acts: &[BlockQ8_1]) -> f32;
    /// Four weight rows × four activation rows with AVX2: `[act][row]`.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C, every weight row holds at least as many blocks as
    /// the activation rows, and the activation rows have equal lengths.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(
        rows: [&[Self]; 4],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N];
}

/// A quantized weight matrix `[rows, cols]` (rows = outputs).
#[derive(Debug)]
pub(crate) struct QuantMatrix<B> {
    blocks: Vec<B>,
    rows: usize,
    cols: usize,
}

/// A Q4_1 weight matrix.
pub(crate) type Q4_1Matrix = QuantMatrix<BlockQ4_1>;
/// A Q8_0 weight matrix.
pub(crate) type Q8_0Matrix = QuantMatrix<BlockQ8_0>;

impl<B: WeightBlock> QuantMatrix<B> {
    /// Takes the blocks of a `QTensor` of shape `[rows, cols]` stored as `B`.
    pub(crate) fn from_qtensor(tensor: &QTensor) -> Result<Self> {
        let bad = |reason: String| EngineError::Tensor {
            name: format!("{:?} matrix", B::DTYPE),
            reason,
        };
        if tensor.dtype() != B::DTYPE {
            return Err(bad(format!(
                "expected {:?}, found {:?}",
                B::DTYPE,
                tensor.dtype()
            )));
        }
        let (rows, cols) = tensor.shape().dims2()?;
        if !cols.is_multiple_of(BLOCK) {
            return Err(bad(format!(
                "{cols} columns are not whole blocks of {BLOCK}"
            )));
        }
        let bytes = tensor.data()?;
        let blocks = bytes
            .chunks_exact(B::BYTES)
            .map(B::read)
            .collect::<Vec<_>>();
        if blocks.len() != rows * cols / BLOCK {
            return Err(bad(format!(
                "{} blocks for a {rows}×{cols} matrix",
                blocks.len()
            )));
        }
        Ok(Self { blocks, rows, cols })
    }

    /// Rows of the matrix as f32 (an embedding lookup), as ggml dequantizes them.
    pub(crate) fn dequantize_rows(&self, rows: &[u32]) -> Vec<f32> {
        let blocks_per_row = self.cols / BLOCK;
        let mut out = Vec::with_capacity(rows.len() * self.cols);
        for &row in rows {
            let row = row as usize;
            for block in &self.blocks[row * blocks_per_row..(row + 1) * blocks_per_row] {
                out.extend_from_slice(&block.values());
            }
        }
        out
    }

    /// `[rows, cols]`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
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
        // Groups of 4 weight rows share each activation load, and groups of up to 4
        // activation rows (sequences in a batch) share each unpacked weight block: the weights
        // stream from memory once per step whatever the batch size. The pool splits the
        // weight groups.
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
                let acts = |i: usize| &activations[i * blocks_per_row..(i + 1) * blocks_per_row];
                let mut i = 0;
                while i < m {
                    let n = (m - i).min(4);
                    let write = |j: usize, dots: &[f32; 4]| {
                        debug_assert!((i + j) * self.rows + first + count <= m * self.rows);
                        // SAFETY: `first + count <= self.rows` and `i + j < m`, so the `count`
                        // values written lie inside `output` (`m * self.rows` values), which
                        // outlives the pool; each (activation row, weight row) element is
                        // written by exactly one group.
                        unsafe {
                            let out = (out_ptr as *mut f32).add((i + j) * self.rows + first);
                            std::ptr::copy_nonoverlapping(dots.as_ptr(), out, count);
                        }
                    };
                    let act = |j: usize| acts(i + j);
                    match n {
                        1 => kernel
                            .dots(rows, [act(0)])
                            .iter()
                            .enumerate()
                            .for_each(|(j, d)| write(j, d)),
                        2 => kernel
                            .dots(rows, [act(0), act(1)])
                            .iter()
                            .enumerate()
                            .for_each(|(j, d)| write(j, d)),
                        3 => kernel
                            .dots(rows, [act(0), act(1), act(2)])
                            .iter()
                            .enumerate()
                            .for_each(|(j, d)| write(j, d)),
                        _ => kernel
                            .dots(rows, [act(0), act(1), act(2), act(3)])
                            .iter()
                            .enumerate()
                            .for_each(|(j, d)| write(j, d)),
                    }
                    i += n;
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
    #[cfg(test)]
    fn dot4<B: WeightBlock>(self, rows: [&[B]; 4], acts: &[BlockQ8_1]) -> [f32; 4] {
        self.dots(rows, [acts])[0]
    }

    /// Dot products of four weight rows with each of `N` activation rows: `[act][row]`.
    /// Every (weight row, activation row) pair goes through exactly the operations of a pair
    /// computed alone, so results do not depend on which rows share a call.
    ///
    /// Panics if a weight row has fewer blocks than an activation row, or the activation rows
    /// differ in length.
    fn dots<B: WeightBlock, const N: usize>(
        self,
        rows: [&[B]; 4],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N] {
        let len = acts[0].len();
        assert!(
            acts.iter().all(|a| a.len() == len),
            "activation rows of different lengths"
        );
        assert!(
            rows.iter().all(|row| row.len() >= len),
            "a weight row is shorter than the activations"
        );
        match self {
            Kernel::Portable => acts.map(|acts| rows.map(|weights| B::dot_portable(weights, acts))),
            // SAFETY: the CPU supports AVX2, FMA and F16C (checked in `detect`), every weight
            // row holds at least `len` blocks and every activation row exactly `len` (asserted
            // above).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { B::dots_avx2(rows, acts) },
        }
    }
}

/// Integer dot product of one weight block with one activation block (exact).
fn block_dot_q4_1(w: &BlockQ4_1, a: &BlockQ8_1) -> i32 {
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
fn dot_portable_q4_1(weights: &[BlockQ4_1], acts: &[BlockQ8_1]) -> f32 {
    let mut acc = 0f64;
    for (w, a) in weights.iter().zip(acts) {
        let scale = w.d.to_f64() * a.d as f64;
        acc = (block_dot_q4_1(w, a) as f64).mul_add(scale, acc);
        acc = w.m.to_f64().mul_add(a.s as f64, acc);
    }
    acc as f32
}

/// The AVX2 form of [`dot_portable_q4_1`] for four weight rows × four activation rows, each pair
/// with the same operations in the same order as alone.
///
/// # Safety
///
/// The CPU supports AVX2, FMA and F16C, every weight row holds at least as many blocks as
/// the activation rows, and the activation rows have equal lengths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dots_avx2_q4_1<const N: usize>(
    rows: [&[BlockQ4_1]; 4],
    acts: [&[BlockQ8_1]; N],
) -> [[f32; 4]; N] {
    use std::arch::x86_64::*;
    let len = acts[0].len();
    debug_assert!(rows.iter().all(|row| row.len() >= len));
    debug_assert!(acts.iter().all(|a| a.len() == len));
    let low_nibbles = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_pd(); N];
    for b in 0..len {
        // SAFETY (all `get_unchecked` below): `b < len <= rows[r].len()` and `b < len ==
        // acts[j].len()` (the caller's precondition).
        let w = |r: usize| rows[r].get_unchecked(b);
        let mut q4 = [_mm256_setzero_si256(); 4];
        for (r, q4) in q4.iter_mut().enumerate() {
            // Weights stream from memory once per step: ask for the next group's bytes early.
            // Near the end of the weights that address is past the buffer: `wrapping_add` only
            // computes it (no out-of-bounds pointer arithmetic), and a prefetch never faults
            // nor reads into the program.
            let ahead = (w(r) as *const BlockQ4_1 as *const i8).wrapping_add(PREFETCH_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            let packed = _mm_loadu_si128(w(r).qs.as_ptr() as *const __m128i);
            let low = _mm_and_si128(packed, low_nibbles);
            let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
            *q4 = _mm256_set_m128i(high, low);
        }
        let (d, m) = (
            f16x4_to_f64([w(0).d, w(1).d, w(2).d, w(3).d]),
            f16x4_to_f64([w(0).m, w(1).m, w(2).m, w(3).m]),
        );
        for (j, acc) in acc.iter_mut().enumerate() {
            let a = acts[j].get_unchecked(b);
            let q8 = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
            // u8 × i8 pairs → i16 (at most 2·15·127, no saturation), then pairs → i32 lanes.
            let lane = |q4: __m256i| _mm256_madd_epi16(_mm256_maddubs_epi16(q4, q8), ones);
            let sums = row_sums([lane(q4[0]), lane(q4[1]), lane(q4[2]), lane(q4[3])]);
            let scales = _mm256_mul_pd(d, _mm256_set1_pd(a.d as f64));
            *acc = _mm256_fmadd_pd(_mm256_cvtepi32_pd(sums), scales, *acc);
            *acc = _mm256_fmadd_pd(m, _mm256_set1_pd(a.s as f64), *acc);
        }
    }
    acc.map(|acc| to_f32x4(acc))
}

/// Four f16 scales as f64 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn f16x4_to_f64(values: [f16; 4]) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let [a, b, c, d] = values.map(|v| v.to_bits() as i16);
    _mm256_cvtps_pd(_mm_cvtph_ps(_mm_setr_epi16(a, b, c, d, 0, 0, 0, 0)))
}

/// Four rows' eight i32 lanes each → one exact integer per row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn row_sums(lanes: [std::arch::x86_64::__m256i; 4]) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let sums = _mm256_hadd_epi32(
        _mm256_hadd_epi32(lanes[0], lanes[1]),
        _mm256_hadd_epi32(lanes[2], lanes[3]),
    );
    _mm_add_epi32(
        _mm256_castsi256_si128(sums),
        _mm256_extracti128_si256::<1>(sums),
    )
}

/// The four f64 accumulators of one activation row, rounded to f32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn to_f32x4(acc: std::arch::x86_64::__m256d) -> [f32; 4] {
    let mut dots = [0f64; 4];
    // SAFETY: `dots` holds the four f64 written.
    unsafe { std::arch::x86_64::_mm256_storeu_pd(dots.as_mut_ptr(), acc) };
    dots.map(|d| d as f32)
}

impl WeightBlock for BlockQ4_1 {
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
    const BYTES: usize = 20;

    fn read(b: &[u8]) -> Self {
        BlockQ4_1 {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qs: b[4..20].try_into().expect("16 bytes"),
        }
    }

    fn values(&self) -> [f32; BLOCK] {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        std::array::from_fn(|k| {
            let q = if k < 16 {
                self.qs[k] & 0x0F
            } else {
                self.qs[k - 16] >> 4
            };
            q as f32 * d + m
        })
    }

    fn dot_portable(weights: &[Self], acts: &[BlockQ8_1]) -> f32 {
        dot_portable_q4_1(weights, acts)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(
        rows: [&[Self]; 4],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N] {
        // SAFETY: the caller's precondition is `dots_avx2_q4_1`'s.
        unsafe { dots_avx2_q4_1(rows, acts) }
    }
}

impl WeightBlock for BlockQ8_0 {
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
    const BYTES: usize = 34;

    fn read(b: &[u8]) -> Self {
        BlockQ8_0 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs: std::array::from_fn(|k| b[2 + k] as i8),
        }
    }

    fn values(&self) -> [f32; BLOCK] {
        let d = self.d.to_f32();
        self.qs.map(|q| q as f32 * d)
    }

    fn dot_portable(weights: &[Self], acts: &[BlockQ8_1]) -> f32 {
        dot_portable_q8_0(weights, acts)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(
        rows: [&[Self]; 4],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N] {
        // SAFETY: the caller's precondition is `dots_avx2_q8_0`'s.
        unsafe { dots_avx2_q8_0(rows, acts) }
    }
}

/// Like [`dot_portable_q4_1`] for Q8_0 weights: each block adds `isum · (d_w · d_a)` (exact in
/// f64: a 20-bit integer times two 11-bit mantissas).
fn dot_portable_q8_0(weights: &[BlockQ8_0], acts: &[BlockQ8_1]) -> f32 {
    let mut acc = 0f64;
    for (w, a) in weights.iter().zip(acts) {
        let isum: i32 =
            w.qs.iter()
                .zip(&a.qs)
                .map(|(&w, &a)| w as i32 * a as i32)
                .sum();
        let scale = w.d.to_f64() * a.d as f64;
        acc = (isum as f64).mul_add(scale, acc);
    }
    acc as f32
}

/// The AVX2 form of [`dot_portable_q8_0`] for four weight rows × four activation rows, each
/// pair with the same operations in the same order as alone.
///
/// # Safety
///
/// As [`WeightBlock::dots_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dots_avx2_q8_0<const N: usize>(
    rows: [&[BlockQ8_0]; 4],
    acts: [&[BlockQ8_1]; N],
) -> [[f32; 4]; N] {
    use std::arch::x86_64::*;
    let len = acts[0].len();
    debug_assert!(rows.iter().all(|row| row.len() >= len));
    debug_assert!(acts.iter().all(|a| a.len() == len));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_pd(); N];
    for b in 0..len {
        // SAFETY (all `get_unchecked` below): `b < len <= rows[r].len()` and `b < len ==
        // acts[j].len()` (the caller's precondition).
        let w = |r: usize| rows[r].get_unchecked(b);
        let mut q = [_mm256_setzero_si256(); 4];
        let mut magnitude = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            // As in the Q4_1 kernel: prefetching past the end only computes an address.
            let ahead = (w(r) as *const BlockQ8_0 as *const i8).wrapping_add(PREFETCH_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            q[r] = _mm256_loadu_si256(w(r).qs.as_ptr() as *const __m256i);
            // |w| as unsigned bytes (−128 becomes 128, still exact) for `maddubs`.
            magnitude[r] = _mm256_sign_epi8(q[r], q[r]);
        }
        let d = f16x4_to_f64([w(0).d, w(1).d, w(2).d, w(3).d]);
        for (j, acc) in acc.iter_mut().enumerate() {
            let a = acts[j].get_unchecked(b);
            let q8 = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
            // |w| × (a with w's sign) pairs → i16 (at most 2·128·127, no saturation) → i32.
            let lane = |r: usize| {
                _mm256_madd_epi16(
                    _mm256_maddubs_epi16(magnitude[r], _mm256_sign_epi8(q8, q[r])),
                    ones,
                )
            };
            let sums = row_sums([lane(0), lane(1), lane(2), lane(3)]);
            let scales = _mm256_mul_pd(d, _mm256_set1_pd(a.d as f64));
            *acc = _mm256_fmadd_pd(_mm256_cvtepi32_pd(sums), scales, *acc);
        }
    }
    acc.map(|acc| to_f32x4(acc))
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

    /// The scalar reference for `x · wᵀ`: [`dot_portable_q4_1`] per (activation row, weight row).
    fn scalar_reference(matrix: &Q4_1Matrix, x: &[f32]) -> Vec<u32> {
        let blocks_per_row = matrix.cols / BLOCK;
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        acts.chunks_exact(blocks_per_row)
            .flat_map(|acts| {
                (0..matrix.rows).map(move |r| {
                    let row = &matrix.blocks[r * blocks_per_row..(r + 1) * blocks_per_row];
                    BlockQ4_1::dot_portable(row, acts).to_bits()
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
            for m in [1, 3, 5, 8] {
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
        assert_eq!(
            portable[0].to_bits(),
            BlockQ4_1::dot_portable(only, &acts).to_bits()
        );
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

    fn random_q8_0(rows: usize, cols: usize, seed: u64) -> QTensor {
        let (dense, _) = random_matrix(rows, cols, seed);
        QTensor::quantize(&dense, GgmlDType::Q8_0).unwrap()
    }

    #[test]
    fn q8_0_matches_candles_matmul_within_rounding_and_its_embedding_exactly() {
        use candle_core::Module;
        let weights = random_q8_0(40, 128, 11);
        let matrix = Q8_0Matrix::from_qtensor(&weights).unwrap();
        let candle = candle_core::quantized::QMatMul::from_qtensor(weights).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let x: Vec<f32> = (0..3 * 128).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
        let x = Tensor::from_vec(x, (1, 3, 128), &Device::Cpu).unwrap();
        let ours: Vec<f32> = matrix
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
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
        // Embedding rows: exactly candle's dequantized values.
        let ids = Tensor::new(&[3u32, 0, 39][..], &Device::Cpu).unwrap();
        let rows: Vec<f32> = candle
            .embedding(&ids)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(matrix.dequantize_rows(&[3, 0, 39]), rows);
    }

    #[test]
    fn q8_0_portable_and_simd_paths_agree_bit_for_bit_at_every_batch_size() {
        let matrix = Q8_0Matrix::from_qtensor(&random_q8_0(13, 576, 13)).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
        let x: Vec<f32> = (0..8 * 576).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        let row = |r: usize| &matrix.blocks[r * 18..(r + 1) * 18];
        let act = |i: usize| &acts[i * 18..(i + 1) * 18];
        let rows = [row(0), row(5), row(6), row(12)];
        let acts4 = [act(0), act(3), act(4), act(7)];
        assert_eq!(
            Kernel::Portable
                .dots(rows, acts4)
                .map(|d| d.map(f32::to_bits)),
            Kernel::detect()
                .dots(rows, acts4)
                .map(|d| d.map(f32::to_bits))
        );
        // A row's outputs are the same alone and in a batch of eight.
        let all = Tensor::from_vec(x.clone(), (8, 576), &Device::Cpu).unwrap();
        let batched: Vec<f32> = matrix
            .forward(&all)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for i in 0..8 {
            let one = Tensor::from_vec(x[i * 576..(i + 1) * 576].to_vec(), (1, 576), &Device::Cpu)
                .unwrap();
            let alone: Vec<f32> = matrix
                .forward(&one)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(
                alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                batched[i * 13..(i + 1) * 13]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                "row {i}"
            );
        }
    }

    #[test]
    fn q8_0_weights_of_minus_128_are_multiplied_exactly() {
        // ggml never writes −128, but a file may hold it: |−128| must not wrap.
        let mut bytes = vec![0u8; 34];
        bytes[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        for b in &mut bytes[2..] {
            *b = 0x80;
        }
        let blocks = [BlockQ8_0::read(&bytes); 4];
        let x: Vec<f32> = (0..BLOCK).map(|i| (i as f32 - 16.0) / 4.0).collect();
        let acts = [quantize_q8_1(&x)];
        let portable = Kernel::Portable.dot4([&blocks[..1]; 4], &acts);
        let detected = Kernel::detect().dot4([&blocks[..1]; 4], &acts);
        assert_eq!(portable.map(f32::to_bits), detected.map(f32::to_bits));
        let expected: f32 =
            -128.0 * 0.5 * acts[0].d * acts[0].qs.iter().map(|&q| q as f32).sum::<f32>();
        assert!(
            (portable[0] - expected).abs() < 1e-3,
            "{} vs {expected}",
            portable[0]
        );
    }
}

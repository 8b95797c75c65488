//! Quantized matrices (Q4_1 and Q8_0) × f32 activations with AVX2 (and AVX-512 VNNI where
//! present), chosen at run time. candle 0.11's Q4_1 dot product is scalar and its SIMD paths
//! for other types are compile-time gated (a portable build runs them scalar); these kernels
//! follow ggml's arithmetic (activations quantized to 8 bits per block, an exact integer dot
//! product per block), so results stay within rounding of llama.cpp's. Blocks are summed in
//! f64, where every term is exact, which makes the result independent of the order of the
//! columns (see `dot_portable`).
//!
//! Weights are held as groups of four rows, block by block ([`WeightBlock::Group`]: the four
//! rows' scales side by side, then their values), so a kernel streams one contiguous buffer
//! and loads four rows' scales at once; the groups hold exactly the file's bytes, rearranged.
//!
//! The portable fallback computes exactly the same integers and f64 operations in the same
//! order as the SIMD paths, so a node's output does not depend on its CPU's features; and
//! every (weight row, activation row) pair goes through the same operations whichever other
//! rows share a call, so it does not depend on the batch either.

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use super::error::{EngineError, Result};

const BLOCK: usize = 32;

/// How far ahead of the current weight group the SIMD kernels prefetch.
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

/// The same block of four consecutive rows.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct GroupQ4_1 {
    d: [f16; 4],
    m: [f16; 4],
    qs: [[u8; 16]; 4],
}
const _: () = assert!(std::mem::size_of::<GroupQ4_1>() == 4 * 20);

/// One block of activations quantized to 8 bits (ggml's Q8_1): `value ≈ d * q`, `s = d * Σq`
/// (both f16 values, held as f64 for the kernels).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ8_1 {
    d: f64,
    s: f64,
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

/// The same block of four consecutive rows.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct GroupQ8_0 {
    d: [f16; 4],
    qs: [[i8; BLOCK]; 4],
}
const _: () = assert!(std::mem::size_of::<GroupQ8_0>() == 4 * 34);

/// A weight block type the kernels multiply.
pub(crate) trait WeightBlock: Copy + Send + Sync + std::fmt::Debug {
    const DTYPE: GgmlDType;
    /// Bytes of one block in the file.
    const BYTES: usize;
    /// The same block of four consecutive rows, as the kernels read it.
    type Group: Copy + Send + Sync + std::fmt::Debug;
    /// Reads one block from its `BYTES` little-endian bytes.
    fn read(bytes: &[u8]) -> Self;
    /// Four rows' blocks side by side.
    fn group(rows: [Self; 4]) -> Self::Group;
    /// Row `r`'s block of a group.
    fn ungroup(group: &Self::Group, r: usize) -> Self;
    /// The block's 32 values, as ggml dequantizes them.
    fn values(&self) -> [f32; BLOCK];
    /// Adds the block's exact dot product with `act` to `acc`: the reference arithmetic.
    fn accumulate(&self, act: &BlockQ8_1, acc: f64) -> f64;
    /// Four weight rows × `N` activation rows with AVX2: `[act][row]`. With `VNNI`, the
    /// byte products use AVX-512 VNNI (the same integers).
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C (and AVX-512 VNNI and VL with `VNNI`); `groups`
    /// holds at least as many blocks as each activation row, and those have equal lengths.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_simd<const N: usize, const VNNI: bool>(
        groups: &[Self::Group],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N];
}

/// A quantized weight matrix `[rows, cols]` (rows = outputs).
#[derive(Debug)]
pub(crate) struct QuantMatrix<B: WeightBlock> {
    /// Group `g`'s block `b` (rows `4g..4g + 4`, columns `32b..32b + 32`) at
    /// `g * cols / 32 + b`. A last partial group repeats its last row.
    groups: Vec<B::Group>,
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
        let blocks_per_row = cols / BLOCK;
        if bytes.len() != rows * blocks_per_row * B::BYTES {
            return Err(bad(format!(
                "{} bytes for a {rows}×{cols} matrix",
                bytes.len()
            )));
        }
        let block = |row: usize, b: usize| {
            let at = (row * blocks_per_row + b) * B::BYTES;
            B::read(&bytes[at..at + B::BYTES])
        };
        let mut groups = Vec::with_capacity(rows.div_ceil(4) * blocks_per_row);
        for first in (0..rows).step_by(4) {
            for b in 0..blocks_per_row {
                groups.push(B::group(std::array::from_fn(|r| {
                    block((first + r).min(rows - 1), b)
                })));
            }
        }
        Ok(Self { groups, rows, cols })
    }

    /// Row `row`'s block `b`.
    fn block(&self, row: usize, b: usize) -> B {
        let blocks_per_row = self.cols / BLOCK;
        B::ungroup(&self.groups[row / 4 * blocks_per_row + b], row % 4)
    }

    /// Rows of the matrix as f32 (an embedding lookup), as ggml dequantizes them.
    pub(crate) fn dequantize_rows(&self, rows: &[u32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.cols);
        for &row in rows {
            for b in 0..self.cols / BLOCK {
                out.extend_from_slice(&self.block(row as usize, b).values());
            }
        }
        out
    }

    /// `[rows, cols]`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `x · selfᵀ` for `x` of rows of `cols` values: rows of `rows` values.
    pub(crate) fn forward(&self, input: &[f32]) -> Result<Vec<f32>> {
        if !input.len().is_multiple_of(self.cols) {
            return Err(EngineError::HiddenSize {
                got: input.len(),
                expected: self.cols,
            });
        }
        let m = input.len() / self.cols;
        let blocks_per_row = self.cols / BLOCK;
        let activations: Vec<BlockQ8_1> = input.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        let mut output = vec![0f32; m * self.rows];
        let out_ptr = output.as_mut_ptr() as usize;
        let kernel = Kernel::detect();
        // Each group's four weight rows share each activation load, and up to four activation
        // rows (sequences in a batch) share each unpacked weight block: the weights stream
        // from memory once per step whatever the batch size. The pool splits the groups.
        let groups = self.rows.div_ceil(4);
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for group in range {
                let first = group * 4;
                let count = (self.rows - first).min(4);
                let weights = &self.groups[group * blocks_per_row..(group + 1) * blocks_per_row];
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
                    let emit =
                        |dots: &[[f32; 4]]| dots.iter().enumerate().for_each(|(j, d)| write(j, d));
                    match n {
                        1 => emit(&kernel.dots::<B, 1>(weights, [act(0)])),
                        2 => emit(&kernel.dots::<B, 2>(weights, [act(0), act(1)])),
                        3 => emit(&kernel.dots::<B, 3>(weights, [act(0), act(1), act(2)])),
                        _ => emit(&kernel.dots::<B, 4>(weights, [act(0), act(1), act(2), act(3)])),
                    }
                    i += n;
                }
            }
        });
        Ok(output)
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
        d: d16.to_f64(),
        s: (f16::from_f32(sum as f32) * d16).to_f64(),
        qs,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx2Vnni,
}

/// Whether this CPU runs the engine's AVX2 kernels (AVX2, FMA and F16C).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                    return Kernel::Avx2Vnni;
                }
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Every kernel this CPU can run (the tests compare them).
    #[cfg(test)]
    fn available() -> Vec<Self> {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        match Self::detect() {
            Kernel::Avx2Vnni => kernels.extend([Kernel::Avx2, Kernel::Avx2Vnni]),
            Kernel::Avx2 => kernels.push(Kernel::Avx2),
            Kernel::Portable => {}
        }
        kernels
    }

    /// Dot products of a group's four weight rows with each of `N` activation rows:
    /// `[act][row]`. Every (weight row, activation row) pair goes through exactly the
    /// operations of a pair computed alone, so results do not depend on which rows share a
    /// call.
    ///
    /// Panics if the weights have fewer blocks than an activation row, or the activation rows
    /// differ in length.
    fn dots<B: WeightBlock, const N: usize>(
        self,
        groups: &[B::Group],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N] {
        let len = acts[0].len();
        assert!(
            acts.iter().all(|a| a.len() == len),
            "activation rows of different lengths"
        );
        assert!(
            groups.len() >= len,
            "the weight rows are shorter than the activations"
        );
        match self {
            Kernel::Portable => acts.map(|acts| {
                std::array::from_fn(|r| {
                    groups.iter().zip(acts).fold(0f64, |acc, (group, act)| {
                        B::ungroup(group, r).accumulate(act, acc)
                    }) as f32
                })
            }),
            // SAFETY: the CPU supports AVX2, FMA and F16C (and AVX-512 VNNI and VL for
            // `Avx2Vnni`), checked in `detect`; the weights hold at least `len` blocks and
            // every activation row exactly `len` (asserted above).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { B::dots_simd::<N, false>(groups, acts) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Vnni => unsafe { B::dots_simd::<N, true>(groups, acts) },
        }
    }
}

/// Four weight rows' unsigned bytes × one activation block's signed bytes: eight i32 lanes
/// per row, lane `k` the sum of the products of bytes `4k..4k + 4` (exact either way).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn byte_products<const VNNI: bool>(
    weights: std::arch::x86_64::__m256i,
    acts: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    if VNNI {
        // SAFETY: the caller's kernel runs with AVX-512 VNNI and VL enabled.
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), weights, acts) }
    } else {
        // u8 × i8 pairs → i16 (the weights here make that exact), pairs → i32.
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(weights, acts), _mm256_set1_epi16(1)) }
    }
}

/// A group's four rows unpacked into registers, multiplied with activation blocks.
#[cfg(target_arch = "x86_64")]
trait SimdGroup {
    type Unpacked;
    /// Loads the group's scales and values.
    ///
    /// # Safety
    ///
    /// Runs inside a kernel with AVX2, FMA and F16C enabled.
    unsafe fn unpack(&self) -> Self::Unpacked;
    /// Adds the four rows' exact block dot products with `act`, as
    /// [`WeightBlock::accumulate`] does, to `acc` (one lane per row).
    ///
    /// # Safety
    ///
    /// As `unpack` (and AVX-512 VNNI and VL with `VNNI`).
    unsafe fn accumulate<const VNNI: bool>(
        unpacked: &Self::Unpacked,
        act: &BlockQ8_1,
        acc: std::arch::x86_64::__m256d,
    ) -> std::arch::x86_64::__m256d;
}

#[cfg(target_arch = "x86_64")]
impl SimdGroup for GroupQ4_1 {
    /// `d`, `m` and each row's 32 values as bytes.
    type Unpacked = (
        std::arch::x86_64::__m256d,
        std::arch::x86_64::__m256d,
        [std::arch::x86_64::__m256i; 4],
    );

    #[inline(always)]
    unsafe fn unpack(&self) -> Self::Unpacked {
        use std::arch::x86_64::*;
        // SAFETY: `d` and `m` are eight consecutive f16 (repr(C)); each `qs` row is 16 bytes.
        unsafe {
            let scales = _mm256_cvtph_ps(_mm_loadu_si128(self.d.as_ptr() as *const __m128i));
            let d = _mm256_cvtps_pd(_mm256_castps256_ps128(scales));
            let m = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(scales));
            // The 16 packed bytes in both halves, the upper half shifted to its high nibbles.
            let shifts = _mm256_setr_epi64x(0, 0, 4, 4);
            let q4 = std::array::from_fn(|r| {
                let packed = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                    self.qs[r].as_ptr() as *const __m128i
                ));
                _mm256_and_si256(_mm256_srlv_epi64(packed, shifts), _mm256_set1_epi8(0x0F))
            });
            (d, m, q4)
        }
    }

    #[inline(always)]
    unsafe fn accumulate<const VNNI: bool>(
        (d, m, q4): &Self::Unpacked,
        a: &BlockQ8_1,
        acc: std::arch::x86_64::__m256d,
    ) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        // SAFETY: `qs` is 32 bytes; the caller's kernel enables the features.
        unsafe {
            let q8 = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
            let sums = row_sums(q4.map(|q4| byte_products::<VNNI>(q4, q8)));
            let scales = _mm256_mul_pd(*d, _mm256_set1_pd(a.d));
            let acc = _mm256_fmadd_pd(_mm256_cvtepi32_pd(sums), scales, acc);
            _mm256_fmadd_pd(*m, _mm256_set1_pd(a.s), acc)
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl SimdGroup for GroupQ8_0 {
    /// `d`, each row's values and their magnitudes.
    type Unpacked = (
        std::arch::x86_64::__m256d,
        [std::arch::x86_64::__m256i; 4],
        [std::arch::x86_64::__m256i; 4],
    );

    #[inline(always)]
    unsafe fn unpack(&self) -> Self::Unpacked {
        use std::arch::x86_64::*;
        // SAFETY: `d` is four consecutive f16; each `qs` row is 32 bytes.
        unsafe {
            let d = _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(
                self.d.as_ptr() as *const __m128i
            )));
            let q: [__m256i; 4] =
                std::array::from_fn(|r| _mm256_loadu_si256(self.qs[r].as_ptr() as *const __m256i));
            // |w| as unsigned bytes (−128 becomes 128, still exact).
            (d, q, q.map(|q| _mm256_sign_epi8(q, q)))
        }
    }

    #[inline(always)]
    unsafe fn accumulate<const VNNI: bool>(
        (d, q, magnitude): &Self::Unpacked,
        a: &BlockQ8_1,
        acc: std::arch::x86_64::__m256d,
    ) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        // SAFETY: as for Q4_1.
        unsafe {
            let q8 = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
            // |w| × (a with w's sign): the activations never hold −128, so that is exact.
            let lanes: [__m256i; 4] = std::array::from_fn(|r| {
                byte_products::<VNNI>(magnitude[r], _mm256_sign_epi8(q8, q[r]))
            });
            let scales = _mm256_mul_pd(*d, _mm256_set1_pd(a.d));
            _mm256_fmadd_pd(_mm256_cvtepi32_pd(row_sums(lanes)), scales, acc)
        }
    }
}

/// The body of every SIMD kernel (see [`WeightBlock::dots_simd`]): each group is unpacked
/// once and multiplied with the `N` activation rows' blocks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dots_groups<G: SimdGroup, const N: usize, const VNNI: bool>(
    groups: &[G],
    acts: [&[BlockQ8_1]; N],
) -> [[f32; 4]; N] {
    use std::arch::x86_64::*;
    let len = acts[0].len();
    debug_assert!(groups.len() >= len);
    debug_assert!(acts.iter().all(|a| a.len() == len));
    let mut acc = [_mm256_setzero_pd(); N];
    for b in 0..len {
        // SAFETY (both `get_unchecked`): `b < len <= groups.len()` and `b < len ==
        // acts[j].len()` (the caller's precondition); the caller enables the features.
        let group = unsafe { groups.get_unchecked(b) };
        // The weights stream from memory once per step: ask for later bytes early. Near the
        // end that address is past the buffer: `wrapping_add` only computes it, and a
        // prefetch never faults nor reads into the program.
        _mm_prefetch::<_MM_HINT_T0>((group as *const G as *const i8).wrapping_add(PREFETCH_BYTES));
        let unpacked = unsafe { group.unpack() };
        for (j, acc) in acc.iter_mut().enumerate() {
            *acc = unsafe { G::accumulate::<VNNI>(&unpacked, acts[j].get_unchecked(b), *acc) };
        }
    }
    acc.map(to_f32x4)
}

/// Four rows' eight i32 lanes each → one exact integer per row.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn row_sums(lanes: [std::arch::x86_64::__m256i; 4]) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    // SAFETY: only called from kernels running with AVX2 enabled.
    unsafe {
        let sums = _mm256_hadd_epi32(
            _mm256_hadd_epi32(lanes[0], lanes[1]),
            _mm256_hadd_epi32(lanes[2], lanes[3]),
        );
        _mm_add_epi32(
            _mm256_castsi256_si128(sums),
            _mm256_extracti128_si256::<1>(sums),
        )
    }
}

/// The four f64 accumulators of one activation row, rounded to f32.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn to_f32x4(acc: std::arch::x86_64::__m256d) -> [f32; 4] {
    let mut dots = [0f64; 4];
    // SAFETY: `dots` holds the four f64 written; AVX is enabled in every caller.
    unsafe { std::arch::x86_64::_mm256_storeu_pd(dots.as_mut_ptr(), acc) };
    dots.map(|d| d as f32)
}

/// The two compiled forms of a kernel body: AVX2, and AVX2 with AVX-512 VNNI.
macro_rules! simd_kernels {
    ($group:ty, $avx2:ident, $vnni:ident) => {
        /// # Safety
        ///
        /// As [`WeightBlock::dots_simd`] without VNNI.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $avx2<const N: usize>(
            groups: &[$group],
            acts: [&[BlockQ8_1]; N],
        ) -> [[f32; 4]; N] {
            // SAFETY: the caller's precondition.
            unsafe { dots_groups::<$group, N, false>(groups, acts) }
        }

        /// # Safety
        ///
        /// As [`WeightBlock::dots_simd`] with VNNI.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        unsafe fn $vnni<const N: usize>(
            groups: &[$group],
            acts: [&[BlockQ8_1]; N],
        ) -> [[f32; 4]; N] {
            // SAFETY: the caller's precondition.
            unsafe { dots_groups::<$group, N, true>(groups, acts) }
        }
    };
}
simd_kernels!(GroupQ4_1, dots_q4_1_avx2, dots_q4_1_vnni);
simd_kernels!(GroupQ8_0, dots_q8_0_avx2, dots_q8_0_vnni);

/// The low nibble of byte `k` for value `k < 16`, the high nibble of byte `k - 16` after.
fn nibble(qs: &[u8; 16], k: usize) -> u8 {
    if k < 16 {
        qs[k] & 0x0F
    } else {
        qs[k - 16] >> 4
    }
}

impl WeightBlock for BlockQ4_1 {
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
    const BYTES: usize = 20;
    type Group = GroupQ4_1;

    fn read(b: &[u8]) -> Self {
        BlockQ4_1 {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qs: b[4..20].try_into().expect("16 bytes"),
        }
    }

    fn group(rows: [Self; 4]) -> GroupQ4_1 {
        GroupQ4_1 {
            d: rows.map(|b| b.d),
            m: rows.map(|b| b.m),
            qs: rows.map(|b| b.qs),
        }
    }

    fn ungroup(group: &GroupQ4_1, r: usize) -> Self {
        BlockQ4_1 {
            d: group.d[r],
            m: group.m[r],
            qs: group.qs[r],
        }
    }

    fn values(&self) -> [f32; BLOCK] {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        std::array::from_fn(|k| nibble(&self.qs, k) as f32 * d + m)
    }

    /// Adds `isum · (d_w · d_a)` and `m_w · s_a`. Every product is exact in f64 (at most
    /// 16 + 22 bits), so the result does not depend on the order of the values inside a
    /// block nor, short of a 53-bit carry, on the order of the blocks: a kernel whose
    /// columns were permuted block-wise (equivariant encryption) computes the same f32.
    fn accumulate(&self, a: &BlockQ8_1, acc: f64) -> f64 {
        let isum: i32 = (0..BLOCK)
            .map(|k| nibble(&self.qs, k) as i32 * a.qs[k] as i32)
            .sum();
        let acc = (isum as f64).mul_add(self.d.to_f64() * a.d, acc);
        self.m.to_f64().mul_add(a.s, acc)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_simd<const N: usize, const VNNI: bool>(
        groups: &[GroupQ4_1],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N] {
        // SAFETY: the caller's precondition is the kernels'.
        unsafe {
            if VNNI {
                dots_q4_1_vnni(groups, acts)
            } else {
                dots_q4_1_avx2(groups, acts)
            }
        }
    }
}

impl WeightBlock for BlockQ8_0 {
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
    const BYTES: usize = 34;
    type Group = GroupQ8_0;

    fn read(b: &[u8]) -> Self {
        BlockQ8_0 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs: std::array::from_fn(|k| b[2 + k] as i8),
        }
    }

    fn group(rows: [Self; 4]) -> GroupQ8_0 {
        GroupQ8_0 {
            d: rows.map(|b| b.d),
            qs: rows.map(|b| b.qs),
        }
    }

    fn ungroup(group: &GroupQ8_0, r: usize) -> Self {
        BlockQ8_0 {
            d: group.d[r],
            qs: group.qs[r],
        }
    }

    fn values(&self) -> [f32; BLOCK] {
        let d = self.d.to_f32();
        self.qs.map(|q| q as f32 * d)
    }

    /// Adds `isum · (d_w · d_a)` (exact in f64: a 20-bit integer times two 11-bit mantissas).
    fn accumulate(&self, a: &BlockQ8_1, acc: f64) -> f64 {
        let isum: i32 = self
            .qs
            .iter()
            .zip(&a.qs)
            .map(|(&w, &a)| w as i32 * a as i32)
            .sum();
        (isum as f64).mul_add(self.d.to_f64() * a.d, acc)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_simd<const N: usize, const VNNI: bool>(
        groups: &[GroupQ8_0],
        acts: [&[BlockQ8_1]; N],
    ) -> [[f32; 4]; N] {
        // SAFETY: the caller's precondition is the kernels'.
        unsafe {
            if VNNI {
                dots_q8_0_vnni(groups, acts)
            } else {
                dots_q8_0_avx2(groups, acts)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
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
            .forward(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap())
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

    /// Group `g`'s blocks.
    fn group_row<B: WeightBlock>(matrix: &QuantMatrix<B>, g: usize) -> &[B::Group] {
        let blocks_per_row = matrix.cols / BLOCK;
        &matrix.groups[g * blocks_per_row..(g + 1) * blocks_per_row]
    }

    /// Every kernel's `[act][row]` bits for one group and activation rows.
    fn every_kernel<B: WeightBlock, const N: usize>(
        groups: &[B::Group],
        acts: [&[BlockQ8_1]; N],
    ) -> Vec<[[u32; 4]; N]> {
        Kernel::available()
            .into_iter()
            .map(|kernel| {
                kernel
                    .dots::<B, N>(groups, acts)
                    .map(|d| d.map(f32::to_bits))
            })
            .collect()
    }

    fn all_equal<T: PartialEq + std::fmt::Debug>(values: &[T]) {
        assert!(
            values.windows(2).all(|w| w[0] == w[1]),
            "kernels disagree: {values:?}"
        );
    }

    #[test]
    fn the_portable_and_simd_paths_agree_bit_for_bit() {
        let (_, weights) = random_matrix(8, 576, 3);
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let x: Vec<f32> = (0..576).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        for g in [0, 1] {
            all_equal(&every_kernel::<BlockQ4_1, 1>(
                group_row(&matrix, g),
                [&acts],
            ));
        }
    }

    /// The scalar reference for `x · wᵀ`: [`WeightBlock::accumulate`] block after block, per
    /// (activation row, weight row).
    fn scalar_reference<B: WeightBlock>(matrix: &QuantMatrix<B>, x: &[f32]) -> Vec<u32> {
        let blocks_per_row = matrix.cols / BLOCK;
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        acts.chunks_exact(blocks_per_row)
            .flat_map(|acts| {
                (0..matrix.rows).map(move |r| {
                    let dot = acts.iter().enumerate().fold(0f64, |acc, (b, act)| {
                        matrix.block(r, b).accumulate(act, acc)
                    });
                    (dot as f32).to_bits()
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
            assert_eq!(matrix.groups.len(), rows.div_ceil(4) * cols / BLOCK);
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
        let only = &matrix.groups[..];
        assert_eq!(only.len(), 1);
        let x: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).cos()).collect();
        let acts = [quantize_q8_1(&x)];
        let results = every_kernel::<BlockQ4_1, 1>(only, [&acts]);
        all_equal(&results);
        // The one row repeated over the group.
        assert!(results[0][0]
            .iter()
            .all(|&d| d == scalar_reference(&matrix, &x)[0]));
    }

    #[test]
    #[should_panic(expected = "shorter than the activations")]
    fn a_row_shorter_than_the_activations_is_refused() {
        let (_, weights) = random_matrix(1, 32, 10);
        let matrix = Q4_1Matrix::from_qtensor(&weights).unwrap();
        let x: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
        let acts: Vec<BlockQ8_1> = x.chunks_exact(BLOCK).map(quantize_q8_1).collect();
        Kernel::detect().dots::<BlockQ4_1, 1>(&matrix.groups, [&acts]);
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
            .forward(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap())
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
        let act = |i: usize| &acts[i * 18..(i + 1) * 18];
        for g in 0..4 {
            all_equal(&every_kernel::<BlockQ8_0, 4>(
                group_row(&matrix, g),
                [act(0), act(3), act(4), act(7)],
            ));
            all_equal(&every_kernel::<BlockQ8_0, 3>(
                group_row(&matrix, g),
                [act(1), act(2), act(6)],
            ));
        }
        assert_eq!(
            matrix
                .forward(&x)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            scalar_reference(&matrix, &x)
        );
        // A row's outputs are the same alone and in a batch of eight.
        let batched: Vec<f32> = matrix.forward(&x).unwrap();
        for i in 0..8 {
            let alone: Vec<f32> = matrix.forward(&x[i * 576..(i + 1) * 576]).unwrap();
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
        let groups = [BlockQ8_0::group([BlockQ8_0::read(&bytes); 4])];
        let x: Vec<f32> = (0..BLOCK).map(|i| (i as f32 - 16.0) / 4.0).collect();
        let acts = [quantize_q8_1(&x)];
        all_equal(&every_kernel::<BlockQ8_0, 1>(&groups, [&acts]));
        let portable = Kernel::Portable.dots::<BlockQ8_0, 1>(&groups, [&acts])[0];
        let expected: f32 =
            -128.0 * 0.5 * acts[0].d as f32 * acts[0].qs.iter().map(|&q| q as f32).sum::<f32>();
        assert!(
            (portable[0] - expected).abs() < 1e-3,
            "{} vs {expected}",
            portable[0]
        );
    }
}

//! Causal self-attention with grouped-query heads (several query heads share one key/value
//! head) and rotary positions, over each sequence's f16 key/value cache.
//!
//! The kernels below fix the order of every floating-point operation (eight lanes per dot
//! product, summed in a fixed tree; positions accumulated in order), and the AVX2 path and the
//! portable one perform the same operations, so a head's output depends only on its own
//! inputs: not on the CPU, the batch, or the thread that ran it.

use half::f16;

use super::{LayerKvCache, RotaryEmbedding};
use crate::error::Result;
use crate::linear::{Linear, StackedProjection};

/// Query rows one parallel work item covers in a long (prefill) segment.
const ROWS_PER_ITEM: usize = 16;

#[derive(Debug)]
pub(crate) struct Attention {
    /// q, k and v, stacked.
    qkv: StackedProjection,
    output: Linear,
    head_count: usize,
    kv_head_count: usize,
    head_dim: usize,
}

/// One sequence's rows in a step: rows `rows` of the stacked input, the first of them at
/// absolute position `position`, with the sequence's cache of the layer being run.
pub(crate) struct Segment<'a> {
    pub(crate) rows: std::ops::Range<usize>,
    pub(crate) position: usize,
    pub(crate) cache: &'a mut LayerKvCache,
}

impl Attention {
    pub(crate) fn new(
        qkv: StackedProjection,
        output: Linear,
        head_count: usize,
        kv_head_count: usize,
        head_dim: usize,
    ) -> Self {
        Self {
            qkv,
            output,
            head_count,
            kv_head_count,
            head_dim,
        }
    }

    /// `x`: `rows × hidden` values (already normalised), the rows of several sequences stacked
    /// (`segments`, in order). The projections run over every row at once, so each weight
    /// matrix is read once per step however many sequences share it; attention runs per
    /// sequence and head against the sequence's own cache, spread over the engine's threads.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        segments: &mut [Segment<'_>],
        rope: &RotaryEmbedding,
    ) -> Result<Vec<f32>> {
        let hd = self.head_dim;
        let (q_width, kv_width) = (self.head_count * hd, self.kv_head_count * hd);
        let width = q_width + 2 * kv_width;
        let mut qkv = self.qkv.forward(x)?;
        let rows = qkv.len() / width;

        // Rotate queries and keys, then cache each row's key and value.
        for segment in segments.iter_mut() {
            debug_assert_eq!(segment.cache.len(), segment.position);
            for (i, row) in segment.rows.clone().enumerate() {
                let row = &mut qkv[row * width..(row + 1) * width];
                let position = segment.position + i;
                for head in row[..q_width + kv_width].chunks_exact_mut(hd) {
                    rope.apply(head, position)?;
                }
                let (key, value) = row[q_width..].split_at(kv_width);
                segment.cache.push(key, value);
            }
        }

        // Work items: (segment, query head, block of rows), each writing its own values.
        let items: Vec<(usize, usize, std::ops::Range<usize>)> = segments
            .iter()
            .enumerate()
            .flat_map(|(s, segment)| {
                let rows = segment.rows.clone();
                (0..self.head_count).flat_map(move |head| {
                    rows.clone()
                        .step_by(ROWS_PER_ITEM)
                        .map(move |start| (s, head, start..(start + ROWS_PER_ITEM).min(rows.end)))
                })
            })
            .collect();
        let caches: Vec<(&[f16], &[f16], usize, usize)> = segments
            .iter()
            .map(|s| {
                let (keys, values) = s.cache.keys_values();
                (keys, values, s.cache.width(), s.position)
            })
            .collect();
        let starts: Vec<usize> = segments.iter().map(|s| s.rows.start).collect();
        let mut attended = vec![0f32; rows * q_width];
        let out_ptr = attended.as_mut_ptr() as usize;
        let group = self.head_count / self.kv_head_count;
        let scale = 1.0 / (hd as f32).sqrt();
        let kernel = Kernel::detect();
        let qkv = &qkv;
        candle_core::utils::barrier_pool().execute_chunked(items.len(), |range| {
            let mut scores = Vec::new();
            for (s, head, rows) in items[range].iter().cloned() {
                let (keys, values, kv_stride, first_position) = caches[s];
                let kv_offset = (head / group) * hd;
                for row in rows {
                    let q = &qkv[row * width + head * hd..][..hd];
                    let visible = first_position + (row - starts[s]) + 1;
                    // SAFETY: each (row, head) pair belongs to exactly one work item, so the
                    // `hd` values written at `row * q_width + head * hd` are written by one
                    // thread only, inside `attended` (`rows * q_width` values), which outlives
                    // the pool call.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            (out_ptr as *mut f32).add(row * q_width + head * hd),
                            hd,
                        )
                    };
                    let cached = CachedHead {
                        keys,
                        values,
                        stride: kv_stride,
                        offset: kv_offset,
                        positions: visible,
                    };
                    kernel.attend(q, &cached, scale, &mut scores, out);
                }
            }
        });
        self.output.forward(&attended)
    }
}

/// One key/value head's cached positions: position `j`'s key is
/// `keys[j * stride + offset..][..head_dim]`.
struct CachedHead<'a> {
    keys: &'a [f16],
    values: &'a [f16],
    stride: usize,
    offset: usize,
    positions: usize,
}

impl CachedHead<'_> {
    fn key(&self, j: usize, len: usize) -> &[f16] {
        &self.keys[j * self.stride + self.offset..][..len]
    }

    fn value(&self, j: usize, len: usize) -> &[f16] {
        &self.values[j * self.stride + self.offset..][..len]
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
        if crate::qmatmul::has_avx2() {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }

    /// Softmax attention of query `q` over `head`'s positions into `out` (`q.len()` values).
    fn attend(
        self,
        q: &[f32],
        head: &CachedHead<'_>,
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Kernel::Avx2 = self {
            // SAFETY: the CPU has AVX2, FMA and F16C (`detect`); `q` and `out` have
            // `8 * C` values and the head's rows at least as many.
            unsafe {
                match q.len() {
                    16 => return attend_avx2::<2>(q, head, scale, scores, out),
                    32 => return attend_avx2::<4>(q, head, scale, scores, out),
                    64 => return attend_avx2::<8>(q, head, scale, scores, out),
                    128 => return attend_avx2::<16>(q, head, scale, scores, out),
                    _ => {}
                }
            }
        }
        attend_portable(q, head, scale, scores, out)
    }
}

/// The reference kernel. Scores: per position, eight lane sums (lane `l` fuses the products
/// of values `l, l + 8, l + 16, …` in order) reduced as
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`, times `scale`. Then the softmax's
/// exponentials, summed in position order; values fused into the output position by position;
/// the output times the inverse of the sum.
fn attend_portable(
    q: &[f32],
    head: &CachedHead<'_>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = q.len();
    scores.clear();
    scores.extend((0..head.positions).map(|j| {
        let mut lanes = [0f32; 8];
        for (i, (&q, &k)) in q.iter().zip(head.key(j, hd)).enumerate() {
            lanes[i % 8] = q.mul_add(k.to_f32(), lanes[i % 8]);
        }
        reduce_lanes(lanes) * scale
    }));
    let sum = exponentiate(scores);
    out.fill(0.0);
    for (j, &weight) in scores.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(head.value(j, hd)) {
            *o = weight.mul_add(v.to_f32(), *o);
        }
    }
    let inverse = 1.0 / sum;
    out.iter_mut().for_each(|o| *o *= inverse);
}

fn reduce_lanes(a: [f32; 8]) -> f32 {
    let t: [f32; 4] = std::array::from_fn(|i| a[i] + a[i + 4]);
    let u = [t[0] + t[2], t[1] + t[3]];
    u[0] + u[1]
}

/// Replaces each score by `exp(score - max)`; returns their sum, in order.
fn exponentiate(scores: &mut [f32]) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for score in scores.iter_mut() {
        *score = (*score - max).exp();
        sum += *score;
    }
    sum
}

/// [`attend_portable`] with AVX2 for a head of `8 * C` values: the same operations in the
/// same order, with the query and the output held in registers.
///
/// # Safety
///
/// The CPU supports AVX2, FMA and F16C; `q` and `out` hold `8 * C` values; every cached
/// position of `head` holds at least `8 * C` keys and values from its offset.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_avx2<const C: usize>(
    q: &[f32],
    head: &CachedHead<'_>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let hd = 8 * C;
    assert!(q.len() == hd && out.len() == hd);
    // SAFETY (the loads below): `q` holds `8 * C` values, and `key`/`value` return slices of
    // `hd` values (bounds-checked).
    let halves = |row: &[f16], c: usize| unsafe {
        _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(8 * c) as *const __m128i))
    };
    let query: [__m256; C] =
        std::array::from_fn(|c| unsafe { _mm256_loadu_ps(q.as_ptr().add(8 * c)) });
    scores.clear();
    scores.extend((0..head.positions).map(|j| {
        let key = head.key(j, hd);
        let mut acc = _mm256_setzero_ps();
        for (c, query) in query.iter().enumerate() {
            acc = _mm256_fmadd_ps(*query, halves(key, c), acc);
        }
        let t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let u = _mm_add_ps(t, _mm_movehl_ps(t, t));
        let sum = _mm_add_ss(u, _mm_shuffle_ps::<0b01>(u, u));
        _mm_cvtss_f32(sum) * scale
    }));
    let sum = exponentiate(scores);
    let mut acc = [_mm256_setzero_ps(); C];
    for (j, &weight) in scores.iter().enumerate() {
        let value = head.value(j, hd);
        let weight = _mm256_set1_ps(weight);
        for (c, acc) in acc.iter_mut().enumerate() {
            *acc = _mm256_fmadd_ps(weight, halves(value, c), *acc);
        }
    }
    let inverse = _mm256_set1_ps(1.0 / sum);
    for (c, acc) in acc.iter().enumerate() {
        // SAFETY: `out` holds `8 * C` values.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), _mm256_mul_ps(*acc, inverse)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_halves(rng: &mut impl Rng, n: usize) -> Vec<f16> {
        (0..n)
            .map(|_| f16::from_f32(rng.gen_range(-3.0..3.0)))
            .collect()
    }

    #[test]
    fn the_simd_kernel_computes_exactly_what_the_portable_one_does() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for hd in [16, 32, 64, 128] {
            // Two key/value heads per position; the second one is attended.
            let positions = 37;
            let (keys, values) = (
                random_halves(&mut rng, positions * 2 * hd),
                random_halves(&mut rng, positions * 2 * hd),
            );
            let q: Vec<f32> = (0..hd).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let head = CachedHead {
                keys: &keys,
                values: &values,
                stride: 2 * hd,
                offset: hd,
                positions,
            };
            let (mut simd, mut portable) = (vec![0f32; hd], vec![0f32; hd]);
            Kernel::detect().attend(&q, &head, 0.125, &mut Vec::new(), &mut simd);
            attend_portable(&q, &head, 0.125, &mut Vec::new(), &mut portable);
            assert_eq!(
                simd.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                portable.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "head of {hd}"
            );
        }
    }

    #[test]
    fn attention_weights_every_visible_position_by_its_softmax() {
        let hd = 8;
        let positions = 5;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let keys: Vec<f16> = (0..positions * hd)
            .map(|_| f16::from_f32(rng.gen_range(-1.0..1.0)))
            .collect();
        let values: Vec<f16> = (0..positions * hd)
            .map(|_| f16::from_f32(rng.gen_range(-1.0..1.0)))
            .collect();
        let q: Vec<f32> = (0..hd).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let head = CachedHead {
            keys: &keys,
            values: &values,
            stride: hd,
            offset: 0,
            positions,
        };
        let mut out = vec![0f32; hd];
        Kernel::detect().attend(&q, &head, 0.5, &mut Vec::new(), &mut out);
        // The definition, in f64.
        let scores: Vec<f64> = (0..positions)
            .map(|j| {
                (0..hd)
                    .map(|d| q[d] as f64 * keys[j * hd + d].to_f64())
                    .sum::<f64>()
                    * 0.5
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for d in 0..hd {
            let expected: f64 = (0..positions)
                .map(|j| weights[j] / total * values[j * hd + d].to_f64())
                .sum();
            assert!((out[d] as f64 - expected).abs() < 1e-5, "{d}");
        }
    }
}

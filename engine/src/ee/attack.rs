//! Attacks a node runner that owns the public plaintext model can mount on an encrypted
//! kernel, and how much of the vocabulary permutation `P` each recovers. `nesa-node kernel
//! attack` runs them on a real model; the README's threat model quotes the figures.
//!
//! - **Sorted absolute values**: a signed permutation of a row's values leaves the multiset of
//!   their absolute values unchanged, so each encrypted embedding row is matched with the
//!   plaintext row whose sorted `|values|` are nearest.
//! - **Row norms**: every orthogonal `Q` (signed permutations included) keeps row norms, so
//!   each encrypted row is matched with the plaintext row of nearest norm.
//! - **Frequency analysis**: `P` is a fixed substitution; ranking the ids seen over many
//!   queries by frequency against a public text's token frequencies maps frequent ids back.
//! - **Norm weights**: in a signed-permutation kernel the RMSNorm weights are the plaintext
//!   ones permuted and signed, so matching `|g|` across layers recovers the hidden-dimension
//!   permutation, after which hidden states (split mode) can be read in the plaintext basis.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The residual transforms compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Vocabulary permutation only (Q = identity).
    PermutationOnly,
    /// Hidden dimensions permuted.
    Permutation,
    /// Hidden dimensions permuted and sign-flipped (ee-v1's default).
    SignedPermutation,
    /// A dense random orthogonal Q.
    Orthogonal,
}

impl Scheme {
    pub const ALL: [Scheme; 4] = [
        Scheme::PermutationOnly,
        Scheme::Permutation,
        Scheme::SignedPermutation,
        Scheme::Orthogonal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::PermutationOnly => "vocabulary permutation only",
            Scheme::Permutation => "+ hidden permutation",
            Scheme::SignedPermutation => "+ hidden signed permutation",
            Scheme::Orthogonal => "+ dense orthogonal Q",
        }
    }
}

/// A `rows × cols` f32 matrix, row-major.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

impl Matrix {
    fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }
}

/// The encrypted embedding `E'[e] = E[perm[e]] · Q` under `scheme`; returns it and `perm`.
pub fn encrypt_embedding(plain: &Matrix, scheme: Scheme, seed: u64) -> (Matrix, Vec<u32>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut perm: Vec<u32> = (0..plain.rows as u32).collect();
    for i in (1..perm.len()).rev() {
        perm.swap(i, rng.gen_range(0..=i));
    }
    let cols = plain.cols;
    let mut dims: Vec<usize> = (0..cols).collect();
    if scheme != Scheme::PermutationOnly {
        for i in (1..cols).rev() {
            dims.swap(i, rng.gen_range(0..=i));
        }
    }
    let signs: Vec<f32> = (0..cols)
        .map(|_| {
            if scheme == Scheme::SignedPermutation && rng.gen::<bool>() {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    let rotated = (scheme == Scheme::Orthogonal).then(|| {
        let q = Tensor::from_vec(
            random_orthogonal(cols, &mut rng),
            (cols, cols),
            &Device::Cpu,
        )
        .and_then(|q| {
            Tensor::from_slice(&plain.values, (plain.rows, cols), &Device::Cpu)?.matmul(&q)
        })
        .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
        .expect("f32 matmul of matching shapes");
        Matrix {
            rows: plain.rows,
            cols,
            values: q,
        }
    });
    let mut values = Vec::with_capacity(plain.values.len());
    for &source in &perm {
        match &rotated {
            Some(rotated) => values.extend_from_slice(rotated.row(source as usize)),
            None => {
                let row = plain.row(source as usize);
                values.extend((0..cols).map(|j| row[dims[j]] * signs[j]))
            }
        }
    }
    (
        Matrix {
            rows: plain.rows,
            cols,
            values,
        },
        perm,
    )
}

/// A random orthogonal matrix (Gram–Schmidt on Gaussian columns, twice for stability).
fn random_orthogonal(n: usize, rng: &mut ChaCha20Rng) -> Vec<f32> {
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(n);
    while columns.len() < n {
        let mut v: Vec<f64> = (0..n)
            .map(|_| {
                // Box–Muller.
                let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect();
        for _ in 0..2 {
            for c in &columns {
                let dot: f64 = v.iter().zip(c).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(c).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            columns.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    // Row-major Q[k][j] = column j, entry k.
    let mut q = vec![0f32; n * n];
    for (j, c) in columns.iter().enumerate() {
        for (k, &value) in c.iter().enumerate() {
            q[k * n + j] = value as f32;
        }
    }
    q
}

/// Rows of `samples` encrypted rows whose nearest plaintext row (by `feature`) is the true
/// one, as a fraction. Ties with another row count as failures.
fn nearest_match_rate(
    plain: &Matrix,
    encrypted: &Matrix,
    perm: &[u32],
    samples: &[usize],
    feature: impl Fn(&[f32]) -> Vec<f32>,
) -> candle_core::Result<f64> {
    let features =
        |m: &Matrix, rows: &mut dyn Iterator<Item = usize>| -> candle_core::Result<Tensor> {
            let rows: Vec<Vec<f32>> = rows.map(|r| feature(m.row(r))).collect();
            let width = rows.first().map_or(0, Vec::len);
            let count = rows.len();
            Tensor::from_vec(rows.concat(), (count, width), &Device::Cpu)
        };
    let reference = features(plain, &mut (0..plain.rows))?;
    let probes = features(encrypted, &mut samples.iter().copied())?;
    // ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b, for all pairs at once.
    let cross = probes.matmul(&reference.t()?)?;
    let reference_norms = reference.sqr()?.sum(1)?;
    let distances = reference_norms
        .unsqueeze(0)?
        .broadcast_sub(&(cross * 2.0)?)?
        .to_vec2::<f32>()?;
    let hits = samples
        .iter()
        .zip(distances)
        .filter(|(&e, row)| {
            let truth = perm[e] as usize;
            let best = row[truth];
            row.iter().enumerate().all(|(r, &d)| r == truth || d > best)
        })
        .count();
    Ok(hits as f64 / samples.len() as f64)
}

/// Recovery rate of matching sorted absolute values.
pub fn sorted_abs_attack(
    plain: &Matrix,
    encrypted: &Matrix,
    perm: &[u32],
    samples: &[usize],
) -> candle_core::Result<f64> {
    nearest_match_rate(plain, encrypted, perm, samples, |row| {
        let mut v: Vec<f32> = row.iter().map(|x| x.abs()).collect();
        v.sort_by(f32::total_cmp);
        v
    })
}

/// Recovery rate of matching row norms.
pub fn row_norm_attack(
    plain: &Matrix,
    encrypted: &Matrix,
    perm: &[u32],
    samples: &[usize],
) -> candle_core::Result<f64> {
    // Compare in f64 so that norms equal up to float rounding match as equal.
    let norms = |m: &Matrix, r: usize| -> f64 {
        m.row(r)
            .iter()
            .map(|&x| x as f64 * x as f64)
            .sum::<f64>()
            .sqrt()
    };
    let mut sorted: Vec<(f64, usize)> = (0..plain.rows).map(|r| (norms(plain, r), r)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let hits = samples
        .iter()
        .filter(|&&e| {
            let target = norms(encrypted, e);
            let at = sorted.partition_point(|(n, _)| *n < target);
            // The nearest norm, and it must be unambiguous.
            let candidates: Vec<(f64, usize)> = sorted
                [at.saturating_sub(2)..(at + 2).min(sorted.len())]
                .iter()
                .map(|&(n, r)| ((n - target).abs(), r))
                .collect();
            let best = candidates
                .iter()
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .expect("non-empty");
            let unique = candidates
                .iter()
                .filter(|c| c.0 <= best.0 + 1e-9 * target.max(1.0))
                .count()
                == 1;
            unique && best.1 == perm[e] as usize
        })
        .count();
    Ok(hits as f64 / samples.len() as f64)
}

/// What frequency analysis recovers.
#[derive(Clone, Copy, Debug)]
pub struct FrequencyRecovery {
    /// Fraction of observed token occurrences mapped to the right plaintext id.
    pub occurrences: f64,
    /// Fraction of distinct observed ids mapped right.
    pub distinct: f64,
}

/// Ranks observed (permuted) ids by frequency and maps rank `k` to the `k`-th most frequent
/// id of the attacker's reference text.
pub fn frequency_attack(
    reference: &[u32],
    observed_plain: &[u32],
    perm_inverse: impl Fn(u32) -> u32,
) -> FrequencyRecovery {
    let ranked = |ids: &mut dyn Iterator<Item = u32>| -> Vec<u32> {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for id in ids {
            *counts.entry(id).or_default() += 1;
        }
        let mut ranked: Vec<(u32, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().map(|(id, _)| id).collect()
    };
    let prior = ranked(&mut reference.iter().copied());
    let observed = ranked(&mut observed_plain.iter().map(|&t| perm_inverse(t)));
    let guess: HashMap<u32, u32> = observed.iter().copied().zip(prior).collect();
    let right = |plain: u32| guess.get(&perm_inverse(plain)) == Some(&plain);
    let occurrences = observed_plain.iter().filter(|&&t| right(t)).count();
    let mut distinct: Vec<u32> = observed_plain.to_vec();
    distinct.sort();
    distinct.dedup();
    let distinct_right = distinct.iter().filter(|&&t| right(t)).count();
    FrequencyRecovery {
        occurrences: occurrences as f64 / observed_plain.len().max(1) as f64,
        distinct: distinct_right as f64 / distinct.len().max(1) as f64,
    }
}

/// Recovery rate of the hidden-dimension permutation from RMSNorm weights: each encrypted
/// dimension is matched with the plaintext dimension whose `|g|` across all norms is nearest.
/// `plain_norms[l]` and `encrypted_norms[l]` are the same norm's weights.
pub fn norm_weight_attack(
    plain_norms: &[Vec<f32>],
    encrypted_norms: &[Vec<f32>],
    residual: &[u32],
) -> f64 {
    let dims = residual.len();
    let profile =
        |norms: &[Vec<f32>], d: usize| -> Vec<f32> { norms.iter().map(|g| g[d].abs()).collect() };
    let plain: Vec<Vec<f32>> = (0..dims).map(|d| profile(plain_norms, d)).collect();
    let hits = (0..dims)
        .filter(|&e| {
            let target = profile(encrypted_norms, e);
            let distance = |p: &Vec<f32>| -> f32 {
                p.iter().zip(&target).map(|(a, b)| (a - b) * (a - b)).sum()
            };
            let best = distance(&plain[residual[e] as usize]);
            plain
                .iter()
                .enumerate()
                .all(|(d, p)| d == residual[e] as usize || distance(p) > best)
        })
        .count();
    hits as f64 / dims as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_embedding(rows: usize, cols: usize) -> Matrix {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        Matrix {
            rows,
            cols,
            values: (0..rows * cols).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        }
    }

    #[test]
    fn sorted_absolute_values_break_signed_permutations_but_not_a_dense_rotation() {
        let plain = random_embedding(300, 64);
        let samples: Vec<usize> = (0..300).step_by(3).collect();
        for scheme in [Scheme::PermutationOnly, Scheme::SignedPermutation] {
            let (encrypted, perm) = encrypt_embedding(&plain, scheme, 5);
            assert_eq!(
                sorted_abs_attack(&plain, &encrypted, &perm, &samples).unwrap(),
                1.0,
                "{scheme:?}"
            );
        }
        let (encrypted, perm) = encrypt_embedding(&plain, Scheme::Orthogonal, 5);
        assert!(sorted_abs_attack(&plain, &encrypted, &perm, &samples).unwrap() < 0.2);
        // ...but a rotation keeps norms: random rows have distinct norms.
        assert!(row_norm_attack(&plain, &encrypted, &perm, &samples).unwrap() > 0.9);
    }

    #[test]
    fn frequency_analysis_recovers_frequent_ids_of_a_fixed_substitution() {
        let text: Vec<u32> = (0..5000u32)
            .map(|i| [1, 1, 1, 2, 2, 3][i as usize % 6])
            .collect();
        let recovery = frequency_attack(&text, &text, |t| 100 - t);
        assert_eq!(recovery.occurrences, 1.0);
    }
}

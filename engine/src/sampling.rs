//! Choosing the next token from logits: greedy, or seeded temperature / top-p sampling that
//! every honest node reproduces exactly from the same seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::error::{EngineError, Result};

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token (the lowest id among equals).
    Greedy,
    /// Draw from the softmax of `logits / temperature`, restricted to the smallest set of most
    /// likely tokens whose probability reaches `top_p`, with a ChaCha20 stream seeded by `seed`.
    Seeded {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

impl Sampling {
    /// Checks the parameters, so a bad request fails before any compute.
    pub fn validate(&self) -> Result<()> {
        if let Sampling::Seeded {
            temperature, top_p, ..
        } = *self
        {
            if !(temperature.is_finite() && temperature >= 0.0) {
                return Err(EngineError::Sampling(format!(
                    "temperature {temperature} must be a finite number ≥ 0"
                )));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(EngineError::Sampling(format!(
                    "top_p {top_p} must be in (0, 1]"
                )));
            }
        }
        Ok(())
    }
}

/// A sampler for one sequence (it owns the random stream).
#[derive(Debug)]
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha20Rng,
}

impl Sampler {
    /// A sampler positioned at the start of its random stream.
    pub fn new(sampling: Sampling) -> Result<Self> {
        sampling.validate()?;
        let seed = match sampling {
            Sampling::Seeded { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        Ok(Self {
            sampling,
            rng: ChaCha20Rng::seed_from_u64(seed),
        })
    }

    /// Picks the next token.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Seeded {
                temperature: 0.0, ..
            } => argmax(logits),
            Sampling::Seeded {
                temperature, top_p, ..
            } => {
                let draw: f64 = self.rng.gen();
                sample_top_p(logits, temperature, top_p, draw)
            }
        }
    }
}

/// Index of the largest logit; NaN counts as smallest, the first of equals wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > logits[best] || logits[best].is_nan() && !logit.is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Orders candidates by descending value, then ascending id, so ties never depend on the sort.
fn by_value_then_id(a: &(u32, f64), b: &(u32, f64)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, draw: f64) -> u32 {
    let max = logits[argmax(logits) as usize] as f64;
    let temperature = temperature as f64;
    let mut weights: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            (
                i as u32,
                if l.is_nan() {
                    0.0
                } else {
                    ((l as f64 - max) / temperature).exp()
                },
            )
        })
        .collect();
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let nucleus = if top_p >= 1.0 {
        weights.sort_by(by_value_then_id);
        weights.len()
    } else {
        // Most of the mass usually sits in a few tokens: sort a short head first and fall
        // back to sorting everything only when that head is not enough.
        let target = top_p as f64 * total;
        let mut head = 64.min(weights.len());
        loop {
            if head < weights.len() {
                weights.select_nth_unstable_by(head - 1, by_value_then_id);
            }
            weights[..head].sort_by(by_value_then_id);
            let mut mass = 0.0;
            let found = weights[..head].iter().position(|w| {
                mass += w.1;
                mass >= target
            });
            match found {
                Some(last) => break last + 1,
                None if head == weights.len() => break head,
                None => head = (head * 8).min(weights.len()),
            }
        }
    };
    let kept = &weights[..nucleus];
    let kept_mass: f64 = kept.iter().map(|w| w.1).sum();
    let mut threshold = draw * kept_mass;
    for &(id, weight) in kept {
        if threshold < weight {
            return id;
        }
        threshold -= weight;
    }
    kept.last().map_or(0, |w| w.0)
}

/// The `k` most likely tokens and their log-probabilities (`log_softmax` of the raw logits,
/// before temperature), most likely first.
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 || logits.is_empty() {
        return Vec::new();
    }
    let max = logits[argmax(logits) as usize] as f64;
    let log_total = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .filter(|e| !e.is_nan())
            .sum::<f64>()
            .ln();
    let mut candidates: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l as f64))
        .collect();
    let k = k.min(candidates.len());
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, by_value_then_id);
    }
    candidates.truncate(k);
    candidates.sort_by(by_value_then_id);
    candidates
        .into_iter()
        .map(|(id, logit)| (id, (logit - log_total) as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect()
    }

    #[test]
    fn greedy_picks_the_first_largest_logit() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.1]), 1);
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let sampling = Sampling::Seeded {
            temperature: 0.8,
            top_p: 0.9,
            seed: 42,
        };
        let draw = |sampling| {
            let mut sampler = Sampler::new(sampling).unwrap();
            (0..50)
                .map(|_| sampler.sample(&logits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(sampling), draw(sampling));
        let other = Sampling::Seeded {
            temperature: 0.8,
            top_p: 0.9,
            seed: 43,
        };
        assert_ne!(draw(sampling), draw(other));
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // One token holds almost all the mass: a small top_p must always return it.
        let mut logits = vec![0.0f32; 100];
        logits[17] = 20.0;
        let mut sampler = Sampler::new(Sampling::Seeded {
            temperature: 1.0,
            top_p: 0.5,
            seed: 1,
        })
        .unwrap();
        assert!((0..100).all(|_| sampler.sample(&logits) == 17));
    }

    #[test]
    fn zero_temperature_is_greedy() {
        let mut sampler = Sampler::new(Sampling::Seeded {
            temperature: 0.0,
            top_p: 1.0,
            seed: 9,
        })
        .unwrap();
        assert_eq!(sampler.sample(&logits()), argmax(&logits()));
    }

    #[test]
    fn top_logprobs_are_sorted_log_softmax_values() {
        let top = top_logprobs(&[0.0, 2.0, 1.0, 2.0], 3);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 3, 2]);
        let total = (1.0f64 + 2.0 * 2f64.exp() + 1f64.exp()).ln();
        assert!((top[0].1 as f64 - (2.0 - total)).abs() < 1e-6);
        assert!((top[2].1 as f64 - (1.0 - total)).abs() < 1e-6);
    }

    #[test]
    fn bad_sampling_parameters_are_rejected() {
        assert!(Sampler::new(Sampling::Seeded {
            temperature: -1.0,
            top_p: 0.9,
            seed: 0
        })
        .is_err());
        assert!(Sampler::new(Sampling::Seeded {
            temperature: 1.0,
            top_p: 0.0,
            seed: 0
        })
        .is_err());
        assert!(Sampler::new(Sampling::Seeded {
            temperature: f32::NAN,
            top_p: 0.5,
            seed: 0
        })
        .is_err());
    }
}

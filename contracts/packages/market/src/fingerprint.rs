//! The logit fingerprint a node reveals next to its output.
//!
//! When honest replicas disagree on the output (seeded sampling on different hardware can
//! diverge), the market compares what the model *believed*: at a few positions chosen from the
//! query's seed, the top-[`TOP_K`] token ids and their log-probabilities quantized to
//! 0.1 nat. Two runs of the same model agree within a small tolerance; a node that made its
//! output up, or ran another model, does not. Raw floats never reach the chain: the node
//! quantizes with [`quantize_logprob`] (native only) and the contract compares bytes.
//!
//! Encoding (version [`FINGERPRINT_VERSION`], at most [`MAX_FINGERPRINT_BYTES`]):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version = 1 |
//! | 14 × n | n entries, positions strictly ascending |
//!
//! Each entry: position (u16 little-endian, the index of the generated token whose
//! distribution this is: 0 = the first output token), then [`TOP_K`] pairs of
//! (token id: u32 little-endian truncated to 3 bytes, so ids < 2^24; quantized log-probability:
//! u8, `round(-logprob / 0.1 nat)` clamped to 0..=255), most likely first. Token ids within an
//! entry are distinct. 16 positions take 1 + 16 × 14 = 225 bytes.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::commitment::Hash32;

/// The only encoding version so far.
pub const FINGERPRINT_VERSION: u8 = 1;
/// Token ids (with their log-probabilities) kept per position.
pub const TOP_K: usize = 3;
/// Bytes of one encoded token id.
pub const TOKEN_ID_BYTES: usize = 3;
/// Bytes of one entry: position + `TOP_K` × (token id + quantized log-probability).
pub const ENTRY_BYTES: usize = 2 + TOP_K * (TOKEN_ID_BYTES + 1);
/// The most bytes a revealed fingerprint may take.
pub const MAX_FINGERPRINT_BYTES: usize = 256;
/// The most entries that fit in [`MAX_FINGERPRINT_BYTES`] (18).
pub const MAX_FINGERPRINT_ENTRIES: usize = (MAX_FINGERPRINT_BYTES - 1) / ENTRY_BYTES;
/// The largest token id a fingerprint can carry (vocabularies are below 2^24).
pub const MAX_TOKEN_ID: u32 = (1 << 24) - 1;
/// Positions are u16: only the first 65,536 generated tokens can be fingerprinted.
pub const MAX_FINGERPRINTED_TOKENS: u32 = 1 << 16;

/// Domain separator of the position draw, so the seed's other uses cannot collide with it.
const POSITIONS_DOMAIN: &[u8] = b"nesa/fingerprint-positions/v1";

/// Why a fingerprint cannot be encoded or decoded.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
pub enum FingerprintError {
    #[error("fingerprint is empty: it needs at least the version byte")]
    Empty,
    #[error(
        "fingerprint version {found} is unknown: this chain reads version {FINGERPRINT_VERSION}"
    )]
    UnknownVersion { found: u8 },
    #[error(
        "fingerprint of {len} bytes is not 1 version byte plus whole {ENTRY_BYTES}-byte entries"
    )]
    BadLength { len: usize },
    #[error("fingerprint has {count} entries, more than the {MAX_FINGERPRINT_ENTRIES} that fit in {MAX_FINGERPRINT_BYTES} bytes")]
    TooManyEntries { count: usize },
    #[error("fingerprint positions must be strictly ascending: entry {index} is not")]
    PositionsNotAscending { index: usize },
    #[error("token id {id} does not fit in 3 bytes (vocabularies must be below 2^24)")]
    TokenIdTooLarge { id: u32 },
    #[error("entry at position {position} lists the same token id twice")]
    DuplicateToken { position: u16 },
}

/// One of the top-`K` tokens at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopToken {
    /// Token id in the kernel's (possibly permuted) vocabulary.
    pub token_id: u32,
    /// `round(-logprob / 0.1 nat)`, clamped to 0..=255: 0 is certainty, 255 is ≤ -25.5 nat.
    pub logprob_q: u8,
}

/// The model's top tokens at one generated position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintEntry {
    /// Index of the generated token (0 = first output token).
    pub position: u16,
    /// Most likely first.
    pub top: [TopToken; TOP_K],
}

/// A decoded fingerprint: entries in ascending position order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub entries: Vec<FingerprintEntry>,
}

impl Fingerprint {
    /// The wire form (see the module docs). Fails on a fingerprint `decode` would reject.
    pub fn encode(&self) -> Result<Vec<u8>, FingerprintError> {
        self.validate()?;
        let mut out = Vec::with_capacity(1 + self.entries.len() * ENTRY_BYTES);
        out.push(FINGERPRINT_VERSION);
        for entry in &self.entries {
            out.extend_from_slice(&entry.position.to_le_bytes());
            for top in &entry.top {
                out.extend_from_slice(&top.token_id.to_le_bytes()[..TOKEN_ID_BYTES]);
                out.push(top.logprob_q);
            }
        }
        Ok(out)
    }

    /// Parses and validates the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, FingerprintError> {
        let (&version, body) = bytes.split_first().ok_or(FingerprintError::Empty)?;
        if version != FINGERPRINT_VERSION {
            return Err(FingerprintError::UnknownVersion { found: version });
        }
        if body.len() % ENTRY_BYTES != 0 {
            return Err(FingerprintError::BadLength { len: bytes.len() });
        }
        let entries = body
            .chunks_exact(ENTRY_BYTES)
            .map(|chunk| {
                let position = u16::from_le_bytes([chunk[0], chunk[1]]);
                let pair = |i: usize| {
                    let at = 2 + i * (TOKEN_ID_BYTES + 1);
                    TopToken {
                        token_id: u32::from_le_bytes([chunk[at], chunk[at + 1], chunk[at + 2], 0]),
                        logprob_q: chunk[at + 3],
                    }
                };
                FingerprintEntry {
                    position,
                    top: [pair(0), pair(1), pair(2)],
                }
            })
            .collect();
        let fingerprint = Fingerprint { entries };
        fingerprint.validate()?;
        Ok(fingerprint)
    }

    /// The positions covered, ascending.
    pub fn positions(&self) -> Vec<u32> {
        self.entries.iter().map(|e| u32::from(e.position)).collect()
    }

    /// How far apart two fingerprints are: `None` when they cover different positions or list
    /// different top token ids at a position (compared as sets, so two near-equal
    /// probabilities listed in either order still compare); otherwise the largest difference
    /// between the quantized log-probabilities of the same token, in 0.1-nat steps.
    pub fn distance(&self, other: &Fingerprint) -> Option<u32> {
        if self.entries.len() != other.entries.len() {
            return None;
        }
        let mut worst = 0u32;
        for (a, b) in self.entries.iter().zip(&other.entries) {
            if a.position != b.position {
                return None;
            }
            let (a, b) = (a.by_token_id(), b.by_token_id());
            for (x, y) in a.iter().zip(b.iter()) {
                if x.token_id != y.token_id {
                    return None;
                }
                worst = worst.max(u32::from(x.logprob_q.abs_diff(y.logprob_q)));
            }
        }
        Some(worst)
    }

    fn validate(&self) -> Result<(), FingerprintError> {
        if self.entries.len() > MAX_FINGERPRINT_ENTRIES {
            return Err(FingerprintError::TooManyEntries {
                count: self.entries.len(),
            });
        }
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 && self.entries[index - 1].position >= entry.position {
                return Err(FingerprintError::PositionsNotAscending { index });
            }
            for (i, top) in entry.top.iter().enumerate() {
                if top.token_id > MAX_TOKEN_ID {
                    return Err(FingerprintError::TokenIdTooLarge { id: top.token_id });
                }
                if entry.top[..i].iter().any(|t| t.token_id == top.token_id) {
                    return Err(FingerprintError::DuplicateToken {
                        position: entry.position,
                    });
                }
            }
        }
        Ok(())
    }
}

impl FingerprintEntry {
    fn by_token_id(&self) -> [TopToken; TOP_K] {
        let mut top = self.top;
        top.sort_by_key(|t| t.token_id);
        top
    }
}

/// Whether two fingerprints are within `tolerance` quantization steps of each other
/// (see [`Fingerprint::distance`]).
pub fn agree(a: &Fingerprint, b: &Fingerprint, tolerance: u32) -> bool {
    matches!(a.distance(b), Some(d) if d <= tolerance)
}

/// The generated-token positions a fingerprint must cover: `count` distinct positions drawn
/// from `seed` (the query's assignment seed) among the first `generated_tokens` (at most
/// [`MAX_FINGERPRINTED_TOKENS`]), ascending. All positions when there are no more than
/// `count`. Draw: 8-byte big-endian words of
/// `sha256("nesa/fingerprint-positions/v1" ‖ seed ‖ counter as u32 BE)` for counter = 0, 1, …,
/// each taken modulo the range, duplicates skipped.
pub fn fingerprint_positions(seed: &Hash32, generated_tokens: u32, count: usize) -> Vec<u32> {
    let range = generated_tokens.min(MAX_FINGERPRINTED_TOKENS);
    let count = count.min(range as usize);
    if count == range as usize {
        return (0..range).collect();
    }
    let mut chosen: Vec<u32> = Vec::with_capacity(count);
    let mut counter: u32 = 0;
    while chosen.len() < count {
        let mut hasher = Sha256::new();
        hasher.update(POSITIONS_DOMAIN);
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        let digest: Hash32 = hasher.finalize().into();
        for word in digest.chunks_exact(8) {
            let draw =
                u64::from_be_bytes(word.try_into().expect("8-byte chunk")) % u64::from(range);
            let position = draw as u32;
            if chosen.len() < count && !chosen.contains(&position) {
                chosen.push(position);
            }
        }
        counter = counter.wrapping_add(1);
    }
    chosen.sort_unstable();
    chosen
}

/// Quantizes a natural-log probability to 0.1-nat steps: `round(-logprob × 10)` clamped to
/// 0..=255 (NaN → 255). Off-chain only: the contracts never touch floats.
#[cfg(not(target_arch = "wasm32"))]
pub fn quantize_logprob(logprob: f32) -> u8 {
    if logprob.is_nan() {
        return u8::MAX;
    }
    let steps = (-logprob * 10.0).round();
    if steps <= 0.0 {
        0
    } else if steps >= 255.0 {
        u8::MAX
    } else {
        steps as u8
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl FingerprintEntry {
    /// The entry for `position` from the model's raw logits over the whole vocabulary
    /// (log-softmax in f64, then the top [`TOP_K`], ties to the lower token id).
    ///
    /// Panics when the vocabulary has fewer than [`TOP_K`] tokens.
    pub fn from_logits(position: u16, logits: &[f32]) -> Self {
        assert!(
            logits.len() >= TOP_K,
            "a fingerprint needs a vocabulary of at least {TOP_K} tokens"
        );
        let finite = |l: f32| {
            if l.is_nan() {
                f64::NEG_INFINITY
            } else {
                f64::from(l)
            }
        };
        let max = logits
            .iter()
            .map(|&l| finite(l))
            .fold(f64::NEG_INFINITY, f64::max);
        let log_sum = logits
            .iter()
            .map(|&l| (finite(l) - max).exp())
            .sum::<f64>()
            .ln();
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.select_nth_unstable_by(TOP_K - 1, |&a, &b| {
            finite(logits[b as usize])
                .total_cmp(&finite(logits[a as usize]))
                .then(a.cmp(&b))
        });
        let mut top_ids = [order[0], order[1], order[2]];
        top_ids.sort_by(|&a, &b| {
            finite(logits[b as usize])
                .total_cmp(&finite(logits[a as usize]))
                .then(a.cmp(&b))
        });
        let top = top_ids.map(|token_id| TopToken {
            token_id,
            logprob_q: quantize_logprob((finite(logits[token_id as usize]) - max - log_sum) as f32),
        });
        FingerprintEntry { position, top }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Fingerprint {
    /// Builds the fingerprint a node reveals: for each position of
    /// [`fingerprint_positions`]`(seed, generated_tokens, count)`, `logits_at(position)` must
    /// return the logits that produced generated token `position`.
    pub fn from_logits<'a>(
        seed: &Hash32,
        generated_tokens: u32,
        count: usize,
        mut logits_at: impl FnMut(u32) -> &'a [f32],
    ) -> Self {
        let entries = fingerprint_positions(seed, generated_tokens, count)
            .into_iter()
            .map(|position| FingerprintEntry::from_logits(position as u16, logits_at(position)))
            .collect();
        Fingerprint { entries }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(position: u16, top: [(u32, u8); TOP_K]) -> FingerprintEntry {
        FingerprintEntry {
            position,
            top: top.map(|(token_id, logprob_q)| TopToken {
                token_id,
                logprob_q,
            }),
        }
    }

    fn sample(positions: &[u32], shift: u8) -> Fingerprint {
        Fingerprint {
            entries: positions
                .iter()
                .map(|&p| {
                    entry(
                        p as u16,
                        [(p * 7 + 1, shift), (49_151, 10 + shift), (3, 30)],
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_fingerprint_of_32_tokens_fits_in_256_bytes() {
        let positions = fingerprint_positions(&[9; 32], 32, 16);
        assert_eq!(positions.len(), 16);
        let bytes = sample(&positions, 0).encode().unwrap();
        assert_eq!(bytes.len(), 1 + 16 * ENTRY_BYTES);
        assert_eq!(bytes.len(), 225);
        assert!(bytes.len() <= MAX_FINGERPRINT_BYTES);
        assert_eq!(MAX_FINGERPRINT_ENTRIES, 18);
    }

    #[test]
    fn fingerprints_round_trip_through_their_wire_form() {
        let fingerprint = sample(&[0, 5, 31], 2);
        let bytes = fingerprint.encode().unwrap();
        assert_eq!(bytes[0], FINGERPRINT_VERSION);
        assert_eq!(&bytes[1..3], &[0, 0]);
        assert_eq!(&bytes[3..7], &[1, 0, 0, 2]);
        assert_eq!(Fingerprint::decode(&bytes).unwrap(), fingerprint);
    }

    #[test]
    fn malformed_fingerprints_are_rejected_with_the_reason() {
        assert_eq!(Fingerprint::decode(&[]), Err(FingerprintError::Empty));
        assert_eq!(
            Fingerprint::decode(&[2]),
            Err(FingerprintError::UnknownVersion { found: 2 })
        );
        assert_eq!(
            Fingerprint::decode(&[1, 0, 0]),
            Err(FingerprintError::BadLength { len: 3 })
        );
        let unordered = sample(&[4, 2], 0);
        assert_eq!(
            unordered.encode(),
            Err(FingerprintError::PositionsNotAscending { index: 1 })
        );
        let mut bytes = sample(&[1, 2], 0).encode().unwrap();
        bytes[ENTRY_BYTES + 1] = 1; // second entry's position = first's
        assert_eq!(
            Fingerprint::decode(&bytes),
            Err(FingerprintError::PositionsNotAscending { index: 1 })
        );
        let twice = Fingerprint {
            entries: vec![entry(0, [(5, 0), (5, 1), (6, 2)])],
        };
        assert_eq!(
            twice.encode(),
            Err(FingerprintError::DuplicateToken { position: 0 })
        );
        let huge = Fingerprint {
            entries: vec![entry(0, [(1 << 24, 0), (5, 1), (6, 2)])],
        };
        assert_eq!(
            huge.encode(),
            Err(FingerprintError::TokenIdTooLarge { id: 1 << 24 })
        );
        let positions: Vec<u32> = (0..19).collect();
        assert_eq!(
            sample(&positions, 0).encode(),
            Err(FingerprintError::TooManyEntries { count: 19 })
        );
    }

    #[test]
    fn distance_is_the_largest_logprob_gap_of_the_same_tokens() {
        let a = sample(&[1, 2], 0);
        let b = sample(&[1, 2], 3);
        assert_eq!(a.distance(&b), Some(3));
        assert!(agree(&a, &b, 3));
        assert!(!agree(&a, &b, 2));
        assert_eq!(a.distance(&a), Some(0));
    }

    #[test]
    fn distance_ignores_the_order_of_near_equal_tokens() {
        let a = Fingerprint {
            entries: vec![entry(0, [(1, 5), (2, 5), (3, 9)])],
        };
        let b = Fingerprint {
            entries: vec![entry(0, [(2, 5), (1, 6), (3, 9)])],
        };
        assert_eq!(a.distance(&b), Some(1));
    }

    #[test]
    fn fingerprints_of_other_positions_or_tokens_never_agree() {
        let a = sample(&[1, 2], 0);
        assert_eq!(a.distance(&sample(&[1, 3], 0)), None);
        assert_eq!(a.distance(&sample(&[1], 0)), None);
        let mut other_token = a.clone();
        other_token.entries[1].top[2].token_id = 4;
        assert_eq!(a.distance(&other_token), None);
        assert!(!agree(&a, &other_token, u32::MAX));
    }

    #[test]
    fn positions_cover_everything_when_few_tokens_were_generated() {
        assert_eq!(fingerprint_positions(&[0; 32], 5, 16), vec![0, 1, 2, 3, 4]);
        assert!(fingerprint_positions(&[0; 32], 0, 16).is_empty());
    }

    #[test]
    fn positions_depend_on_the_seed() {
        let a = fingerprint_positions(&[1; 32], 1000, 16);
        let b = fingerprint_positions(&[2; 32], 1000, 16);
        assert_ne!(a, b);
        assert_eq!(a, fingerprint_positions(&[1; 32], 1000, 16));
    }

    #[test]
    fn logprobs_are_quantized_in_tenths_of_a_nat() {
        assert_eq!(quantize_logprob(0.0), 0);
        assert_eq!(quantize_logprob(0.3), 0);
        assert_eq!(quantize_logprob(-0.04), 0);
        assert_eq!(quantize_logprob(-0.06), 1);
        assert_eq!(quantize_logprob(-2.3), 23);
        assert_eq!(quantize_logprob(-25.5), 255);
        assert_eq!(quantize_logprob(-100.0), 255);
        assert_eq!(quantize_logprob(f32::NEG_INFINITY), 255);
        assert_eq!(quantize_logprob(f32::NAN), 255);
    }

    #[test]
    fn an_entry_from_logits_keeps_the_top_tokens_most_likely_first() {
        // ln-softmax of [0, ln 2, ln 4, -inf...]: probabilities 1/7, 2/7, 4/7.
        let logits = [0.0f32, 2f32.ln(), 4f32.ln(), f32::NEG_INFINITY, -50.0];
        let entry = FingerprintEntry::from_logits(3, &logits);
        assert_eq!(entry.position, 3);
        let ids: Vec<u32> = entry.top.iter().map(|t| t.token_id).collect();
        assert_eq!(ids, vec![2, 1, 0]);
        // -ln(4/7) = 0.56 → 6; -ln(2/7) = 1.25 → 13; -ln(1/7) = 1.95 → 19.
        let q: Vec<u8> = entry.top.iter().map(|t| t.logprob_q).collect();
        assert_eq!(q, vec![6, 13, 19]);
    }

    #[test]
    fn a_node_builds_its_fingerprint_at_the_seeded_positions() {
        let seed = [5; 32];
        let logits: Vec<Vec<f32>> = (0..32)
            .map(|step| {
                (0..100)
                    .map(|t| ((t * 31 + step * 7) % 97) as f32 / 10.0)
                    .collect()
            })
            .collect();
        let fingerprint = Fingerprint::from_logits(&seed, 32, 16, |p| &logits[p as usize]);
        assert_eq!(
            fingerprint.positions(),
            fingerprint_positions(&seed, 32, 16)
        );
        let bytes = fingerprint.encode().unwrap();
        assert!(bytes.len() <= MAX_FINGERPRINT_BYTES);
        assert_eq!(Fingerprint::decode(&bytes).unwrap(), fingerprint);
    }

    proptest! {
        #[test]
        fn positions_are_distinct_ascending_and_in_range(
            seed in any::<[u8; 32]>(), generated in 0u32..5000, count in 0usize..40
        ) {
            let positions = fingerprint_positions(&seed, generated, count);
            prop_assert_eq!(positions.len(), count.min(generated as usize));
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(positions.iter().all(|&p| p < generated));
        }

        #[test]
        fn any_decodable_bytes_reencode_identically(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(fingerprint) = Fingerprint::decode(&bytes) {
                prop_assert_eq!(fingerprint.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn distance_is_symmetric(shift_a in any::<u8>(), shift_b in any::<u8>()) {
            let a = sample(&[0, 9], shift_a.min(200));
            let b = sample(&[0, 9], shift_b.min(200));
            prop_assert_eq!(a.distance(&b), b.distance(&a));
        }
    }
}

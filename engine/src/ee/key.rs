//! The `ee-v1` key and the maps derived from it.
//!
//! A key is a 32-byte secret seed plus the shape it applies to. Every permutation and sign
//! vector of the scheme is derived from the seed (ChaCha20 seeded with
//! `sha256(seed ‖ "nesa-ee-v1/" ‖ label)`, Fisher–Yates with rejection sampling), so the node
//! runner's `kernel encrypt` and the wallet derive the same vocabulary permutation from the
//! same file. The wallet only needs the vocabulary part: plaintext token ids are mapped to the
//! encrypted kernel's ids before they leave the machine, and generated ids are mapped back.
//!
//! A key is bound to the encrypted kernel it produced (`kernel_sha256`, the sha256 of that
//! GGUF file, which is also the kernel's `weights_sha256` on chain), so a wallet never decodes
//! one kernel's output with another kernel's key. Key files (JSON, mode 0600) and the wallet's
//! keystore are the sdk's (`nesa_sdk::ee`).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the scheme, as the kernel registry spells it.
pub const SCHEME: &str = "ee-v1";

/// The transform of the residual stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// A permutation of the hidden dimensions only.
    Permutation,
    /// A permutation and a sign flip per hidden dimension (the default).
    #[default]
    SignedPermutation,
}

impl Transform {
    /// The name a kernel file and the CLI use (`permutation`, `signed-permutation`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permutation => "permutation",
            Self::SignedPermutation => "signed-permutation",
        }
    }
}

impl std::str::FromStr for Transform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Permutation, Self::SignedPermutation]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown transform '{s}' (permutation, signed-permutation)"))
    }
}

/// What can go wrong using a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an ee-v1 key: {0}")]
    Invalid(String),
    #[error("the key is for a vocabulary of {key} tokens but the kernel has {kernel}: it belongs to another kernel")]
    VocabularyMismatch { key: u32, kernel: u32 },
    #[error("wrong key: it encrypted kernel {key} but this kernel's weights hash is {kernel}")]
    WrongKernel { key: String, kernel: String },
    #[error("the key is not bound to a kernel yet (write the kernel with `nesa-node kernel encrypt` first)")]
    Unbound,
    #[error("token id {token} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange { token: u32, vocab_size: u32 },
}

/// An ee-v1 key; serialized as the JSON of a key file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EeKey {
    /// Always [`SCHEME`].
    pub scheme: String,
    /// The residual-stream transform.
    pub transform: Transform,
    /// The secret seed, hex.
    seed: String,
    /// Size of the vocabulary permuted.
    pub vocab_size: u32,
    /// sha256 (hex) of the encrypted GGUF this key produced, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_sha256: Option<String>,
}

impl std::fmt::Debug for EeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EeKey")
            .field("transform", &self.transform)
            .field("vocab_size", &self.vocab_size)
            .field("kernel_sha256", &self.kernel_sha256)
            .finish_non_exhaustive()
    }
}

impl EeKey {
    /// A fresh key with a random seed from the operating system.
    pub fn generate(transform: Transform, vocab_size: u32) -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(seed, transform, vocab_size)
    }

    /// A key from a given seed (tests, deterministic tooling).
    pub fn from_seed(seed: [u8; 32], transform: Transform, vocab_size: u32) -> Self {
        Self {
            scheme: SCHEME.into(),
            transform,
            seed: hex::encode(seed),
            vocab_size,
            kernel_sha256: None,
        }
    }

    /// Parses and validates the JSON of a key file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let key: EeKey =
            serde_json::from_slice(bytes).map_err(|e| KeyError::Invalid(e.to_string()))?;
        if key.scheme != SCHEME {
            return Err(KeyError::Invalid(format!("scheme '{}'", key.scheme)));
        }
        if key.seed_bytes().is_none() {
            return Err(KeyError::Invalid(
                "the seed is not 32 hex-encoded bytes".into(),
            ));
        }
        if key.vocab_size == 0 {
            return Err(KeyError::Invalid("empty vocabulary".into()));
        }
        Ok(key)
    }

    /// The JSON of a key file.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a key serializes")
    }

    fn seed_bytes(&self) -> Option<[u8; 32]> {
        hex::decode(&self.seed).ok()?.try_into().ok()
    }

    fn rng(&self, label: &str) -> ChaCha20Rng {
        let seed = self.seed_bytes().expect("validated on load");
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(b"nesa-ee-v1/");
        hasher.update(label.as_bytes());
        ChaCha20Rng::from_seed(hasher.finalize().into())
    }

    /// The permutation of `0..n` named `label`: `result[i]` is where position `i` takes its
    /// value from.
    pub fn permutation(&self, label: &str, n: usize) -> Vec<u32> {
        let mut rng = self.rng(label);
        let mut values: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            values.swap(i, uniform_below(&mut rng, i as u64 + 1) as usize);
        }
        values
    }

    /// `n` signs named `label` (`true` = negate); all `false` for [`Transform::Permutation`].
    pub fn signs(&self, label: &str, n: usize) -> Vec<bool> {
        if self.transform == Transform::Permutation {
            return vec![false; n];
        }
        let mut rng = self.rng(label);
        (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
    }

    /// The vocabulary permutation.
    pub fn vocabulary(&self) -> Vocabulary {
        let forward = self.permutation("vocabulary", self.vocab_size as usize);
        let mut inverse = vec![0u32; forward.len()];
        for (encrypted, &plain) in forward.iter().enumerate() {
            inverse[plain as usize] = encrypted as u32;
        }
        Vocabulary { forward, inverse }
    }

    /// Checks that this key produced the kernel whose weights hash is `weights_sha256`.
    pub fn check_kernel(&self, weights_sha256: &[u8]) -> Result<(), KeyError> {
        let kernel = hex::encode(weights_sha256);
        match &self.kernel_sha256 {
            None => Err(KeyError::Unbound),
            Some(key) if key.eq_ignore_ascii_case(&kernel) => Ok(()),
            Some(key) => Err(KeyError::WrongKernel {
                key: key.clone(),
                kernel,
            }),
        }
    }
}

/// Unbiased uniform integer in `0..bound` (rejection sampling on 64-bit draws).
fn uniform_below(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let draw = rng.next_u64();
        if draw < zone {
            return draw % bound;
        }
    }
}

/// The vocabulary permutation of a key: row `e` of the encrypted embedding is row
/// `forward[e]` of the plaintext one.
#[derive(Clone, Debug)]
pub struct Vocabulary {
    forward: Vec<u32>,
    inverse: Vec<u32>,
}

impl Vocabulary {
    /// Plaintext token ids → the encrypted kernel's ids.
    pub fn encrypt(&self, plain: &[u32]) -> Result<Vec<u32>, KeyError> {
        map_ids(&self.inverse, plain)
    }

    /// The encrypted kernel's ids → plaintext token ids.
    pub fn decrypt(&self, encrypted: &[u32]) -> Result<Vec<u32>, KeyError> {
        map_ids(&self.forward, encrypted)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.forward.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }

    /// Checks the key's vocabulary against the kernel's tokenizer.
    pub fn check_size(&self, kernel_vocab: usize) -> Result<(), KeyError> {
        if self.len() != kernel_vocab {
            return Err(KeyError::VocabularyMismatch {
                key: self.len() as u32,
                kernel: kernel_vocab as u32,
            });
        }
        Ok(())
    }
}

fn map_ids(table: &[u32], ids: &[u32]) -> Result<Vec<u32>, KeyError> {
    ids.iter()
        .map(|&id| {
            table
                .get(id as usize)
                .copied()
                .ok_or(KeyError::TokenOutOfRange {
                    token: id,
                    vocab_size: table.len() as u32,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EeKey {
        EeKey::from_seed([7; 32], Transform::SignedPermutation, 1000)
    }

    #[test]
    fn the_vocabulary_round_trips_and_moves_almost_every_id() {
        let vocabulary = key().vocabulary();
        let plain: Vec<u32> = (0..1000).collect();
        let encrypted = vocabulary.encrypt(&plain).unwrap();
        assert_eq!(vocabulary.decrypt(&encrypted).unwrap(), plain);
        let mut sorted = encrypted.clone();
        sorted.sort();
        assert_eq!(sorted, plain, "a permutation");
        let fixed = plain.iter().zip(&encrypted).filter(|(a, b)| a == b).count();
        assert!(fixed < 10, "{fixed} fixed points");
        assert!(matches!(
            vocabulary.encrypt(&[1000]),
            Err(KeyError::TokenOutOfRange { token: 1000, .. })
        ));
    }

    #[test]
    fn transform_names_match_their_serde_names() {
        for transform in [Transform::Permutation, Transform::SignedPermutation] {
            let json = serde_json::to_value(transform).unwrap();
            assert_eq!(json.as_str(), Some(transform.as_str()));
            assert_eq!(transform.as_str().parse::<Transform>(), Ok(transform));
        }
        assert!("dense".parse::<Transform>().is_err());
    }

    #[test]
    fn derivation_is_deterministic_and_seed_dependent() {
        assert_eq!(key().permutation("x", 64), key().permutation("x", 64));
        assert_ne!(key().permutation("x", 64), key().permutation("y", 64));
        let other = EeKey::from_seed([8; 32], Transform::SignedPermutation, 1000);
        assert_ne!(key().permutation("x", 64), other.permutation("x", 64));
        let plain = EeKey::from_seed([7; 32], Transform::Permutation, 1000);
        assert!(plain.signs("s", 64).iter().all(|s| !s));
        assert!(key().signs("s", 64).iter().any(|s| *s));
    }

    #[test]
    fn key_json_round_trips_and_invalid_keys_are_rejected() {
        let mut key = key();
        key.kernel_sha256 = Some(hex::encode([1u8; 32]));
        assert_eq!(EeKey::from_json(&key.to_json()).unwrap(), key);
        key.check_kernel(&[1u8; 32]).unwrap();
        assert!(matches!(
            key.check_kernel(&[2u8; 32]),
            Err(KeyError::WrongKernel { .. })
        ));
        assert!(matches!(
            EeKey::from_json(b"{not json"),
            Err(KeyError::Invalid(_))
        ));
        let mut other_scheme = key.clone();
        other_scheme.scheme = "ee-v0".into();
        assert!(matches!(
            EeKey::from_json(&other_scheme.to_json()),
            Err(KeyError::Invalid(_))
        ));
    }
}

//! Equivariant Encryption (`ee-v1`) of a llama-family GGUF kernel.
//!
//! With a key ([`EeKey`]) the kernel's weights are rewritten so that the model
//! computes in a secret basis and over a secret vocabulary order, and the encrypted model's
//! outputs are the plaintext model's outputs under the same maps:
//!
//! - vocabulary permutation `P`: row `e` of the encrypted embedding (and LM head) is row
//!   `P[e]` of the plaintext one; users send `P⁻¹(ids)` and map generated ids back with `P`;
//! - residual transform `Q`: a permutation `σ` of the hidden dimensions with a sign `s_i` per
//!   dimension, so the encrypted residual stream is `x'_i = s_i · x_σ(i)`; RMSNorm commutes
//!   with it (its mean square is unchanged) and its weight absorbs the signs
//!   (`g'_i = s_i · g_σ(i)`), so the projections after a norm see only the permutation; the
//!   final norm keeps the signs, so one matrix still serves as embedding and LM head;
//! - a permutation of the MLP's inner dimension and of the attention heads: key/value heads
//!   are permuted, and each query head moves with its key/value group (grouped-query
//!   attention), in an order of its own inside the group; heads move whole, so RoPE, which
//!   acts inside a head, is untouched.
//!
//! Every map acts on whole quantization blocks plus an order inside each block (32 values),
//! and sign flips touch only scales (a row's `d`/`m`) or Q8_0 values: the encrypted file is
//! exactly the plaintext weights rearranged, in the same formats, at the same size and speed.
//! A dense orthogonal `Q` would need requantizing every matrix (changing outputs) and hides
//! nothing more from an attacker who holds the public weights (see the README's threat model
//! and [`attack`]).

pub mod attack;
mod encrypt;
mod error;
pub mod key;
mod tensor;

pub use encrypt::{encrypt_kernel, EncryptReport, KernelMaps};
pub use error::KernelError;
pub use key::{EeKey, KeyError, Transform, Vocabulary, SCHEME};
pub use tensor::TensorError;

use crate::gguf::Metadata;
use candle_core::quantized::gguf_file::Value;

/// GGUF metadata keys an encrypted kernel carries.
pub mod keys {
    /// The scheme (`ee-v1`).
    pub const SCHEME: &str = "nesa.ee.scheme";
    /// The residual transform (`permutation`, `signed-permutation`).
    pub const TRANSFORM: &str = "nesa.ee.transform";
    /// Stop token ids, in the encrypted vocabulary.
    pub const STOP_TOKENS: &str = "nesa.ee.stop_tokens";
    /// sha256 (hex) of the plaintext tokenizer users encode with.
    pub const TOKENIZER_SHA256: &str = "nesa.ee.tokenizer_sha256";
}

/// What a node runner learns about an encrypted kernel from its file: enough to serve it,
/// nothing about the vocabulary beyond its stop tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedKernel {
    /// The residual transform (`permutation`, `signed-permutation`).
    pub transform: String,
    /// Stop token ids, in the encrypted vocabulary.
    pub stop_tokens: Vec<u32>,
    /// sha256 of the plaintext tokenizer users encode with.
    pub tokenizer_sha256: [u8; 32],
}

impl EncryptedKernel {
    /// `Some` when the GGUF metadata marks an ee-v1 kernel.
    pub fn from_metadata(metadata: &Metadata) -> Result<Option<Self>, KernelError> {
        let Some(scheme) = metadata.get(keys::SCHEME) else {
            return Ok(None);
        };
        let scheme = scheme.to_string()?;
        if scheme != SCHEME {
            return Err(KernelError::UnknownScheme(scheme.clone()));
        }
        let string = |key: &'static str| -> Result<String, KernelError> {
            Ok(metadata
                .get(key)
                .ok_or(KernelError::MissingMark(key))?
                .to_string()?
                .clone())
        };
        let stop_tokens = match metadata.get(keys::STOP_TOKENS) {
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| v.to_u32())
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(KernelError::MissingMark(keys::STOP_TOKENS)),
        };
        let tokenizer_sha256 = hex::decode(string(keys::TOKENIZER_SHA256)?)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(KernelError::NotAHash(keys::TOKENIZER_SHA256))?;
        Ok(Some(Self {
            transform: string(keys::TRANSFORM)?,
            stop_tokens,
            tokenizer_sha256,
        }))
    }
}

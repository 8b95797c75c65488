//! A tiny random llama GGUF for fast tests (here and, with the `testing` feature, in other
//! crates' tests): the same metadata keys and tensor names as SmolLM2, a byte-level vocabulary
//! of a few hundred tokens and random quantized weights. Its answers are noise, but
//! deterministic noise.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::tokenizer::fixture;

use super::error::{EngineError, Result};

/// The shape and randomness of a tiny model.
#[derive(Clone, Debug)]
pub struct TinyModelSpec {
    /// Seed of the weights.
    pub seed: u64,
    /// Number of blocks.
    pub layers: usize,
    /// Storage type of the block matrices (the embedding is Q8_0, as in SmolLM2).
    pub weight_dtype: GgmlDType,
    /// Hidden size, attention heads, key/value heads and MLP width.
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
}

impl Default for TinyModelSpec {
    fn default() -> Self {
        Self {
            seed: 7,
            layers: 4,
            weight_dtype: GgmlDType::Q8_0,
            hidden: TINY_HIDDEN,
            heads: TINY_HEADS,
            kv_heads: TINY_KV_HEADS,
            ffn: TINY_FFN,
        }
    }
}

pub const TINY_HIDDEN: usize = 64;
pub const TINY_HEADS: usize = 4;
pub const TINY_KV_HEADS: usize = 2;
pub const TINY_FFN: usize = 128;
pub const TINY_CONTEXT: usize = 256;

/// Number of tokens in the tiny vocabulary.
pub fn tiny_vocab_size() -> usize {
    fixture::tokens().len()
}

/// Writes the tiny model to `path`.
pub fn write_tiny_model(path: &Path, spec: &TinyModelSpec) -> Result<()> {
    let vocab = tiny_vocab_size();
    let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
    let mut random =
        |rows: usize, cols: usize, scale: f32, offset: f32, dtype: GgmlDType| -> Result<QTensor> {
            let values: Vec<f32> = (0..rows * cols)
                .map(|_| offset + scale * rng.gen_range(-1.0f32..1.0))
                .collect();
            let shape: Vec<usize> = if rows == 1 {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            Ok(QTensor::quantize(
                &Tensor::from_vec(values, shape, &Device::Cpu)?,
                dtype,
            )?)
        };
    let kv = spec.kv_heads * (spec.hidden / spec.heads);
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            random(vocab, spec.hidden, 1.0, 0.0, GgmlDType::Q8_0)?,
        ),
        (
            "output_norm.weight".into(),
            random(1, spec.hidden, 0.1, 1.0, GgmlDType::F32)?,
        ),
    ];
    let fan_in = |n: usize| 1.5 / (n as f32).sqrt();
    for layer in 0..spec.layers {
        let name = |suffix: &str| format!("blk.{layer}.{suffix}");
        let dtype = spec.weight_dtype;
        tensors.push((
            name("attn_norm.weight"),
            random(1, spec.hidden, 0.1, 1.0, GgmlDType::F32)?,
        ));
        tensors.push((
            name("attn_q.weight"),
            random(spec.hidden, spec.hidden, fan_in(spec.hidden), 0.0, dtype)?,
        ));
        tensors.push((
            name("attn_k.weight"),
            random(kv, spec.hidden, fan_in(spec.hidden), 0.0, dtype)?,
        ));
        tensors.push((
            name("attn_v.weight"),
            random(kv, spec.hidden, fan_in(spec.hidden), 0.0, dtype)?,
        ));
        tensors.push((
            name("attn_output.weight"),
            random(spec.hidden, spec.hidden, fan_in(spec.hidden), 0.0, dtype)?,
        ));
        tensors.push((
            name("ffn_norm.weight"),
            random(1, spec.hidden, 0.1, 1.0, GgmlDType::F32)?,
        ));
        tensors.push((
            name("ffn_gate.weight"),
            random(spec.ffn, spec.hidden, fan_in(spec.hidden), 0.0, dtype)?,
        ));
        tensors.push((
            name("ffn_up.weight"),
            random(spec.ffn, spec.hidden, fan_in(spec.hidden), 0.0, dtype)?,
        ));
        tensors.push((
            name("ffn_down.weight"),
            random(spec.hidden, spec.ffn, fan_in(spec.ffn), 0.0, dtype)?,
        ));
    }

    let mut metadata: Vec<(String, Value)> = [
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("nesa tiny test llama".into())),
        ("llama.block_count", Value::U32(spec.layers as u32)),
        ("llama.context_length", Value::U32(TINY_CONTEXT as u32)),
        ("llama.embedding_length", Value::U32(spec.hidden as u32)),
        ("llama.feed_forward_length", Value::U32(spec.ffn as u32)),
        ("llama.attention.head_count", Value::U32(spec.heads as u32)),
        (
            "llama.attention.head_count_kv",
            Value::U32(spec.kv_heads as u32),
        ),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.vocab_size", Value::U32(vocab as u32)),
        (
            "llama.rope.dimension_count",
            Value::U32((spec.hidden / spec.heads) as u32),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    // The tokenizer's metadata, in key order so the file is the same on every run.
    let tokenizer: std::collections::BTreeMap<_, _> = fixture::metadata().into_iter().collect();
    metadata.extend(tokenizer);
    let metadata_refs: Vec<(&str, &Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let io_error = |source| EngineError::ModelFile {
        path: path.to_owned(),
        source,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io_error)?);
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs)?;
    std::io::Write::flush(&mut file).map_err(io_error)?;
    Ok(())
}

/// Writes the tiny model for `spec` once into the system temp dir and returns its path
/// (tests running in parallel share it; each writer renames a private file into place).
pub fn tiny_model_file(spec: &TinyModelSpec) -> Result<std::path::PathBuf> {
    let name = format!(
        "nesa-tiny-{}-{}-{:?}-{}x{}x{}x{}.gguf",
        spec.seed, spec.layers, spec.weight_dtype, spec.hidden, spec.heads, spec.kv_heads, spec.ffn
    );
    let path = std::env::temp_dir().join(name);
    if !path.exists() {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = path.with_extension(format!("{}.{unique}.partial", std::process::id()));
        write_tiny_model(&partial, spec)?;
        std::fs::rename(&partial, &path).map_err(|source| EngineError::ModelFile {
            path: path.clone(),
            source,
        })?;
    }
    Ok(path)
}

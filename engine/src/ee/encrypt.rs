//! `nesa-node kernel encrypt`: writes the ee-v1 form of a plaintext GGUF kernel.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{QStorage, QTensor};
use candle_core::Device;
use sha2::{Digest, Sha256};

use super::error::KernelError;
use super::key::EeKey;
use super::keys;
use super::tensor::RawMatrix;
use crate::{ModelConfig, Tokenizer};

/// Values per quantization block: column maps keep blocks whole.
const BLOCK: usize = 32;

/// The maps of one key over one model's shapes. Each is "position `i` of the result takes
/// position `map[i]` of the input"; signs are indexed by result position.
#[derive(Clone, Debug)]
pub struct KernelMaps {
    /// Row `e` of the encrypted embedding / LM head is plaintext row `vocabulary[e]`.
    pub vocabulary: Vec<u32>,
    /// `σ`: the hidden dimensions.
    pub residual: Vec<u32>,
    /// `s`: a sign per hidden dimension (all `false` for a permutation-only key).
    pub residual_signs: Vec<bool>,
    /// The MLP's inner dimension.
    pub ffn: Vec<u32>,
    /// Rows of the query projection (= columns of the attention output): whole heads.
    pub query_rows: Vec<u32>,
    /// Rows of the key and value projections: whole key/value heads.
    pub kv_rows: Vec<u32>,
}

impl KernelMaps {
    /// Derives every map of `key` for a model shaped like `config`.
    pub fn derive(key: &EeKey, config: &ModelConfig) -> Self {
        let head_dim = config.head_dim();
        let (heads, kv_heads) = (config.head_count, config.kv_head_count);
        let group = heads / kv_heads.max(1);
        // Heads move whole, which keeps quantization blocks whole only when a head spans
        // whole blocks; smaller heads stay in place.
        let (query_heads, kv_order): (Vec<u32>, Vec<u32>) = if head_dim.is_multiple_of(BLOCK) {
            let kv_order = key.permutation("heads/kv", kv_heads);
            let query_heads = kv_order
                .iter()
                .enumerate()
                .flat_map(|(slot, &kv)| {
                    key.permutation(&format!("heads/group/{slot}"), group)
                        .into_iter()
                        .map(move |j| kv * group as u32 + j)
                })
                .collect();
            (query_heads, kv_order)
        } else {
            ((0..heads as u32).collect(), (0..kv_heads as u32).collect())
        };
        let expand = |order: &[u32]| -> Vec<u32> {
            order
                .iter()
                .flat_map(|&head| (0..head_dim as u32).map(move |d| head * head_dim as u32 + d))
                .collect()
        };
        Self {
            vocabulary: key.permutation("vocabulary", config.vocab_size),
            residual: block_permutation(key, "residual", config.hidden_size),
            residual_signs: key.signs("residual/signs", config.hidden_size),
            ffn: block_permutation(key, "ffn", config.ffn_size),
            query_rows: expand(&query_heads),
            kv_rows: expand(&kv_order),
        }
    }

    /// The encrypted form of plaintext hidden states (`positions × hidden`, row-major).
    pub fn encrypt_hidden(&self, plain: &[f32]) -> Vec<f32> {
        let width = self.residual.len();
        plain
            .chunks_exact(width)
            .flat_map(|row| {
                self.residual
                    .iter()
                    .zip(&self.residual_signs)
                    .map(move |(&from, &negate)| {
                        let value = row[from as usize];
                        if negate {
                            -value
                        } else {
                            value
                        }
                    })
            })
            .collect()
    }

    /// Applies the maps of the tensor named `name` to its raw data.
    fn apply(&self, matrix: &mut RawMatrix) -> Result<(), KernelError> {
        let name = matrix.name.to_string();
        let role = name
            .strip_prefix("blk.")
            .and_then(|rest| rest.split_once('.'))
            .map(|(_, role)| role)
            .unwrap_or(&name);
        match role {
            "token_embd.weight" | "output.weight" => {
                matrix.permute_rows(&self.vocabulary)?;
                self.residual_columns(matrix, true)?;
            }
            "output_norm.weight" => self.residual_columns(matrix, false)?,
            "attn_norm.weight" | "ffn_norm.weight" => self.residual_columns(matrix, true)?,
            "attn_q.weight" => {
                matrix.permute_rows(&self.query_rows)?;
                self.residual_columns(matrix, false)?;
            }
            "attn_k.weight" | "attn_v.weight" => {
                matrix.permute_rows(&self.kv_rows)?;
                self.residual_columns(matrix, false)?;
            }
            "attn_output.weight" => {
                self.residual_rows(matrix)?;
                matrix.permute_cols(&self.query_rows)?;
            }
            "ffn_gate.weight" | "ffn_up.weight" => {
                matrix.permute_rows(&self.ffn)?;
                self.residual_columns(matrix, false)?;
            }
            "ffn_down.weight" => {
                self.residual_rows(matrix)?;
                matrix.permute_cols(&self.ffn)?;
            }
            _ => return Err(KernelError::UnknownTensor(name)),
        }
        Ok(())
    }

    fn residual_columns(&self, matrix: &mut RawMatrix, signs: bool) -> Result<(), KernelError> {
        matrix.permute_cols(&self.residual)?;
        if signs {
            matrix.negate_cols(&self.residual_signs)?;
        }
        Ok(())
    }

    fn residual_rows(&self, matrix: &mut RawMatrix) -> Result<(), KernelError> {
        matrix.permute_rows(&self.residual)?;
        matrix.negate_rows(&self.residual_signs)?;
        Ok(())
    }
}

/// A permutation of `n` positions that maps whole 32-value blocks onto blocks, each with its
/// own order inside; a plain permutation when `n` is not a whole number of blocks.
fn block_permutation(key: &EeKey, label: &str, n: usize) -> Vec<u32> {
    if !n.is_multiple_of(BLOCK) {
        return key.permutation(label, n);
    }
    let blocks = key.permutation(&format!("{label}/blocks"), n / BLOCK);
    blocks
        .iter()
        .enumerate()
        .flat_map(|(target, &source)| {
            key.permutation(&format!("{label}/block/{target}"), BLOCK)
                .into_iter()
                .map(move |j| source * BLOCK as u32 + j)
        })
        .collect()
}

/// What `encrypt_kernel` wrote.
#[derive(Debug)]
pub struct EncryptReport {
    pub tensors: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// sha256 of the encrypted file: the kernel's `weights_sha256`.
    pub sha256: [u8; 32],
}

/// Writes the ee-v1 form of the plaintext GGUF `input` to `output` with `key`, and binds the
/// key to the written file (`key.kernel_sha256`).
pub fn encrypt_kernel(
    input: &Path,
    output: &Path,
    key: &mut EeKey,
) -> Result<EncryptReport, KernelError> {
    let started = Instant::now();
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| KernelError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = File::open(input).map_err(io("open model", input))?;
    let content = gguf_file::Content::read(&mut file).map_err(|source| KernelError::NotGguf {
        path: input.to_owned(),
        source: Box::new(source),
    })?;
    if content.metadata.contains_key(keys::SCHEME) {
        return Err(KernelError::AlreadyEncrypted(input.to_owned()));
    }
    let config = ModelConfig::from_gguf_metadata(&content.metadata)?;
    let tokenizer = Tokenizer::from_gguf_metadata(&content.metadata).map_err(|source| {
        KernelError::Tokenizer {
            path: input.to_owned(),
            source,
        }
    })?;
    if key.vocab_size as usize != config.vocab_size {
        return Err(KernelError::VocabularyMismatch {
            key: key.vocab_size,
            path: input.to_owned(),
            kernel: config.vocab_size,
        });
    }
    let maps = KernelMaps::derive(key, &config);

    let mut names: Vec<(&String, u64)> = content
        .tensor_infos
        .iter()
        .map(|(name, info)| (name, info.offset))
        .collect();
    names.sort_by_key(|&(_, offset)| offset);
    let mut tensors = Vec::with_capacity(names.len());
    for (name, _) in names {
        let tensor = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|source| KernelError::ReadTensor {
                name: name.clone(),
                source: Box::new(source),
            })?;
        let dims = tensor.shape().dims().to_vec();
        let (rows, cols) = match dims[..] {
            [cols] => (1, cols),
            [rows, cols] => (rows, cols),
            _ => {
                return Err(KernelError::Shape {
                    name: name.clone(),
                    dims,
                })
            }
        };
        let mut matrix = RawMatrix {
            name,
            dtype: tensor.dtype(),
            rows,
            cols,
            data: tensor.data()?.into_owned(),
        };
        maps.apply(&mut matrix)?;
        let storage = QStorage::from_data(Cow::Owned(matrix.data), &Device::Cpu, matrix.dtype)?;
        tensors.push((name.clone(), QTensor::new(storage, dims)?));
    }

    let vocabulary = key.vocabulary();
    let stop_tokens = vocabulary.encrypt(tokenizer.stop_tokens())?;
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_else(|| "llama".into());
    // The vocabulary stays with the key holder; the size is restated without it.
    let vocab_size_key = format!("{architecture}.vocab_size");
    let mut metadata: Vec<(String, Value)> = content
        .metadata
        .iter()
        .filter(|(name, _)| !name.starts_with("tokenizer.") && **name != vocab_size_key)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    metadata.extend([
        (vocab_size_key, Value::U32(config.vocab_size as u32)),
        (
            keys::SCHEME.into(),
            Value::String(super::key::SCHEME.into()),
        ),
        (
            keys::TRANSFORM.into(),
            Value::String(key.transform.as_str().into()),
        ),
        (
            keys::STOP_TOKENS.into(),
            Value::Array(stop_tokens.into_iter().map(Value::U32).collect()),
        ),
        (
            keys::TOKENIZER_SHA256.into(),
            Value::String(hex::encode(tokenizer.sha256())),
        ),
    ]);
    metadata.sort_by(|a, b| a.0.cmp(&b.0));

    let partial = output.with_extension("gguf.partial");
    {
        let mut writer = BufWriter::new(File::create(&partial).map_err(io("create", &partial))?);
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut writer, &metadata, &tensors)?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .map_err(io("write", &partial))?;
    }
    std::fs::rename(&partial, output).map_err(io("write", output))?;
    let mut hasher = Sha256::new();
    let bytes = File::open(output)
        .and_then(|mut file| std::io::copy(&mut file, &mut hasher))
        .map_err(io("read back", output))?;
    let sha256: [u8; 32] = hasher.finalize().into();
    key.kernel_sha256 = Some(hex::encode(sha256));
    Ok(EncryptReport {
        tensors: tensors.len(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        sha256,
    })
}

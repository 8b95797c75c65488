//! What can go wrong encrypting a kernel or reading an encrypted kernel's marks.

use std::path::PathBuf;

use super::key::KeyError;
use super::tensor::TensorError;
use crate::tokenizer::TokenizerError;
use crate::EngineError;

/// Every way writing or reading an ee-v1 kernel can fail.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF file: {source}")]
    NotGguf {
        path: PathBuf,
        source: Box<candle_core::Error>,
    },
    #[error("{0} is already an encrypted kernel")]
    AlreadyEncrypted(PathBuf),
    #[error("reading the tokenizer of {path}: {source}")]
    Tokenizer {
        path: PathBuf,
        source: TokenizerError,
    },
    #[error("the key is for a vocabulary of {key} tokens but {path} has {kernel}")]
    VocabularyMismatch {
        key: u32,
        path: PathBuf,
        kernel: usize,
    },
    #[error("reading tensor {name}: {source}")]
    ReadTensor {
        name: String,
        source: Box<candle_core::Error>,
    },
    #[error("tensor {name}: unexpected shape {dims:?}")]
    Shape { name: String, dims: Vec<usize> },
    #[error("tensor {0}: not part of a llama block this version encrypts")]
    UnknownTensor(String),
    #[error(transparent)]
    Rearrange(#[from] TensorError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("unknown encryption scheme '{0}' in the model file")]
    UnknownScheme(String),
    #[error("encrypted kernel without {0}")]
    MissingMark(&'static str),
    #[error("{0} is not 32 bytes")]
    NotAHash(&'static str),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

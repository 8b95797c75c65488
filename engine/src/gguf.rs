//! Typed reads of GGUF metadata (`key → value`), shared by the tokenizer and the model
//! loader, so a missing or mistyped key reads the same everywhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
pub use candle_core::quantized::gguf_file::Value;

/// The metadata section of a GGUF file.
pub type Metadata = HashMap<String, Value>;

/// A metadata key that is missing or holds the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GGUF metadata key `{key}` is missing or has the wrong type: {reason}")]
pub struct MetadataError {
    pub key: String,
    pub reason: String,
}

impl MetadataError {
    /// `key` is wrong because of `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A GGUF file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error(
        "cannot open model file {path}: {source} (run scripts/fetch-model for the default model)"
    )]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path} is not a GGUF file: {source}")]
    NotGguf {
        path: PathBuf,
        // Boxed: candle's error is large and this one travels inside other crates' errors.
        source: Box<candle_core::Error>,
    },
}

/// Reads the header of the GGUF file at `path` (metadata and tensor index, not the weights).
pub fn read_content(path: &Path) -> Result<gguf_file::Content, GgufError> {
    let mut file = std::fs::File::open(path).map_err(|source| GgufError::Open {
        path: path.to_owned(),
        source,
    })?;
    gguf_file::Content::read(&mut file).map_err(|source| GgufError::NotGguf {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

fn lookup<'a>(metadata: &'a Metadata, key: &str) -> Result<&'a Value, MetadataError> {
    metadata
        .get(key)
        .ok_or_else(|| MetadataError::new(key, "not present"))
}

/// An unsigned integer value of any width (non-negative signed values too).
pub fn metadata_usize(metadata: &Metadata, key: &str) -> Result<usize, MetadataError> {
    let number = match lookup(metadata, key)? {
        Value::U8(v) => *v as u64,
        Value::U16(v) => *v as u64,
        Value::U32(v) => *v as u64,
        Value::U64(v) => *v,
        Value::I32(v) if *v >= 0 => *v as u64,
        Value::I64(v) if *v >= 0 => *v as u64,
        other => {
            return Err(MetadataError::new(
                key,
                format!(
                    "expected an unsigned integer, found {:?}",
                    other.value_type()
                ),
            ))
        }
    };
    usize::try_from(number).map_err(|_| MetadataError::new(key, format!("{number} is too large")))
}

/// A float value (f32, or f64 narrowed).
pub fn metadata_f32(metadata: &Metadata, key: &str) -> Result<f32, MetadataError> {
    match lookup(metadata, key)? {
        Value::F64(v) => Ok(*v as f32),
        other => other
            .to_f32()
            .map_err(|e| MetadataError::new(key, e.to_string())),
    }
}

/// A string value.
pub fn metadata_string<'a>(metadata: &'a Metadata, key: &str) -> Result<&'a str, MetadataError> {
    lookup(metadata, key)?
        .to_string()
        .map(String::as_str)
        .map_err(|e| MetadataError::new(key, e.to_string()))
}

/// An array value.
pub fn metadata_array<'a>(metadata: &'a Metadata, key: &str) -> Result<&'a [Value], MetadataError> {
    lookup(metadata, key)?
        .to_vec()
        .map(Vec::as_slice)
        .map_err(|e| MetadataError::new(key, e.to_string()))
}

/// An array of strings.
pub fn metadata_strings<'a>(
    metadata: &'a Metadata,
    key: &str,
) -> Result<Vec<&'a str>, MetadataError> {
    metadata_array(metadata, key)?
        .iter()
        .map(|v| v.to_string().map(String::as_str))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|e| MetadataError::new(key, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        [
            ("count".to_string(), Value::U32(30)),
            ("signed".to_string(), Value::I32(-1)),
            ("eps".to_string(), Value::F64(1e-5)),
            ("name".to_string(), Value::String("llama".into())),
            (
                "names".to_string(),
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
            ("mixed".to_string(), Value::Array(vec![Value::U8(1)])),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn values_are_read_with_their_types() {
        let metadata = metadata();
        assert_eq!(metadata_usize(&metadata, "count").unwrap(), 30);
        assert_eq!(metadata_f32(&metadata, "eps").unwrap(), 1e-5);
        assert_eq!(metadata_string(&metadata, "name").unwrap(), "llama");
        assert_eq!(metadata_strings(&metadata, "names").unwrap(), ["a", "b"]);
    }

    #[test]
    fn missing_keys_and_wrong_types_name_the_key() {
        let metadata = metadata();
        let missing = metadata_usize(&metadata, "absent").unwrap_err();
        assert_eq!(missing, MetadataError::new("absent", "not present"));
        assert_eq!(
            metadata_usize(&metadata, "signed").unwrap_err().key,
            "signed"
        );
        assert_eq!(
            metadata_string(&metadata, "count").unwrap_err().key,
            "count"
        );
        assert_eq!(
            metadata_strings(&metadata, "mixed").unwrap_err().key,
            "mixed"
        );
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let error = read_content(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(matches!(error, GgufError::Open { .. }));
        assert!(error.to_string().contains("/nonexistent/model.gguf"));
    }
}

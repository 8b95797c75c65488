//! Request parameters, from JSON-RPC objects or URI query strings. CometBFT's URI form quotes
//! strings (`path="/a"`) and writes bytes as `0x…` hex; JSON-RPC writes tx bytes as base64 and
//! query data as hex. Both are accepted wherever they can be told apart.

use base64::Engine;
use serde_json::{Map, Value};

use super::RpcError;

/// Named parameters of one call.
pub struct Params {
    values: Map<String, Value>,
    from_uri: bool,
}

impl Params {
    /// Parameters from a JSON-RPC `params` object.
    pub fn new(values: Map<String, Value>) -> Self {
        Params {
            values,
            from_uri: false,
        }
    }

    /// Parameters from a URI query string.
    pub fn from_uri(query: Vec<(String, String)>) -> Self {
        let values = query
            .into_iter()
            .map(|(key, value)| {
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_string);
                (key, Value::String(unquoted.unwrap_or(value)))
            })
            .collect();
        Params {
            values,
            from_uri: true,
        }
    }

    /// A string parameter.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.values.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// An optional non-negative integer given as a number or a decimal string.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.string(name) {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                RpcError::invalid_params(format!(
                    "`{name}` must be a non-negative integer, got `{text}`"
                ))
            }),
        }
    }

    /// An optional boolean.
    pub fn bool(&self, name: &str) -> Result<bool, RpcError> {
        match self.string(name).as_deref() {
            None | Some("") | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(RpcError::invalid_params(format!(
                "`{name}` must be true or false, got `{other}`"
            ))),
        }
    }

    /// Hex bytes (`abci_query` data); `0x` prefix optional.
    pub fn hex_bytes(&self, name: &str) -> Result<Vec<u8>, RpcError> {
        let text = self.string(name).unwrap_or_default();
        let text = text.strip_prefix("0x").unwrap_or(&text);
        hex::decode(text)
            .map_err(|e| RpcError::invalid_params(format!("`{name}` must be hex: {e}")))
    }

    /// Transaction bytes: base64 in JSON-RPC, `0x…` hex in URIs.
    pub fn tx_bytes(&self, name: &str) -> Result<Vec<u8>, RpcError> {
        let text = self
            .string(name)
            .ok_or_else(|| RpcError::invalid_params(format!("missing `{name}`")))?;
        if let Some(hex_text) = text.strip_prefix("0x") {
            return hex::decode(hex_text)
                .map_err(|e| RpcError::invalid_params(format!("`{name}` is not hex: {e}")));
        }
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| {
                RpcError::invalid_params(format!(
                    "`{name}` must be base64 (or 0x-prefixed hex): {e}"
                ))
            })
    }

    /// A 32-byte hash: base64 in JSON-RPC, hex (with or without `0x`) in URIs.
    pub fn hash(&self, name: &str) -> Result<[u8; 32], RpcError> {
        let text = self
            .string(name)
            .ok_or_else(|| RpcError::invalid_params(format!("missing `{name}`")))?;
        let stripped = text.strip_prefix("0x").unwrap_or(&text);
        let decoded = if self.from_uri
            || text.starts_with("0x")
            || (stripped.len() == 64 && hex::decode(stripped).is_ok())
        {
            hex::decode(stripped).ok()
        } else {
            base64::engine::general_purpose::STANDARD.decode(&text).ok()
        };
        decoded
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "`{name}` must be a 32-byte hash (hex or base64), got `{text}`"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parameters_are_unquoted() {
        let params = Params::from_uri(vec![
            ("path".into(), "\"/a/b\"".into()),
            ("height".into(), "5".into()),
        ]);
        assert_eq!(params.string("path").as_deref(), Some("/a/b"));
        assert_eq!(params.u64("height").unwrap(), Some(5));
    }

    #[test]
    fn hashes_are_read_from_hex_and_base64() {
        let hex_hash = "AB".repeat(32);
        let from_hex = Params::from_uri(vec![("hash".into(), format!("0x{hex_hash}"))])
            .hash("hash")
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xAB; 32]);
        let mut map = Map::new();
        map.insert("hash".into(), Value::String(b64));
        assert_eq!(Params::new(map).hash("hash").unwrap(), from_hex);
    }

    #[test]
    fn a_non_numeric_height_is_an_invalid_param() {
        let params = Params::from_uri(vec![("height".into(), "abc".into())]);
        assert!(params.u64("height").is_err());
    }
}

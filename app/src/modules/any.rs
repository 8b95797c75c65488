//! Reading messages out of a protobuf `Any`: the decoding and address rules every module's
//! messages share; each module wraps the failure in its own error.

use cosmrs::proto::Any;
use nesa_types::Address;
use prost::Message;

/// Decodes the message in `any`; the error names the type URL.
pub fn decode<T: Message + Default>(any: &Any) -> Result<T, String> {
    T::decode(any.value.as_slice()).map_err(|e| format!("{}: {e}", any.type_url))
}

/// Parses the address in message field `field`; the error names the field.
pub fn address(text: &str, field: &str) -> Result<Address, String> {
    text.parse().map_err(|e| format!("{field}: {e}"))
}

/// Parses an optional address field (empty means none).
pub fn optional_address(text: &str, field: &str) -> Result<Option<Address>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        address(text, field).map(Some)
    }
}

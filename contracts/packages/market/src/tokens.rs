//! Token-id payloads: inputs and outputs travel on chain as token ids (permuted under
//! `ee-v1` encryption), never as text. Each id is a `u32`, little-endian, concatenated.

use thiserror::Error;

/// Bytes per token id.
pub const TOKEN_ID_BYTES: usize = 4;

/// A payload that is not a whole number of token ids.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
pub enum TokenIdsError {
    #[error("token-id payload of {len} bytes is not a multiple of {TOKEN_ID_BYTES}: encode each id as a little-endian u32")]
    Misaligned { len: usize },
}

/// Encodes token ids as little-endian `u32`s.
pub fn encode_token_ids(ids: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * TOKEN_ID_BYTES);
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// Decodes a payload made by [`encode_token_ids`].
pub fn decode_token_ids(bytes: &[u8]) -> Result<Vec<u32>, TokenIdsError> {
    token_count(bytes)?;
    Ok(bytes
        .chunks_exact(TOKEN_ID_BYTES)
        .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect())
}

/// How many token ids a payload holds, without decoding them (what the market bills).
pub fn token_count(bytes: &[u8]) -> Result<u32, TokenIdsError> {
    if !bytes.len().is_multiple_of(TOKEN_ID_BYTES) {
        return Err(TokenIdsError::Misaligned { len: bytes.len() });
    }
    u32::try_from(bytes.len() / TOKEN_ID_BYTES)
        .map_err(|_| TokenIdsError::Misaligned { len: bytes.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_round_trip_as_little_endian_u32() {
        let ids = [1, 4093, 198, 49_151, u32::MAX];
        let bytes = encode_token_ids(&ids);
        assert_eq!(&bytes[..8], &[1, 0, 0, 0, 0xfd, 0x0f, 0, 0]);
        assert_eq!(decode_token_ids(&bytes).unwrap(), ids);
        assert_eq!(token_count(&bytes).unwrap(), 5);
    }

    #[test]
    fn a_payload_that_is_not_whole_ids_is_rejected() {
        assert_eq!(
            decode_token_ids(&[1, 2, 3]),
            Err(TokenIdsError::Misaligned { len: 3 })
        );
        assert_eq!(token_count(&[]).unwrap(), 0);
    }
}

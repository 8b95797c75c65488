//! Commit–reveal: what a node commits to and how the market checks the reveal.
//!
//! The commitment binds the node's own address, so a node that copies another node's
//! commitment (or, after reveals open, its output) cannot produce a reveal that matches its
//! own commitment: free riding is detectable and slashable.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash32 = [u8; 32];

/// Fewest salt bytes a reveal may carry: a short salt would let anyone brute-force a
/// low-entropy output from its commitment before reveals open.
pub const MIN_SALT_BYTES: usize = 16;
/// Most salt bytes a reveal may carry.
pub const MAX_SALT_BYTES: usize = 64;

/// `sha256(output)`: the hash results are grouped by. `output` is the token-id payload
/// exactly as revealed (see [`crate::tokens`]).
pub fn output_hash(output: &[u8]) -> Hash32 {
    Sha256::digest(output).into()
}

/// The commitment a node posts before reveals open.
///
/// Byte layout of the SHA-256 pre-image (no separators, no length prefixes):
///
/// | bytes | field |
/// |---|---|
/// | `node.len()` | the node's account address as its bech32 string, UTF-8 (`nesa1…`) |
/// | 8 | `query_id`, unsigned 64-bit **big-endian** |
/// | 32 | `output_hash` = [`output_hash`]`(output)` |
/// | `salt.len()` | the salt (16 to 64 random bytes, [`MIN_SALT_BYTES`]..=[`MAX_SALT_BYTES`]) |
///
/// The address is the only variable-length field before the fixed-size ones, and bech32
/// addresses never end in a digit sequence that could be confused with a query id because the
/// query id always occupies exactly the 8 bytes after it; the salt is last.
pub fn commitment(node: &str, query_id: u64, output_hash: &Hash32, salt: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(query_id.to_be_bytes());
    hasher.update(output_hash);
    hasher.update(salt);
    hasher.finalize().into()
}

/// Lower-case hex of a digest (how hashes appear in messages and events).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_hashes_the_documented_byte_layout() {
        let hash = output_hash(&[1, 0, 0, 0]);
        let salt = [7u8; 16];
        let mut preimage = b"nesa1node".to_vec();
        preimage.extend_from_slice(&42u64.to_be_bytes());
        preimage.extend_from_slice(&hash);
        preimage.extend_from_slice(&salt);
        let expected: Hash32 = Sha256::digest(&preimage).into();
        assert_eq!(commitment("nesa1node", 42, &hash, &salt), expected);
    }

    #[test]
    fn commitment_binds_the_node_the_query_the_output_and_the_salt() {
        let hash = output_hash(b"out");
        let base = commitment("nesa1a", 1, &hash, b"salt-salt-salt-1");
        assert_ne!(base, commitment("nesa1b", 1, &hash, b"salt-salt-salt-1"));
        assert_ne!(base, commitment("nesa1a", 2, &hash, b"salt-salt-salt-1"));
        assert_ne!(base, commitment("nesa1a", 1, &output_hash(b"other"), b"salt-salt-salt-1"));
        assert_ne!(base, commitment("nesa1a", 1, &hash, b"salt-salt-salt-2"));
    }

    #[test]
    fn output_hash_is_plain_sha256() {
        assert_eq!(
            to_hex(&output_hash(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

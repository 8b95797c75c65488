//! Commit–reveal: what a node commits to and how the market checks the reveal.
//!
//! A node commits to its whole result, the output *and* the logit fingerprint
//! ([`result_hash`]), bound to its own address ([`commitment`]). So a node that copies another
//! node's commitment, or after reveals open copies another node's output or fingerprint,
//! cannot produce a reveal that matches its own commitment: free riding is detectable and
//! slashable. Binding the fingerprint matters when there is no majority output: settlement
//! then compares fingerprints, and a node that never ran the model must not be able to borrow
//! an already-revealed one.

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

/// `sha256(sha256(output) ‖ sha256(fingerprint))`: the hash of a whole result, what a node
/// commits to.
///
/// Byte layout of the SHA-256 pre-image (64 bytes, no separators, no length prefixes):
///
/// | bytes | field |
/// |---|---|
/// | 32 | [`output_hash`]`(output)`: SHA-256 of the token-id payload exactly as revealed |
/// | 32 | SHA-256 of the encoded fingerprint exactly as revealed ([`crate::Fingerprint::encode`]) |
///
/// Hashing each part first keeps the pre-image unambiguous (no length prefix is needed to
/// tell where the output ends) and lets the output hash, by which results are grouped, be
/// reused.
pub fn result_hash(output: &[u8], fingerprint: &[u8]) -> Hash32 {
    let fingerprint_hash: Hash32 = Sha256::digest(fingerprint).into();
    let mut hasher = Sha256::new();
    hasher.update(output_hash(output));
    hasher.update(fingerprint_hash);
    hasher.finalize().into()
}

/// What a shard of a pipeline commits to: `sha256(sha256(output) ‖ sha256(fingerprint) ‖
/// sha256(activations))`, where `activations` is its encoded
/// [`crate::ActivationRecord`]. The pipeline's driver (shard 0, which runs the head) reveals
/// the output and the fingerprint; every other shard reveals both empty, since it never sees
/// tokens.
pub fn shard_result_hash(output: &[u8], fingerprint: &[u8], activations: &[u8]) -> Hash32 {
    let fingerprint_hash: Hash32 = Sha256::digest(fingerprint).into();
    let activations_hash: Hash32 = Sha256::digest(activations).into();
    let mut hasher = Sha256::new();
    hasher.update(output_hash(output));
    hasher.update(fingerprint_hash);
    hasher.update(activations_hash);
    hasher.finalize().into()
}

/// The commitment a node posts before reveals open.
///
/// Byte layout of the SHA-256 pre-image (no separators, no length prefixes):
///
/// | bytes | field |
/// |---|---|
/// | `node.len()` | the node's account address as its bech32 string, UTF-8 (`nesa1…`) |
/// | 8 | `query_id`, unsigned 64-bit **big-endian** |
/// | 32 | `result_hash` = [`result_hash`]`(output, fingerprint)` |
/// | `salt.len()` | the salt (16 to 64 random bytes, [`MIN_SALT_BYTES`]..=[`MAX_SALT_BYTES`]) |
///
/// The market recomputes the pre-image from the revealing sender's own address, the query id
/// and the revealed output, fingerprint and salt, so a reveal matches only the commitment of
/// the node that made it, and only with the output and fingerprint it committed to.
pub fn commitment(node: &str, query_id: u64, result_hash: &Hash32, salt: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(query_id.to_be_bytes());
    hasher.update(result_hash);
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
    fn result_hash_hashes_the_documented_byte_layout() {
        let (output, fingerprint) = ([1u8, 0, 0, 0], [1u8, 2, 3]);
        let mut preimage = Sha256::digest(output).to_vec();
        preimage.extend_from_slice(&Sha256::digest(fingerprint));
        assert_eq!(preimage.len(), 64);
        let expected: Hash32 = Sha256::digest(&preimage).into();
        assert_eq!(result_hash(&output, &fingerprint), expected);
    }

    #[test]
    fn result_hash_binds_the_output_and_the_fingerprint() {
        let base = result_hash(b"output", b"fingerprint");
        assert_ne!(base, result_hash(b"other", b"fingerprint"));
        assert_ne!(base, result_hash(b"output", b"other"));
        // No ambiguity where the output ends and the fingerprint begins.
        assert_ne!(base, result_hash(b"outputf", b"ingerprint"));
        assert_ne!(base, output_hash(b"output"));
    }

    #[test]
    fn commitment_hashes_the_documented_byte_layout() {
        let hash = result_hash(&[1, 0, 0, 0], &[1]);
        let salt = [7u8; 16];
        let mut preimage = b"nesa1node".to_vec();
        preimage.extend_from_slice(&42u64.to_be_bytes());
        preimage.extend_from_slice(&hash);
        preimage.extend_from_slice(&salt);
        let expected: Hash32 = Sha256::digest(&preimage).into();
        assert_eq!(commitment("nesa1node", 42, &hash, &salt), expected);
    }

    #[test]
    fn commitment_binds_the_node_the_query_the_result_and_the_salt() {
        let hash = result_hash(b"out", b"fp");
        let base = commitment("nesa1a", 1, &hash, b"salt-salt-salt-1");
        assert_ne!(base, commitment("nesa1b", 1, &hash, b"salt-salt-salt-1"));
        assert_ne!(base, commitment("nesa1a", 2, &hash, b"salt-salt-salt-1"));
        assert_ne!(
            base,
            commitment(
                "nesa1a",
                1,
                &result_hash(b"other", b"fp"),
                b"salt-salt-salt-1"
            )
        );
        assert_ne!(
            base,
            commitment(
                "nesa1a",
                1,
                &result_hash(b"out", b"fq"),
                b"salt-salt-salt-1"
            )
        );
        assert_ne!(base, commitment("nesa1a", 1, &hash, b"salt-salt-salt-2"));
    }

    #[test]
    fn a_shard_result_binds_its_activations_and_differs_from_a_whole_result() {
        let base = shard_result_hash(b"out", b"fp", b"acts");
        assert_ne!(base, shard_result_hash(b"out", b"fp", b"other"));
        assert_ne!(base, shard_result_hash(b"out", b"fq", b"acts"));
        assert_ne!(base, result_hash(b"out", b"fp"));
        let mut preimage = Sha256::digest(b"").to_vec();
        preimage.extend_from_slice(&Sha256::digest(b""));
        preimage.extend_from_slice(&Sha256::digest(b"acts"));
        let expected: Hash32 = Sha256::digest(&preimage).into();
        assert_eq!(shard_result_hash(b"", b"", b"acts"), expected);
    }

    #[test]
    fn output_hash_is_plain_sha256() {
        assert_eq!(
            to_hex(&output_hash(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

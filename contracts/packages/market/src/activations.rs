//! Per-shard activation commitments. A shard of a pipeline hashes the hidden state it
//! produced at every position and commits to the Merkle root over positions, so when the
//! pipelines of a query disagree, the first shard whose outputs diverge from its inputs can be
//! found and blamed alone.
//!
//! A leaf is `sha256(0x00 ‖ position as u32 big-endian ‖ row)`, where `row` is the position's
//! hidden state as little-endian f32 bytes (the exact values sent to the next shard); an inner
//! node is `sha256(0x01 ‖ left ‖ right)`; an odd node is carried up unchanged (RFC 6962's
//! domain separation, so a leaf can never pass for an inner node). The root of no positions
//! is `sha256("")`.

use sha2::{Digest, Sha256};

use crate::Hash32;

const LEAF: u8 = 0;
const INNER: u8 = 1;

/// The leaf of one position's output row (little-endian f32 bytes).
pub fn activation_leaf(position: u32, row: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update([LEAF]);
    hasher.update(position.to_be_bytes());
    hasher.update(row);
    hasher.finalize().into()
}

/// The Merkle root over leaves in position order.
pub fn activations_root(leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return Sha256::digest([]).into();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut hasher = Sha256::new();
                    hasher.update([INNER]);
                    hasher.update(left);
                    hasher.update(right);
                    hasher.finalize().into()
                }
                [odd] => *odd,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_position_is_its_own_root() {
        let leaf = activation_leaf(0, &[1, 2, 3, 4]);
        assert_eq!(activations_root(&[leaf]), leaf);
    }

    #[test]
    fn the_root_binds_every_row_and_its_position() {
        let rows: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 8]).collect();
        let leaves: Vec<Hash32> = rows
            .iter()
            .enumerate()
            .map(|(p, row)| activation_leaf(p as u32, row))
            .collect();
        let root = activations_root(&leaves);
        for changed in 0..rows.len() {
            let mut tampered = leaves.clone();
            let mut row = rows[changed].clone();
            row[3] ^= 1;
            tampered[changed] = activation_leaf(changed as u32, &row);
            assert_ne!(activations_root(&tampered), root, "row {changed}");
        }
        // The same row at another position is another leaf.
        assert_ne!(activation_leaf(1, &rows[0]), activation_leaf(0, &rows[0]));
        // Reordering positions changes the root.
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        assert_ne!(activations_root(&swapped), root);
    }

    #[test]
    fn a_leaf_cannot_pass_for_an_inner_node() {
        let (a, b) = (activation_leaf(0, &[7]), activation_leaf(1, &[8]));
        let root = activations_root(&[a, b]);
        let mut forged = Vec::from([INNER]);
        forged.extend_from_slice(&a);
        forged.extend_from_slice(&b);
        // Hashed as a leaf, the inner node's preimage gives another value.
        let as_leaf: Hash32 = Sha256::digest([&[LEAF][..], &forged[1..]].concat()).into();
        assert_ne!(as_leaf, root);
        assert_eq!(activations_root(&[]), Hash32::from(Sha256::digest([])));
    }
}

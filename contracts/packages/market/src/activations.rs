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
//!
//! On chain a shard reveals a [`SeatRecord`]: an [`ActivationRecord`] of its outputs (the root
//! over the prompt's positions and the leaf of every decode position after it) and, past the
//! first span, the digest of the same record over the inputs it was sent. Pipelines that drew
//! the same tokens up to some position must agree on every shard's outputs up to it, and in a
//! pipeline each shard's inputs are the previous shard's outputs, so [`first_divergent_shard`]
//! can name the one shard that turned identical inputs into different outputs, or the driver
//! when it relayed to a shard something the previous one did not send.

use sha2::{Digest, Sha256};
use thiserror::Error;

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

/// What a shard of a pipeline reveals for a query: the root over the prompt's positions
/// (`0..input_tokens`) and then one leaf per decode position, in order.
///
/// Encoded as `prompt_root ‖ leaf_P ‖ leaf_P+1 ‖ …`, 32 bytes each. A pipeline that generated
/// `T` tokens fed back `T − 1` of them (or all `T` when it stopped at a stop token before the
/// limit), so its shards reveal that many decode leaves ([`decode_leaves_allowed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationRecord {
    pub prompt_root: Hash32,
    pub decode_leaves: Vec<Hash32>,
}

/// A revealed record that does not decode.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
pub enum ActivationRecordError {
    #[error("an activation record is a 32-byte prompt root and 32 bytes per decode position; {len} bytes is not")]
    Malformed { len: usize },
}

impl ActivationRecord {
    /// The record of a shard whose output leaves, in position order from 0, are `leaves`, for
    /// a prompt of `prompt_len` positions.
    pub fn from_leaves(leaves: &[Hash32], prompt_len: usize) -> Self {
        let prompt_len = prompt_len.min(leaves.len());
        Self {
            prompt_root: activations_root(&leaves[..prompt_len]),
            decode_leaves: leaves[prompt_len..].to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 * (1 + self.decode_leaves.len()));
        out.extend_from_slice(&self.prompt_root);
        for leaf in &self.decode_leaves {
            out.extend_from_slice(leaf);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ActivationRecordError> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(32) {
            return Err(ActivationRecordError::Malformed { len: bytes.len() });
        }
        let mut hashes = bytes
            .chunks_exact(32)
            .map(|chunk| <Hash32>::try_from(chunk).expect("32-byte chunks"));
        let prompt_root = hashes.next().expect("non-empty");
        Ok(Self {
            prompt_root,
            decode_leaves: hashes.collect(),
        })
    }

    /// `sha256` of the encoded record: what the next shard of a pipeline commits to as its
    /// inputs.
    pub fn digest(&self) -> Hash32 {
        Sha256::digest(self.encode()).into()
    }

    /// Whether both records hold the same rows on the prompt and the first `decode`
    /// positions after it (both must have that many).
    pub fn agrees_on(&self, other: &Self, decode: usize) -> bool {
        self.prompt_root == other.prompt_root
            && self.decode_leaves.len() >= decode
            && other.decode_leaves.len() >= decode
            && self.decode_leaves[..decode] == other.decode_leaves[..decode]
    }
}

/// What one seat of a pipeline reveals: the record of its outputs and, for every span after
/// the first, the [`ActivationRecord::digest`] of the record of its inputs (the rows the driver
/// relayed to it, hashed as leaves at their positions exactly as outputs are).
///
/// Encoded as the output record followed by the 32-byte input digest when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatRecord {
    pub outputs: ActivationRecord,
    pub input_digest: Option<Hash32>,
}

impl SeatRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.outputs.encode();
        if let Some(digest) = &self.input_digest {
            out.extend_from_slice(digest);
        }
        out
    }

    /// Decodes the record of a seat that was sent inputs (`relayed`, every span after the
    /// first) or not.
    pub fn decode(bytes: &[u8], relayed: bool) -> Result<Self, ActivationRecordError> {
        if !relayed {
            return Ok(Self {
                outputs: ActivationRecord::decode(bytes)?,
                input_digest: None,
            });
        }
        let malformed = ActivationRecordError::Malformed { len: bytes.len() };
        let split = bytes.len().checked_sub(32).ok_or(malformed.clone())?;
        let (outputs, digest) = bytes.split_at(split);
        Ok(Self {
            outputs: ActivationRecord::decode(outputs).map_err(|_| malformed)?,
            input_digest: Some(digest.try_into().expect("32 bytes")),
        })
    }
}

/// Whether a shard of a pipeline that generated `output_tokens` (at most `max_output_tokens`)
/// may reveal `leaves` decode leaves: every generated token is fed back except the last one,
/// unless generation ended at a stop token before the limit (that token is not part of the
/// output, so every output token was fed back).
pub fn decode_leaves_allowed(leaves: usize, output_tokens: u32, max_output_tokens: u32) -> bool {
    let tokens = output_tokens as usize;
    leaves == tokens.saturating_sub(1) || (leaves == tokens && output_tokens < max_output_tokens)
}

/// Who turned a pipeline's output away from the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The shard at this index of the pipeline: its inputs matched the reference's up to the
    /// first differing token, its outputs did not (or it has no record to show).
    Shard(usize),
    /// The shard at this index says it was sent other rows than the previous shard made:
    /// either the driver (which relays every hop's rows) sent it something else, or the shard
    /// misstates its inputs. The chain cannot tell which, so neither may be blamed for it.
    Relay(usize),
    /// Every shard matched up to the first differing token: the step after the last block
    /// (the head and the sampler, run by the pipeline's driver) chose another token.
    Head,
}

/// The first shard of a pipeline whose activations diverge from a reference pipeline's on
/// the positions whose input tokens both pipelines share.
///
/// Both pipelines ran the same prompt; their outputs agree on the first `t` tokens, so every
/// position before `prompt + t` had the same input token, and an honest shard fed the same
/// rows produces the same rows (the engine is bit-exact across batch shapes). Shard 0's
/// inputs are the tokens themselves; shard `s`'s are shard `s − 1`'s outputs, which it
/// commits to as its input digest, so a shard whose inputs were not what the previous one
/// sent ends the search ([`Divergence::Relay`]). Otherwise the first shard whose outputs
/// differ on those positions received identical inputs and answered differently.
/// `records[s]` is `None` when shard `s` revealed no valid record: it cannot show it was
/// right, so it is the divergent one if the search reaches it; so is a record too short to
/// cover the shared positions (the market checks every record's length against its
/// pipeline's output first, so honest records always cover them). Token `t` itself was chosen
/// from the logits of position `prompt + t − 1`, so when every shard agrees there, the head or
/// the sampler diverged.
pub fn first_divergent_shard(
    records: &[Option<SeatRecord>],
    reference: &[SeatRecord],
    output: &[u32],
    reference_output: &[u32],
) -> Divergence {
    let shared = output
        .iter()
        .zip(reference_output)
        .take_while(|(a, b)| a == b)
        .count();
    let mut previous: Option<&ActivationRecord> = None;
    for (index, record) in records.iter().enumerate() {
        let Some(record) = record else {
            return Divergence::Shard(index);
        };
        if let Some(previous) = previous {
            if record.input_digest != Some(previous.digest()) {
                return Divergence::Relay(index);
            }
        }
        let Some(expected) = reference.get(index) else {
            return Divergence::Shard(index);
        };
        if !record.outputs.agrees_on(&expected.outputs, shared) {
            return Divergence::Shard(index);
        }
        previous = Some(&record.outputs);
    }
    Divergence::Head
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

    fn outputs(prompt: u8, decode: &[u8]) -> ActivationRecord {
        ActivationRecord {
            prompt_root: [prompt; 32],
            decode_leaves: decode.iter().map(|&b| [b; 32]).collect(),
        }
    }

    /// A pipeline's seat records for these outputs per span, each span's inputs being the
    /// previous span's outputs.
    fn pipeline(spans: &[(u8, &[u8])]) -> Vec<SeatRecord> {
        let mut records: Vec<SeatRecord> = Vec::new();
        for &(prompt, decode) in spans {
            let input_digest = records.last().map(|r| r.outputs.digest());
            records.push(SeatRecord {
                outputs: outputs(prompt, decode),
                input_digest,
            });
        }
        records
    }

    fn some(records: Vec<SeatRecord>) -> Vec<Option<SeatRecord>> {
        records.into_iter().map(Some).collect()
    }

    #[test]
    fn seat_records_round_trip_with_and_without_an_input_digest() {
        let first = SeatRecord {
            outputs: outputs(1, &[2, 3]),
            input_digest: None,
        };
        assert_eq!(SeatRecord::decode(&first.encode(), false).unwrap(), first);
        let next = SeatRecord {
            outputs: outputs(4, &[5]),
            input_digest: Some(first.outputs.digest()),
        };
        let bytes = next.encode();
        assert_eq!(bytes.len(), 32 * 3);
        assert_eq!(SeatRecord::decode(&bytes, true).unwrap(), next);
        // A relayed seat's record needs its prompt root and its digest at least.
        for len in [0, 32, 63] {
            assert!(SeatRecord::decode(&vec![0; len], true).is_err(), "{len}");
        }
    }

    #[test]
    fn records_round_trip_and_reject_torn_bytes() {
        let leaves: Vec<Hash32> = (0..5u8).map(|i| activation_leaf(i as u32, &[i])).collect();
        let record = ActivationRecord::from_leaves(&leaves, 3);
        assert_eq!(record.prompt_root, activations_root(&leaves[..3]));
        assert_eq!(record.decode_leaves, leaves[3..].to_vec());
        let bytes = record.encode();
        assert_eq!(bytes.len(), 32 * 3);
        assert_eq!(ActivationRecord::decode(&bytes).unwrap(), record);
        for len in [0, 31, 33, 65] {
            assert_eq!(
                ActivationRecord::decode(&vec![0; len]),
                Err(ActivationRecordError::Malformed { len })
            );
        }
    }

    #[test]
    fn the_leaf_count_follows_how_generation_ended() {
        // 8 tokens at the limit of 8: the last was never fed back.
        assert!(decode_leaves_allowed(7, 8, 8));
        assert!(!decode_leaves_allowed(8, 8, 8));
        // 5 tokens then a stop token: all five were fed back (or the limit was 6 and hit).
        assert!(decode_leaves_allowed(5, 5, 8));
        assert!(decode_leaves_allowed(4, 5, 8));
        assert!(!decode_leaves_allowed(3, 5, 8));
        // The first token was a stop token.
        assert!(decode_leaves_allowed(0, 0, 8));
        assert!(!decode_leaves_allowed(1, 0, 8));
    }

    #[test]
    fn the_first_shard_to_turn_equal_inputs_into_other_outputs_is_blamed() {
        let reference = pipeline(&[(1, &[10, 11, 12, 13]), (2, &[20, 21, 22, 23])]);
        let tokens = [5, 6, 7, 8, 9];
        // Shard 1 lied at decode position 2: shard 0 agrees up to the first differing token
        // (index 3), shard 1 does not.
        let liar = some(pipeline(&[(1, &[10, 11, 12, 99]), (2, &[20, 21, 66, 77])]));
        let diverged = [5, 6, 7, 1, 2];
        assert_eq!(
            first_divergent_shard(&liar, &reference, &diverged, &tokens),
            Divergence::Shard(1)
        );
        // Shard 0 lied in the prompt: everything after differs, shard 0 is blamed.
        let early = some(pipeline(&[(9, &[10, 11, 12, 13]), (8, &[20, 21, 22, 23])]));
        assert_eq!(
            first_divergent_shard(&early, &reference, &[4], &tokens),
            Divergence::Shard(0)
        );
        // Every shard agrees where the inputs agree: the head chose another token.
        let head = some(pipeline(&[(1, &[10, 11, 42]), (2, &[20, 21, 43])]));
        assert_eq!(
            first_divergent_shard(&head, &reference, &[5, 6, 1], &tokens),
            Divergence::Head
        );
        // A shard with no record to show is blamed when the search reaches it.
        let mut silent = some(pipeline(&[(1, &[10, 11, 12]), (2, &[20, 21, 22])]));
        silent[1] = None;
        assert_eq!(
            first_divergent_shard(&silent, &reference, &[5, 6, 7, 1], &tokens),
            Divergence::Shard(1)
        );
    }

    #[test]
    fn a_shard_sent_other_rows_than_the_previous_one_made_ends_the_search() {
        let reference = pipeline(&[(1, &[10, 11]), (2, &[20, 21]), (3, &[30, 31])]);
        let tokens = [5, 6, 7];
        // Shard 1 computed honestly on what it was sent, but that was not shard 0's output:
        // its outputs differ from the reference, and so do its inputs from shard 0's outputs.
        let mut relayed = pipeline(&[(1, &[10, 11]), (7, &[70, 71]), (8, &[80, 81])]);
        relayed[1].input_digest = Some(outputs(6, &[60, 61]).digest());
        assert_eq!(
            first_divergent_shard(&some(relayed.clone()), &reference, &[1, 2, 3], &tokens),
            Divergence::Relay(1)
        );
        // The same outputs with inputs that do chain to shard 0's: shard 1 is the liar.
        let chained = pipeline(&[(1, &[10, 11]), (7, &[70, 71]), (8, &[80, 81])]);
        assert_eq!(
            first_divergent_shard(&some(chained), &reference, &[1, 2, 3], &tokens),
            Divergence::Shard(1)
        );
        // A last shard that claims no inputs at all ends it too.
        let mut tail = pipeline(&[(1, &[10, 11]), (2, &[20, 21]), (3, &[30, 31])]);
        tail[2].input_digest = None;
        assert_eq!(
            first_divergent_shard(&some(tail), &reference, &[5, 6, 9], &tokens),
            Divergence::Relay(2)
        );
    }
}

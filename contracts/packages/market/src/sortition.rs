//! Who serves a query: stake-weighted sortition from verifiable random tickets.
//!
//! Every query has `k` seats, held by `k` distinct nodes (their results are checked against
//! each other). Each node that wants to serve a query signs the query's [`draw_input`] with its
//! BLS12-381 sortition key (min-pk: 48-byte G1 public key, 96-byte G2 signature, the IETF
//! ciphersuite [`TICKET_DST`]). BLS signatures are unique — a key has exactly one valid
//! signature per message — so the signature is a verifiable random function: the node cannot
//! grind it, and nobody without the key can predict it. A ticket's [`ticket_output`] gives the
//! node an *arrival time* `-ln(u) / weight` (an exponential race whose rate is its bonded
//! stake), and the `k` earliest arrivals among the tickets entered in the draw window hold the
//! seats: the same distribution as drawing nodes one at a time with probability proportional
//! to stake among those not drawn yet.
//!
//! Splitting stake across identities does not buy more than stake share: `m` identities
//! holding `A` between them arrive at total rate `A` for every seat, exactly as a draw with
//! replacement would give the stake `A` (the most an attacker's share can give), while each
//! honest node drawn leaves the race; so each seat is the attacker's with probability at most
//! `A / (A + H − (k − 1)·h_max)`, `H` the honest stake and `h_max` the largest honest node.
//! Withholding a ticket only removes the withholder from the draw.
//!
//! The draw input binds the chain, the market contract, the query id and the height and BFT
//! time of the block that accepted the query; the key and the weight a ticket uses must predate
//! that block (`ticket_since` in staking), so neither can be chosen after the input is known.
//!
//! [`seat_holders`] is the rule the contract applies and a node runner can evaluate locally.
//! The minimum stake prices every identity that enters.

use cosmwasm_std::{Api, HashFunction, StdResult, Uint128, Uint256, BLS12_381_G1_GENERATOR};
use sha2::{Digest, Sha256};

use crate::Hash32;

/// The IETF BLS signature ciphersuite for min-pk signatures (RFC 9380 hash to G2 with SHA-256),
/// so that any BLS library can produce tickets.
pub const TICKET_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_";
/// A compressed G1 point: a sortition public key.
pub const PUBLIC_KEY_BYTES: usize = 48;
/// A compressed G2 point: a ticket or a proof of possession.
pub const SIGNATURE_BYTES: usize = 96;
/// The compressed encoding of the G1 identity: a public key for which every signature
/// (the G2 identity) verifies. Never accepted.
pub const IDENTITY_PUBLIC_KEY: [u8; PUBLIC_KEY_BYTES] = {
    let mut bytes = [0u8; PUBLIC_KEY_BYTES];
    bytes[0] = 0xc0;
    bytes
};

const DRAW_DOMAIN: &[u8] = b"nesa/sortition-draw/v1";
const TICKET_DOMAIN: &[u8] = b"nesa/sortition-ticket/v1";
const POSSESSION_DOMAIN: &[u8] = b"nesa/sortition-key/v1";
const OUTPUT_DOMAIN: &[u8] = b"nesa/sortition-output/v1";
const SEAT_DOMAIN: &[u8] = b"nesa/sortition-arrival/v1";

/// Fractional bits of an arrival time.
const TIME_FRACTION_BITS: u32 = 32;

fn length_prefixed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u32).to_be_bytes());
    hasher.update(bytes);
}

/// `sha256(domain ‖ chain_id ‖ market ‖ query_id BE ‖ height BE ‖ time_nanos BE)`, strings
/// length-prefixed: what every ticket for the query signs.
pub fn draw_input(
    chain_id: &str,
    market: &str,
    query_id: u64,
    height: u64,
    time_nanos: u64,
) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(DRAW_DOMAIN);
    length_prefixed(&mut hasher, chain_id.as_bytes());
    length_prefixed(&mut hasher, market.as_bytes());
    hasher.update(query_id.to_be_bytes());
    hasher.update(height.to_be_bytes());
    hasher.update(time_nanos.to_be_bytes());
    hasher.finalize().into()
}

/// The message a ticket signs.
pub fn ticket_message(draw_input: &Hash32) -> Vec<u8> {
    [TICKET_DOMAIN, draw_input.as_slice()].concat()
}

/// The message a proof of possession signs: the key bound to the node that registers it, so a
/// key (and its tickets) cannot be claimed by another address.
pub fn possession_message(node: &str, public_key: &[u8]) -> Vec<u8> {
    let mut message = POSSESSION_DOMAIN.to_vec();
    message.extend_from_slice(&(node.len() as u32).to_be_bytes());
    message.extend_from_slice(node.as_bytes());
    message.extend_from_slice(public_key);
    message
}

/// Whether `signature` is the BLS signature (min-pk, [`TICKET_DST`]) of `message` under
/// `public_key`, checked with the chain's BLS12-381 host functions. Malformed points (wrong
/// length, not on the curve, outside the prime-order subgroup) fail the check.
pub fn verify(
    api: &dyn Api,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> StdResult<bool> {
    let hashed = api.bls12_381_hash_to_g2(HashFunction::Sha256, message, TICKET_DST)?;
    Ok(api
        .bls12_381_pairing_equality(&BLS12_381_G1_GENERATOR, signature, public_key, &hashed)
        .unwrap_or(false))
}

/// The randomness a verified ticket carries.
pub fn ticket_output(signature: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(OUTPUT_DOMAIN);
    hasher.update(signature);
    hasher.finalize().into()
}

/// A node's arrival time at unit weight: `-log2(u)` in 32.32 fixed point, where
/// `u = (x + 1) / 2^64` and `x` is the first 8 bytes of `sha256(domain ‖ output)`.
/// Exponentially distributed up to the constant factor `ln 2`, which is the same for every node
/// and so does not change the order of arrivals.
pub fn arrival(output: &Hash32) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(SEAT_DOMAIN);
    hasher.update(output);
    let digest: Hash32 = hasher.finalize().into();
    let x = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    neg_log2_unit(x)
}

/// `-log2((x + 1) / 2^64)` in 32.32 fixed point, by the shift-and-square method: exact integer
/// part, 32 fraction bits each from one squaring. Always positive except for `x = u64::MAX`
/// (zero), and at most `64 << 32`.
fn neg_log2_unit(x: u64) -> u64 {
    let v = u128::from(x) + 1; // in 1 ..= 2^64
    let integer = 127 - v.leading_zeros(); // floor(log2 v), 0 ..= 64
                                           // The mantissa m = v / 2^integer in [1, 2), held with 63 fraction bits.
    let mut m: u128 = if integer >= 63 {
        v >> (integer - 63)
    } else {
        v << (63 - integer)
    };
    let one: u128 = 1 << 63;
    let mut fraction: u64 = 0;
    for _ in 0..TIME_FRACTION_BITS {
        m = (m * m) >> 63;
        fraction <<= 1;
        if m >= 2 * one {
            m >>= 1;
            fraction |= 1;
        }
    }
    let log2_v = (u64::from(integer) << TIME_FRACTION_BITS) | fraction;
    (64u64 << TIME_FRACTION_BITS) - log2_v
}

/// One verified ticket: the node's weight (stake counted for the draw) and its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<N> {
    pub node: N,
    pub weight: Uint128,
    pub output: Hash32,
}

/// Whether `a` (arrival time `a_time` at weight `a_weight`) arrives strictly before `b`:
/// `a_time / a_weight < b_time / b_weight`, compared exactly by cross-multiplication.
fn arrives_before(a_time: u64, a_weight: Uint128, b_time: u64, b_weight: Uint128) -> bool {
    Uint256::from(a_time) * Uint256::from(b_weight)
        < Uint256::from(b_time) * Uint256::from(a_weight)
}

/// The indexes in `entries` of the nodes holding the `seats` seats, earliest arrival first
/// (ties going to the earlier entry). Entries without weight hold nothing, so fewer than
/// `seats` come back when fewer entries have weight.
pub fn seat_holders<N>(entries: &[Entry<N>], seats: u8) -> Vec<usize> {
    let mut arrivals: Vec<(usize, u64)> = (0..entries.len())
        .filter(|&i| !entries[i].weight.is_zero())
        .map(|i| (i, arrival(&entries[i].output)))
        .collect();
    arrivals.sort_by(|&(a, a_time), &(b, b_time)| {
        let (a_weight, b_weight) = (entries[a].weight, entries[b].weight);
        if arrives_before(a_time, a_weight, b_time, b_weight) {
            std::cmp::Ordering::Less
        } else if arrives_before(b_time, b_weight, a_time, a_weight) {
            std::cmp::Ordering::Greater
        } else {
            a.cmp(&b)
        }
    });
    arrivals
        .into_iter()
        .take(usize::from(seats))
        .map(|(i, _)| i)
        .collect()
}

/// Producing tickets: a node runner's sortition key (native targets only).
#[cfg(feature = "signer")]
pub mod signer {
    use ark_bls12_381::{Fr, G1Affine, G2Affine};
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::{PrimeField, Zero};
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    use cosmwasm_crypto::{bls12_381_hash_to_g2, HashFunction};
    use sha2::{Digest, Sha256};

    use super::{possession_message, ticket_message, TICKET_DST};
    use super::{PUBLIC_KEY_BYTES, SIGNATURE_BYTES};
    use crate::Hash32;

    const KEY_DOMAIN: &[u8] = b"nesa/sortition-secret/v1";

    /// A BLS12-381 secret scalar, derived deterministically from secret seed bytes (a node
    /// runner uses its account key, so the sortition key needs no file of its own).
    pub struct TicketKey {
        secret: Fr,
    }

    impl TicketKey {
        pub fn from_seed(seed: &[u8]) -> Self {
            let mut counter = 0u32;
            loop {
                let mut hasher = Sha256::new();
                hasher.update(KEY_DOMAIN);
                hasher.update(counter.to_be_bytes());
                hasher.update(seed);
                let wide: [u8; 32] = hasher.finalize().into();
                let secret = Fr::from_be_bytes_mod_order(&wide);
                if !secret.is_zero() {
                    return Self { secret };
                }
                counter += 1;
            }
        }

        pub fn public_key(&self) -> [u8; PUBLIC_KEY_BYTES] {
            let point = (G1Affine::generator() * self.secret).into_affine();
            let mut bytes = [0u8; PUBLIC_KEY_BYTES];
            point
                .serialize_compressed(&mut bytes[..])
                .expect("a G1 point is 48 bytes compressed");
            bytes
        }

        /// The BLS signature of `message` under [`TICKET_DST`].
        pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_BYTES] {
            let hashed = bls12_381_hash_to_g2(HashFunction::Sha256, message, TICKET_DST);
            let point = G2Affine::deserialize_compressed(&hashed[..])
                .expect("hash to G2 returns a valid point");
            let signature = (point * self.secret).into_affine();
            let mut bytes = [0u8; SIGNATURE_BYTES];
            signature
                .serialize_compressed(&mut bytes[..])
                .expect("a G2 point is 96 bytes compressed");
            bytes
        }

        /// The ticket for a query with this draw input.
        pub fn ticket(&self, draw_input: &Hash32) -> [u8; SIGNATURE_BYTES] {
            self.sign(&ticket_message(draw_input))
        }

        /// The proof that `node` holds this key, registered with the key in its profile.
        pub fn proof_of_possession(&self, node: &str) -> [u8; SIGNATURE_BYTES] {
            self.sign(&possession_message(node, &self.public_key()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, weight: u128, seed: u8) -> Entry<String> {
        Entry {
            node: name.to_string(),
            weight: Uint128::new(weight),
            output: ticket_output(&[seed; 96]),
        }
    }

    #[test]
    fn the_logarithm_is_exact_at_powers_of_two_and_close_elsewhere() {
        let one = 1u64 << TIME_FRACTION_BITS;
        assert_eq!(neg_log2_unit(u64::MAX), 0);
        assert_eq!(neg_log2_unit(0), 64 * one);
        assert_eq!(neg_log2_unit((1 << 63) - 1), one);
        assert_eq!(neg_log2_unit((1 << 62) - 1), 2 * one);
        for x in [
            3u64,
            1_000,
            123_456_789,
            1 << 40,
            u64::MAX / 3,
            u64::MAX - 5,
        ] {
            let expected = -(((x as f64) + 1.0) / 2f64.powi(64)).log2();
            let got = neg_log2_unit(x) as f64 / one as f64;
            assert!((expected - got).abs() < 1e-8, "x {x}: {got} vs {expected}");
        }
    }

    #[test]
    fn the_first_seat_follows_the_stake() {
        // Node b has three times a's weight: it should arrive first about 3/4 of the time.
        let mut b_seats = 0u32;
        let draws = 4_000u32;
        for i in 0..draws {
            let entries = vec![
                Entry {
                    node: "a",
                    weight: Uint128::new(100),
                    output: ticket_output(&[i.to_be_bytes(), [0; 4]].concat()),
                },
                Entry {
                    node: "b",
                    weight: Uint128::new(300),
                    output: ticket_output(&[i.to_be_bytes(), [1; 4]].concat()),
                },
            ];
            let holders = seat_holders(&entries, 1);
            b_seats += u32::from(entries[holders[0]].node == "b");
        }
        assert!(
            (2_880..3_120).contains(&b_seats),
            "b held {b_seats} of {draws}"
        );
    }

    #[test]
    fn splitting_stake_buys_no_more_than_stake_share() {
        // 300 against three honest nodes of 100, k = 3. Whole, the 300 holds at most one seat;
        // split into three identities it holds more, but no more than the bound of the module
        // docs allows: per seat 300 / (300 + 300 - 2 * 100) = 3/4 (vs a stake share of 1/2).
        let draws = 3_000u32;
        let (mut whole, mut split) = (0u32, 0u32);
        for i in 0..draws {
            let out = |tag: u8| ticket_output(&[&i.to_be_bytes()[..], &[tag]].concat());
            let honest: Vec<Entry<&str>> = (0..3)
                .map(|h| Entry {
                    node: "h",
                    weight: Uint128::new(100),
                    output: out(h),
                })
                .collect();
            let mut one = honest.clone();
            one.push(Entry {
                node: "s",
                weight: Uint128::new(300),
                output: out(9),
            });
            let mut three = honest;
            for t in 0..3 {
                three.push(Entry {
                    node: "s",
                    weight: Uint128::new(100),
                    output: out(10 + t),
                });
            }
            let count = |entries: &[Entry<&str>]| {
                let holders = seat_holders(entries, 3);
                assert_eq!(holders.len(), 3);
                let mut distinct = holders.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), 3, "seats are held by distinct nodes");
                holders.iter().filter(|&&s| entries[s].node == "s").count() as u32
            };
            let seats = count(&one);
            assert!(seats <= 1);
            whole += seats;
            split += count(&three);
        }
        let per_seat = f64::from(split) / f64::from(3 * draws);
        // Equal identities everywhere: the split owner is just half of six equal nodes.
        assert!(
            (0.47..0.53).contains(&per_seat),
            "split per-seat share {per_seat}"
        );
        assert!(per_seat <= 0.75);
        assert!(whole < split);
    }

    #[test]
    fn weightless_entries_hold_no_seat_and_ties_go_to_the_first() {
        let entries = vec![entry("a", 0, 1), entry("b", 5, 2)];
        assert_eq!(seat_holders(&entries, 3), vec![1]);
        assert!(seat_holders(&[entry("a", 0, 1)], 3).is_empty());
        let twins = vec![entry("a", 5, 7), entry("b", 5, 7)];
        assert_eq!(seat_holders(&twins, 2), vec![0, 1]);
    }

    #[test]
    fn every_input_of_the_draw_changes_it() {
        let base = draw_input("nesa-1", "nesa1market", 1, 10, 5);
        assert_ne!(base, draw_input("nesa-2", "nesa1market", 1, 10, 5));
        assert_ne!(base, draw_input("nesa-1", "nesa1marker", 1, 10, 5));
        assert_ne!(base, draw_input("nesa-1", "nesa1market", 2, 10, 5));
        assert_ne!(base, draw_input("nesa-1", "nesa1market", 1, 11, 5));
        assert_ne!(base, draw_input("nesa-1", "nesa1market", 1, 10, 6));
        // Length prefixes: moving a byte from one string to the other changes the input.
        assert_ne!(
            draw_input("ab", "c", 1, 1, 1),
            draw_input("a", "bc", 1, 1, 1)
        );
    }

    #[cfg(feature = "signer")]
    #[test]
    fn tickets_verify_under_the_registered_key_only() {
        use cosmwasm_crypto::{bls12_381_hash_to_g2, bls12_381_pairing_equality, HashFunction};
        use cosmwasm_std::BLS12_381_G1_GENERATOR;

        let key = signer::TicketKey::from_seed(b"node secret");
        let other = signer::TicketKey::from_seed(b"another secret");
        let input = draw_input("nesa-1", "nesa1market", 1, 10, 5);
        let verify = |public_key: &[u8], message: &[u8], signature: &[u8]| {
            let hashed = bls12_381_hash_to_g2(HashFunction::Sha256, message, TICKET_DST);
            bls12_381_pairing_equality(&BLS12_381_G1_GENERATOR, signature, public_key, &hashed)
                .unwrap()
        };
        let ticket = key.ticket(&input);
        assert_eq!(ticket, key.ticket(&input), "one signature per message");
        assert!(verify(&key.public_key(), &ticket_message(&input), &ticket));
        assert!(!verify(
            &other.public_key(),
            &ticket_message(&input),
            &ticket
        ));
        let pop = key.proof_of_possession("nesa1node");
        assert!(verify(
            &key.public_key(),
            &possession_message("nesa1node", &key.public_key()),
            &pop
        ));
        assert!(!verify(
            &key.public_key(),
            &possession_message("nesa1thief", &key.public_key()),
            &pop
        ));
        assert_ne!(key.public_key(), IDENTITY_PUBLIC_KEY);
    }
}

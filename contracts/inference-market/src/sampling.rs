//! The assignment seed and stake-weighted sampling of nodes.
//!
//! Contracts see no block hash, so the seed mixes what no single party controls alone: the
//! running seed (a hash chain over every salt that opened its commitment, i.e. chosen by
//! nodes *before* they could know how it would be used), the query id, the user's 32 bytes of
//! entropy and the block height and time. The user chooses entropy without knowing the
//! running seed's next value, and nodes commit salts before the queries they will influence
//! exist.

use cosmwasm_std::{Addr, Uint128};
use nesa_market::market::QueryId;
use nesa_market::staking::Candidate;
use nesa_market::Hash32;
use sha2::{Digest, Sha256};

const DRAW_DOMAIN: &[u8] = b"nesa/assignment-draw/v1";
const SALT_DOMAIN: &[u8] = b"nesa/running-seed/v1";
const GENESIS_DOMAIN: &[u8] = b"nesa/market-genesis-seed/v1";

/// `sha256(running_seed ‖ query_id BE ‖ user_entropy ‖ height BE ‖ time_nanos BE)`.
pub fn assignment_seed(
    running_seed: &Hash32,
    query_id: QueryId,
    user_entropy: &[u8],
    height: u64,
    time_nanos: u64,
) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(running_seed);
    hasher.update(query_id.to_be_bytes());
    hasher.update(user_entropy);
    hasher.update(height.to_be_bytes());
    hasher.update(time_nanos.to_be_bytes());
    hasher.finalize().into()
}

/// The running seed after a reveal whose salt opened its commitment.
pub fn mix_salt(running_seed: &Hash32, node: &Addr, query_id: QueryId, salt: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(SALT_DOMAIN);
    hasher.update(running_seed);
    hasher.update(node.as_bytes());
    hasher.update(query_id.to_be_bytes());
    hasher.update(salt);
    hasher.finalize().into()
}

/// The running seed at instantiation.
pub fn genesis_seed(contract: &Addr, height: u64, time_nanos: u64) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(GENESIS_DOMAIN);
    hasher.update(contract.as_bytes());
    hasher.update(height.to_be_bytes());
    hasher.update(time_nanos.to_be_bytes());
    hasher.finalize().into()
}

/// Draws `k` distinct nodes, each with probability proportional to its stake among those not
/// drawn yet. Draw `i` takes the first 16 bytes of `sha256(domain ‖ seed ‖ i BE)` as a u128
/// modulo the remaining total stake and walks the candidates (in the given order) to it.
/// Returns fewer than `k` only when fewer candidates have stake.
pub fn sample_by_stake(seed: &Hash32, candidates: &[Candidate], k: usize) -> Vec<Addr> {
    let mut pool: Vec<&Candidate> = candidates.iter().filter(|c| !c.stake.is_zero()).collect();
    let mut drawn = Vec::with_capacity(k);
    for round in 0..k as u32 {
        let total: Uint128 = pool.iter().map(|c| c.stake).sum();
        if total.is_zero() {
            break;
        }
        let mut hasher = Sha256::new();
        hasher.update(DRAW_DOMAIN);
        hasher.update(seed);
        hasher.update(round.to_be_bytes());
        let digest: Hash32 = hasher.finalize().into();
        let word = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
        let mut target = word % total.u128();
        let index = pool
            .iter()
            .position(|c| {
                if target < c.stake.u128() {
                    true
                } else {
                    target -= c.stake.u128();
                    false
                }
            })
            .expect("the target is below the total stake");
        drawn.push(pool.remove(index).address.clone());
    }
    drawn
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn candidates(stakes: &[u128]) -> Vec<Candidate> {
        stakes
            .iter()
            .enumerate()
            .map(|(i, &stake)| Candidate {
                address: Addr::unchecked(format!("node{i}")),
                stake: Uint128::new(stake),
            })
            .collect()
    }

    fn seed(i: u32) -> Hash32 {
        assignment_seed(&[0; 32], u64::from(i), &[1; 32], 100, 5)
    }

    #[test]
    fn draws_are_distinct_and_deterministic() {
        let pool = candidates(&[10, 20, 30, 40, 50]);
        let drawn = sample_by_stake(&seed(1), &pool, 3);
        assert_eq!(drawn.len(), 3);
        let mut unique = drawn.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        assert_eq!(drawn, sample_by_stake(&seed(1), &pool, 3));
    }

    #[test]
    fn nodes_without_stake_are_never_drawn() {
        let pool = candidates(&[0, 5, 0]);
        assert_eq!(
            sample_by_stake(&seed(2), &pool, 3),
            vec![Addr::unchecked("node1")]
        );
    }

    #[test]
    fn asking_for_everyone_draws_everyone() {
        let pool = candidates(&[1, 1_000_000, 7]);
        let mut drawn = sample_by_stake(&seed(3), &pool, 3);
        drawn.sort();
        assert_eq!(drawn.len(), 3);
    }

    #[test]
    fn first_draws_follow_the_stake() {
        let pool = candidates(&[100, 300]);
        let mut first = BTreeMap::new();
        for i in 0..4000 {
            *first
                .entry(sample_by_stake(&seed(i), &pool, 1)[0].clone())
                .or_insert(0u32) += 1;
        }
        let heavy = first[&Addr::unchecked("node1")];
        assert!(
            (2800..3200).contains(&heavy),
            "node1 drawn {heavy} of 4000 times"
        );
    }

    #[test]
    fn every_input_of_the_seed_changes_it() {
        let base = assignment_seed(&[0; 32], 1, &[1; 32], 100, 5);
        assert_ne!(base, assignment_seed(&[9; 32], 1, &[1; 32], 100, 5));
        assert_ne!(base, assignment_seed(&[0; 32], 2, &[1; 32], 100, 5));
        assert_ne!(base, assignment_seed(&[0; 32], 1, &[2; 32], 100, 5));
        assert_ne!(base, assignment_seed(&[0; 32], 1, &[1; 32], 101, 5));
        assert_ne!(base, assignment_seed(&[0; 32], 1, &[1; 32], 100, 6));
        let node = Addr::unchecked("n");
        assert_ne!(
            mix_salt(&base, &node, 1, b"a"),
            mix_salt(&base, &node, 1, b"b")
        );
    }
}

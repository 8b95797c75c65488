//! Consensus-based distribution verification: which reveals win.
//!
//! Only reveals that opened their commitment take part. A group of identical outputs held by
//! a strict majority of the *assigned* nodes wins outright. Otherwise two reveals agree when
//! their outputs are identical or their fingerprints are within the tolerance, and the winners
//! are the largest set of mutually agreeing reveals (a maximum clique; k ≤ 10, so all subsets
//! are tried). Two different largest sets are a tie: no consensus. The winners must number at
//! least the quorum.

use std::collections::BTreeMap;

use nesa_market::{agree, Fingerprint, Hash32};

/// A reveal that opened its commitment.
#[derive(Clone, Debug)]
pub struct ValidReveal {
    pub output_hash: Hash32,
    pub output_tokens: u32,
    pub fingerprint: Fingerprint,
}

/// The winning set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Indexes into the reveals, ascending.
    pub winners: Vec<usize>,
    /// Index of a winner carrying the winning output: the most common output among the
    /// winners (ties: fewer tokens, then the lower hash).
    pub output: usize,
}

/// The largest a clique search runs over (2^n subsets).
pub const MAX_REVEALS: usize = 16;

/// Decides the winners among `reveals` of a query with `assigned` nodes, or `None` when there
/// is no consensus of at least `quorum` nodes.
pub fn decide(
    assigned: usize,
    reveals: &[ValidReveal],
    tolerance: u32,
    quorum: usize,
) -> Option<Verdict> {
    assert!(
        reveals.len() <= MAX_REVEALS,
        "at most {MAX_REVEALS} reveals"
    );
    let winners =
        majority(assigned, reveals).or_else(|| largest_agreeing_set(reveals, tolerance))?;
    if winners.len() < quorum.max(1) {
        return None;
    }
    let output = winning_output(reveals, &winners);
    Some(Verdict { winners, output })
}

/// The identical-output group held by more than half of the assigned nodes.
fn majority(assigned: usize, reveals: &[ValidReveal]) -> Option<Vec<usize>> {
    groups(reveals, (0..reveals.len()).collect())
        .into_values()
        .find(|group| group.len() * 2 > assigned)
}

fn groups(reveals: &[ValidReveal], members: Vec<usize>) -> BTreeMap<Hash32, Vec<usize>> {
    let mut groups: BTreeMap<Hash32, Vec<usize>> = BTreeMap::new();
    for i in members {
        groups.entry(reveals[i].output_hash).or_default().push(i);
    }
    groups
}

/// The unique maximum clique of the agreement graph; `None` on a tie or with no reveals.
fn largest_agreeing_set(reveals: &[ValidReveal], tolerance: u32) -> Option<Vec<usize>> {
    let n = reveals.len();
    let agrees = |i: usize, j: usize| {
        reveals[i].output_hash == reveals[j].output_hash
            || agree(&reveals[i].fingerprint, &reveals[j].fingerprint, tolerance)
    };
    // neighbours[i]: bit j set when i and j agree (i agrees with itself).
    let neighbours: Vec<u32> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| i == j || agrees(i, j))
                .fold(0, |m, j| m | 1 << j)
        })
        .collect();
    let (mut best, mut best_size, mut ties) = (0u32, 0u32, 0u32);
    for set in 1u32..(1 << n) {
        let size = set.count_ones();
        if size < best_size {
            continue;
        }
        let clique = (0..n).all(|i| set & (1 << i) == 0 || neighbours[i] & set == set);
        if !clique {
            continue;
        }
        if size > best_size {
            (best, best_size, ties) = (set, size, 1);
        } else {
            ties += 1;
        }
    }
    (best_size > 0 && ties == 1).then(|| (0..n).filter(|&i| best & (1 << i) != 0).collect())
}

fn winning_output(reveals: &[ValidReveal], winners: &[usize]) -> usize {
    groups(reveals, winners.to_vec())
        .into_iter()
        .max_by(|(hash_a, a), (hash_b, b)| {
            let tokens = |g: &Vec<usize>| reveals[g[0]].output_tokens;
            a.len()
                .cmp(&b.len())
                .then(tokens(b).cmp(&tokens(a)))
                .then(hash_b.cmp(hash_a))
        })
        .map(|(_, group)| group[0])
        .expect("winners are not empty")
}

#[cfg(test)]
mod tests {
    use nesa_market::{FingerprintEntry, TopToken};

    use super::*;

    /// A reveal of output `output` whose fingerprint has log-probabilities shifted by `shift`
    /// and top tokens `tokens`.
    fn reveal(output: u8, shift: u8, tokens: u32) -> ValidReveal {
        ValidReveal {
            output_hash: [output; 32],
            output_tokens: u32::from(output),
            fingerprint: Fingerprint {
                entries: vec![FingerprintEntry {
                    position: 0,
                    top: [
                        TopToken {
                            token_id: tokens,
                            logprob_q: shift,
                        },
                        TopToken {
                            token_id: tokens + 1,
                            logprob_q: 10 + shift,
                        },
                        TopToken {
                            token_id: tokens + 2,
                            logprob_q: 20 + shift,
                        },
                    ],
                }],
            },
        }
    }

    #[test]
    fn a_strict_majority_of_identical_outputs_wins() {
        let reveals = [reveal(1, 0, 0), reveal(2, 0, 100), reveal(1, 0, 0)];
        let verdict = decide(3, &reveals, 0, 2).unwrap();
        assert_eq!(verdict.winners, vec![0, 2]);
        assert_eq!(reveals[verdict.output].output_hash, [1; 32]);
    }

    #[test]
    fn half_of_the_assigned_nodes_is_no_majority() {
        // 2 of 4 identical; the other two are different and disagree: the fingerprint stage
        // finds the identical pair as the only largest agreeing set.
        let reveals = [
            reveal(1, 0, 0),
            reveal(1, 0, 0),
            reveal(2, 0, 100),
            reveal(3, 0, 200),
        ];
        assert_eq!(decide(4, &reveals, 0, 2).unwrap().winners, vec![0, 1]);
        // With two identical pairs of equal size it is a tie: no consensus.
        let tied = [
            reveal(1, 0, 0),
            reveal(1, 0, 0),
            reveal(2, 0, 100),
            reveal(2, 0, 100),
        ];
        assert_eq!(decide(4, &tied, 0, 2), None);
    }

    #[test]
    fn different_outputs_with_agreeing_fingerprints_form_the_winning_cluster() {
        let reveals = [reveal(1, 0, 0), reveal(2, 2, 0), reveal(3, 40, 0)];
        let verdict = decide(3, &reveals, 3, 2).unwrap();
        assert_eq!(verdict.winners, vec![0, 1]);
        // Tie of one output each: fewer tokens wins (output 1 has 1 token).
        assert_eq!(verdict.output, 0);
        assert_eq!(
            decide(3, &reveals, 1, 2),
            None,
            "outside the tolerance nobody agrees"
        );
    }

    #[test]
    fn agreement_must_hold_between_every_pair_of_winners() {
        // 0~1 and 1~2 within tolerance 3, but 0 and 2 are 4 apart: the sets {0,1} and {1,2}
        // tie, so there is no consensus rather than a chain.
        let reveals = [reveal(1, 0, 0), reveal(2, 2, 0), reveal(3, 4, 0)];
        assert_eq!(decide(3, &reveals, 3, 2), None);
    }

    #[test]
    fn too_few_agreeing_nodes_are_no_quorum() {
        let reveals = [reveal(1, 0, 0)];
        assert_eq!(decide(3, &reveals, 3, 2), None);
        assert_eq!(decide(3, &[], 3, 1), None);
        assert_eq!(decide(1, &reveals, 3, 1).unwrap().winners, vec![0]);
    }

    #[test]
    fn the_most_common_output_among_the_winners_is_paid_for() {
        let reveals = [
            reveal(5, 0, 0),
            reveal(2, 1, 0),
            reveal(5, 0, 0),
            reveal(9, 50, 7),
        ];
        let verdict = decide(5, &reveals, 2, 2).unwrap();
        assert_eq!(verdict.winners, vec![0, 1, 2]);
        assert_eq!(reveals[verdict.output].output_hash, [5; 32]);
    }
}

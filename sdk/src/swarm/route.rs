//! Choosing a pipeline: which candidate runs which blocks, so that the expected time of one
//! step through all of them is least.
//!
//! As in Petals, a step's cost through a candidate is its round trip plus its measured time
//! per block for the blocks it runs; the route is a shortest path over block boundaries, where
//! a candidate serving `start..end` offers an edge from any boundary `a` in `start..end` to any
//! boundary `b` in `a + 1..=end`. A candidate may run only part of what it loaded.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Range;

/// A node that may serve a span of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The node's API base URL.
    pub endpoint: String,
    /// Blocks it loaded.
    pub layers: Range<usize>,
    /// Measured round trip to it, in seconds.
    pub rtt: f64,
    /// Its measured time per block for one decode step, in seconds.
    pub seconds_per_layer: f64,
}

/// One hop of a chosen route: `candidates[candidate]` runs `layers`.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    pub candidate: usize,
    pub layers: Range<usize>,
}

/// No live candidate set covers the blocks.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("no live node serves block {uncovered} (the route needs blocks {}..{})", .span.start, .span.end)]
pub struct NoRoute {
    /// The first block no route reaches.
    pub uncovered: usize,
    pub span: Range<usize>,
}

#[derive(PartialEq)]
struct Reached {
    cost: f64,
    boundary: usize,
}

impl Eq for Reached {}

impl Ord for Reached {
    fn cmp(&self, other: &Self) -> Ordering {
        // Least cost first; among equals, the furthest boundary (fewer hops).
        other
            .cost
            .total_cmp(&self.cost)
            .then(self.boundary.cmp(&other.boundary))
    }
}

impl PartialOrd for Reached {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The fastest route through blocks `span` over the candidates not in `dead` (indices into
/// `candidates`). Ties go to the route with fewer hops, then to the earlier candidate.
pub fn plan(
    candidates: &[Candidate],
    span: Range<usize>,
    dead: &BTreeSet<usize>,
) -> Result<Vec<Hop>, NoRoute> {
    if span.is_empty() {
        return Ok(Vec::new());
    }
    let width = span.end - span.start + 1;
    let index = |boundary: usize| boundary - span.start;
    let mut best = vec![f64::INFINITY; width];
    let mut hops = vec![0usize; width];
    let mut via: Vec<Option<(usize, usize)>> = vec![None; width];
    let mut frontier = BinaryHeap::new();
    best[0] = 0.0;
    frontier.push(Reached {
        cost: 0.0,
        boundary: span.start,
    });
    while let Some(Reached { cost, boundary }) = frontier.pop() {
        if cost > best[index(boundary)] || boundary == span.end {
            continue;
        }
        for (i, candidate) in candidates.iter().enumerate() {
            if dead.contains(&i) || !candidate.layers.contains(&boundary) {
                continue;
            }
            let rtt = candidate.rtt.max(0.0);
            let per_layer = candidate.seconds_per_layer.max(0.0);
            for end in boundary + 1..=candidate.layers.end.min(span.end) {
                let next = cost + rtt + (end - boundary) as f64 * per_layer;
                let n = index(end);
                let fewer_hops = hops[index(boundary)] + 1 < hops[n];
                if next < best[n] || (next == best[n] && fewer_hops) {
                    best[n] = next;
                    hops[n] = hops[index(boundary)] + 1;
                    via[n] = Some((boundary, i));
                    frontier.push(Reached {
                        cost: next,
                        boundary: end,
                    });
                }
            }
        }
    }
    if via[index(span.end)].is_none() {
        // The furthest boundary reached: no live candidate runs the block that starts there.
        let uncovered = (span.start..span.end)
            .rev()
            .find(|&b| best[index(b)].is_finite())
            .unwrap_or(span.start);
        return Err(NoRoute { uncovered, span });
    }
    let mut route = Vec::new();
    let mut boundary = span.end;
    while let Some((from, candidate)) = via[index(boundary)] {
        route.push(Hop {
            candidate,
            layers: from..boundary,
        });
        boundary = from;
        if boundary == span.start {
            break;
        }
    }
    route.reverse();
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, layers: Range<usize>, rtt: f64, spl: f64) -> Candidate {
        Candidate {
            endpoint: name.into(),
            layers,
            rtt,
            seconds_per_layer: spl,
        }
    }

    fn served(route: &[Hop], candidates: &[Candidate]) -> Vec<(String, Range<usize>)> {
        route
            .iter()
            .map(|h| (candidates[h.candidate].endpoint.clone(), h.layers.clone()))
            .collect()
    }

    #[test]
    fn one_whole_node_beats_two_hops_of_the_same_speed() {
        let nodes = [
            node("a", 0..4, 0.001, 0.01),
            node("b", 4..8, 0.001, 0.01),
            node("whole", 0..8, 0.001, 0.01),
        ];
        let route = plan(&nodes, 0..8, &BTreeSet::new()).unwrap();
        assert_eq!(served(&route, &nodes), vec![("whole".into(), 0..8)]);
    }

    #[test]
    fn a_slow_node_is_cut_short_when_a_fast_one_overlaps_it() {
        let nodes = [
            node("slow", 0..6, 0.001, 0.05),
            node("fast", 2..8, 0.001, 0.01),
        ];
        let route = plan(&nodes, 0..8, &BTreeSet::new()).unwrap();
        assert_eq!(
            served(&route, &nodes),
            vec![("slow".into(), 0..2), ("fast".into(), 2..8)]
        );
    }

    #[test]
    fn a_far_node_is_avoided_when_a_near_one_covers_its_span() {
        let nodes = [
            node("a", 0..4, 0.001, 0.01),
            node("far", 4..8, 0.5, 0.01),
            node("near", 4..8, 0.002, 0.01),
        ];
        let route = plan(&nodes, 0..8, &BTreeSet::new()).unwrap();
        assert_eq!(
            served(&route, &nodes),
            vec![("a".into(), 0..4), ("near".into(), 4..8)]
        );
    }

    #[test]
    fn dead_nodes_are_routed_around_and_a_gap_names_the_block() {
        let nodes = [
            node("a", 0..3, 0.001, 0.01),
            node("b", 3..6, 0.001, 0.01),
            node("spare", 2..6, 0.001, 0.02),
        ];
        let dead = BTreeSet::from([1]);
        let route = plan(&nodes, 0..6, &dead).unwrap();
        assert_eq!(
            served(&route, &nodes),
            vec![("a".into(), 0..3), ("spare".into(), 3..6)]
        );
        // A sub-span (a failover) is planned on its own.
        let route = plan(&nodes, 3..6, &dead).unwrap();
        assert_eq!(served(&route, &nodes), vec![("spare".into(), 3..6)]);

        let err = plan(&nodes, 0..6, &BTreeSet::from([1, 2])).unwrap_err();
        assert_eq!(err.uncovered, 3);
        assert!(err.to_string().contains("block 3"), "{err}");
        assert!(plan(&nodes, 0..0, &BTreeSet::new()).unwrap().is_empty());
    }
}

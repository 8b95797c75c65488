//! The work queue in front of the engine: at most `capacity` generations run at once (batched
//! together by the engine), their worst-case key/value caches within the budget, and at most
//! `queue_limit` wait; a query whose cache could never fit, or that cannot be generated before
//! its commit deadline, is not started at all (its commitment could not land in time, and its compute would delay the
//! queries behind it). The runner enters a query's draw only when the queue would take the
//! query on, so it is not drawn for work it could not do. Pure: the loop in [`super::runner`]
//! feeds it heights, speeds and block times and spawns what it says to start.

use std::collections::{BTreeMap, VecDeque};

/// Blocks kept free after a generation for the commit transaction to land.
pub const COMMIT_MARGIN_BLOCKS: u64 = 2;

/// How much work the runner takes on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueLimits {
    /// Generations run at once (the capacity the node can publish in its profile).
    pub capacity: usize,
    /// Queries that may wait for the engine.
    pub queue_limit: usize,
    /// Key/value cache bytes the running generations may reserve together.
    pub kv_budget_bytes: usize,
}

/// What the queue needs to know about a query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Demand {
    /// The query's id.
    pub query_id: u64,
    /// Most tokens the query may generate.
    pub max_output_tokens: u32,
    /// Last height at which the market accepts the commitment.
    pub commit_deadline: u64,
    /// The generation's worst-case key/value cache (prompt + most tokens).
    pub kv_bytes: usize,
}

/// What the runner observed about time and speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// The latest block height.
    pub height: u64,
    /// Tokens the engine generates per second, all sequences of its batch together, while
    /// it has work; `None` before it was measured.
    pub tokens_per_second: Option<f64>,
    /// Measured seconds between blocks.
    pub block_seconds: f64,
}

/// Why a query is not taken on.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// `queue_limit` queries wait already.
    QueueFull {
        /// The configured bound.
        limit: usize,
    },
    /// The generation's cache could never fit the key/value budget.
    TooLarge {
        /// Bytes its worst case needs.
        needed: usize,
        /// The whole budget.
        budget: usize,
    },
    /// The generation would end after the commit deadline.
    TooLate {
        /// Blocks the estimate needs from now (generation, queue ahead, commit margin).
        blocks_needed: u64,
        /// Blocks left before the commit deadline.
        blocks_left: u64,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::QueueFull { limit } => {
                write!(f, "the work queue is full ({limit} queries wait)")
            }
            Refusal::TooLarge { needed, budget } => write!(
                f,
                "its key/value cache may need {} MiB, more than this node's budget of {} MiB",
                needed.div_ceil(1 << 20),
                budget >> 20
            ),
            Refusal::TooLate {
                blocks_needed,
                blocks_left,
            } => write!(
                f,
                "it cannot be generated and committed before the commit deadline \
                 (needs about {blocks_needed} blocks, {blocks_left} left)"
            ),
        }
    }
}

/// What to do with a query offered to the queue.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Start generating now.
    Start,
    /// Wait in the queue at this 0-based position.
    Queued(usize),
    /// Do not take it on.
    Refused(Refusal),
}

/// Blocks needed to generate `demand` and land its commit when `ahead_tokens` tokens of other
/// generations come first: the engine batches them all, so what they share is its throughput.
pub fn blocks_needed(demand: &Demand, ahead_tokens: u64, pace: &Pace) -> u64 {
    let Some(speed) = pace.tokens_per_second.filter(|s| *s > 0.0) else {
        // Nothing measured yet: only the commit itself must fit.
        return COMMIT_MARGIN_BLOCKS;
    };
    let tokens = ahead_tokens + demand.max_output_tokens as u64;
    let seconds = tokens as f64 / speed;
    let blocks = (seconds / pace.block_seconds.max(0.05)).ceil() as u64;
    blocks + COMMIT_MARGIN_BLOCKS
}

/// Whether `demand` can be done in time with `ahead_tokens` tokens of other work before it.
pub fn in_time(demand: &Demand, ahead_tokens: u64, pace: &Pace) -> Result<(), Refusal> {
    let blocks_left = demand.commit_deadline.saturating_sub(pace.height);
    let blocks_needed = blocks_needed(demand, ahead_tokens, pace);
    if blocks_needed > blocks_left {
        return Err(Refusal::TooLate {
            blocks_needed,
            blocks_left,
        });
    }
    Ok(())
}

/// The queue: which queries run and which wait, in arrival order.
#[derive(Debug)]
pub struct WorkQueue {
    limits: QueueLimits,
    /// Running queries and what each asked for.
    running: BTreeMap<u64, Demand>,
    waiting: VecDeque<Demand>,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new(limits: QueueLimits) -> Self {
        WorkQueue {
            limits: QueueLimits {
                capacity: limits.capacity.max(1),
                ..limits
            },
            running: BTreeMap::new(),
            waiting: VecDeque::new(),
        }
    }

    /// Generations running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Queries waiting for the engine.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Cache bytes the running generations reserved.
    pub fn reserved(&self) -> usize {
        self.running.values().map(|d| d.kv_bytes).sum()
    }

    /// Most tokens the running and waiting generations still have to produce.
    fn tokens_ahead(&self) -> u64 {
        self.running
            .values()
            .chain(&self.waiting)
            .map(|d| d.max_output_tokens as u64)
            .sum()
    }

    fn fits(&self, demand: &Demand) -> Result<(), Refusal> {
        if demand.kv_bytes > self.limits.kv_budget_bytes {
            return Err(Refusal::TooLarge {
                needed: demand.kv_bytes,
                budget: self.limits.kv_budget_bytes,
            });
        }
        Ok(())
    }

    /// Whether `demand` can start now: a batch place and room for its cache.
    fn can_start(&self, demand: &Demand) -> bool {
        self.running.len() < self.limits.capacity
            && self.reserved() + demand.kv_bytes <= self.limits.kv_budget_bytes
    }

    /// Whether a query could still find a place (running or waiting) after `pending` others
    /// that may come first: the draws this node entered and has not lost yet, each of which
    /// may become a job.
    pub fn has_room(&self, pending: usize) -> Result<(), Refusal> {
        let taken = self.running.len() + self.waiting.len() + pending;
        if taken >= self.limits.capacity + self.limits.queue_limit {
            return Err(Refusal::QueueFull {
                limit: self.limits.queue_limit,
            });
        }
        Ok(())
    }

    /// Whether [`WorkQueue::offer`] would take `demand` on after `pending` others that may
    /// come first (see [`WorkQueue::has_room`]), without taking it: what decides whether the
    /// runner enters a query's draw at all.
    pub fn would_admit(&self, demand: &Demand, pace: &Pace, pending: usize) -> Result<(), Refusal> {
        self.fits(demand)?;
        self.has_room(pending)?;
        // The draws entered may each become a job about this size.
        let pending_tokens = pending as u64 * demand.max_output_tokens as u64;
        in_time(demand, self.tokens_ahead() + pending_tokens, pace)
    }

    /// Offers a query assigned to this node: start it, queue it, or refuse it. Its draw was
    /// entered only when the work ahead fitted; once assigned it is refused only when it could
    /// not be done in time even alone (not taking it costs the node its stake share anyway).
    pub fn offer(&mut self, demand: Demand, pace: &Pace) -> Admission {
        if let Err(refusal) = self.fits(&demand) {
            return Admission::Refused(refusal);
        }
        if let Err(refusal) = in_time(&demand, 0, pace) {
            return Admission::Refused(refusal);
        }
        if self.waiting.is_empty() && self.can_start(&demand) {
            self.running.insert(demand.query_id, demand);
            return Admission::Start;
        }
        if self.waiting.len() >= self.limits.queue_limit {
            return Admission::Refused(Refusal::QueueFull {
                limit: self.limits.queue_limit,
            });
        }
        self.waiting.push_back(demand);
        Admission::Queued(self.waiting.len() - 1)
    }

    /// Notes that the generation of `query_id` ended (or that the query is gone); returns the
    /// queries to start now and those dropped because they can no longer be done in time.
    pub fn finish(&mut self, query_id: u64, pace: &Pace) -> (Vec<u64>, Vec<(u64, Refusal)>) {
        self.running.remove(&query_id);
        self.waiting.retain(|d| d.query_id != query_id);
        let mut start = Vec::new();
        let mut late = Vec::new();
        while let Some(demand) = self.waiting.front() {
            if !self.can_start(demand) {
                break;
            }
            let demand = self.waiting.pop_front().expect("a front demand");
            match in_time(&demand, 0, pace) {
                Ok(()) => {
                    self.running.insert(demand.query_id, demand);
                    start.push(demand.query_id);
                }
                Err(refusal) => late.push((demand.query_id, refusal)),
            }
        }
        (start, late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(query_id: u64, commit_deadline: u64) -> Demand {
        Demand {
            query_id,
            max_output_tokens: 64,
            commit_deadline,
            kv_bytes: 10,
        }
    }

    /// 32 tokens/s (the whole batch) and 1 s blocks: a 64-token query alone takes 2 blocks,
    /// plus the commit margin.
    fn pace(height: u64) -> Pace {
        Pace {
            height,
            tokens_per_second: Some(32.0),
            block_seconds: 1.0,
        }
    }

    fn limits(capacity: usize, queue_limit: usize) -> QueueLimits {
        QueueLimits {
            capacity,
            queue_limit,
            kv_budget_bytes: 1000,
        }
    }

    #[test]
    fn queries_beyond_the_capacity_wait_and_beyond_the_queue_bound_are_refused() {
        let mut queue = WorkQueue::new(limits(1, 2));
        assert_eq!(queue.offer(demand(1, 100), &pace(10)), Admission::Start);
        assert_eq!(queue.offer(demand(2, 100), &pace(10)), Admission::Queued(0));
        assert_eq!(queue.offer(demand(3, 100), &pace(10)), Admission::Queued(1));
        assert_eq!(
            queue.offer(demand(4, 100), &pace(10)),
            Admission::Refused(Refusal::QueueFull { limit: 2 })
        );
        assert_eq!((queue.running(), queue.waiting()), (1, 2));
    }

    #[test]
    fn a_finished_generation_starts_the_next_in_arrival_order() {
        let mut queue = WorkQueue::new(limits(1, 4));
        queue.offer(demand(1, 100), &pace(10));
        queue.offer(demand(2, 100), &pace(10));
        queue.offer(demand(3, 100), &pace(10));
        assert_eq!(queue.finish(1, &pace(12)), (vec![2], vec![]));
        assert_eq!(queue.finish(2, &pace(14)), (vec![3], vec![]));
        assert_eq!((queue.running(), queue.waiting()), (1, 0));
    }

    #[test]
    fn a_query_past_or_too_close_to_its_commit_deadline_is_not_started() {
        let mut queue = WorkQueue::new(limits(2, 4));
        // Deadline already past.
        assert!(matches!(
            queue.offer(demand(1, 9), &pace(10)),
            Admission::Refused(Refusal::TooLate { blocks_left: 0, .. })
        ));
        // Two blocks of generation plus the commit margin do not fit in three.
        assert!(matches!(
            queue.offer(demand(2, 13), &pace(10)),
            Admission::Refused(Refusal::TooLate {
                blocks_needed: 4,
                blocks_left: 3
            })
        ));
        assert_eq!(queue.offer(demand(3, 14), &pace(10)), Admission::Start);
        // Nothing measured yet: only the commit margin must fit.
        let unmeasured = Pace {
            tokens_per_second: None,
            ..pace(10)
        };
        assert_eq!(queue.offer(demand(4, 12), &unmeasured), Admission::Start);
        assert!(queue.running() == 2 && queue.waiting() == 0);
    }

    #[test]
    fn a_draw_counts_every_token_ahead_but_an_assigned_query_only_its_own() {
        let mut queue = WorkQueue::new(limits(1, 4));
        assert_eq!(queue.offer(demand(1, 30), &pace(10)), Admission::Start);
        // 64 tokens ahead and 64 of its own at 32 tokens/s: 4 blocks + margin = 6; 5 are left.
        assert!(matches!(
            queue.would_admit(&demand(2, 15), &pace(10), 0),
            Err(Refusal::TooLate {
                blocks_needed: 6,
                ..
            })
        ));
        // Once assigned, it waits for its turn: alone it takes 4 blocks, and 5 are left.
        assert_eq!(queue.offer(demand(2, 15), &pace(10)), Admission::Queued(0));
        assert!(matches!(
            queue.offer(demand(3, 13), &pace(10)),
            Admission::Refused(Refusal::TooLate {
                blocks_needed: 4,
                blocks_left: 3
            })
        ));
        let d = demand(9, 0);
        assert_eq!(
            blocks_needed(&d, 3 * 64, &pace(0)),
            8 + COMMIT_MARGIN_BLOCKS
        );
    }

    #[test]
    fn a_waiting_query_whose_deadline_passed_is_dropped_when_its_turn_comes() {
        let mut queue = WorkQueue::new(limits(1, 4));
        queue.offer(demand(1, 100), &pace(10));
        queue.offer(demand(2, 16), &pace(10));
        queue.offer(demand(3, 100), &pace(10));
        let (start, late) = queue.finish(1, &pace(15));
        assert_eq!(start, vec![3]);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].0, 2);
    }

    #[test]
    fn a_draw_is_entered_only_while_the_query_would_find_a_place_in_time() {
        let mut queue = WorkQueue::new(limits(1, 1));
        assert_eq!(queue.would_admit(&demand(1, 100), &pace(10), 0), Ok(()));
        // One draw entered already: it takes the engine, this one the queue.
        assert_eq!(queue.would_admit(&demand(1, 100), &pace(10), 1), Ok(()));
        assert_eq!(
            queue.would_admit(&demand(1, 100), &pace(10), 2),
            Err(Refusal::QueueFull { limit: 1 })
        );
        queue.offer(demand(2, 100), &pace(10));
        assert_eq!(queue.has_room(1), Err(Refusal::QueueFull { limit: 1 }));
        // 64 tokens ahead: (64 + 64) / 32 = 4 blocks + margin = 6; 5 are left.
        assert!(matches!(
            queue.would_admit(&demand(3, 15), &pace(10), 0),
            Err(Refusal::TooLate {
                blocks_needed: 6,
                ..
            })
        ));
        // Asking takes nothing.
        assert_eq!((queue.running(), queue.waiting()), (1, 0));
    }

    #[test]
    fn a_forgotten_waiting_query_leaves_the_queue() {
        let mut queue = WorkQueue::new(limits(1, 4));
        queue.offer(demand(1, 100), &pace(10));
        queue.offer(demand(2, 100), &pace(10));
        assert_eq!(queue.finish(2, &pace(11)), (vec![], vec![]));
        assert_eq!((queue.running(), queue.waiting()), (1, 0));
    }

    #[test]
    fn the_cache_budget_bounds_what_runs_and_refuses_what_never_fits() {
        let mut queue = WorkQueue::new(QueueLimits {
            capacity: 8,
            queue_limit: 4,
            kv_budget_bytes: 100,
        });
        let sized = |query_id, kv_bytes| Demand {
            kv_bytes,
            ..demand(query_id, 100)
        };
        assert_eq!(
            queue.would_admit(&sized(1, 101), &pace(10), 0),
            Err(Refusal::TooLarge {
                needed: 101,
                budget: 100
            })
        );
        assert!(matches!(
            queue.offer(sized(1, 101), &pace(10)),
            Admission::Refused(Refusal::TooLarge { .. })
        ));
        assert_eq!(queue.offer(sized(2, 60), &pace(10)), Admission::Start);
        // A batch place is free but the cache is not: it waits, and so does what comes after.
        assert_eq!(queue.offer(sized(3, 60), &pace(10)), Admission::Queued(0));
        assert_eq!(queue.offer(sized(4, 10), &pace(10)), Admission::Queued(1));
        assert_eq!(queue.reserved(), 60);
        assert_eq!(queue.finish(2, &pace(11)), (vec![3, 4], vec![]));
        assert_eq!((queue.running(), queue.reserved()), (2, 70));
    }
}

//! Which window of a query is open at a height. Deadlines are inclusive: a commit at the
//! commit deadline counts, a reveal at the reveal deadline counts.

use nesa_market::market::{InferenceQuery, QueryPhase, QueryStatus};

/// Commits are accepted (by assigned nodes that have not committed).
fn drawn(query: &InferenceQuery) -> bool {
    query.status != QueryStatus::Drawing && !query.status.is_final()
}

pub fn commits_open(query: &InferenceQuery, height: u64) -> bool {
    drawn(query) && height <= query.commit_deadline
}

/// Reveals are accepted: every assigned node committed, or the commit deadline passed (so no
/// one can copy a result before committing), and the reveal deadline has not passed.
pub fn reveals_open(query: &InferenceQuery, height: u64) -> bool {
    let commits_closed =
        usize::from(query.commits) == query.nodes.len() || height > query.commit_deadline;
    drawn(query) && commits_closed && height <= query.reveal_deadline
}

/// Settlement is allowed: the reveal deadline passed, or no further reveal can come (every
/// assigned node revealed, or commits closed and every committed node revealed).
pub fn settleable(query: &InferenceQuery, height: u64) -> bool {
    let all_revealed = usize::from(query.reveals) == query.nodes.len();
    let committers_revealed = height > query.commit_deadline && query.reveals == query.commits;
    drawn(query) && (height > query.reveal_deadline || all_revealed || committers_revealed)
}

/// What may happen next.
pub fn phase(query: &InferenceQuery, height: u64) -> QueryPhase {
    if query.status.is_final() {
        QueryPhase::Closed
    } else if query.status == QueryStatus::Drawing {
        QueryPhase::Draw
    } else if settleable(query, height) {
        QueryPhase::Settleable
    } else if reveals_open(query, height) {
        QueryPhase::Reveal
    } else {
        QueryPhase::Commit
    }
}

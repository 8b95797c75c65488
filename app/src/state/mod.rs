//! Chain state: a Jellyfish Merkle Tree persisted in redb (version = height, root = app hash),
//! an ordered table of the latest values for range scans, and write overlays per block and tx.

mod delta;
mod gas;
mod storage;

pub use delta::{
    narrow_past, prefix_end, range_is_empty, Changes, Direction, Entries, Entry, Overlay,
    StateRead, StateWrite,
};
pub use gas::{Gas, GasCosts, GasMeter, Metered};
pub use storage::{BlockWriter, Committed, HistoricalState, PendingCommit, Snapshot, Storage};

/// Errors from the state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database failed; the node should stop rather than continue on a partial view.
    #[error("state storage: {0}")]
    Storage(String),
    /// The Merkle tree could not be read or updated.
    #[error("merkle tree: {0}")]
    Tree(String),
    /// The transaction ran out of gas.
    #[error("out of gas in location: {location}; gasWanted: {limit}, gasUsed: {used}")]
    OutOfGas {
        location: &'static str,
        limit: Gas,
        used: Gas,
    },
    /// A height that was never committed (or is in the future) was asked for.
    #[error("height {requested} is not available: the latest committed height is {latest}")]
    HeightUnavailable { requested: u64, latest: u64 },
    /// Listing queries are answered for the latest height only.
    #[error("range queries at past height {height} are not supported; query the latest height")]
    HistoricalRange { height: u64 },
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StateError {
            fn from(e: $t) -> Self { StateError::Storage(e.to_string()) }
        }
    )*};
}
storage_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

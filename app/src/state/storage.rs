//! The persistent store: Jellyfish Merkle Tree nodes and values in redb, the latest value of
//! every key in an ordered side table, and commit metadata — all written in one redb write
//! transaction per block, so a crash leaves the last committed height intact.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use jmt::storage::{HasPreimage, LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, RootHash, Sha256Jmt, Version};
use redb::{Database, ReadOnlyTable, ReadableDatabase, TableDefinition, WriteTransaction};
use sha2::Sha256;

use super::{range_is_empty, Changes, Direction, Entry, StateError, StateRead};

const NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_nodes");
/// `key_hash ‖ version (big-endian)` → `1 ‖ value`, or `0` for a deletion.
const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_values");
/// `key_hash` → raw key, for non-existence proofs (which name the neighbouring keys).
const PREIMAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_preimages");
const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_HEIGHT: &str = "height";
const META_APP_HASH: &str = "app_hash";

/// The last committed block: its height and the app hash (Merkle root) after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    pub height: u64,
    pub app_hash: [u8; 32],
}

/// A block's state changes with their computed Merkle root, waiting for `Storage::commit`.
pub struct PendingCommit {
    pub height: u64,
    pub app_hash: [u8; 32],
    changes: Changes,
    batch: jmt::storage::TreeUpdateBatch,
}

/// Extra tables written atomically with a commit (the solo block store uses this).
pub type BlockWriter<'a> = &'a WriteTransaction;

/// The chain's persistent state.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
}

impl Storage {
    /// Opens (or creates) the state database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StateError::Storage(format!("{}: {e}", dir.display())))?;
        }
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(NODES)?;
        txn.open_table(VALUES)?;
        txn.open_table(PREIMAGES)?;
        txn.open_table(LATEST)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Storage { db: Arc::new(db) })
    }

    /// The underlying database, for tables committed alongside the state (block store).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The last committed height and app hash; `None` before genesis.
    pub fn committed(&self) -> Result<Option<Committed>, StateError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let corrupt = |what: &str, len: usize| {
            StateError::Storage(format!(
                "the state database is corrupt: the committed {what} is {len} bytes long"
            ))
        };
        let height = match meta.get(META_HEIGHT)? {
            Some(v) => Some(u64::from_be_bytes(
                v.value()
                    .try_into()
                    .map_err(|_| corrupt("height", v.value().len()))?,
            )),
            None => None,
        };
        let hash = match meta.get(META_APP_HASH)? {
            Some(v) => Some(
                <[u8; 32]>::try_from(v.value())
                    .map_err(|_| corrupt("app hash", v.value().len()))?,
            ),
            None => None,
        };
        Ok(height
            .zip(hash)
            .map(|(height, app_hash)| Committed { height, app_hash }))
    }

    /// A read view of the latest committed state.
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        let txn = self.db.begin_read()?;
        Ok(Snapshot {
            latest: txn.open_table(LATEST)?,
            fault: OnceLock::new(),
        })
    }

    /// Computes the Merkle root of the state after applying `changes` as version `height`.
    pub fn prepare(&self, height: u64, changes: Changes) -> Result<PendingCommit, StateError> {
        let view = TreeView::open(&self.db)?;
        let tree = Sha256Jmt::new(&view);
        let value_set = changes
            .iter()
            .map(|(key, value)| (KeyHash::with::<Sha256>(key), value.clone()));
        let (root, batch) = tree
            .put_value_set(value_set, height)
            .map_err(|e| StateError::Tree(e.to_string()))?;
        Ok(PendingCommit {
            height,
            app_hash: root.0,
            changes,
            batch,
        })
    }

    /// Writes a prepared block (tree nodes, values, latest table, metadata) and whatever
    /// `extra` adds, in one atomic redb transaction.
    pub fn commit(
        &self,
        pending: PendingCommit,
        extra: impl FnOnce(BlockWriter) -> Result<(), StateError>,
    ) -> Result<Committed, StateError> {
        let txn = self.db.begin_write()?;
        {
            let mut nodes = txn.open_table(NODES)?;
            for (key, node) in pending.batch.node_batch.nodes() {
                let key = borsh::to_vec(key).map_err(|e| StateError::Tree(e.to_string()))?;
                let node = borsh::to_vec(node).map_err(|e| StateError::Tree(e.to_string()))?;
                nodes.insert(key.as_slice(), node.as_slice())?;
            }
            let mut values = txn.open_table(VALUES)?;
            for ((version, key_hash), value) in pending.batch.node_batch.values() {
                let key = value_key(*key_hash, *version);
                let stored = match value {
                    Some(value) => [&[1u8][..], value].concat(),
                    None => vec![0u8],
                };
                values.insert(key.as_slice(), stored.as_slice())?;
            }
            let mut preimages = txn.open_table(PREIMAGES)?;
            for (key, value) in &pending.changes {
                if value.is_some() {
                    preimages.insert(KeyHash::with::<Sha256>(key).0.as_slice(), key.as_slice())?;
                }
            }
            let mut latest = txn.open_table(LATEST)?;
            for (key, value) in &pending.changes {
                match value {
                    Some(value) => latest.insert(key.as_slice(), value.as_slice())?,
                    None => latest.remove(key.as_slice())?,
                };
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_HEIGHT, pending.height.to_be_bytes().as_slice())?;
            meta.insert(META_APP_HASH, pending.app_hash.as_slice())?;
        }
        extra(&txn)?;
        txn.commit()?;
        Ok(Committed {
            height: pending.height,
            app_hash: pending.app_hash,
        })
    }

    /// The value of `key` after block `height` (any committed height).
    pub fn get_at(&self, key: &[u8], height: u64) -> Result<Option<Vec<u8>>, StateError> {
        self.check_height(height)?;
        let view = TreeView::open(&self.db)?;
        Sha256Jmt::new(&view)
            .get(KeyHash::with::<Sha256>(key), height)
            .map_err(|e| StateError::Tree(e.to_string()))
    }

    /// The value of `key` after block `height` with an ICS-23 proof of (non-)existence against
    /// that height's app hash.
    pub fn get_with_proof(
        &self,
        key: &[u8],
        height: u64,
    ) -> Result<(Option<Vec<u8>>, ics23::CommitmentProof), StateError> {
        self.check_height(height)?;
        let view = TreeView::open(&self.db)?;
        Sha256Jmt::new(&view)
            .get_with_ics23_proof(key.to_vec(), height)
            .map_err(|e| StateError::Tree(e.to_string()))
    }

    /// The app hash committed at `height`.
    pub fn root_at(&self, height: u64) -> Result<[u8; 32], StateError> {
        self.check_height(height)?;
        let view = TreeView::open(&self.db)?;
        let root: RootHash = Sha256Jmt::new(&view)
            .get_root_hash(height)
            .map_err(|e| StateError::Tree(e.to_string()))?;
        Ok(root.0)
    }

    /// A read view of the state after block `height`; point reads only.
    pub fn at(&self, height: u64) -> Result<HistoricalState, StateError> {
        self.check_height(height)?;
        Ok(HistoricalState {
            view: TreeView::open(&self.db)?,
            height,
        })
    }

    fn check_height(&self, height: u64) -> Result<(), StateError> {
        match self.committed()? {
            Some(committed) if height <= committed.height => Ok(()),
            committed => Err(StateError::HeightUnavailable {
                requested: height,
                latest: committed.map_or(0, |c| c.height),
            }),
        }
    }
}

fn value_key(key_hash: KeyHash, version: Version) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(&key_hash.0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// A read view of the latest committed values (the ordered side table).
///
/// A failed read is also latched in the snapshot: code above it (a contract, a module) may
/// turn the error into an ordinary transaction failure, but a node that could not read its
/// state must not commit a block on that basis — block execution checks `fault` and halts.
pub struct Snapshot {
    latest: ReadOnlyTable<&'static [u8], &'static [u8]>,
    fault: OnceLock<String>,
}

impl Snapshot {
    /// The first storage failure any read through this snapshot hit.
    pub fn fault(&self) -> Option<&str> {
        self.fault.get().map(String::as_str)
    }

    fn latch<T>(&self, result: Result<T, StateError>) -> Result<T, StateError> {
        if let Err(e) = &result {
            let _ = self.fault.set(e.to_string());
        }
        result
    }
}

impl StateRead for Snapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.latch(
            self.latest
                .get(key)
                .map(|v| v.map(|v| v.value().to_vec()))
                .map_err(StateError::from),
        )
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<crate::state::Entries, StateError> {
        if range_is_empty(start, end) {
            return Ok(vec![]);
        }
        let entries = self
            .entries(start, end)
            .and_then(|entries| entries.map(owned).collect());
        self.latch(entries)
    }

    fn seek(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<Option<Entry>, StateError> {
        if range_is_empty(start, end) {
            return Ok(None);
        }
        let entry = self.entries(start, end).and_then(|mut entries| {
            let entry = match direction {
                Direction::Ascending => entries.next(),
                Direction::Descending => entries.next_back(),
            };
            entry.map(owned).transpose()
        });
        self.latch(entry)
    }
}

type Stored<'a> = redb::AccessGuard<'a, &'static [u8]>;

/// An entry read from a table, copied out of the read transaction.
fn owned(entry: Result<(Stored<'_>, Stored<'_>), redb::StorageError>) -> Result<Entry, StateError> {
    let (key, value) = entry?;
    Ok((key.value().to_vec(), value.value().to_vec()))
}

impl Snapshot {
    fn entries(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<redb::Range<'_, &'static [u8], &'static [u8]>, StateError> {
        Ok(match end {
            Some(end) => self.latest.range::<&[u8]>(start..end)?,
            None => self.latest.range::<&[u8]>(start..)?,
        })
    }
}

/// The state after a past block, read from the Merkle tree. Range scans need the latest
/// ordered table, so they are refused here.
pub struct HistoricalState {
    view: TreeView,
    height: u64,
}

impl StateRead for HistoricalState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Sha256Jmt::new(&self.view)
            .get(KeyHash::with::<Sha256>(key), self.height)
            .map_err(|e| StateError::Tree(e.to_string()))
    }

    fn range(
        &self,
        _start: &[u8],
        _end: Option<&[u8]>,
    ) -> Result<crate::state::Entries, StateError> {
        Err(StateError::HistoricalRange {
            height: self.height,
        })
    }
}

/// The Merkle tree as stored, read through one redb read transaction.
struct TreeView {
    nodes: ReadOnlyTable<&'static [u8], &'static [u8]>,
    values: ReadOnlyTable<&'static [u8], &'static [u8]>,
    preimages: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl TreeView {
    fn open(db: &Database) -> Result<Self, StateError> {
        let txn = db.begin_read()?;
        Ok(TreeView {
            nodes: txn.open_table(NODES)?,
            values: txn.open_table(VALUES)?,
            preimages: txn.open_table(PREIMAGES)?,
        })
    }
}

impl HasPreimage for TreeView {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .preimages
            .get(key_hash.0.as_slice())?
            .map(|v| v.value().to_vec()))
    }
}

impl TreeReader for TreeView {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let key = borsh::to_vec(node_key)?;
        match self.nodes.get(key.as_slice())? {
            Some(bytes) => Ok(Some(borsh::from_slice(bytes.value())?)),
            None => Ok(None),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let start = value_key(key_hash, 0);
        let end = value_key(key_hash, max_version);
        let last = self
            .values
            .range::<&[u8]>(start.as_slice()..=end.as_slice())?
            .next_back();
        match last {
            Some(entry) => {
                let (_, stored) = entry?;
                let stored = stored.value();
                Ok(if stored[0] == 1 {
                    Some(stored[1..].to_vec())
                } else {
                    None
                })
            }
            None => Ok(None),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("state sync restore is not supported by this store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Overlay, StateWrite};

    fn temp_storage(name: &str) -> (Storage, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("nesa-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Storage::open(&dir.join("state.redb")).unwrap(), dir)
    }

    fn commit(storage: &Storage, height: u64, writes: &[(&str, Option<&str>)]) -> Committed {
        let mut overlay = Overlay::new(());
        for (key, value) in writes {
            match value {
                Some(v) => overlay
                    .put(key.as_bytes().to_vec(), v.as_bytes().to_vec())
                    .unwrap(),
                None => overlay.delete(key.as_bytes().to_vec()).unwrap(),
            }
        }
        let pending = storage.prepare(height, overlay.into_changes()).unwrap();
        storage.commit(pending, |_| Ok(())).unwrap()
    }

    #[test]
    fn committed_values_are_readable_latest_and_historically() {
        let (storage, dir) = temp_storage("history");
        let first = commit(&storage, 1, &[("a", Some("1")), ("b", Some("2"))]);
        let second = commit(&storage, 2, &[("a", Some("3")), ("b", None)]);
        assert_ne!(first.app_hash, second.app_hash);
        assert_eq!(storage.committed().unwrap(), Some(second));
        let latest = storage.snapshot().unwrap();
        assert_eq!(latest.get(b"a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(latest.get(b"b").unwrap(), None);
        assert_eq!(storage.get_at(b"a", 1).unwrap(), Some(b"1".to_vec()));
        assert_eq!(storage.get_at(b"b", 1).unwrap(), Some(b"2".to_vec()));
        assert_eq!(storage.get_at(b"b", 2).unwrap(), None);
        assert_eq!(storage.root_at(1).unwrap(), first.app_hash);
        assert!(matches!(
            storage.get_at(b"a", 3),
            Err(StateError::HeightUnavailable { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn proofs_verify_against_the_app_hash_of_their_height() {
        let (storage, dir) = temp_storage("proofs");
        let first = commit(&storage, 1, &[("bank/x", Some("100"))]);
        commit(&storage, 2, &[("bank/x", Some("50"))]);
        let (value, proof) = storage.get_with_proof(b"bank/x", 1).unwrap();
        assert_eq!(value, Some(b"100".to_vec()));
        let spec = jmt::ics23_spec();
        assert!(ics23::verify_membership::<ics23::HostFunctionsManager>(
            &proof,
            &spec,
            &first.app_hash.to_vec(),
            b"bank/x",
            b"100"
        ));
        assert!(!ics23::verify_membership::<ics23::HostFunctionsManager>(
            &proof,
            &spec,
            &first.app_hash.to_vec(),
            b"bank/x",
            b"50"
        ));
        let (absent, proof) = storage.get_with_proof(b"bank/y", 1).unwrap();
        assert_eq!(absent, None);
        assert!(ics23::verify_non_membership::<ics23::HostFunctionsManager>(
            &proof,
            &spec,
            &first.app_hash.to_vec(),
            b"bank/y"
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reopening_the_database_keeps_the_committed_state() {
        let (storage, dir) = temp_storage("reopen");
        let committed = commit(&storage, 7, &[("k", Some("v"))]);
        drop(storage);
        let storage = Storage::open(&dir.join("state.redb")).unwrap();
        assert_eq!(storage.committed().unwrap(), Some(committed));
        assert_eq!(
            storage.snapshot().unwrap().get(b"k").unwrap(),
            Some(b"v".to_vec())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

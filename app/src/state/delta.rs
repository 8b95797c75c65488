//! Read/write access to state, and the copy-on-write overlay that makes a block, a transaction
//! or a message atomic: its writes land in the parent only when it succeeds.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::StateError;

/// Pending writes: `None` marks a deletion.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads from a view of the state.
pub trait StateRead {
    /// The value at `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// All entries with `start <= key < end` (unbounded when `end` is `None`), ascending.
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Entries, StateError>;
    /// All entries whose key starts with `prefix`, ascending.
    fn prefix(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        let end = prefix_end(prefix);
        self.range(prefix, end.as_deref())
    }
}

/// Writes to a view of the state.
pub trait StateWrite: StateRead {
    /// Sets `key` to `value`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError>;
    /// Removes `key`.
    fn delete(&mut self, key: Vec<u8>) -> Result<(), StateError>;
}

impl<T: StateRead + ?Sized> StateRead for &T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        (**self).get(key)
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Entries, StateError> {
        (**self).range(start, end)
    }
}

impl<T: StateRead + ?Sized> StateRead for &mut T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        (**self).get(key)
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Entries, StateError> {
        (**self).range(start, end)
    }
}

impl<T: StateWrite + ?Sized> StateWrite for &mut T {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        (**self).put(key, value)
    }
    fn delete(&mut self, key: Vec<u8>) -> Result<(), StateError> {
        (**self).delete(key)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Buffered writes over a parent view. Dropping it discards them; `into_changes` hands them on.
pub struct Overlay<P> {
    parent: P,
    changes: Changes,
}

impl<P: StateRead> Overlay<P> {
    /// An empty overlay over `parent`.
    pub fn new(parent: P) -> Self {
        Overlay {
            parent,
            changes: Changes::new(),
        }
    }

    /// The buffered writes, for applying to the parent.
    pub fn into_changes(self) -> Changes {
        self.changes
    }

    /// Applies writes from a finished child overlay.
    pub fn apply(&mut self, changes: Changes) {
        self.changes.extend(changes);
    }

    /// The buffered writes.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The view below this overlay.
    pub fn parent(&self) -> &P {
        &self.parent
    }
}

impl<P: StateRead> StateRead for Overlay<P> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.changes.get(key) {
            Some(change) => Ok(change.clone()),
            None => self.parent.get(key),
        }
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Entries, StateError> {
        let below = self.parent.range(start, end)?;
        let upper = match end {
            Some(end) => Bound::Excluded(end.to_vec()),
            None => Bound::Unbounded,
        };
        let mut local = self
            .changes
            .range((Bound::Included(start.to_vec()), upper))
            .peekable();
        if local.peek().is_none() {
            return Ok(below);
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = below.into_iter().collect();
        for (key, change) in local {
            match change {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

impl<P: StateRead> StateWrite for Overlay<P> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        self.changes.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> Result<(), StateError> {
        self.changes.insert(key, None);
        Ok(())
    }
}

/// An empty state, the parent of everything at genesis and in unit tests.
impl StateRead for () {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }
    fn range(&self, _start: &[u8], _end: Option<&[u8]>) -> Result<Entries, StateError> {
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_overlay_sees_parent_writes_and_shadows_them() {
        let mut block = Overlay::new(());
        block.put(b"a".to_vec(), b"1".to_vec()).unwrap();
        block.put(b"b".to_vec(), b"2".to_vec()).unwrap();
        let mut tx = Overlay::new(&block);
        tx.delete(b"a".to_vec()).unwrap();
        tx.put(b"c".to_vec(), b"3".to_vec()).unwrap();
        assert_eq!(tx.get(b"a").unwrap(), None);
        assert_eq!(tx.get(b"b").unwrap(), Some(b"2".to_vec()));
        let keys: Vec<_> = tx
            .range(b"", None)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        let changes = tx.into_changes();
        block.apply(changes);
        assert_eq!(block.get(b"a").unwrap(), None);
        assert_eq!(block.get(b"c").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn a_dropped_overlay_leaves_the_parent_untouched() {
        let mut block = Overlay::new(());
        block.put(b"k".to_vec(), b"v".to_vec()).unwrap();
        {
            let mut tx = Overlay::new(&block);
            tx.put(b"k".to_vec(), b"changed".to_vec()).unwrap();
        }
        assert_eq!(block.get(b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn prefix_scans_stop_at_the_prefix_boundary() {
        let mut state = Overlay::new(());
        for key in [&b"ab"[..], b"ab\xff", b"ac", b"b"] {
            state.put(key.to_vec(), vec![1]).unwrap();
        }
        let keys: Vec<_> = state
            .prefix(b"ab")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"ab".to_vec(), b"ab\xff".to_vec()]);
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}

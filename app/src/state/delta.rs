//! Read/write access to state, and the copy-on-write overlay that makes a block, a transaction
//! or a message atomic: its writes land in the parent only when it succeeds.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::StateError;

/// Pending writes: `None` marks a deletion.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One key-value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Which end of a key range a seek looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The smallest key in the range.
    Ascending,
    /// The largest key in the range.
    Descending,
}

/// Shrinks the range `start..end` to what lies beyond `key` in `direction` (after it when
/// ascending, before it when descending), so the next seek finds the following entry.
pub fn narrow_past(
    key: &[u8],
    direction: Direction,
    start: &mut Vec<u8>,
    end: &mut Option<Vec<u8>>,
) {
    match direction {
        Direction::Ascending => *start = [key, &[0]].concat(),
        Direction::Descending => *end = Some(key.to_vec()),
    }
}

/// True when `start <= key < end` holds for no key at all.
pub fn range_is_empty(start: &[u8], end: Option<&[u8]>) -> bool {
    end.is_some_and(|end| end <= start)
}

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
    /// The first (ascending) or last (descending) entry with `start <= key < end`, without
    /// reading the rest of the range. Views backed by ordered storage override this; the
    /// default reads the whole range.
    fn seek(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<Option<Entry>, StateError> {
        if range_is_empty(start, end) {
            return Ok(None);
        }
        let mut entries = self.range(start, end)?.into_iter();
        Ok(match direction {
            Direction::Ascending => entries.next(),
            Direction::Descending => entries.next_back(),
        })
    }
}

/// Writes to a view of the state.
pub trait StateWrite: StateRead {
    /// Sets `key` to `value`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError>;
    /// Removes `key`.
    fn delete(&mut self, key: Vec<u8>) -> Result<(), StateError>;
}

/// Shared and exclusive references read as the view they point to.
macro_rules! forward_state_read {
    ($($reference:ty),*) => {$(
        impl<T: StateRead + ?Sized> StateRead for $reference {
            fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
                (**self).get(key)
            }
            fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Entries, StateError> {
                (**self).range(start, end)
            }
            fn seek(
                &self,
                start: &[u8],
                end: Option<&[u8]>,
                direction: Direction,
            ) -> Result<Option<Entry>, StateError> {
                (**self).seek(start, end, direction)
            }
        }
    )*};
}
forward_state_read!(&T, &mut T);

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
        if range_is_empty(start, end) {
            return Ok(vec![]);
        }
        let below = self.parent.range(start, end)?;
        let mut local = self.changes.range(bounds(start, end)).peekable();
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

    /// Merges the parent's nearest entry with this overlay's nearest change, skipping keys
    /// this overlay deleted; each skipped deletion narrows the range, so the loop ends.
    fn seek(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<Option<Entry>, StateError> {
        let mut start = start.to_vec();
        let mut end = end.map(<[u8]>::to_vec);
        loop {
            if range_is_empty(&start, end.as_deref()) {
                return Ok(None);
            }
            let below = self.parent.seek(&start, end.as_deref(), direction)?;
            let mut local = self.changes.range(bounds(&start, end.as_deref()));
            let local = match direction {
                Direction::Ascending => local.next(),
                Direction::Descending => local.next_back(),
            };
            let Some((key, change)) = local else {
                return Ok(below);
            };
            let below_first = below
                .as_ref()
                .is_some_and(|(below_key, _)| match direction {
                    Direction::Ascending => below_key < key,
                    Direction::Descending => below_key > key,
                });
            if below_first {
                return Ok(below);
            }
            match change {
                Some(value) => return Ok(Some((key.clone(), value.clone()))),
                None => narrow_past(key, direction, &mut start, &mut end),
            }
        }
    }
}

fn bounds(start: &[u8], end: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let upper = match end {
        Some(end) => Bound::Excluded(end.to_vec()),
        None => Bound::Unbounded,
    };
    (Bound::Included(start.to_vec()), upper)
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

    /// Every seek over stacked overlays with writes and deletions at each level equals the
    /// first or last entry of the materialized range.
    #[test]
    fn seeks_agree_with_ranges_over_stacked_overlays() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut base = Overlay::new(());
        for _ in 0..40 {
            base.put(vec![(next() % 24) as u8], vec![1]).unwrap();
        }
        let mut middle = Overlay::new(&base);
        let mut top_ops = vec![];
        for _ in 0..40 {
            let key = vec![(next() % 24) as u8];
            if next() % 2 == 0 {
                middle.delete(key).unwrap();
            } else {
                middle.put(key, vec![2]).unwrap();
            }
            top_ops.push((vec![(next() % 24) as u8], next() % 3));
        }
        let mut top = Overlay::new(&middle);
        for (key, op) in top_ops {
            match op {
                0 => top.delete(key).unwrap(),
                _ => top.put(key, vec![3]).unwrap(),
            }
        }
        for start in 0..26u8 {
            for end in (0..26u8).map(Some).chain([None]) {
                let end = end.map(|e| vec![e]);
                let range = top.range(&[start], end.as_deref()).unwrap();
                let up = top
                    .seek(&[start], end.as_deref(), Direction::Ascending)
                    .unwrap();
                let down = top
                    .seek(&[start], end.as_deref(), Direction::Descending)
                    .unwrap();
                assert_eq!(
                    up,
                    range.first().cloned(),
                    "ascending from {start} to {end:?}"
                );
                assert_eq!(
                    down,
                    range.last().cloned(),
                    "descending from {start} to {end:?}"
                );
            }
        }
    }

    #[test]
    fn a_reversed_range_is_empty_instead_of_a_panic() {
        let mut state = Overlay::new(());
        state.put(b"a".to_vec(), vec![1]).unwrap();
        assert!(state.range(b"z", Some(b"a")).unwrap().is_empty());
        assert_eq!(
            state.seek(b"z", Some(b"a"), Direction::Descending).unwrap(),
            None
        );
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

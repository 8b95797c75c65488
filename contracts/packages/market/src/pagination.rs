//! Paging through a contract's listings, the same way in every market contract: entries
//! strictly after `start_after`, in key order, `limit` of them (10 unless asked, at most 30).

use cosmwasm_std::StdResult;
use cw_storage_plus::{Bound, PrimaryKey};

/// Entries per page when a query gives no `limit`.
pub const DEFAULT_LIMIT: u32 = 10;
/// Most entries per page, whatever the query asks (keeps every query's gas bounded).
pub const MAX_LIMIT: u32 = 30;

/// The part of a listing a query asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<K> {
    /// Entries strictly after this key.
    pub start_after: Option<K>,
    /// How many entries at most.
    pub limit: usize,
}

impl<K> Page<K> {
    /// `limit` entries after `start_after` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub fn new(start_after: Option<K>, limit: Option<u32>) -> Self {
        Page {
            start_after,
            limit: limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize,
        }
    }

    /// `limit` entries after `start_after`, `max` when not asked and at most `max`.
    pub fn up_to(start_after: Option<K>, limit: Option<u32>, max: u32) -> Self {
        Page {
            start_after,
            limit: limit.unwrap_or(max).min(max) as usize,
        }
    }

    /// The lower bound of a range over the page: strictly after `start_after`.
    pub fn min<'a>(self) -> Option<Bound<'a, K>>
    where
        K: PrimaryKey<'a>,
    {
        self.start_after.map(Bound::exclusive)
    }

    /// This page of a listing, in key order: `scan` ranges over the listing (a `Map` or a
    /// `Prefix`, `range` or `keys`) from the lower bound it is given, e.g.
    /// `page.collect(|min| KERNELS.range(storage, min, None, Order::Ascending))`.
    pub fn collect<'a, 's, T>(
        self,
        scan: impl FnOnce(Option<Bound<'a, K>>) -> Box<dyn Iterator<Item = StdResult<T>> + 's>,
    ) -> StdResult<Vec<T>>
    where
        K: PrimaryKey<'a>,
    {
        let limit = self.limit;
        scan(self.min()).take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::testing::MockStorage;
    use cosmwasm_std::Order;
    use cw_storage_plus::Map;

    use super::*;

    const NUMBERS: Map<u64, u64> = Map::new("numbers");
    const BY_OWNER: Map<(&str, u64), ()> = Map::new("by_owner");

    fn storage() -> MockStorage {
        let mut storage = MockStorage::new();
        for n in 1..=50u64 {
            NUMBERS.save(&mut storage, n, &(n * n)).unwrap();
            let owner = if n % 2 == 0 { "even" } else { "odd" };
            BY_OWNER.save(&mut storage, (owner, n), &()).unwrap();
        }
        storage
    }

    #[test]
    fn a_page_starts_strictly_after_its_key_and_holds_the_default_limit() {
        let storage = storage();
        let page = Page::new(Some(3), None)
            .collect(|min| NUMBERS.range(&storage, min, None, Order::Ascending))
            .unwrap();
        assert_eq!(page.len(), DEFAULT_LIMIT as usize);
        assert_eq!(page[0], (4, 16));
    }

    #[test]
    fn a_limit_above_the_maximum_is_clamped() {
        let storage = storage();
        let page = Page::new(None, Some(1000))
            .collect(|min| NUMBERS.range(&storage, min, None, Order::Ascending))
            .unwrap();
        assert_eq!(page.len(), MAX_LIMIT as usize);
        assert_eq!(Page::<u64>::up_to(None, None, 100).limit, 100);
        assert_eq!(Page::<u64>::up_to(None, Some(500), 100).limit, 100);
    }

    #[test]
    fn prefix_pages_walk_one_owner_only() {
        let storage = storage();
        let even = BY_OWNER.prefix("even");
        let keys = Page::new(Some(44), None)
            .collect(|min| even.keys(&storage, min, None, Order::Ascending))
            .unwrap();
        assert_eq!(keys, vec![46, 48, 50]);
        let odd = BY_OWNER.prefix("odd");
        let entries = Page::new(None, Some(2))
            .collect(|min| odd.range(&storage, min, None, Order::Ascending))
            .unwrap();
        assert_eq!(entries, vec![(1, ()), (3, ())]);
    }
}

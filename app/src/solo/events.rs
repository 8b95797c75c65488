//! Finding transactions and blocks by their events, as CometBFT's kv indexer does: every
//! indexed attribute of a transaction's events (and `tx.height`, `tx.hash`), and of a block's
//! `finalize_block_events` (and `block.height`), is a key of the solo block store, written in
//! the block's commit; `tx_search`, `block_search` and the SDK's `GetTxsEvent` evaluate
//! CometBFT's query language over them (`message.sender='nesa1…' AND tx.height>=5`).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use redb::{ReadableTable, TableDefinition};
use tendermint_proto::v0_38::abci::Event;

use crate::state::{BlockWriter, StateError};

/// `composite key ‖ value ‖ height ‖ index` (each length-prefixed) → nothing.
pub(super) const TX_EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("solo_tx_events");
/// `composite key ‖ value ‖ height` → nothing.
pub(super) const BLOCK_EVENTS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("solo_block_events");

/// Most index entries one search may read: a query that would read more must be narrowed.
pub const MAX_SCANNED: usize = 200_000;

/// Where a transaction is: height, then index in its block (the order results come in).
pub type TxPosition = (u64, u32);

/// How a condition compares an attribute's value with its operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Exists,
}

/// A condition's operand: a quoted string or a number.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Text(String),
    Number(f64),
    None,
}

/// One `key op operand` of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub key: String,
    pub op: Op,
    pub operand: Operand,
}

/// A query of CometBFT's language: conditions joined by `AND`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventQuery {
    pub conditions: Vec<Condition>,
}

/// Why a query cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid query: {0}")]
    Invalid(String),
    #[error("the query reads more than {MAX_SCANNED} index entries: add a narrower condition (an exact value, or a height range)")]
    TooBroad,
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<redb::StorageError> for SearchError {
    fn from(e: redb::StorageError) -> Self {
        SearchError::State(StateError::Storage(e.to_string()))
    }
}

impl From<redb::TableError> for SearchError {
    fn from(e: redb::TableError) -> Self {
        SearchError::State(StateError::Storage(e.to_string()))
    }
}

impl std::str::FromStr for EventQuery {
    type Err = SearchError;

    fn from_str(query: &str) -> Result<Self, SearchError> {
        let invalid = |why: String| SearchError::Invalid(format!("{why} in `{query}`"));
        let mut conditions = Vec::new();
        let mut rest = query.trim();
        loop {
            let key_end = rest
                .find(|c: char| !(c.is_alphanumeric() || "._-/@:".contains(c)))
                .unwrap_or(rest.len());
            let key = &rest[..key_end];
            if key.is_empty() {
                return Err(invalid("a condition must start with an event key".into()));
            }
            rest = rest[key_end..].trim_start();
            let (op, after) = if let Some(after) = rest.strip_prefix("<=") {
                (Op::Le, after)
            } else if let Some(after) = rest.strip_prefix(">=") {
                (Op::Ge, after)
            } else if let Some(after) = rest.strip_prefix('<') {
                (Op::Lt, after)
            } else if let Some(after) = rest.strip_prefix('>') {
                (Op::Gt, after)
            } else if let Some(after) = rest.strip_prefix('=') {
                (Op::Eq, after)
            } else if let Some(after) = rest.strip_prefix("CONTAINS") {
                (Op::Contains, after)
            } else if let Some(after) = rest.strip_prefix("EXISTS") {
                (Op::Exists, after)
            } else {
                return Err(invalid(format!(
                    "`{key}` must be followed by =, <, <=, >, >=, CONTAINS or EXISTS"
                )));
            };
            rest = after.trim_start();
            let operand = if op == Op::Exists {
                Operand::None
            } else if let Some(quoted) = rest.strip_prefix('\'') {
                let end = quoted
                    .find('\'')
                    .ok_or_else(|| invalid("a quoted value is not closed".into()))?;
                rest = &quoted[end + 1..];
                Operand::Text(quoted[..end].to_owned())
            } else if rest.starts_with("TIME") || rest.starts_with("DATE") {
                return Err(invalid(
                    "TIME and DATE operands are not supported by this node".into(),
                ));
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                    .unwrap_or(rest.len());
                let number = rest[..end]
                    .parse::<f64>()
                    .map_err(|_| invalid(format!("`{key}` needs a quoted string or a number")))?;
                rest = &rest[end..];
                Operand::Number(number)
            };
            if op == Op::Contains && !matches!(operand, Operand::Text(_)) {
                return Err(invalid("CONTAINS needs a quoted string".into()));
            }
            if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge)
                && matches!(operand, Operand::Text(_))
            {
                return Err(invalid(format!(
                    "`{key}`: <, <=, > and >= compare numbers, not quoted strings"
                )));
            }
            // Hashes are indexed in CometBFT's uppercase hex; a query may write them in either case.
            let operand = match operand {
                Operand::Text(text) if key == "tx.hash" => Operand::Text(text.to_ascii_uppercase()),
                other => other,
            };
            conditions.push(Condition {
                key: key.to_owned(),
                op,
                operand,
            });
            rest = rest.trim_start();
            if rest.is_empty() {
                return Ok(EventQuery { conditions });
            }
            rest = rest
                .strip_prefix("AND")
                .filter(|after| after.starts_with(char::is_whitespace))
                .ok_or_else(|| invalid("conditions must be joined by AND".into()))?
                .trim_start();
        }
    }
}

impl Condition {
    /// Whether an attribute's `value` satisfies the condition.
    pub fn accepts(&self, value: &str) -> bool {
        match (&self.operand, self.op) {
            (_, Op::Exists) => true,
            (Operand::Text(text), Op::Contains) => value.contains(text.as_str()),
            (Operand::Text(text), Op::Eq) => value == text,
            (Operand::Text(_), _) => false,
            // As CometBFT: the number a value starts with (`150unes` is 150).
            (Operand::Number(number), op) => leading_number(value)
                .and_then(|v| v.partial_cmp(number))
                .is_some_and(|ordering| ordered(ordering, op)),
            (Operand::None, _) => false,
        }
    }

    /// The operand as the exact text an equal attribute holds, when one lookup finds it: a
    /// string, or a height (indexed as plain decimal; other numbers may carry a unit).
    fn exact(&self) -> Option<String> {
        match (&self.operand, self.op) {
            (Operand::Text(text), Op::Eq) => Some(text.clone()),
            (Operand::Number(n), Op::Eq)
                if self.key.ends_with(".height") && n.fract() == 0.0 && (0.0..1e15).contains(n) =>
            {
                Some(format!("{}", *n as u64))
            }
            _ => None,
        }
    }
}

/// The decimal number `value` starts with, if any (`-12.5abc` → -12.5).
fn leading_number(value: &str) -> Option<f64> {
    let value = value.trim_start();
    let digits_from = usize::from(value.starts_with('-'));
    let mut end = digits_from;
    let bytes = value.as_bytes();
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end == digits_from {
        return None;
    }
    if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    value[..end].parse().ok()
}

fn ordered(ordering: Ordering, op: Op) -> bool {
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Contains | Op::Exists => false,
    }
}

fn push_part(key: &mut Vec<u8>, part: &[u8]) {
    key.extend_from_slice(&(part.len() as u32).to_be_bytes());
    key.extend_from_slice(part);
}

/// The index key's prefix for `composite` (and `value`, when given).
fn prefix(composite: &str, value: Option<&str>) -> Vec<u8> {
    let mut key = Vec::with_capacity(composite.len() + 8);
    push_part(&mut key, composite.as_bytes());
    if let Some(value) = value {
        push_part(&mut key, value.as_bytes());
    }
    key
}

/// Splits an index key after `composite`'s prefix into the value and the position bytes.
fn split_value(rest: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let value = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
    Some((value, &rest[4 + len..]))
}

/// The attributes an event contributes to the index: `type.key` and value, for those marked
/// for indexing (as CometBFT indexes them).
fn indexed(events: &[Event]) -> impl Iterator<Item = (String, &str)> + '_ {
    events.iter().flat_map(|event| {
        event
            .attributes
            .iter()
            .filter(|a| a.index && !event.r#type.is_empty() && !a.key.is_empty())
            .map(move |a| (format!("{}.{}", event.r#type, a.key), a.value.as_str()))
    })
}

/// Adds a block's transactions and block events to the index, inside its commit.
pub(super) fn write(
    txn: BlockWriter<'_>,
    height: u64,
    txs: &[(String, &[Event])],
    block_events: &[Event],
) -> Result<(), StateError> {
    let mut tx_table = txn.open_table(TX_EVENTS)?;
    for (index, (hash, events)) in txs.iter().enumerate() {
        let position = [
            height.to_be_bytes().as_slice(),
            &(index as u32).to_be_bytes(),
        ]
        .concat();
        let height_text = height.to_string();
        let reserved = [
            ("tx.height".to_owned(), height_text.as_str()),
            ("tx.hash".to_owned(), hash.as_str()),
        ];
        for (composite, value) in reserved.into_iter().chain(indexed(events)) {
            let mut key = prefix(&composite, Some(value));
            key.extend_from_slice(&position);
            tx_table.insert(key.as_slice(), b"".as_slice())?;
        }
    }
    let mut block_table = txn.open_table(BLOCK_EVENTS)?;
    let height_text = height.to_string();
    let reserved = [("block.height".to_owned(), height_text.as_str())];
    for (composite, value) in reserved.into_iter().chain(indexed(block_events)) {
        let mut key = prefix(&composite, Some(value));
        key.extend_from_slice(&height.to_be_bytes());
        block_table.insert(key.as_slice(), b"".as_slice())?;
    }
    Ok(())
}

/// The transactions of `table` (the [`TX_EVENTS`] index) that satisfy `query`.
pub(super) fn search_txs(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    query: &EventQuery,
) -> Result<BTreeSet<TxPosition>, SearchError> {
    search(
        table,
        query,
        tx_position,
        ("tx.height", |at: &TxPosition| at.0),
    )
}

/// The block heights of `table` (the [`BLOCK_EVENTS`] index) that satisfy `query`.
pub(super) fn search_blocks(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    query: &EventQuery,
) -> Result<BTreeSet<u64>, SearchError> {
    search(
        table,
        query,
        block_position,
        ("block.height", |at: &u64| *at),
    )
}

/// The positions whose entries satisfy every condition of `query`, in `table`, decoded by
/// `position` from each key's trailing bytes. Exact conditions come first (each one range of
/// the index); a condition on the height (`height.0`) then filters what was found by the
/// height each position holds (`height.1`), without reading the index.
fn search<T: Ord + Copy>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    query: &EventQuery,
    position: impl Fn(&[u8]) -> Option<T>,
    height: (&str, impl Fn(&T) -> u64),
) -> Result<BTreeSet<T>, SearchError> {
    let (height_key, height_of) = height;
    let mut scanned = 0usize;
    let mut found: Option<BTreeSet<T>> = None;
    let mut conditions: Vec<&Condition> = query.conditions.iter().collect();
    conditions.sort_by_key(|c| match (c.exact().is_some(), c.key == height_key) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => 2,
    });
    for condition in conditions {
        if condition.key == height_key {
            if let Some(candidates) = found.as_mut() {
                candidates.retain(|at| condition.accepts(&height_of(at).to_string()));
                if candidates.is_empty() {
                    break;
                }
                continue;
            }
        }
        let exact = condition.exact();
        let start = prefix(&condition.key, exact.as_deref());
        let key_prefix_len = prefix(&condition.key, None).len();
        let mut matches = BTreeSet::new();
        for entry in table.range(start.as_slice()..)? {
            let (key, _) = entry?;
            let key = key.value();
            if !key.starts_with(&start) {
                break;
            }
            scanned += 1;
            if scanned > MAX_SCANNED {
                return Err(SearchError::TooBroad);
            }
            let Some((value, rest)) = split_value(&key[key_prefix_len..]) else {
                continue;
            };
            if !condition.accepts(value) {
                continue;
            }
            if let Some(at) = position(rest) {
                if found.as_ref().is_none_or(|f| f.contains(&at)) {
                    matches.insert(at);
                }
            }
        }
        found = Some(matches);
        if found.as_ref().is_some_and(BTreeSet::is_empty) {
            break;
        }
    }
    Ok(found.unwrap_or_default())
}

/// A transaction position from an index key's trailing bytes.
fn tx_position(rest: &[u8]) -> Option<TxPosition> {
    let height = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let index = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
    Some((height, index))
}

/// A block height from an index key's trailing bytes.
fn block_position(rest: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;

    fn query(text: &str) -> EventQuery {
        text.parse().unwrap()
    }

    #[test]
    fn queries_parse_as_cometbft_writes_them() {
        let parsed = query("message.sender='nesa1abc' AND tx.height>=5 AND wasm.query_id EXISTS");
        assert_eq!(parsed.conditions.len(), 3);
        assert_eq!(
            parsed.conditions[0].operand,
            Operand::Text("nesa1abc".into())
        );
        assert_eq!(parsed.conditions[1].op, Op::Ge);
        assert_eq!(parsed.conditions[1].operand, Operand::Number(5.0));
        assert_eq!(parsed.conditions[2].op, Op::Exists);
        let contains = query("transfer.recipient CONTAINS 'nesa1'");
        assert_eq!(contains.conditions[0].op, Op::Contains);
        assert_eq!(
            query("tx.height = 7").conditions[0].operand,
            Operand::Number(7.0)
        );
        assert_eq!(
            query("send_packet.packet_data='{\"a\":1} AND b=2'").conditions[0].operand,
            Operand::Text("{\"a\":1} AND b=2".into()),
            "a quoted value may hold AND and ="
        );
    }

    #[test]
    fn malformed_queries_are_refused_with_a_reason() {
        for bad in [
            "",
            "=5",
            "a.b",
            "a.b='open",
            "a.b=5 OR c.d=6",
            "a.b=5 AND",
            "a.b CONTAINS 5",
            "a.b > TIME 2020-01-01T00:00:00Z",
            "a.b=five",
            "a.b>'x'",
        ] {
            assert!(bad.parse::<EventQuery>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conditions_compare_numbers_as_numbers_and_text_as_text() {
        let c = |text: &str| query(text).conditions.remove(0);
        assert!(c("a.b>9").accepts("10"));
        assert!(!c("a.b>9").accepts("8"));
        assert!(!c("a.b>9").accepts("ten"));
        assert!(
            c("a.b>=100").accepts("150unes"),
            "the leading number, as CometBFT"
        );
        assert!(c("a.b=1.5").accepts("1.50"));
        assert!(c("a.b<0").accepts("-3"));
        assert!(c("a.b=1").accepts("1"));
        assert!(c("a.b='x'").accepts("x"));
        assert!(!c("a.b='x'").accepts("xy"));
        assert!(c("a.b CONTAINS 'y'").accepts("xyz"));
        assert!(c("a.b EXISTS").accepts(""));
    }

    fn event(kind: &str, attributes: &[(&str, &str, bool)]) -> Event {
        Event {
            r#type: kind.into(),
            attributes: attributes
                .iter()
                .map(
                    |(key, value, index)| tendermint_proto::v0_38::abci::EventAttribute {
                        key: (*key).into(),
                        value: (*value).into(),
                        index: *index,
                    },
                )
                .collect(),
        }
    }

    #[test]
    fn the_index_finds_transactions_and_blocks_as_cometbfts_kv_indexer() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let send = |to: &str| {
            vec![
                event("message", &[("sender", "nesa1alice", true)]),
                event(
                    "transfer",
                    &[("recipient", to, true), ("memo", "secret", false)],
                ),
            ]
        };
        let (five_a, five_b, seven) = (send("nesa1bob"), send("nesa1carol"), send("nesa1bob"));
        let txn = db.begin_write().unwrap();
        write(
            &txn,
            5,
            &[("AA".into(), &five_a[..]), ("BB".into(), &five_b[..])],
            &[event("mint", &[("amount", "10", true)])],
        )
        .unwrap();
        write(&txn, 7, &[("CC".into(), &seven[..])], &[]).unwrap();
        txn.commit().unwrap();

        let read = db.begin_read().unwrap();
        let txs = read.open_table(TX_EVENTS).unwrap();
        let find = |q: &str| -> Vec<TxPosition> {
            search_txs(&txs, &query(q)).unwrap().into_iter().collect()
        };
        assert_eq!(find("transfer.recipient='nesa1bob'"), [(5, 0), (7, 0)]);
        assert_eq!(
            find("message.sender='nesa1alice'"),
            [(5, 0), (5, 1), (7, 0)]
        );
        assert_eq!(
            find("message.sender='nesa1alice' AND tx.height>5"),
            [(7, 0)]
        );
        assert_eq!(
            find("transfer.recipient='nesa1bob' AND tx.height<=5"),
            [(5, 0)]
        );
        assert_eq!(find("tx.height=5"), [(5, 0), (5, 1)]);
        assert_eq!(find("tx.hash='BB'"), [(5, 1)]);
        assert_eq!(
            find("tx.hash='bb'"),
            [(5, 1)],
            "hashes match in either case"
        );
        assert_eq!(
            find("tx.height>=5 AND transfer.recipient CONTAINS 'bob'"),
            [(5, 0), (7, 0)]
        );
        assert_eq!(find("transfer.recipient CONTAINS 'carol'"), [(5, 1)]);
        assert_eq!(find("transfer.recipient EXISTS").len(), 3);
        assert!(
            find("transfer.memo='secret'").is_empty(),
            "not marked for indexing"
        );
        assert!(find("transfer.recipient='nesa1dave'").is_empty());
        assert!(find("transfer.recipient='nesa1bob' AND message.sender='x'").is_empty());

        let blocks = read.open_table(BLOCK_EVENTS).unwrap();
        let find_blocks = |q: &str| -> Vec<u64> {
            search_blocks(&blocks, &query(q))
                .unwrap()
                .into_iter()
                .collect()
        };
        assert_eq!(find_blocks("mint.amount>=10"), [5]);
        assert_eq!(find_blocks("block.height>4"), [5, 7]);
    }
}

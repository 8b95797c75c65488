//! Every storage item of the probe, each with its key.

use cosmwasm_std::Addr;
use cw_storage_plus::{Item, Map};

/// Set at instantiation (defaults to the sender).
pub const OWNER: Item<Addr> = Item::new("owner");
/// Incremented by `increment`.
pub const COUNTER: Item<u64> = Item::new("counter");
/// Free-form entries: `set`, plus what replies and queries record
/// (`reply:<id>`, `child`, `queried`).
pub const ENTRIES: Map<&str, String> = Map::new("entries");
/// Note of the last migration.
pub const MIGRATED: Item<String> = Item::new("migrated");

/// Entry key under which the reply for submessage `id` records its outcome.
pub fn reply_key(id: u64) -> String {
    format!("reply:{id}")
}

/// Entry key of the address of the contract made by `instantiate_child`.
pub const CHILD_KEY: &str = "child";
/// Entry key of the raw JSON answer of `query_other`.
pub const QUERIED_KEY: &str = "queried";

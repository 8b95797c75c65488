//! Query handlers.

use cosmwasm_std::{to_json_binary, Binary, Deps, Order, StdResult};
use cw_storage_plus::Bound;

use crate::msg::{
    BalanceResponse, CountResponse, Entry, ListResponse, MigratedResponse, OwnerResponse,
    ValueResponse,
};
use crate::state::{COUNTER, ENTRIES, MIGRATED, OWNER};

const DEFAULT_LIMIT: u32 = 30;
const MAX_LIMIT: u32 = 100;

pub fn get(deps: Deps, key: String) -> StdResult<Binary> {
    let value = ENTRIES.may_load(deps.storage, &key)?;
    to_json_binary(&ValueResponse { value })
}

pub fn count(deps: Deps) -> StdResult<Binary> {
    let count = COUNTER.load(deps.storage)?;
    to_json_binary(&CountResponse { count })
}

/// Ascending range over the entries: exercises the host's ordered iterator.
pub fn list(deps: Deps, start_after: Option<String>, limit: Option<u32>) -> StdResult<Binary> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize;
    let start = start_after.as_deref().map(Bound::exclusive);
    let entries = ENTRIES
        .range(deps.storage, start, None, Order::Ascending)
        .take(limit)
        .map(|item| item.map(|(key, value)| Entry { key, value }))
        .collect::<StdResult<Vec<_>>>()?;
    to_json_binary(&ListResponse { entries })
}

pub fn balance(deps: Deps, address: String, denom: String) -> StdResult<Binary> {
    let amount = deps.querier.query_balance(address, denom)?;
    to_json_binary(&BalanceResponse { amount })
}

pub fn migrated(deps: Deps) -> StdResult<Binary> {
    let note = MIGRATED.may_load(deps.storage)?;
    to_json_binary(&MigratedResponse { note })
}

pub fn owner(deps: Deps) -> StdResult<Binary> {
    let owner = OWNER.load(deps.storage)?.into_string();
    to_json_binary(&OwnerResponse { owner })
}

/// Every raw entry of the contract's storage, `rounds` times over.
pub fn scan(deps: Deps, rounds: u32) -> StdResult<Binary> {
    let mut count = 0u64;
    for _ in 0..rounds {
        count += deps.storage.range(None, None, Order::Ascending).count() as u64;
    }
    to_json_binary(&CountResponse { count })
}

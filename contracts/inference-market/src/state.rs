//! Every storage item of the market, each with its key.

use cosmwasm_schema::cw_serde;
use cosmwasm_std::{Addr, StdResult, Storage};
use cw_storage_plus::{Item, Map};
use nesa_market::market::{Assignment, InferenceQuery, MarketParams, QueryId, QueryStatus, Ticket};
use nesa_market::Hash32;

/// The contracts the market talks to and who administers it.
#[cw_serde]
pub struct Config {
    pub admin: Addr,
    pub registry: Addr,
    pub staking: Addr,
    pub treasury: Addr,
}

pub const CONFIG: Item<Config> = Item::new("config");
pub const PARAMS: Item<MarketParams> = Item::new("params");
/// Hash chain over every salt that opened its commitment: part of each assignment seed.
pub const RUNNING_SEED: Item<Hash32> = Item::new("running_seed");
/// Queries submitted so far; the next id is this + 1.
pub const QUERY_COUNT: Item<u64> = Item::new("query_count");
/// Every query by id.
pub const QUERIES: Map<QueryId, InferenceQuery> = Map::new("queries");
/// Each assigned node's commitment, reveal and outcome.
pub const ASSIGNMENTS: Map<(QueryId, &Addr), Assignment> = Map::new("assignments");
/// Verified sortition tickets of queries not yet drawn (removed at the draw).
pub const TICKETS: Map<(QueryId, &Addr), Ticket> = Map::new("tickets");
/// Index user → query ids.
pub const QUERIES_BY_USER: Map<(&Addr, QueryId), ()> = Map::new("queries_by_user");
/// Index assigned node → query ids.
pub const QUERIES_BY_NODE: Map<(&Addr, QueryId), ()> = Map::new("queries_by_node");
/// Index stored status (`pending`, …) → query ids.
pub const QUERIES_BY_STATUS: Map<(&str, QueryId), ()> = Map::new("queries_by_status");

/// Saves a query, moving it in the status index when its status changed from `previous`.
pub fn save_query(
    storage: &mut dyn Storage,
    query: &InferenceQuery,
    previous: Option<QueryStatus>,
) -> StdResult<()> {
    if previous != Some(query.status) {
        if let Some(previous) = previous {
            QUERIES_BY_STATUS.remove(storage, (previous.as_str(), query.id));
        }
        QUERIES_BY_STATUS.save(storage, (query.status.as_str(), query.id), &())?;
    }
    QUERIES.save(storage, query.id, query)
}

/// The tickets entered in a query still drawing, in address order.
pub fn tickets(storage: &dyn Storage, query_id: QueryId) -> StdResult<Vec<Ticket>> {
    TICKETS
        .prefix(query_id)
        .range(storage, None, None, cosmwasm_std::Order::Ascending)
        .map(|item| item.map(|(_, ticket)| ticket))
        .collect()
}

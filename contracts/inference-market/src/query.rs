//! Query handlers.

use cosmwasm_std::{to_json_binary, Addr, Binary, Coin, Deps, Env, Order, StdError, StdResult};
use cw_storage_plus::{Map, Prefix};
use nesa_market::market::{
    ConfigResponse, QueriesResponse, QueryId, QueryResponse, QueryStatus, QuoteResponse,
};
use nesa_market::pagination::Page;
use nesa_market::registry::KernelId;

use crate::lifecycle::phase;
use crate::state::tickets;
use crate::state::{
    ASSIGNMENTS, CONFIG, PARAMS, QUERIES, QUERIES_BY_NODE, QUERIES_BY_STATUS, QUERIES_BY_USER,
    QUERY_COUNT, RUNNING_SEED,
};
use crate::submit::{load_active_kernel, max_payment, redundancy};

pub fn query(deps: Deps, env: Env, id: QueryId) -> StdResult<Binary> {
    let query = QUERIES
        .may_load(deps.storage, id)?
        .ok_or_else(|| StdError::not_found(format!("query {id}")))?;
    let assignments = query
        .nodes
        .iter()
        .map(|node| ASSIGNMENTS.load(deps.storage, (id, node)))
        .collect::<StdResult<_>>()?;
    let phase = phase(&query, env.block.height);
    let tickets = tickets(deps.storage, id)?;
    to_json_binary(&QueryResponse {
        query,
        assignments,
        phase,
        tickets,
    })
}

pub fn by_user(
    deps: Deps,
    user: String,
    start_after: Option<QueryId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let user = deps.api.addr_validate(&user)?;
    by_index(deps, QUERIES_BY_USER, &user, start_after, limit)
}

pub fn by_node(
    deps: Deps,
    node: String,
    start_after: Option<QueryId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let node = deps.api.addr_validate(&node)?;
    by_index(deps, QUERIES_BY_NODE, &node, start_after, limit)
}

pub fn by_status(
    deps: Deps,
    status: QueryStatus,
    start_after: Option<QueryId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let index = QUERIES_BY_STATUS.prefix(status.as_str());
    queries_page(deps, &index, start_after, limit)
}

fn by_index(
    deps: Deps,
    index: Map<(&Addr, QueryId), ()>,
    key: &Addr,
    start_after: Option<QueryId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    queries_page(deps, &index.prefix(key), start_after, limit)
}

/// The queries whose ids `index` lists, one page of them.
fn queries_page(
    deps: Deps,
    index: &Prefix<QueryId, (), QueryId>,
    start_after: Option<QueryId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let queries = Page::new(start_after, limit)
        .collect(|min| index.keys(deps.storage, min, None, Order::Ascending))?
        .into_iter()
        .map(|id| QUERIES.load(deps.storage, id))
        .collect::<StdResult<_>>()?;
    to_json_binary(&QueriesResponse { queries })
}

pub fn quote(
    deps: Deps,
    kernel_id: KernelId,
    input_tokens: u32,
    max_output_tokens: u32,
    requested: Option<u8>,
) -> StdResult<Binary> {
    let config = CONFIG.load(deps.storage)?;
    let params = PARAMS.load(deps.storage)?;
    let as_std = |e: crate::ContractError| StdError::generic_err(e.to_string());
    let kernel = load_active_kernel(deps.querier, &config.registry, kernel_id).map_err(as_std)?;
    let k = redundancy(&params, &kernel, requested).map_err(as_std)?;
    let per_node = max_payment(&kernel, input_tokens, max_output_tokens).map_err(as_std)?;
    let escrow = per_node.checked_mul(k.into()).map_err(StdError::from)?;
    to_json_binary(&QuoteResponse {
        redundancy: k,
        per_node,
        escrow: Coin {
            denom: params.denom,
            amount: escrow,
        },
    })
}

pub fn params(deps: Deps) -> StdResult<Binary> {
    to_json_binary(&PARAMS.load(deps.storage)?)
}

pub fn config(deps: Deps) -> StdResult<Binary> {
    let config = CONFIG.load(deps.storage)?;
    to_json_binary(&ConfigResponse {
        admin: config.admin,
        registry: config.registry,
        staking: config.staking,
        treasury: config.treasury,
        query_count: QUERY_COUNT.load(deps.storage)?,
        running_seed: RUNNING_SEED.load(deps.storage)?.to_vec().into(),
    })
}

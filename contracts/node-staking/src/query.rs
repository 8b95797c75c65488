//! Query handlers.

use cosmwasm_std::{to_json_binary, Addr, Binary, Deps, Order, StdError, StdResult};
use cw_storage_plus::Bound;
use nesa_market::registry::KernelId;
use nesa_market::staking::{
    Candidate, CandidatesResponse, NodeResponse, NodesResponse, CANDIDATES_PAGE,
};

use crate::profile::{layer_count, serves_all_layers};
use crate::state::{Node, CONFIG, NODES, SERVERS};

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 30;

pub fn node(deps: Deps, address: String) -> StdResult<Binary> {
    let address = deps.api.addr_validate(&address)?;
    let node = NODES
        .may_load(deps.storage, &address)?
        .ok_or_else(|| StdError::not_found(format!("node {address}")))?;
    let min_stake = CONFIG.load(deps.storage)?.min_stake;
    to_json_binary(&node_response(address, node, min_stake))
}

pub fn nodes(deps: Deps, start_after: Option<String>, limit: Option<u32>) -> StdResult<Binary> {
    let min_stake = CONFIG.load(deps.storage)?.min_stake;
    let start = start_after
        .map(|a| deps.api.addr_validate(&a))
        .transpose()?;
    let nodes = NODES
        .range(
            deps.storage,
            start.as_ref().map(Bound::exclusive),
            None,
            Order::Ascending,
        )
        .take(limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize)
        .map(|item| item.map(|(address, node)| node_response(address, node, min_stake)))
        .collect::<StdResult<_>>()?;
    to_json_binary(&NodesResponse { nodes })
}

/// Eligible nodes serving all of the kernel's layers, in address order.
pub fn candidates(
    deps: Deps,
    kernel_id: KernelId,
    start_after: Option<String>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let config = CONFIG.load(deps.storage)?;
    let layer_count = layer_count(deps.querier, &config.registry, kernel_id)
        .map_err(|e| StdError::generic_err(e.to_string()))?;
    let start = start_after
        .map(|a| deps.api.addr_validate(&a))
        .transpose()?;
    let limit = limit.unwrap_or(CANDIDATES_PAGE).min(CANDIDATES_PAGE) as usize;
    let mut candidates = Vec::new();
    for address in SERVERS.prefix(kernel_id).keys(
        deps.storage,
        start.as_ref().map(Bound::exclusive),
        None,
        Order::Ascending,
    ) {
        if candidates.len() == limit {
            break;
        }
        let address = address?;
        let node = NODES.load(deps.storage, &address)?;
        if node.is_eligible(config.min_stake)
            && serves_all_layers(&node.profile, kernel_id, layer_count)
        {
            candidates.push(Candidate {
                address,
                stake: node.bonded,
            });
        }
    }
    to_json_binary(&CandidatesResponse { candidates })
}

pub fn config(deps: Deps) -> StdResult<Binary> {
    to_json_binary(&CONFIG.load(deps.storage)?)
}

fn node_response(address: Addr, node: Node, min_stake: cosmwasm_std::Uint128) -> NodeResponse {
    NodeResponse {
        eligible: node.is_eligible(min_stake),
        address,
        bonded: node.bonded,
        unbonding: node.unbonding,
        jailed: node.jailed_until.is_some(),
        jailed_until: node.jailed_until,
        slashed: node.slashed,
        profile: node.profile,
    }
}

//! Query handlers.

use cosmwasm_std::{to_json_binary, Addr, Binary, Deps, Order, StdError, StdResult};
use nesa_market::pagination::Page;
use nesa_market::registry::KernelId;
use nesa_market::staking::{
    serving, Candidate, CandidatesResponse, NodeResponse, NodesResponse, Serving, SortitionEntry,
    CANDIDATES_PAGE,
};

use crate::profile::kernel;
use crate::state::{Node, CONFIG, NODES, SERVERS};

pub fn node(deps: Deps, height: u64, address: String) -> StdResult<Binary> {
    let address = deps.api.addr_validate(&address)?;
    let node = NODES
        .may_load(deps.storage, &address)?
        .ok_or_else(|| StdError::not_found(format!("node {address}")))?;
    let min_stake = CONFIG.load(deps.storage)?.min_stake;
    to_json_binary(&node_response(address, node, min_stake, height))
}

pub fn nodes(
    deps: Deps,
    height: u64,
    start_after: Option<String>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let min_stake = CONFIG.load(deps.storage)?.min_stake;
    let start = start_after
        .map(|a| deps.api.addr_validate(&a))
        .transpose()?;
    let nodes = Page::new(start.as_ref(), limit)
        .collect(|min| NODES.range(deps.storage, min, None, Order::Ascending))?
        .into_iter()
        .map(|(address, node)| node_response(address, node, min_stake, height))
        .collect();
    to_json_binary(&NodesResponse { nodes })
}

/// Eligible nodes serving all of the kernel's layers and below their capacity, in address
/// order.
pub fn candidates(
    deps: Deps,
    height: u64,
    kernel_id: KernelId,
    start_after: Option<String>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let config = CONFIG.load(deps.storage)?;
    let kernel = kernel(deps.querier, &config.registry, kernel_id)
        .map_err(|e| StdError::generic_err(e.to_string()))?;
    let start = start_after
        .map(|a| deps.api.addr_validate(&a))
        .transpose()?;
    let page = Page::up_to(start.as_ref(), limit, CANDIDATES_PAGE);
    let limit = page.limit;
    let mut candidates = Vec::new();
    // Ineligible servers are skipped, so the scan may pass more keys than the page holds.
    for address in SERVERS
        .prefix(kernel_id)
        .keys(deps.storage, page.min(), None, Order::Ascending)
    {
        if candidates.len() == limit {
            break;
        }
        let address = address?;
        let node = NODES.load(deps.storage, &address)?;
        let serves = serving(&node.profile.kernels, &kernel);
        if node.is_eligible(config.min_stake) && node.has_capacity(height) && serves != Serving::Not
        {
            candidates.push(Candidate {
                address,
                stake: node.bonded,
                span: span_of(serves),
            });
        }
    }
    to_json_binary(&CandidatesResponse { candidates })
}

pub fn sortition(
    deps: Deps,
    height: u64,
    address: String,
    kernel_id: KernelId,
) -> StdResult<Binary> {
    let config = CONFIG.load(deps.storage)?;
    let address = deps.api.addr_validate(&address)?;
    let Some(node) = NODES.may_load(deps.storage, &address)? else {
        return to_json_binary(&SortitionEntry {
            address,
            span: None,
            weight: Default::default(),
            public_key: None,
            ticket_since: 0,
        });
    };
    let kernel = kernel(deps.querier, &config.registry, kernel_id)
        .map_err(|e| StdError::generic_err(e.to_string()))?;
    let serves = serving(&node.profile.kernels, &kernel);
    let drawable =
        node.is_eligible(config.min_stake) && node.has_capacity(height) && serves != Serving::Not;
    to_json_binary(&SortitionEntry {
        address,
        span: if drawable { span_of(serves) } else { None },
        weight: if drawable {
            node.bonded
        } else {
            Default::default()
        },
        public_key: node.profile.sortition_key.map(|k| k.public_key),
        ticket_since: node.ticket_since,
    })
}

fn span_of(serves: Serving) -> Option<u32> {
    match serves {
        Serving::Span(span) => Some(span),
        Serving::Whole | Serving::Not => None,
    }
}

pub fn config(deps: Deps) -> StdResult<Binary> {
    to_json_binary(&CONFIG.load(deps.storage)?)
}

fn node_response(
    address: Addr,
    mut node: Node,
    min_stake: cosmwasm_std::Uint128,
    height: u64,
) -> NodeResponse {
    node.prune(height);
    NodeResponse {
        open_assignments: node.open_assignments(height),
        eligible: node.is_eligible(min_stake),
        assignments: node.locks,
        address,
        bonded: node.bonded,
        unbonding: node.unbonding,
        jailed: node.jailed_until.is_some(),
        jailed_until: node.jailed_until,
        slashed: node.slashed,
        profile: node.profile,
    }
}

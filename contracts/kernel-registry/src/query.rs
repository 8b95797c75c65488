//! Query handlers.

use cosmwasm_std::{to_json_binary, Binary, Deps, Order, StdError, StdResult};
use cw_storage_plus::Bound;
use nesa_market::registry::{ConfigResponse, KernelId, KernelsResponse};

use crate::state::{KERNELS, KERNELS_BY_NAME, KERNELS_BY_OWNER, KERNEL_COUNT};

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 30;

fn page(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize
}

pub fn kernel(deps: Deps, id: KernelId) -> StdResult<Binary> {
    let kernel = KERNELS
        .may_load(deps.storage, id)?
        .ok_or_else(|| StdError::not_found(format!("kernel {id}")))?;
    to_json_binary(&kernel)
}

pub fn kernels(deps: Deps, start_after: Option<KernelId>, limit: Option<u32>) -> StdResult<Binary> {
    let kernels = KERNELS
        .range(
            deps.storage,
            start_after.map(Bound::exclusive),
            None,
            Order::Ascending,
        )
        .take(page(limit))
        .map(|item| item.map(|(_, kernel)| kernel))
        .collect::<StdResult<_>>()?;
    to_json_binary(&KernelsResponse { kernels })
}

pub fn by_owner(
    deps: Deps,
    owner: String,
    start_after: Option<KernelId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let owner = deps.api.addr_validate(&owner)?;
    let kernels = KERNELS_BY_OWNER
        .prefix(&owner)
        .keys(
            deps.storage,
            start_after.map(Bound::exclusive),
            None,
            Order::Ascending,
        )
        .take(page(limit))
        .map(|id| KERNELS.load(deps.storage, id?))
        .collect::<StdResult<_>>()?;
    to_json_binary(&KernelsResponse { kernels })
}

pub fn versions(
    deps: Deps,
    name: String,
    start_after: Option<u32>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let kernels = KERNELS_BY_NAME
        .prefix(&name)
        .range(
            deps.storage,
            start_after.map(Bound::exclusive),
            None,
            Order::Ascending,
        )
        .take(page(limit))
        .map(|item| KERNELS.load(deps.storage, item?.1))
        .collect::<StdResult<_>>()?;
    to_json_binary(&KernelsResponse { kernels })
}

pub fn config(deps: Deps) -> StdResult<Binary> {
    to_json_binary(&ConfigResponse {
        kernel_count: KERNEL_COUNT.load(deps.storage)?,
    })
}

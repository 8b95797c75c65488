//! Query handlers.

use cosmwasm_std::{to_json_binary, Binary, Deps, Order, StdError, StdResult};
use nesa_market::pagination::Page;
use nesa_market::registry::{ConfigResponse, KernelId, KernelsResponse};

use crate::state::{KERNELS, KERNELS_BY_NAME, KERNELS_BY_OWNER, KERNEL_COUNT};

pub fn kernel(deps: Deps, id: KernelId) -> StdResult<Binary> {
    let kernel = KERNELS
        .may_load(deps.storage, id)?
        .ok_or_else(|| StdError::not_found(format!("kernel {id}")))?;
    to_json_binary(&kernel)
}

pub fn kernels(deps: Deps, start_after: Option<KernelId>, limit: Option<u32>) -> StdResult<Binary> {
    let kernels = Page::new(start_after, limit)
        .collect(|min| KERNELS.range(deps.storage, min, None, Order::Ascending))?
        .into_iter()
        .map(|(_, kernel)| kernel)
        .collect();
    to_json_binary(&KernelsResponse { kernels })
}

pub fn by_owner(
    deps: Deps,
    owner: String,
    start_after: Option<KernelId>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let owner = deps.api.addr_validate(&owner)?;
    let owned = KERNELS_BY_OWNER.prefix(&owner);
    let kernels = Page::new(start_after, limit)
        .collect(|min| owned.keys(deps.storage, min, None, Order::Ascending))?
        .into_iter()
        .map(|id| KERNELS.load(deps.storage, id))
        .collect::<StdResult<_>>()?;
    to_json_binary(&KernelsResponse { kernels })
}

pub fn versions(
    deps: Deps,
    name: String,
    start_after: Option<u32>,
    limit: Option<u32>,
) -> StdResult<Binary> {
    let named = KERNELS_BY_NAME.prefix(&name);
    let kernels = Page::new(start_after, limit)
        .collect(|min| named.range(deps.storage, min, None, Order::Ascending))?
        .into_iter()
        .map(|(_, id)| KERNELS.load(deps.storage, id))
        .collect::<StdResult<_>>()?;
    to_json_binary(&KernelsResponse { kernels })
}

pub fn config(deps: Deps) -> StdResult<Binary> {
    to_json_binary(&ConfigResponse {
        kernel_count: KERNEL_COUNT.load(deps.storage)?,
    })
}

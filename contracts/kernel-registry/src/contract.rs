//! Entry points: each parses its message and hands it to one handler.

#[cfg(not(feature = "library"))]
use cosmwasm_std::entry_point;
use cosmwasm_std::{Binary, Deps, DepsMut, Env, MessageInfo, Response, StdResult};

use crate::error::ContractError;
use crate::msg::{ExecuteMsg, InstantiateMsg, MigrateMsg, QueryMsg};
use crate::{execute, instantiate as setup, query};

/// The cw2 name recorded in the contract's state (a migration must keep it).
pub const CONTRACT_NAME: &str = env!("CARGO_PKG_NAME");
/// The cw2 version of this code (a migration may not go below the recorded one).
pub const CONTRACT_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn instantiate(
    deps: DepsMut,
    _env: Env,
    info: MessageInfo,
    _msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    setup::instantiate(deps, info)
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn execute(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    msg: ExecuteMsg,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    match msg {
        ExecuteMsg::Register(kernel) => execute::register(deps, env, info, kernel),
        ExecuteMsg::Update(update) => execute::update(deps, info, update),
        ExecuteMsg::Fork(fork) => execute::fork(deps, env, info, fork),
        ExecuteMsg::Deprecate { kernel_id } => execute::deprecate(deps, info, kernel_id),
        ExecuteMsg::TransferOwnership {
            kernel_id,
            new_owner,
        } => execute::transfer_ownership(deps, info, kernel_id, new_owner),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn query(deps: Deps, _env: Env, msg: QueryMsg) -> StdResult<Binary> {
    match msg {
        QueryMsg::Kernel { id } => query::kernel(deps, id),
        QueryMsg::Kernels { start_after, limit } => query::kernels(deps, start_after, limit),
        QueryMsg::ByOwner {
            owner,
            start_after,
            limit,
        } => query::by_owner(deps, owner, start_after, limit),
        QueryMsg::Versions {
            name,
            start_after,
            limit,
        } => query::versions(deps, name, start_after, limit),
        QueryMsg::Config {} => query::config(deps),
    }
}

/// Takes over the state of an older (or the same) version of this contract. Fields added to
/// stored records carry serde defaults, so older state reads as is and only the recorded
/// version moves; a layout change that needs conversion converts the state here, after the
/// checks.
#[cfg_attr(not(feature = "library"), entry_point)]
pub fn migrate(deps: DepsMut, _env: Env, _msg: MigrateMsg) -> Result<Response, ContractError> {
    Ok(nesa_market::upgrade::migrate(
        deps.storage,
        CONTRACT_NAME,
        CONTRACT_VERSION,
    )?)
}

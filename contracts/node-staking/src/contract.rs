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
    msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    setup::instantiate(deps, info, msg)
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn execute(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    msg: ExecuteMsg,
) -> Result<Response, ContractError> {
    match msg {
        ExecuteMsg::Bond { profile } => execute::bond(deps, env, info, profile),
        ExecuteMsg::UpdateProfile { profile } => execute::update_profile(deps, env, info, profile),
        ExecuteMsg::Unbond { amount } => execute::unbond(deps, env, info, amount),
        ExecuteMsg::Claim {} => execute::claim(deps, env, info),
        ExecuteMsg::Slash {
            node,
            fraction,
            jail,
            reason,
            query_id,
        } => execute::slash(
            deps,
            env,
            info,
            execute::SlashOrder {
                node,
                fraction,
                jail,
                reason,
                query_id,
            },
        ),
        ExecuteMsg::Lock {
            query_id,
            nodes,
            until,
        } => execute::lock(deps, env, info, query_id, nodes, until),
        ExecuteMsg::Unlock { query_id, nodes } => execute::unlock(deps, env, info, query_id, nodes),
        ExecuteMsg::Unjail {} => execute::unjail(deps, env, info),
        ExecuteMsg::UpdateConfig(update) => execute::update_config(deps, info, update),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn query(deps: Deps, env: Env, msg: QueryMsg) -> StdResult<Binary> {
    let height = env.block.height;
    match msg {
        QueryMsg::Node { address } => query::node(deps, height, address),
        QueryMsg::Nodes { start_after, limit } => query::nodes(deps, height, start_after, limit),
        QueryMsg::Candidates {
            kernel_id,
            start_after,
            limit,
        } => query::candidates(deps, height, kernel_id, start_after, limit),
        QueryMsg::Sortition { node, kernel_id } => query::sortition(deps, height, node, kernel_id),
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

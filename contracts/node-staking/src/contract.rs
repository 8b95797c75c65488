//! Entry points: each parses its message and hands it to one handler.

#[cfg(not(feature = "library"))]
use cosmwasm_std::entry_point;
use cosmwasm_std::{Binary, Deps, DepsMut, Env, MessageInfo, Response, StdResult};

use crate::error::ContractError;
use crate::msg::{ExecuteMsg, InstantiateMsg, QueryMsg};
use crate::{execute, query};

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn instantiate(
    deps: DepsMut,
    _env: Env,
    info: MessageInfo,
    msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    execute::instantiate(deps, info, msg)
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn execute(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    msg: ExecuteMsg,
) -> Result<Response, ContractError> {
    match msg {
        ExecuteMsg::Bond { profile } => execute::bond(deps, info, profile),
        ExecuteMsg::UpdateProfile { profile } => execute::update_profile(deps, info, profile),
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
        ExecuteMsg::Unjail {} => execute::unjail(deps, env, info),
        ExecuteMsg::UpdateConfig(update) => execute::update_config(deps, info, update),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn query(deps: Deps, _env: Env, msg: QueryMsg) -> StdResult<Binary> {
    match msg {
        QueryMsg::Node { address } => query::node(deps, address),
        QueryMsg::Nodes { start_after, limit } => query::nodes(deps, start_after, limit),
        QueryMsg::Candidates {
            kernel_id,
            start_after,
            limit,
        } => query::candidates(deps, kernel_id, start_after, limit),
        QueryMsg::Config {} => query::config(deps),
    }
}

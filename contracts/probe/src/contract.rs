//! Entry points: each parses its message and hands it to one handler.

#[cfg(not(feature = "library"))]
use cosmwasm_std::entry_point;
use cosmwasm_std::{Binary, Deps, DepsMut, Env, MessageInfo, Reply, Response, StdResult};

use crate::error::ContractError;
use crate::msg::{ExecuteMsg, InstantiateMsg, MigrateMsg, QueryMsg};
use crate::{execute, query, reply};

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
    _env: Env,
    _info: MessageInfo,
    msg: ExecuteMsg,
) -> Result<Response, ContractError> {
    match msg {
        ExecuteMsg::Increment {} => execute::increment(deps),
        ExecuteMsg::Set { key, value } => execute::set(deps, key, value),
        ExecuteMsg::Send { to, amount } => execute::send(deps, to, amount),
        ExecuteMsg::Burn { amount } => execute::burn(amount),
        ExecuteMsg::Dispatch { calls } => execute::dispatch(calls),
        ExecuteMsg::Fail { reason } => Err(ContractError::Requested(reason)),
        ExecuteMsg::Panic {} => panic!("panic requested by the caller"),
        ExecuteMsg::Loop {} => execute::spin_forever(),
        ExecuteMsg::WriteAndFail { key, value } => execute::write_and_fail(deps, key, value),
        ExecuteMsg::QueryOther { contract, msg } => execute::query_other(deps, contract, msg),
        ExecuteMsg::InstantiateChild(child) => execute::instantiate_child(deps, child),
        ExecuteMsg::Fill { count, start } => execute::fill(deps, start, count),
        ExecuteMsg::Iterate {
            iterators,
            steps,
            reverse,
        } => execute::iterate(deps, iterators, steps, reverse),
        ExecuteMsg::Emit {
            attributes,
            value_bytes,
            data_bytes,
        } => Ok(execute::emit(attributes, value_bytes, data_bytes)),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn query(deps: Deps, _env: Env, msg: QueryMsg) -> StdResult<Binary> {
    match msg {
        QueryMsg::Get { key } => query::get(deps, key),
        QueryMsg::Count {} => query::count(deps),
        QueryMsg::List { start_after, limit } => query::list(deps, start_after, limit),
        QueryMsg::Balance { address, denom } => query::balance(deps, address, denom),
        QueryMsg::Migrated {} => query::migrated(deps),
        QueryMsg::Owner {} => query::owner(deps),
        QueryMsg::Loop {} => execute::spin_forever(),
        QueryMsg::Scan { rounds } => query::scan(deps, rounds),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn reply(deps: DepsMut, _env: Env, msg: Reply) -> Result<Response, ContractError> {
    match msg.id {
        reply::CHILD_REPLY_ID => reply::child_instantiated(deps, msg),
        _ => reply::record(deps, msg),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn migrate(deps: DepsMut, _env: Env, msg: MigrateMsg) -> Result<Response, ContractError> {
    execute::migrate(deps, msg)
}

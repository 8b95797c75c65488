//! Entry points: each parses its message and hands it to one handler.

#[cfg(not(feature = "library"))]
use cosmwasm_std::entry_point;
use cosmwasm_std::{Binary, Deps, DepsMut, Env, MessageInfo, Response, StdResult};

use crate::commit_reveal::{self, RevealRequest};
use crate::error::ContractError;
use crate::msg::{ExecuteMsg, InstantiateMsg, QueryMsg};
use crate::submit::{self, QueryRequest};
use crate::{instantiate as setup, query, settle};

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn instantiate(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    setup::instantiate(deps, env, info, msg)
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn execute(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    msg: ExecuteMsg,
) -> Result<Response, ContractError> {
    if !matches!(msg, ExecuteMsg::SubmitQuery { .. }) {
        cw_utils::nonpayable(&info)?;
    }
    match msg {
        ExecuteMsg::SubmitQuery {
            kernel_id,
            input,
            max_output_tokens,
            sampling,
            redundancy,
            user_entropy,
        } => submit::submit_query(
            deps,
            env,
            info,
            QueryRequest {
                kernel_id,
                input,
                max_output_tokens,
                sampling,
                redundancy,
                user_entropy,
            },
        ),
        ExecuteMsg::Commit {
            query_id,
            commitment,
        } => commit_reveal::commit(deps, env, info, query_id, commitment),
        ExecuteMsg::Reveal {
            query_id,
            output,
            fingerprint,
            salt,
        } => commit_reveal::reveal(
            deps,
            env,
            info,
            query_id,
            RevealRequest {
                output,
                fingerprint,
                salt,
            },
        ),
        ExecuteMsg::Settle { query_id } => settle::settle(deps, env, info, query_id),
        ExecuteMsg::UpdateParams { params } => setup::update_params(deps, info, params),
        ExecuteMsg::UpdateAdmin { admin } => setup::update_admin(deps, info, admin),
    }
}

#[cfg_attr(not(feature = "library"), entry_point)]
pub fn query(deps: Deps, env: Env, msg: QueryMsg) -> StdResult<Binary> {
    match msg {
        QueryMsg::Query { id } => query::query(deps, env, id),
        QueryMsg::QueriesByUser {
            user,
            start_after,
            limit,
        } => query::by_user(deps, user, start_after, limit),
        QueryMsg::QueriesByNode {
            node,
            start_after,
            limit,
        } => query::by_node(deps, node, start_after, limit),
        QueryMsg::QueriesByStatus {
            status,
            start_after,
            limit,
        } => query::by_status(deps, status, start_after, limit),
        QueryMsg::Quote {
            kernel_id,
            input_tokens,
            max_output_tokens,
            redundancy,
        } => query::quote(deps, kernel_id, input_tokens, max_output_tokens, redundancy),
        QueryMsg::Params {} => query::params(deps),
        QueryMsg::Config {} => query::config(deps),
    }
}

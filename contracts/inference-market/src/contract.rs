//! Entry points: each parses its message and hands it to one handler.

#[cfg(not(feature = "library"))]
use cosmwasm_std::entry_point;
use cosmwasm_std::{Binary, Deps, DepsMut, Env, MessageInfo, Reply, Response, StdResult};

use crate::commit_reveal::{self, RevealRequest};
use crate::error::ContractError;
use crate::msg::{ExecuteMsg, InstantiateMsg, MigrateMsg, QueryMsg};
use crate::submit::{self, QueryRequest};
use crate::{draw, execute, instantiate as setup, query, settle};

/// The cw2 name recorded in the contract's state (a migration must keep it).
pub const CONTRACT_NAME: &str = env!("CARGO_PKG_NAME");
/// The cw2 version of this code (a migration may not go below the recorded one).
pub const CONTRACT_VERSION: &str = env!("CARGO_PKG_VERSION");

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
            activations,
        } => commit_reveal::reveal(
            deps,
            env,
            info,
            query_id,
            RevealRequest {
                output,
                fingerprint,
                salt,
                activations,
            },
        ),
        ExecuteMsg::SubmitTicket { query_id, ticket } => {
            draw::submit_ticket(deps, env, info, query_id, ticket)
        }
        ExecuteMsg::Draw { query_id } => draw::draw(deps, env, info, query_id),
        ExecuteMsg::Settle { query_id } => settle::settle(deps, env, info, query_id),
        ExecuteMsg::UpdateParams { params } => execute::update_params(deps, info, params),
        ExecuteMsg::UpdateAdmin { admin } => execute::update_admin(deps, info, admin),
    }
}

/// The only submessages the market sends with a reply are settlement's staking calls.
#[cfg_attr(not(feature = "library"), entry_point)]
pub fn reply(_deps: DepsMut, _env: Env, reply: Reply) -> StdResult<Response> {
    settle::staking_call_failed(reply)
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

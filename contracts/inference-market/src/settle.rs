//! `settle`: consensus, payment, refund and slashing, all in one transaction.
//!
//! Rounding: for each winner, `pay = input_tokens × price_in + output_tokens × price_out`;
//! the protocol fee and the royalty are each `pay × share` rounded down, and the node gets the
//! remainder, so the three add up to `pay` exactly. The user gets `escrow − winners × pay`.

use std::collections::BTreeSet;

use cosmwasm_std::{
    coins, to_json_binary, Addr, BankMsg, Decimal, DepsMut, Env, Event, HexBinary, MessageInfo,
    Reply, Response, StdResult, SubMsg, SubMsgResult, Uint128, WasmMsg,
};
use nesa_market::events::market::{self as events, attr};
use nesa_market::market::{
    Assignment, InferenceQuery, NodeOutcome, QueryId, QueryStatus, Settlement, SettlementTerms,
    SlashReason,
};
use nesa_market::staking;
use nesa_market::Fingerprint;

use crate::cdv::{decide, ValidReveal, Verdict};
use crate::error::ContractError;
use crate::lifecycle::settleable;
use crate::state::{save_query, Config, ASSIGNMENTS, CONFIG, PARAMS, QUERIES};

/// One winner's payment, split three ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub node: Uint128,
    pub protocol_fee: Uint128,
    pub royalty: Uint128,
}

/// Splits `pay`: fees rounded down, the node takes the remainder.
pub fn split(pay: Uint128, protocol_fee: Decimal, kernel_royalty: Decimal) -> Split {
    let fee = pay.mul_floor(protocol_fee);
    let royalty = pay.mul_floor(kernel_royalty);
    Split {
        node: pay - fee - royalty,
        protocol_fee: fee,
        royalty,
    }
}

pub fn settle(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    query_id: QueryId,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let mut query = QUERIES
        .may_load(deps.storage, query_id)?
        .ok_or(ContractError::QueryNotFound { id: query_id })?;
    if query.status.is_final() {
        return Err(ContractError::AlreadySettled {
            id: query_id,
            status: query.status,
        });
    }
    let height = env.block.height;
    if query.status == QueryStatus::Drawing {
        return Err(ContractError::NotDrawn {
            id: query_id,
            draw_deadline: query.draw_deadline,
        });
    }
    if !settleable(&query, height) {
        return Err(ContractError::SettleTooEarly {
            id: query_id,
            reveal_deadline: query.reveal_deadline,
        });
    }
    let config = CONFIG.load(deps.storage)?;
    // The terms the query was submitted under; queries stored before terms were recorded
    // settle under the current parameters.
    let terms = match query.terms.clone() {
        Some(terms) => terms,
        None => SettlementTerms::from_params(&PARAMS.load(deps.storage)?),
    };
    let mut assignments = query
        .nodes
        .iter()
        .map(|node| ASSIGNMENTS.load(deps.storage, (query_id, node)))
        .collect::<Result<Vec<_>, _>>()?;

    let verdict = consensus(&query, &assignments)?;
    let mut response = Response::new();
    let winners: BTreeSet<usize> = verdict
        .as_ref()
        .map(|(winners, _)| winners.iter().copied().collect())
        .unwrap_or_default();

    // Payment.
    let denom = query.escrow.denom.clone();
    let (output, output_tokens) = match &verdict {
        Some((_, output)) => {
            let reveal = assignments[*output]
                .reveal
                .clone()
                .expect("winners revealed");
            let tokens = reveal.output_tokens;
            (Some(reveal), tokens)
        }
        None => (None, 0),
    };
    let pay = if output.is_some() {
        query
            .price_per_input_token
            .checked_mul(Uint128::from(query.input_tokens))?
            .checked_add(
                query
                    .price_per_output_token
                    .checked_mul(Uint128::from(output_tokens))?,
            )?
    } else {
        Uint128::zero()
    };
    let share = split(pay, terms.protocol_fee, terms.kernel_royalty);
    let winner_count = Uint128::from(winners.len() as u64);
    let paid = pay.checked_mul(winner_count)?;
    let protocol_fee = share.protocol_fee.checked_mul(winner_count)?;
    let royalty = share.royalty.checked_mul(winner_count)?;
    let refunded = query.escrow.amount.checked_sub(paid)?;
    for &index in &winners {
        assignments[index].outcome = Some(NodeOutcome::Paid { amount: share.node });
        response = send(response, &assignments[index].node, share.node, &denom);
    }
    response = send(response, &config.treasury, protocol_fee, &denom);
    response = send(response, &query.kernel_owner, royalty, &denom);
    response = send(response, &query.user, refunded, &denom);

    // Faults. When no assigned node committed, nobody is blamed: a query none of k
    // independently drawn nodes took up points at the query or the network, not at one node
    // (submission already refuses every query the kernel cannot run), and the user is
    // refunded in full.
    let quorum = verdict.is_some();
    let blameless = query.commits == 0;
    for (index, assignment) in assignments.iter_mut().enumerate() {
        if winners.contains(&index) {
            continue;
        }
        let Some(reason) = fault(assignment, quorum).filter(|_| !blameless) else {
            assignment.outcome = Some(NodeOutcome::Unpaid {});
            continue;
        };
        let fraction = slash_fraction(&terms, reason);
        assignment.outcome = Some(NodeOutcome::Slashed { reason, fraction });
        response = response.add_event(
            Event::new(events::NODE_SLASHED)
                .add_attribute(attr::QUERY_ID, query_id.to_string())
                .add_attribute(attr::NODE, &assignment.node)
                .add_attribute(attr::REASON, reason.as_str())
                .add_attribute(attr::FRACTION, fraction.to_string()),
        );
        if !fraction.is_zero() || terms.jail_on_fault {
            let slash = staking::ExecuteMsg::Slash {
                node: assignment.node.to_string(),
                fraction,
                jail: terms.jail_on_fault,
                reason: reason.as_str().into(),
                query_id,
            };
            response = response.add_submessage(staking_call(&config, &slash, query_id)?);
        }
    }
    // The query no longer holds its nodes' stake or capacity.
    let unlock = staking::ExecuteMsg::Unlock {
        query_id,
        nodes: query.nodes.iter().map(Addr::to_string).collect(),
    };
    response = response.add_submessage(staking_call(&config, &unlock, query_id)?);
    for assignment in &assignments {
        ASSIGNMENTS.save(deps.storage, (query_id, &assignment.node), assignment)?;
    }

    let winner_addrs: Vec<Addr> = winners
        .iter()
        .map(|&i| assignments[i].node.clone())
        .collect();
    let output_hash = output.as_ref().map(|r| r.output_hash.clone());
    let previous = query.status;
    query.status = if quorum {
        QueryStatus::Settled
    } else {
        QueryStatus::Disputed
    };
    query.settlement = Some(Settlement {
        height,
        winners: winner_addrs.clone(),
        output: output.map(|r| r.output),
        output_hash: output_hash.clone(),
        output_tokens,
        paid,
        protocol_fee,
        royalty,
        refunded,
    });
    save_query(deps.storage, &query, Some(previous))?;

    let winner_list: Vec<&str> = winner_addrs.iter().map(Addr::as_str).collect();
    Ok(response.add_event(
        Event::new(events::QUERY_SETTLED)
            .add_attribute(attr::QUERY_ID, query_id.to_string())
            .add_attribute(attr::STATUS, query.status.as_str())
            .add_attribute(attr::WINNERS, winner_list.join(","))
            .add_attribute(
                attr::OUTPUT_HASH,
                output_hash
                    .as_ref()
                    .map(HexBinary::to_hex)
                    .unwrap_or_default(),
            )
            .add_attribute(attr::OUTPUT_TOKENS, output_tokens.to_string())
            .add_attribute(attr::PAID, paid)
            .add_attribute(attr::PROTOCOL_FEE, protocol_fee)
            .add_attribute(attr::ROYALTY, royalty)
            .add_attribute(attr::REFUNDED, refunded),
    ))
}

/// The winners (indexes into `assignments`) and the index of one carrying the winning
/// output, or `None` without a quorum.
fn consensus(
    query: &InferenceQuery,
    assignments: &[Assignment],
) -> Result<Option<(Vec<usize>, usize)>, ContractError> {
    let mut indexes = Vec::new();
    let mut reveals = Vec::new();
    for (index, assignment) in assignments.iter().enumerate() {
        let Some(reveal) = assignment.reveal.as_ref().filter(|r| r.matches_commitment) else {
            continue;
        };
        indexes.push(index);
        reveals.push(ValidReveal {
            output_hash: reveal.output_hash.to_array()?,
            output_tokens: reveal.output_tokens,
            fingerprint: Fingerprint::decode(&reveal.fingerprint)?,
        });
    }
    let verdict = decide(
        assignments.len(),
        &reveals,
        query.fingerprint_tolerance,
        usize::from(query.quorum),
    );
    Ok(verdict.map(|Verdict { winners, output }| {
        (
            winners.into_iter().map(|w| indexes[w]).collect(),
            indexes[output],
        )
    }))
}

/// Why a node outside the winning set is slashed, if it is: a valid reveal is an outlier only
/// when there was a quorum to be outside of.
fn fault(assignment: &Assignment, quorum: bool) -> Option<SlashReason> {
    match (&assignment.commitment, &assignment.reveal) {
        (None, _) => Some(SlashReason::NoCommit),
        (Some(_), None) => Some(SlashReason::NoReveal),
        (Some(_), Some(reveal)) if !reveal.matches_commitment => Some(SlashReason::BadReveal),
        (Some(_), Some(_)) if quorum => Some(SlashReason::Outlier),
        _ => None,
    }
}

fn slash_fraction(terms: &SettlementTerms, reason: SlashReason) -> Decimal {
    match reason {
        SlashReason::NoCommit => terms.slash.no_commit,
        SlashReason::NoReveal => terms.slash.no_reveal,
        SlashReason::BadReveal => terms.slash.bad_reveal,
        SlashReason::Outlier => terms.slash.outlier,
    }
}

/// A call on the staking contract that cannot undo the settlement: when staking refuses it
/// (its market changed, its code replaced), the reply reports the error and the payment,
/// the refund and the query's end stand. The reply id is the query id.
fn staking_call(
    config: &Config,
    msg: &staking::ExecuteMsg,
    query_id: QueryId,
) -> Result<SubMsg, ContractError> {
    let call = WasmMsg::Execute {
        contract_addr: config.staking.to_string(),
        msg: to_json_binary(msg)?,
        funds: vec![],
    };
    Ok(SubMsg::reply_on_error(call, query_id))
}

/// A staking call of a settlement failed: its effects are dropped, the settlement stands.
pub fn staking_call_failed(reply: Reply) -> StdResult<Response> {
    let error = match reply.result {
        SubMsgResult::Err(error) => error,
        SubMsgResult::Ok(_) => return Ok(Response::new()),
    };
    Ok(Response::new().add_event(
        Event::new(events::STAKING_CALL_FAILED)
            .add_attribute(attr::QUERY_ID, reply.id.to_string())
            .add_attribute(attr::ERROR, error),
    ))
}

/// Adds a bank send unless the amount is zero (the bank rejects empty sends).
fn send(response: Response, to: &Addr, amount: Uint128, denom: &str) -> Response {
    if amount.is_zero() {
        return response;
    }
    response.add_message(BankMsg::Send {
        to_address: to.to_string(),
        amount: coins(amount.u128(), denom),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_down_and_the_node_keeps_the_remainder() {
        let share = split(Uint128::new(99), Decimal::percent(10), Decimal::percent(5));
        assert_eq!(
            share,
            Split {
                node: Uint128::new(86),
                protocol_fee: Uint128::new(9),
                royalty: Uint128::new(4),
            }
        );
        let all = share.node + share.protocol_fee + share.royalty;
        assert_eq!(all, Uint128::new(99));
        assert_eq!(
            split(Uint128::new(1), Decimal::percent(10), Decimal::percent(10)).node,
            Uint128::new(1)
        );
    }
}

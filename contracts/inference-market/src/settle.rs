//! `settle`: consensus, payment, refund and slashing, all in one transaction.
//!
//! Rounding: a winning pipeline is paid `pay = input_tokens × price_in + output_tokens ×
//! price_out` (a whole-model node alone; a sharded pipeline's seats by layers, see
//! [`pipelines`]); each seat's protocol fee and royalty are its pay × share rounded down, and
//! the node gets the remainder, so the three add up to its pay exactly. The user gets
//! `escrow − Σ pay`.

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
use crate::pipelines;
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

    let plan = if query.shards.is_empty() {
        whole_model_plan(&query, &assignments)?
    } else {
        pipelines::plan(&query, &assignments)?
    };
    let mut response = Response::new();

    // Payment: each paid seat's pay is split three ways (fees rounded down, the node keeps
    // the remainder), so paid = node shares + fees + royalties, and the user gets the rest.
    let denom = query.escrow.denom.clone();
    let (output, output_tokens) = match plan.output {
        Some(index) => {
            let reveal = assignments[index].reveal.clone().expect("winners revealed");
            let tokens = reveal.output_tokens;
            (Some(reveal), tokens)
        }
        None => (None, 0),
    };
    let mut paid = Uint128::zero();
    let mut protocol_fee = Uint128::zero();
    let mut royalty = Uint128::zero();
    let mut winners = Vec::new();
    for (index, decision) in plan.decisions.iter().enumerate() {
        let Decision::Pay(pay) = *decision else {
            continue;
        };
        let share = split(pay, terms.protocol_fee, terms.kernel_royalty);
        paid = paid.checked_add(pay)?;
        protocol_fee = protocol_fee.checked_add(share.protocol_fee)?;
        royalty = royalty.checked_add(share.royalty)?;
        assignments[index].outcome = Some(NodeOutcome::Paid { amount: share.node });
        response = send(response, &assignments[index].node, share.node, &denom);
        winners.push(index);
    }
    let refunded = query.escrow.amount.checked_sub(paid)?;
    response = send(response, &config.treasury, protocol_fee, &denom);
    response = send(response, &query.kernel_owner, royalty, &denom);
    response = send(response, &query.user, refunded, &denom);

    // Faults. When no assigned node committed, nobody is blamed: a query none of k
    // independently drawn nodes took up points at the query or the network, not at one node
    // (submission already refuses every query the kernel cannot run), and the user is
    // refunded in full.
    let quorum = plan.quorum;
    let blameless = query.commits == 0;
    for (assignment, decision) in assignments.iter_mut().zip(&plan.decisions) {
        let reason = match *decision {
            Decision::Pay(_) => continue,
            Decision::Slash(reason) if !blameless => reason,
            Decision::Slash(_) | Decision::Unpaid => {
                assignment.outcome = Some(NodeOutcome::Unpaid {});
                continue;
            }
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

/// What settlement does to one seat.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Paid this much before fees.
    Pay(Uint128),
    Slash(SlashReason),
    /// Neither.
    Unpaid,
}

/// A settlement's decisions, one per assignment.
pub struct Plan {
    pub decisions: Vec<Decision>,
    /// The assignment whose reveal carries the winning output (`None`: no quorum).
    pub output: Option<usize>,
    pub quorum: bool,
}

/// What one pipeline (or whole-model node) is paid for `output_tokens`:
/// `input_tokens × price_in + output_tokens × price_out`.
pub fn pipeline_pay(query: &InferenceQuery, output_tokens: u32) -> Result<Uint128, ContractError> {
    Ok(query
        .price_per_input_token
        .checked_mul(Uint128::from(query.input_tokens))?
        .checked_add(
            query
                .price_per_output_token
                .checked_mul(Uint128::from(output_tokens))?,
        )?)
}

/// A whole-model query: the consensus winners are paid per token, every other node is
/// judged by its own commit and reveal.
fn whole_model_plan(
    query: &InferenceQuery,
    assignments: &[Assignment],
) -> Result<Plan, ContractError> {
    let seats: Vec<usize> = (0..assignments.len()).collect();
    let verdict = consensus(query, assignments, &seats)?;
    let quorum = verdict.is_some();
    let (winners, output) = Winners::split(verdict);
    let pay = match output {
        Some(index) => pipeline_pay(query, reveal_tokens(&assignments[index]))?,
        None => Uint128::zero(),
    };
    let decisions = assignments
        .iter()
        .enumerate()
        .map(|(index, assignment)| {
            if winners.contains(&index) {
                Decision::Pay(pay)
            } else {
                fault(assignment, quorum).map_or(Decision::Unpaid, Decision::Slash)
            }
        })
        .collect();
    Ok(Plan {
        decisions,
        output,
        quorum,
    })
}

fn reveal_tokens(assignment: &Assignment) -> u32 {
    assignment.reveal.as_ref().map_or(0, |r| r.output_tokens)
}

/// The winning seats (indexes into a query's assignments) and one carrying the output.
pub struct Winners {
    pub seats: Vec<usize>,
    pub output: usize,
}

impl Winners {
    /// The seats and the output's index, or none of either.
    pub fn split(winners: Option<Self>) -> (Vec<usize>, Option<usize>) {
        winners.map_or((vec![], None), |w| (w.seats, Some(w.output)))
    }
}

/// The winners among the reveals of `seats` (indexes into `assignments`: every node of a
/// whole-model query, the drivers of a sharded one) and the index of one carrying the winning
/// output, or `None` without a quorum.
pub fn consensus(
    query: &InferenceQuery,
    assignments: &[Assignment],
    seats: &[usize],
) -> Result<Option<Winners>, ContractError> {
    let mut indexes = Vec::new();
    let mut reveals = Vec::new();
    for &index in seats {
        let Some(reveal) = assignments[index]
            .reveal
            .as_ref()
            .filter(|r| r.matches_commitment)
        else {
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
        seats.len(),
        &reveals,
        query.fingerprint_tolerance,
        usize::from(query.quorum),
    );
    Ok(verdict.map(|Verdict { winners, output }| Winners {
        seats: winners.into_iter().map(|w| indexes[w]).collect(),
        output: indexes[output],
    }))
}

/// Why a node outside the winning set is slashed, if it is: a valid reveal is an outlier only
/// when there was a quorum to be outside of.
pub fn fault(assignment: &Assignment, quorum: bool) -> Option<SlashReason> {
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
        SlashReason::Outlier | SlashReason::Divergent => terms.slash.outlier,
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

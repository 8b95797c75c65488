//! Sortition: nodes enter a query's draw with verifiable tickets, then anyone draws its seats.
//!
//! The rule of who holds a seat lives in `nesa_market::sortition`; this module checks tickets
//! (the node's registered key, its stake and standing in staking, the BLS signature) and turns
//! the seat holders into assignments.

use cosmwasm_std::{
    to_json_binary, Addr, DepsMut, Env, Event, HexBinary, MessageInfo, QuerierWrapper, Response,
    StdResult, Uint128, WasmMsg,
};
use nesa_market::commitment::to_hex;
use nesa_market::events::market::{self as events, attr};
use nesa_market::market::{Assignment, InferenceQuery, QueryId, QueryStatus, Settlement, Ticket};
use nesa_market::sortition::{
    seat_holders, ticket_message, ticket_output, verify, Entry, SIGNATURE_BYTES,
};
use nesa_market::staking::{self, SortitionEntry};
use nesa_market::Hash32;

use crate::error::ContractError;
use crate::sampling::drawn_seed;
use crate::state::{save_query, tickets, ASSIGNMENTS, CONFIG, QUERIES, QUERIES_BY_NODE, TICKETS};

pub fn submit_ticket(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    query_id: QueryId,
    ticket: HexBinary,
) -> Result<Response, ContractError> {
    let mut query = load_drawing(&deps, query_id)?;
    let node = info.sender;
    if env.block.height > query.draw_deadline {
        return Err(ContractError::DrawClosed {
            query_id,
            draw_deadline: query.draw_deadline,
        });
    }
    if TICKETS.has(deps.storage, (query_id, &node)) {
        return Err(ContractError::AlreadyEntered { query_id, node });
    }
    let not_drawable = |reason: &str| ContractError::NotDrawable {
        query_id,
        node: node.clone(),
        reason: reason.to_string(),
    };
    let config = CONFIG.load(deps.storage)?;
    let entry = sortition_entry(deps.querier, &config.staking, &node, query.kernel_id)?;
    if entry.weight.is_zero() {
        return Err(not_drawable(
            "not bonded for the kernel, jailed, below the minimum stake or at capacity",
        ));
    }
    let Some(public_key) = entry.public_key else {
        return Err(not_drawable("no sortition key in its profile"));
    };
    match (query.shards.len(), entry.span) {
        (0, None) => {}
        (0, Some(_)) => return Err(not_drawable("it serves a shard, the query the whole model")),
        (_, None) => {
            return Err(not_drawable(
                "the kernel is sharded: serve one span of its layout",
            ))
        }
        (spans, Some(span)) if span as usize >= spans => {
            return Err(not_drawable("its span is not in the query's shard layout"))
        }
        _ => {}
    }
    if entry.ticket_since >= query.submitted_height {
        return Err(not_drawable(
            "its stake or key changed after the query was accepted",
        ));
    }
    let draw_input: Hash32 = query.draw_input.to_array()?;
    if ticket.len() != SIGNATURE_BYTES
        || !verify(deps.api, &public_key, &ticket_message(&draw_input), &ticket)?
    {
        return Err(ContractError::InvalidTicket { query_id, node });
    }
    let output = ticket_output(&ticket);
    TICKETS.save(
        deps.storage,
        (query_id, &node),
        &Ticket {
            node: node.clone(),
            span: entry.span,
            weight: entry.weight,
            output: HexBinary::from(output.to_vec()),
        },
    )?;
    query.tickets += 1;
    save_query(deps.storage, &query, Some(query.status))?;
    Ok(Response::new().add_event(
        Event::new(events::TICKET_SUBMITTED)
            .add_attribute(attr::QUERY_ID, query_id.to_string())
            .add_attribute(attr::NODE, &node)
            .add_attribute(attr::WEIGHT, entry.weight),
    ))
}

pub fn draw(
    deps: DepsMut,
    env: Env,
    _info: MessageInfo,
    query_id: QueryId,
) -> Result<Response, ContractError> {
    let mut query = load_drawing(&deps, query_id)?;
    let height = env.block.height;
    if height <= query.draw_deadline {
        return Err(ContractError::DrawTooEarly {
            query_id,
            draw_deadline: query.draw_deadline,
        });
    }
    let config = CONFIG.load(deps.storage)?;
    let tickets = tickets(deps.storage, query_id)?;
    for ticket in &tickets {
        TICKETS.remove(deps.storage, (query_id, &ticket.node));
    }

    // Each span of a sharded query is drawn on its own (a whole-model query has one), from
    // the same tickets' randomness; pipeline p takes the p-th seat of every span.
    let spans = query.shards.len().max(1);
    let k = usize::from(query.redundancy);
    let mut seats: Vec<Vec<Entry<Addr>>> = vec![Vec::new(); spans];
    for ticket in &tickets {
        let span = ticket.span.unwrap_or(0) as usize;
        if span < spans {
            seats[span].push(Entry {
                node: ticket.node.clone(),
                weight: ticket.weight,
                output: ticket.output.to_array()?,
            });
        }
    }
    let mut drawn: Vec<Vec<Entry<Addr>>> = Vec::with_capacity(spans);
    for (span, entries) in seats.into_iter().enumerate() {
        let holders = draw_span(&deps, &config.staking, &query, span, entries)?;
        // Fewer usable tickets than seats: nobody could be checked against enough others.
        if holders.len() < k {
            return refund_undrawn(deps, query, height);
        }
        drawn.push(holders);
    }
    // Seat order: pipeline by pipeline, span by span.
    let holders: Vec<(u8, u32, Entry<Addr>)> = (0..k)
        .flat_map(|p| (0..spans).map(move |s| (p, s)))
        .map(|(p, s)| (p as u8, s as u32, drawn[s][p].clone()))
        .collect();
    let outputs: Vec<Hash32> = holders.iter().map(|(_, _, e)| e.output).collect();
    let seed = drawn_seed(&query.seed.to_array()?, &outputs);
    // The windows set at submission open now: deadlines move by how late the draw came.
    let delay = height - query.draw_deadline - 1;
    let commit_deadline = query
        .commit_deadline
        .checked_add(delay)
        .ok_or(ContractError::HeightOverflow {})?;
    let reveal_deadline = query
        .reveal_deadline
        .checked_add(delay)
        .ok_or(ContractError::HeightOverflow {})?;

    let previous = query.status;
    query.nodes = holders.iter().map(|(_, _, e)| e.node.clone()).collect();
    query.seed = HexBinary::from(seed.to_vec());
    query.commit_deadline = commit_deadline;
    query.reveal_deadline = reveal_deadline;
    query.status = QueryStatus::Pending;
    save_query(deps.storage, &query, Some(previous))?;
    for (pipeline, span, entry) in &holders {
        let node = &entry.node;
        QUERIES_BY_NODE.save(deps.storage, (node, query_id), &())?;
        ASSIGNMENTS.save(
            deps.storage,
            (query_id, node),
            &Assignment {
                node: node.clone(),
                pipeline: *pipeline,
                span: *span,
                commitment: None,
                committed_height: None,
                reveal: None,
                outcome: None,
            },
        )?;
    }

    let nodes: Vec<&str> = query.nodes.iter().map(Addr::as_str).collect();
    // Each node's stake stays slashable, and one of its capacity slots taken, until the query
    // ends (checked just above, so staking accepts the lock).
    let lock = WasmMsg::Execute {
        contract_addr: config.staking.to_string(),
        msg: to_json_binary(&staking::ExecuteMsg::Lock {
            query_id,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            until: reveal_deadline,
        })?,
        funds: vec![],
    };
    Ok(Response::new().add_message(lock).add_event(
        Event::new(events::QUERY_ASSIGNED)
            .add_attribute(attr::QUERY_ID, query_id.to_string())
            .add_attribute(attr::KERNEL_ID, query.kernel_id.to_string())
            .add_attribute(attr::USER, &query.user)
            .add_attribute(attr::NODES, nodes.join(","))
            .add_attribute(attr::COMMIT_DEADLINE, commit_deadline.to_string())
            .add_attribute(attr::REVEAL_DEADLINE, reveal_deadline.to_string())
            .add_attribute(attr::SEED, to_hex(&seed))
            .add_attribute(
                attr::FINGERPRINT_POSITIONS,
                query.fingerprint_positions.to_string(),
            ),
    ))
}

/// Fewer nodes entered (or may still serve) than the query has seats: the whole escrow goes
/// back and the query ends disputed, with nobody slashed.
fn refund_undrawn(
    deps: DepsMut,
    mut query: InferenceQuery,
    height: u64,
) -> Result<Response, ContractError> {
    let refunded = query.escrow.amount;
    let previous = query.status;
    query.status = QueryStatus::Disputed;
    query.settlement = Some(Settlement {
        height,
        winners: vec![],
        output: None,
        output_hash: None,
        output_tokens: 0,
        paid: Uint128::zero(),
        protocol_fee: Uint128::zero(),
        royalty: Uint128::zero(),
        refunded,
    });
    save_query(deps.storage, &query, Some(previous))?;
    let mut response = Response::new();
    if !refunded.is_zero() {
        response = response.add_message(cosmwasm_std::BankMsg::Send {
            to_address: query.user.to_string(),
            amount: vec![query.escrow.clone()],
        });
    }
    Ok(response.add_event(
        Event::new(events::QUERY_SETTLED)
            .add_attribute(attr::QUERY_ID, query.id.to_string())
            .add_attribute(attr::STATUS, query.status.as_str())
            .add_attribute(attr::WINNERS, "")
            .add_attribute(attr::OUTPUT_HASH, "")
            .add_attribute(attr::OUTPUT_TOKENS, "0")
            .add_attribute(attr::PAID, "0")
            .add_attribute(attr::PROTOCOL_FEE, "0")
            .add_attribute(attr::ROYALTY, "0")
            .add_attribute(attr::REFUNDED, refunded),
    ))
}

/// The seat holders of one span, earliest arrival first: each must still be drawable now (not
/// jailed or unbonded since, below capacity, serving the same span); one that is not, or
/// whose stake fell, is re-weighted and the seats drawn again. Each node is checked once, so
/// this ends after at most one round per ticket.
fn draw_span(
    deps: &DepsMut,
    staking: &Addr,
    query: &InferenceQuery,
    span: usize,
    mut entries: Vec<Entry<Addr>>,
) -> Result<Vec<Entry<Addr>>, ContractError> {
    let sharded = !query.shards.is_empty();
    let mut checked = vec![false; entries.len()];
    let holders = loop {
        let holders = seat_holders(&entries, query.redundancy);
        let unchecked: Vec<usize> = holders.iter().copied().filter(|&i| !checked[i]).collect();
        if unchecked.is_empty() {
            break holders;
        }
        for i in unchecked {
            checked[i] = true;
            let now = sortition_entry(deps.querier, staking, &entries[i].node, query.kernel_id)?;
            let same_seat = !sharded || now.span == Some(span as u32);
            entries[i].weight = if same_seat {
                entries[i].weight.min(now.weight)
            } else {
                Uint128::zero()
            };
        }
    };
    Ok(holders.into_iter().map(|i| entries[i].clone()).collect())
}

fn load_drawing(deps: &DepsMut, query_id: QueryId) -> Result<InferenceQuery, ContractError> {
    let query = QUERIES
        .may_load(deps.storage, query_id)?
        .ok_or(ContractError::QueryNotFound { id: query_id })?;
    if query.status != QueryStatus::Drawing {
        return Err(ContractError::NotDrawing {
            query_id,
            status: query.status,
        });
    }
    Ok(query)
}

fn sortition_entry(
    querier: QuerierWrapper,
    staking_addr: &Addr,
    node: &Addr,
    kernel_id: u64,
) -> StdResult<SortitionEntry> {
    querier.query_wasm_smart(
        staking_addr,
        &staking::QueryMsg::Sortition {
            node: node.to_string(),
            kernel_id,
        },
    )
}

//! Sortition: who serves a query is drawn from nodes' verifiable tickets, and nobody — the
//! submitter, a contract grinding submissions, a node — chooses the set.

mod support;

use cosmwasm_std::{
    to_json_binary, Addr, Binary, Deps, DepsMut, Empty, Env, HexBinary, MessageInfo, Reply,
    Response, StdError, StdResult, SubMsg, WasmMsg,
};
use cw_multi_test::{Contract, ContractWrapper, Executor};
use nesa_inference_market::msg::{
    ConfigResponse, ExecuteMsg, QueryMsg, QueryPhase, QueryResponse, QueryStatus,
};
use nesa_inference_market::ContractError;
use nesa_market::devnet::UNBONDING_BLOCKS;
use nesa_market::staking::{self, MAX_CAPACITY};

use support::*;

const INPUT: [u32; 4] = [1, 2, 3, 4];
const ESCROW: u128 = 3 * (4 * PRICE_IN + 16 * PRICE_OUT);

/// A market whose nodes never run out of capacity in these tests.
fn market() -> Market {
    let mut market = Market::with(0, devnet_params());
    for i in 0..5 {
        market.add_node(&format!("node-{i}"), NODE_STAKE, MAX_CAPACITY);
    }
    market
}

fn submit(market: &mut Market) -> u64 {
    let user = market.user();
    market
        .submit_undrawn(&user, &INPUT, 16, Some(3), ESCROW)
        .unwrap()
}

#[test]
fn a_ticket_counts_only_as_its_nodes_signature_of_this_draw() {
    let mut market = market();
    let id = submit(&mut market);
    let (a, b) = (market.nodes[0].clone(), market.nodes[1].clone());

    // Another node's ticket, replayed by a: not a's signature.
    let stolen = market.ticket(&b, id);
    let replay = ExecuteMsg::SubmitTicket {
        query_id: id,
        ticket: stolen,
    };
    assert!(matches!(
        market.execute(&a, &replay, 0),
        Err(ContractError::InvalidTicket { .. })
    ));
    // Garbage of the right length, and of the wrong one.
    for ticket in [vec![0xab; 96], vec![1; 10], vec![]] {
        let msg = ExecuteMsg::SubmitTicket {
            query_id: id,
            ticket: HexBinary::from(ticket),
        };
        assert!(matches!(
            market.execute(&a, &msg, 0),
            Err(ContractError::InvalidTicket { .. })
        ));
    }
    // a's signature of another query's draw.
    let other = submit(&mut market);
    let wrong_query = ExecuteMsg::SubmitTicket {
        query_id: id,
        ticket: market.ticket(&a, other),
    };
    assert!(matches!(
        market.execute(&a, &wrong_query, 0),
        Err(ContractError::InvalidTicket { .. })
    ));

    market.enter(&a, id).unwrap();
    assert!(matches!(
        market.enter(&a, id),
        Err(ContractError::AlreadyEntered { .. })
    ));
    // A stranger with no bond.
    let stranger = market.addr("stranger");
    assert!(matches!(
        market.enter(&stranger, id),
        Err(ContractError::NotDrawable { .. })
    ));
    assert_eq!(market.query(id).tickets.len(), 1);
}

#[test]
fn the_draw_window_is_enforced_both_ways() {
    let mut market = market();
    let id = submit(&mut market);
    let anyone = market.addr("bob");
    assert!(matches!(
        market.execute(&anyone, &ExecuteMsg::Draw { query_id: id }, 0),
        Err(ContractError::DrawTooEarly { .. })
    ));
    assert!(matches!(
        market.settle(id),
        Err(ContractError::NotDrawn { .. })
    ));
    let deadline = market.query(id).query.draw_deadline;
    market.advance_to(deadline);
    let node = market.nodes[0].clone();
    market.enter(&node, id).unwrap();
    market.advance(1);
    let late = market.nodes[1].clone();
    assert!(matches!(
        market.enter(&late, id),
        Err(ContractError::DrawClosed { .. })
    ));
}

#[test]
fn stake_or_key_changed_after_the_query_was_accepted_cannot_enter() {
    let mut market = market();
    let id = submit(&mut market);
    let (topped_up, rekeyed) = (market.nodes[0].clone(), market.nodes[1].clone());
    // Bonding more after seeing the draw input (and its own ticket).
    market.app.init_modules(|router, _, storage| {
        router
            .bank
            .init_balance(storage, &topped_up, cosmwasm_std::coins(MIN_STAKE, DENOM))
            .unwrap()
    });
    market
        .app
        .execute_contract(
            topped_up.clone(),
            market.staking.clone(),
            &staking::ExecuteMsg::Bond { profile: None },
            &cosmwasm_std::coins(MIN_STAKE, DENOM),
        )
        .unwrap();
    assert!(matches!(
        market.enter(&topped_up, id),
        Err(ContractError::NotDrawable { .. })
    ));
    // Registering a key ground against this draw input: the new key's ticket is refused.
    let ground = nesa_market::sortition::signer::TicketKey::from_seed(b"ground for this draw");
    let mut profile = market.profile(&rekeyed, MAX_CAPACITY);
    profile.sortition_key = Some(staking::SortitionKey {
        public_key: HexBinary::from(ground.public_key().to_vec()),
        proof: HexBinary::from(ground.proof_of_possession(rekeyed.as_str()).to_vec()),
    });
    market
        .app
        .execute_contract(
            rekeyed.clone(),
            market.staking.clone(),
            &staking::ExecuteMsg::UpdateProfile { profile },
            &[],
        )
        .unwrap();
    let input = market.query(id).query.draw_input.to_array().unwrap();
    let msg = ExecuteMsg::SubmitTicket {
        query_id: id,
        ticket: HexBinary::from(ground.ticket(&input).to_vec()),
    };
    assert!(matches!(
        market.execute(&rekeyed, &msg, 0),
        Err(ContractError::NotDrawable { .. })
    ));
    // Both enter later queries normally.
    market.advance(1);
    let next = submit(&mut market);
    market.enter(&topped_up, next).unwrap();
}

#[test]
fn a_draw_without_enough_usable_tickets_refunds_the_user_and_slashes_nobody() {
    let mut market = market();
    let user = market.user();
    let before = market.balance(&user);
    let id = submit(&mut market);
    let (a, b) = (market.nodes[0].clone(), market.nodes[1].clone());
    market.enter(&a, id).unwrap();
    market.enter(&b, id).unwrap();
    // Two tickets for three seats.
    let response = market.draw(id).unwrap();
    assert_eq!(
        attribute(&response, "wasm-query_settled", "status"),
        "disputed"
    );
    let state = market.query(id);
    assert_eq!(state.query.status, QueryStatus::Disputed);
    assert_eq!(state.phase, QueryPhase::Closed);
    assert_eq!(market.balance(&user), before);
    assert_eq!(market.balance(&market.market), 0);
    for node in [&a, &b] {
        assert!(market.node(node).slashed.is_zero());
        assert_eq!(market.node(node).open_assignments, 0);
    }
    let anyone = market.addr("bob");
    assert!(matches!(
        market.execute(&anyone, &ExecuteMsg::Draw { query_id: id }, 0),
        Err(ContractError::NotDrawing { .. })
    ));
}

#[test]
fn a_node_unbonded_between_its_ticket_and_the_draw_is_passed_over() {
    let mut market = market();
    let id = submit(&mut market);
    for node in market.nodes.clone() {
        market.enter(&node, id).unwrap();
    }
    // One node unbonds all its stake after entering: it is no longer eligible, so the draw
    // passes over its ticket and still fills the three seats from the other four.
    let first = market.nodes[0].clone();
    market
        .app
        .execute_contract(
            first.clone(),
            market.staking.clone(),
            &staking::ExecuteMsg::Unbond {
                amount: NODE_STAKE.into(),
            },
            &[],
        )
        .unwrap();
    market.draw(id).unwrap();
    let nodes = market.assigned(id);
    assert_eq!(nodes.len(), 3);
    assert!(
        !nodes.contains(&first),
        "an unbonded node is never assigned"
    );
}

/// A contract that grinds submissions: it submits through a submessage and reverts the whole
/// transaction unless the query's draw input (all it can see at submission) has a first byte
/// below 64, so only one in four attempts stays — the best a submitter can do, since tickets
/// need keys it does not hold.
mod grinder {
    use super::*;

    #[cosmwasm_schema::cw_serde]
    pub struct Grind {
        pub market: String,
        pub submit: Binary,
    }

    pub fn code() -> Box<dyn Contract<Empty>> {
        Box::new(ContractWrapper::new(execute, instantiate, query).with_reply(reply))
    }

    fn instantiate(_: DepsMut, _: Env, _: MessageInfo, _: Empty) -> StdResult<Response> {
        Ok(Response::new())
    }

    fn execute(_: DepsMut, _: Env, info: MessageInfo, msg: Grind) -> StdResult<Response> {
        let call = WasmMsg::Execute {
            contract_addr: msg.market.clone(),
            msg: msg.submit,
            funds: info.funds,
        };
        Ok(Response::new().add_submessage(
            SubMsg::reply_on_success(call, 1).with_payload(msg.market.into_bytes()),
        ))
    }

    fn reply(deps: DepsMut, _: Env, reply: Reply) -> StdResult<Response> {
        let market = String::from_utf8(reply.payload.to_vec()).unwrap();
        let config: ConfigResponse = deps
            .querier
            .query_wasm_smart(&market, &QueryMsg::Config {})?;
        let state: QueryResponse = deps.querier.query_wasm_smart(
            &market,
            &QueryMsg::Query {
                id: config.query_count,
            },
        )?;
        if state.query.draw_input.as_slice()[0] >= 64 {
            return Err(StdError::generic_err("not the draw input I want"));
        }
        Ok(Response::new())
    }

    fn query(_: Deps, _: Env, _: Empty) -> StdResult<Binary> {
        to_json_binary(&Empty {})
    }
}

#[test]
fn a_contract_grinding_its_submissions_draws_the_set_it_wants_no_more_often_than_chance() {
    let mut market = market();
    let code = market.app.store_code(grinder::code());
    let user = market.user();
    let grinder = market
        .app
        .instantiate_contract(code, user.clone(), &Empty {}, &[], "grinder", None)
        .unwrap();
    // The set the attacker wants: the first three nodes (1 in C(5,3) = 10 by chance).
    let mut wanted: Vec<Addr> = market.nodes[..3].to_vec();
    wanted.sort();
    let grind = grinder::Grind {
        market: market.market.to_string(),
        submit: to_json_binary(&Market::submit_msg(&INPUT, 16, Some(3))).unwrap(),
    };
    let (mut kept, mut wanted_drawn, mut attempts) = (0u32, 0u32, 0u32);
    while kept < 200 {
        attempts += 1;
        assert!(attempts < 5_000, "the grinder keeps about one in four");
        let funds = cosmwasm_std::coins(ESCROW, DENOM);
        if let Err(e) = market
            .app
            .execute_contract(user.clone(), grinder.clone(), &grind, &funds)
        {
            assert!(
                format!("{e:?}").contains("not the draw input I want"),
                "the grinder reverted for another reason: {e:?}"
            );
            // Within one block every retry sees the same draw input (the user's entropy is
            // not in it): its only lever is which block it submits in.
            assert!(market
                .app
                .execute_contract(user.clone(), grinder.clone(), &grind, &funds)
                .is_err());
            market.advance(1);
            continue;
        }
        kept += 1;
        let id = market.query_count();
        market.draw_open(id);
        let mut drawn = market.assigned(id);
        drawn.sort();
        wanted_drawn += u32::from(drawn == wanted);
        // Let the locks lapse so capacity never limits the draw.
        let reveal_deadline = market.query(id).query.reveal_deadline;
        market.advance_to(reveal_deadline + UNBONDING_BLOCKS + 1);
    }
    assert!(attempts > kept, "the grinder did revert some submissions");
    eprintln!("wanted set drawn {wanted_drawn} of {kept} kept ({attempts} attempts)");
    // Binomial(200, 0.1): mean 20, sd 4.2; a grinder that steered would be far above.
    assert!(
        (6..=36).contains(&wanted_drawn),
        "the wanted set was drawn {wanted_drawn} times in {kept} kept submissions"
    );
}

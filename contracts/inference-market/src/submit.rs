//! `submit_query`: every check first, then the escrow is kept and k nodes are assigned.

use cosmwasm_std::{
    to_json_binary, Addr, Binary, Coin, DepsMut, Env, Event, HexBinary, MessageInfo,
    QuerierWrapper, Response, Uint128, WasmMsg,
};
use nesa_market::commitment::to_hex;
use nesa_market::events::market::{self as events, attr};
use nesa_market::market::{
    Assignment, InferenceQuery, MarketParams, QueryStatus, Sampling, SettlementTerms,
    MAX_TEMPERATURE_MILLI, MAX_TOP_P_MILLI, USER_ENTROPY_BYTES,
};
use nesa_market::registry::{self, Kernel, KernelId};
use nesa_market::staking::{self, Candidate, CandidatesResponse, CANDIDATES_PAGE};
use nesa_market::{decode_token_ids, token_count};

use crate::error::ContractError;
use crate::sampling::{assignment_seed, sample_by_stake};
use crate::state::{
    save_query, ASSIGNMENTS, CONFIG, PARAMS, QUERIES_BY_NODE, QUERIES_BY_USER, QUERY_COUNT,
    RUNNING_SEED,
};

/// What a user asked for.
pub struct QueryRequest {
    pub kernel_id: KernelId,
    pub input: Binary,
    pub max_output_tokens: u32,
    pub sampling: Sampling,
    pub redundancy: Option<u8>,
    pub user_entropy: Binary,
}

pub fn submit_query(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    request: QueryRequest,
) -> Result<Response, ContractError> {
    let config = CONFIG.load(deps.storage)?;
    let params = PARAMS.load(deps.storage)?;

    // Stateless checks of the request.
    let ids = check_input(&params, &request.input)?;
    let input_tokens = ids.len() as u32;
    if request.max_output_tokens == 0 || request.max_output_tokens > params.max_output_tokens {
        return Err(ContractError::InvalidOutputLimit {
            requested: request.max_output_tokens,
            max: params.max_output_tokens,
        });
    }
    let sampling = request.sampling;
    if sampling.temperature_milli > MAX_TEMPERATURE_MILLI
        || sampling.top_p_milli == 0
        || sampling.top_p_milli > MAX_TOP_P_MILLI
    {
        return Err(ContractError::InvalidSampling {});
    }
    if request.user_entropy.len() != USER_ENTROPY_BYTES {
        return Err(ContractError::InvalidUserEntropy {
            len: request.user_entropy.len(),
        });
    }

    // Checks against the kernel and the escrow. A query no node could run (a token outside
    // the vocabulary, a sequence longer than the context) is refused here: accepted, it would
    // end with every assigned node unable to commit.
    let kernel = load_active_kernel(deps.querier, &config.registry, request.kernel_id)?;
    kernel
        .check_runnable(&ids, request.max_output_tokens)
        .map_err(|reason| ContractError::Unrunnable {
            kernel_id: kernel.id,
            reason,
        })?;
    let k = redundancy(&params, &kernel, request.redundancy)?;
    let per_node = max_payment(&kernel, input_tokens, request.max_output_tokens)?;
    let required = per_node.checked_mul(Uint128::from(k))?;
    let escrow = cw_utils::may_pay(&info, &params.denom)?;
    if escrow < required {
        return Err(ContractError::InsufficientEscrow {
            sent: escrow,
            required,
        });
    }

    // Assignment.
    let candidates = all_candidates(deps.querier, &config.staking, kernel.id)?;
    let id = QUERY_COUNT.load(deps.storage)? + 1;
    let running_seed = RUNNING_SEED.load(deps.storage)?;
    let seed = assignment_seed(
        &running_seed,
        id,
        &request.user_entropy,
        env.block.height,
        env.block.time.nanos(),
    );
    let nodes = sample_by_stake(&seed, &candidates, usize::from(k));
    if nodes.len() < usize::from(k) {
        return Err(ContractError::NotEnoughCandidates {
            kernel_id: kernel.id,
            available: nodes.len(),
            required: k,
        });
    }

    let commit_deadline = env
        .block
        .height
        .checked_add(params.commit_blocks)
        .ok_or(ContractError::HeightOverflow {})?;
    let reveal_deadline = commit_deadline
        .checked_add(params.reveal_blocks)
        .ok_or(ContractError::HeightOverflow {})?;
    let query = InferenceQuery {
        id,
        user: info.sender,
        kernel_id: kernel.id,
        kernel_owner: kernel.owner,
        price_per_input_token: kernel.price_per_input_token,
        price_per_output_token: kernel.price_per_output_token,
        input: request.input,
        input_tokens,
        max_output_tokens: request.max_output_tokens,
        sampling,
        redundancy: k,
        quorum: params.quorum,
        fingerprint_positions: params.fingerprint_positions,
        fingerprint_tolerance: params.fingerprint_tolerance,
        terms: Some(SettlementTerms::from_params(&params)),
        nodes,
        escrow: Coin {
            denom: params.denom.clone(),
            amount: escrow,
        },
        seed: HexBinary::from(seed.to_vec()),
        submitted_height: env.block.height,
        commit_deadline,
        reveal_deadline,
        status: QueryStatus::Pending,
        commits: 0,
        reveals: 0,
        settlement: None,
    };
    QUERY_COUNT.save(deps.storage, &id)?;
    save_query(deps.storage, &query, None)?;
    QUERIES_BY_USER.save(deps.storage, (&query.user, id), &())?;
    for node in &query.nodes {
        QUERIES_BY_NODE.save(deps.storage, (node, id), &())?;
        ASSIGNMENTS.save(deps.storage, (id, node), &unassigned(node))?;
    }

    let nodes: Vec<&str> = query.nodes.iter().map(Addr::as_str).collect();
    // Each node's stake stays slashable, and one of its capacity slots taken, until the query
    // ends. Staking refusing (not wired to this market, a node at capacity) refuses the query.
    let lock = WasmMsg::Execute {
        contract_addr: config.staking.to_string(),
        msg: to_json_binary(&staking::ExecuteMsg::Lock {
            query_id: id,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            until: reveal_deadline,
        })?,
        funds: vec![],
    };
    Ok(Response::new()
        .add_message(lock)
        .add_event(
            Event::new(events::QUERY_SUBMITTED)
                .add_attribute(attr::QUERY_ID, id.to_string())
                .add_attribute(attr::KERNEL_ID, query.kernel_id.to_string())
                .add_attribute(attr::USER, &query.user)
                .add_attribute(attr::ESCROW, query.escrow.amount)
                .add_attribute(attr::INPUT_TOKENS, input_tokens.to_string())
                .add_attribute(attr::MAX_OUTPUT_TOKENS, query.max_output_tokens.to_string())
                .add_attribute(attr::REDUNDANCY, k.to_string()),
        )
        .add_event(
            Event::new(events::QUERY_ASSIGNED)
                .add_attribute(attr::QUERY_ID, id.to_string())
                .add_attribute(attr::KERNEL_ID, query.kernel_id.to_string())
                .add_attribute(attr::USER, &query.user)
                .add_attribute(attr::NODES, nodes.join(","))
                .add_attribute(attr::COMMIT_DEADLINE, query.commit_deadline.to_string())
                .add_attribute(attr::REVEAL_DEADLINE, query.reveal_deadline.to_string())
                .add_attribute(attr::SEED, to_hex(&seed))
                .add_attribute(
                    attr::FINGERPRINT_POSITIONS,
                    query.fingerprint_positions.to_string(),
                ),
        ))
}

fn unassigned(node: &Addr) -> Assignment {
    Assignment {
        node: node.clone(),
        commitment: None,
        committed_height: None,
        reveal: None,
        outcome: None,
    }
}

/// The token ids of a non-empty input within the payload limits.
fn check_input(params: &MarketParams, input: &Binary) -> Result<Vec<u32>, ContractError> {
    let tokens = token_count(input).map_err(|source| ContractError::Payload {
        what: "input",
        source,
    })?;
    if tokens == 0 {
        return Err(ContractError::EmptyInput {});
    }
    if input.len() > params.max_payload_bytes as usize {
        return Err(ContractError::PayloadTooLarge {
            what: "input",
            bytes: input.len(),
            max: params.max_payload_bytes,
        });
    }
    if tokens > params.max_input_tokens {
        return Err(ContractError::TooManyInputTokens {
            tokens,
            max: params.max_input_tokens,
        });
    }
    Ok(decode_token_ids(input).expect("whole token ids, checked above"))
}

/// The kernel from the registry, if it exists and is active.
pub fn load_active_kernel(
    querier: QuerierWrapper,
    registry_addr: &Addr,
    kernel_id: KernelId,
) -> Result<Kernel, ContractError> {
    let kernel: Kernel = querier
        .query_wasm_smart(registry_addr, &registry::QueryMsg::Kernel { id: kernel_id })
        .map_err(|e| ContractError::KernelNotFound {
            kernel_id,
            reason: e.to_string(),
        })?;
    if !kernel.is_active() {
        return Err(ContractError::KernelDeprecated { kernel_id });
    }
    Ok(kernel)
}

/// k: the request's or the default, within the kernel's minimum, the quorum and the maximum.
pub fn redundancy(
    params: &MarketParams,
    kernel: &Kernel,
    requested: Option<u8>,
) -> Result<u8, ContractError> {
    let k = requested.unwrap_or(params.default_redundancy.max(kernel.min_redundancy));
    if k < kernel.min_redundancy || k < params.quorum || k > params.max_redundancy {
        return Err(ContractError::InvalidRedundancy {
            requested: k,
            min: kernel.min_redundancy,
            min_market: params.quorum,
            max: params.max_redundancy,
        });
    }
    Ok(k)
}

/// The most one node can be paid: `input_tokens × price_in + max_output_tokens × price_out`.
pub fn max_payment(
    kernel: &Kernel,
    input_tokens: u32,
    max_output_tokens: u32,
) -> Result<Uint128, ContractError> {
    let input = kernel
        .price_per_input_token
        .checked_mul(Uint128::from(input_tokens))?;
    let output = kernel
        .price_per_output_token
        .checked_mul(Uint128::from(max_output_tokens))?;
    Ok(input.checked_add(output)?)
}

/// Every eligible node for the kernel, paging through the staking contract.
fn all_candidates(
    querier: QuerierWrapper,
    staking_addr: &Addr,
    kernel_id: KernelId,
) -> Result<Vec<Candidate>, ContractError> {
    let mut all = Vec::new();
    loop {
        let page: CandidatesResponse = querier.query_wasm_smart(
            staking_addr,
            &staking::QueryMsg::Candidates {
                kernel_id,
                start_after: all.last().map(|c: &Candidate| c.address.to_string()),
                limit: Some(CANDIDATES_PAGE),
            },
        )?;
        let full = page.candidates.len() == CANDIDATES_PAGE as usize;
        all.extend(page.candidates);
        if !full {
            return Ok(all);
        }
    }
}

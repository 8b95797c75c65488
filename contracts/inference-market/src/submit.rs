//! `submit_query`: every check first, then the escrow is kept and the query opens its draw.

use cosmwasm_std::{
    Addr, Binary, Coin, DepsMut, Env, Event, HexBinary, MessageInfo, QuerierWrapper, Response,
    Uint128,
};
use nesa_market::commitment::to_hex;
use nesa_market::events::market::{self as events, attr};
use nesa_market::market::{
    InferenceQuery, MarketParams, QueryStatus, Sampling, SettlementTerms, MAX_PIPELINE_SPANS,
    MAX_TEMPERATURE_MILLI, MAX_TOP_P_MILLI, USER_ENTROPY_BYTES,
};
use nesa_market::registry::{self, Kernel, KernelId};
use nesa_market::sortition::draw_input;
use nesa_market::staking::{self, CandidatesResponse};
use nesa_market::{decode_token_ids, token_count};

use crate::error::ContractError;
use crate::sampling::initial_seed;
use crate::state::{save_query, CONFIG, PARAMS, QUERIES_BY_USER, QUERY_COUNT, RUNNING_SEED};

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

    // A sharded kernel runs through k pipelines, one seat per range of its layout.
    let shards = if kernel.is_sharded() {
        if kernel.shard_layout.len() > MAX_PIPELINE_SPANS {
            return Err(ContractError::TooManySpans {
                kernel_id: kernel.id,
                spans: kernel.shard_layout.len(),
                max: MAX_PIPELINE_SPANS,
            });
        }
        kernel.shard_layout.clone()
    } else {
        vec![]
    };
    // Enough nodes to draw from (for every span of a sharded kernel); who serves is drawn
    // from their tickets (`draw`).
    let available = candidate_count(deps.querier, &config.staking, kernel.id, shards.len(), k)?;
    if available < usize::from(k) {
        return Err(ContractError::NotEnoughCandidates {
            kernel_id: kernel.id,
            available,
            required: k,
        });
    }
    let id = QUERY_COUNT.load(deps.storage)? + 1;
    let height = env.block.height;
    let draw_deadline = height
        .checked_add(params.draw_blocks)
        .ok_or(ContractError::HeightOverflow {})?;
    // The deadlines if the draw comes right after its window; `draw` moves them by its delay.
    let commit_deadline = draw_deadline
        .checked_add(1 + params.commit_blocks)
        .ok_or(ContractError::HeightOverflow {})?;
    let reveal_deadline = commit_deadline
        .checked_add(params.reveal_blocks)
        .ok_or(ContractError::HeightOverflow {})?;
    let draw_input = draw_input(
        &env.block.chain_id,
        env.contract.address.as_str(),
        id,
        height,
        env.block.time.nanos(),
    );
    // The fingerprint seed starts from the user's entropy; the draw mixes in the tickets.
    let running_seed = RUNNING_SEED.load(deps.storage)?;
    let seed = initial_seed(&running_seed, id, &request.user_entropy, &draw_input);
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
        nodes: vec![],
        shards,
        escrow: Coin {
            denom: params.denom.clone(),
            amount: escrow,
        },
        seed: HexBinary::from(seed.to_vec()),
        submitted_height: height,
        draw_input: HexBinary::from(draw_input.to_vec()),
        draw_deadline,
        tickets: 0,
        commit_deadline,
        reveal_deadline,
        status: QueryStatus::Drawing,
        commits: 0,
        reveals: 0,
        settlement: None,
    };
    QUERY_COUNT.save(deps.storage, &id)?;
    save_query(deps.storage, &query, None)?;
    QUERIES_BY_USER.save(deps.storage, (&query.user, id), &())?;

    Ok(Response::new().add_event(
        Event::new(events::QUERY_SUBMITTED)
            .add_attribute(attr::QUERY_ID, id.to_string())
            .add_attribute(attr::KERNEL_ID, query.kernel_id.to_string())
            .add_attribute(attr::USER, &query.user)
            .add_attribute(attr::ESCROW, query.escrow.amount)
            .add_attribute(attr::INPUT_TOKENS, input_tokens.to_string())
            .add_attribute(attr::MAX_OUTPUT_TOKENS, query.max_output_tokens.to_string())
            .add_attribute(attr::REDUNDANCY, k.to_string())
            .add_attribute(attr::DRAW_INPUT, to_hex(&draw_input))
            .add_attribute(attr::DRAW_DEADLINE, draw_deadline.to_string()),
    ))
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

/// How many nodes could be drawn for the kernel now, counting up to `k`; for a sharded kernel
/// of `spans` ranges, the fewest that serve any one span (a pipeline needs every span).
fn candidate_count(
    querier: QuerierWrapper,
    staking_addr: &Addr,
    kernel_id: KernelId,
    spans: usize,
    k: u8,
) -> Result<usize, ContractError> {
    let needed = usize::from(k);
    let mut per_span = vec![0usize; spans.max(1)];
    let mut start_after = None;
    // A sharded kernel may need more than one page; the scan ends once every span has k.
    for _ in 0..MAX_CANDIDATE_PAGES {
        let page: CandidatesResponse = querier.query_wasm_smart(
            staking_addr,
            &staking::QueryMsg::Candidates {
                kernel_id,
                start_after: start_after.clone(),
                limit: Some(if spans == 0 {
                    u32::from(k)
                } else {
                    staking::CANDIDATES_PAGE
                }),
            },
        )?;
        for candidate in &page.candidates {
            let span = match (spans, candidate.span) {
                (0, _) => 0,
                (_, Some(span)) if (span as usize) < spans => span as usize,
                _ => continue,
            };
            per_span[span] += 1;
        }
        let full = per_span.iter().all(|&n| n >= needed);
        match page.candidates.last() {
            Some(last) if !full && spans > 0 => start_after = Some(last.address.to_string()),
            _ => break,
        }
    }
    Ok(per_span.iter().copied().min().unwrap_or(0).min(needed))
}

/// Pages of candidates a sharded submission reads at most (100 nodes each).
const MAX_CANDIDATE_PAGES: usize = 8;

//! `commit` and `reveal`: the two halves of the free-riding defence.

use cosmwasm_std::{Addr, Binary, DepsMut, Env, Event, HexBinary, MessageInfo, Response};
use nesa_market::commitment::{to_hex, MAX_SALT_BYTES, MIN_SALT_BYTES};
use nesa_market::events::market::{self as events, attr};
use nesa_market::fingerprint::MAX_FINGERPRINT_BYTES;
use nesa_market::market::{Assignment, InferenceQuery, QueryId, QueryStatus, Reveal};
use nesa_market::{
    commitment, fingerprint_positions, output_hash, result_hash, shard_result_hash, token_count,
    Fingerprint, SeatRecord,
};

use crate::error::ContractError;
use crate::lifecycle::{commits_open, reveals_open};
use crate::sampling::mix_salt;
use crate::state::{save_query, ASSIGNMENTS, QUERIES, RUNNING_SEED};

pub fn commit(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    query_id: QueryId,
    commitment: HexBinary,
) -> Result<Response, ContractError> {
    let mut query = load_open_query(&deps, query_id)?;
    let mut assignment = load_assignment(&deps, query_id, &info.sender)?;
    if assignment.commitment.is_some() {
        return Err(ContractError::AlreadyCommitted {
            query_id,
            node: info.sender,
        });
    }
    if !commits_open(&query, env.block.height) {
        return Err(ContractError::CommitClosed {
            query_id,
            commit_deadline: query.commit_deadline,
        });
    }
    if commitment.len() != 32 {
        return Err(ContractError::InvalidCommitment {
            len: commitment.len(),
        });
    }
    let event = Event::new(events::RESULT_COMMITTED)
        .add_attribute(attr::QUERY_ID, query_id.to_string())
        .add_attribute(attr::NODE, &info.sender)
        .add_attribute(attr::COMMITMENT, commitment.to_hex());
    assignment.commitment = Some(commitment);
    assignment.committed_height = Some(env.block.height);
    ASSIGNMENTS.save(deps.storage, (query_id, &info.sender), &assignment)?;

    let previous = query.status;
    query.commits += 1;
    if usize::from(query.commits) == query.nodes.len() {
        query.status = QueryStatus::Revealing;
    }
    save_query(deps.storage, &query, Some(previous))?;
    Ok(Response::new().add_event(event))
}

/// What a node reveals.
pub struct RevealRequest {
    pub output: Binary,
    pub fingerprint: Binary,
    pub salt: Binary,
    pub activations: Option<Binary>,
}

pub fn reveal(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    query_id: QueryId,
    request: RevealRequest,
) -> Result<Response, ContractError> {
    let mut query = load_open_query(&deps, query_id)?;
    let mut assignment = load_assignment(&deps, query_id, &info.sender)?;
    let Some(committed) = assignment.commitment.clone() else {
        return Err(ContractError::NotCommitted {
            query_id,
            node: info.sender,
        });
    };
    if assignment.reveal.is_some() {
        return Err(ContractError::AlreadyRevealed {
            query_id,
            node: info.sender,
        });
    }
    let height = env.block.height;
    if height > query.reveal_deadline {
        return Err(ContractError::RevealClosed {
            query_id,
            reveal_deadline: query.reveal_deadline,
        });
    }
    if !reveals_open(&query, height) {
        return Err(ContractError::RevealNotOpen {
            query_id,
            committed: query.commits,
            assigned: query.nodes.len() as u8,
            commit_deadline: query.commit_deadline,
        });
    }
    let output_tokens = check_output(&query, &request.output)?;
    if !(MIN_SALT_BYTES..=MAX_SALT_BYTES).contains(&request.salt.len()) {
        return Err(ContractError::InvalidSalt {
            len: request.salt.len(),
        });
    }
    // A pipeline's driver (span 0, or the one node of a whole-model seat) reveals the output;
    // the other spans of a sharded query never see tokens and reveal only activations.
    if assignment.span == 0 {
        check_fingerprint(&query, &request.fingerprint, output_tokens)?;
    } else if !request.output.is_empty() || !request.fingerprint.is_empty() {
        return Err(ContractError::InvalidActivations {
            query_id,
            reason: format!(
                "span {} of a pipeline reveals an empty output and fingerprint",
                assignment.span
            ),
        });
    }
    check_activations(&query, assignment.span, request.activations.as_ref())?;

    // A reveal that does not open its own commitment is recorded (and slashed at settlement):
    // binding the sender's address means a copied output cannot match, and binding the
    // fingerprint means a copied fingerprint cannot either.
    let revealed_hash = output_hash(&request.output);
    let result = match &request.activations {
        Some(activations) => shard_result_hash(&request.output, &request.fingerprint, activations),
        None => result_hash(&request.output, &request.fingerprint),
    };
    let expected = commitment(info.sender.as_str(), query_id, &result, &request.salt);
    let matches_commitment = committed.as_slice() == expected.as_slice();
    if matches_commitment {
        let running = RUNNING_SEED.load(deps.storage)?;
        let mixed = mix_salt(&running, &info.sender, query_id, &request.salt);
        RUNNING_SEED.save(deps.storage, &mixed)?;
    }
    assignment.reveal = Some(Reveal {
        output: request.output,
        output_hash: HexBinary::from(revealed_hash.to_vec()),
        output_tokens,
        fingerprint: request.fingerprint,
        salt: request.salt,
        activations: request.activations,
        matches_commitment,
        height,
    });
    ASSIGNMENTS.save(deps.storage, (query_id, &info.sender), &assignment)?;

    let previous = query.status;
    query.reveals += 1;
    query.status = QueryStatus::Revealing;
    save_query(deps.storage, &query, Some(previous))?;

    Ok(Response::new().add_event(
        Event::new(events::RESULT_REVEALED)
            .add_attribute(attr::QUERY_ID, query_id.to_string())
            .add_attribute(attr::NODE, &info.sender)
            .add_attribute(attr::OUTPUT_HASH, to_hex(&revealed_hash))
            .add_attribute(attr::OUTPUT_TOKENS, output_tokens.to_string())
            .add_attribute(attr::MATCHES_COMMITMENT, matches_commitment.to_string()),
    ))
}

/// The output's token count, within the query's limit (and so within the payload limit the
/// query was accepted under: parameter updates do not strand queries in flight).
fn check_output(query: &InferenceQuery, output: &Binary) -> Result<u32, ContractError> {
    let tokens = token_count(output).map_err(|source| ContractError::Payload {
        what: "output",
        source,
    })?;
    if tokens > query.max_output_tokens {
        return Err(ContractError::OutputTooLong {
            tokens,
            max: query.max_output_tokens,
        });
    }
    Ok(tokens)
}

/// A sharded query's seats reveal a seat record (with an input digest past span 0) that
/// decodes and covers at most the prompt and `max_output_tokens` decode positions (its length against the pipeline's
/// output is checked at settlement, once the driver's output is known); a whole-model query
/// takes none.
fn check_activations(
    query: &InferenceQuery,
    span: u32,
    activations: Option<&Binary>,
) -> Result<(), ContractError> {
    let invalid = |reason: String| ContractError::InvalidActivations {
        query_id: query.id,
        reason,
    };
    match (query.shards.is_empty(), activations) {
        (true, None) => Ok(()),
        (true, Some(_)) => Err(invalid(
            "activations are revealed only in a sharded query".into(),
        )),
        (false, None) => Err(invalid(
            "a seat of a pipeline reveals its activation record".into(),
        )),
        (false, Some(bytes)) => {
            let record = SeatRecord::decode(bytes, span > 0).map_err(|e| invalid(e.to_string()))?;
            let decode = record.outputs.decode_leaves.len();
            if decode > query.max_output_tokens as usize {
                return Err(invalid(format!(
                    "{decode} decode positions, more than the query's max_output_tokens {}",
                    query.max_output_tokens
                )));
            }
            Ok(())
        }
    }
}

/// The fingerprint decodes and covers exactly the positions drawn from the query's seed.
fn check_fingerprint(
    query: &InferenceQuery,
    fingerprint: &Binary,
    output_tokens: u32,
) -> Result<(), ContractError> {
    if fingerprint.len() > MAX_FINGERPRINT_BYTES {
        return Err(ContractError::FingerprintTooLarge {
            len: fingerprint.len(),
        });
    }
    let decoded = Fingerprint::decode(fingerprint)?;
    let seed = query.seed.to_array::<32>()?;
    let expected =
        fingerprint_positions(&seed, output_tokens, query.fingerprint_positions as usize);
    let found = decoded.positions();
    if found != expected {
        return Err(ContractError::FingerprintPositions { expected, found });
    }
    Ok(())
}

fn load_open_query(deps: &DepsMut, id: QueryId) -> Result<InferenceQuery, ContractError> {
    let query = QUERIES
        .may_load(deps.storage, id)?
        .ok_or(ContractError::QueryNotFound { id })?;
    if query.status.is_final() {
        return Err(ContractError::QueryClosed {
            id,
            status: query.status,
        });
    }
    Ok(query)
}

fn load_assignment(
    deps: &DepsMut,
    query_id: QueryId,
    node: &Addr,
) -> Result<Assignment, ContractError> {
    ASSIGNMENTS
        .may_load(deps.storage, (query_id, node))?
        .ok_or_else(|| ContractError::NotAssigned {
            query_id,
            node: node.clone(),
        })
}

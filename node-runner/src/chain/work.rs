//! One query's work: run the kernel on the (possibly permuted) input token ids exactly as every
//! honest node does, then derive the fingerprint, salt and commitment the market expects.

use nesa_engine::{GenerateRequest, Sampling};
use nesa_market::commitment::{commitment, result_hash, shard_result_hash};
use nesa_market::fingerprint::{quantize_logprob, Fingerprint, FingerprintEntry, TopToken, TOP_K};
use nesa_market::market::InferenceQuery;
use nesa_market::tokens::{decode_token_ids, encode_token_ids};
use sha2::{Digest, Sha256};

use crate::worker::Worker;

/// What a node commits to and later reveals.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// Generated token ids, encoded as on chain.
    pub output: Vec<u8>,
    /// The encoded logit fingerprint.
    pub fingerprint: Vec<u8>,
    /// Tokens generated.
    pub output_tokens: u32,
    /// Decode speed of this run.
    pub tokens_per_second: f64,
    /// The seat's encoded activation record, in a sharded query.
    pub activations: Option<Vec<u8>>,
}

/// Errors doing a query's work.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("query input is not a list of token ids: {0}")]
    Input(String),
    #[error("the query's seed is not 32 bytes")]
    Seed,
    #[error(transparent)]
    Engine(#[from] nesa_engine::EngineError),
    #[error("fingerprint: {0}")]
    Fingerprint(String),
    #[error("pipeline: {0}")]
    Pipeline(String),
}

/// The sampling a query asks for: greedy at temperature 0, else seeded.
pub fn sampling_of(query: &InferenceQuery) -> Sampling {
    let sampling = query.sampling;
    if sampling.temperature_milli == 0 {
        Sampling::Greedy
    } else {
        Sampling::Seeded {
            temperature: sampling.temperature_milli as f32 / 1000.0,
            top_p: sampling.top_p_milli.clamp(1, 1000) as f32 / 1000.0,
            seed: sampling.seed,
        }
    }
}

/// Runs `query` in the worker's batch and builds the result this node commits to.
pub async fn run_query(worker: &Worker, query: &InferenceQuery) -> Result<QueryResult, WorkError> {
    let prompt = decode_token_ids(&query.input).map_err(|e| WorkError::Input(e.to_string()))?;
    let request = GenerateRequest {
        prompt,
        max_tokens: query.max_output_tokens as usize,
        sampling: sampling_of(query),
        stop_tokens: worker.stop_tokens.clone(),
        top_logprobs: TOP_K,
    };
    let generated = worker.generate(request).await?;
    Ok(QueryResult {
        output: encode_token_ids(&generated.tokens),
        fingerprint: fingerprint_of(query, &generated.tokens, &generated.top_logprobs)?,
        output_tokens: generated.tokens.len() as u32,
        tokens_per_second: generated.decode_tokens_per_second(),
        activations: None,
    })
}

/// The encoded fingerprint of `tokens` generated for `query`, from the top log-probabilities
/// at each generated position.
pub fn fingerprint_of(
    query: &InferenceQuery,
    tokens: &[u32],
    top_logprobs: &[Vec<(u32, f32)>],
) -> Result<Vec<u8>, WorkError> {
    let seed: [u8; 32] = query
        .seed
        .as_slice()
        .try_into()
        .map_err(|_| WorkError::Seed)?;
    let count = tokens.len() as u32;
    let positions = nesa_market::fingerprint::fingerprint_positions(
        &seed,
        count,
        query.fingerprint_positions as usize,
    );
    let entries = positions
        .into_iter()
        .map(|position| {
            let top = top_logprobs
                .get(position as usize)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let pick = |i: usize| {
                let (token_id, logprob) = top.get(i).copied().unwrap_or((0, f32::NEG_INFINITY));
                TopToken {
                    token_id,
                    logprob_q: quantize_logprob(logprob),
                }
            };
            let top: [TopToken; TOP_K] = std::array::from_fn(pick);
            FingerprintEntry {
                position: position as u16,
                top,
            }
        })
        .collect();
    Fingerprint { entries }
        .encode()
        .map_err(|e| WorkError::Fingerprint(e.to_string()))
}

/// The salt for `query_id`: derived from the node's secret, so a restarted node reproduces it
/// without storing anything, and nobody else can.
pub fn salt(node_secret: &[u8; 32], query_id: u64) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"nesa/node-salt/v1");
    hasher.update(node_secret);
    hasher.update(query_id.to_be_bytes());
    hasher.finalize().to_vec()
}

/// The commitment `node` posts for `result` of `query_id` (over its activation record too,
/// in a sharded query).
pub fn commitment_for(node: &str, query_id: u64, result: &QueryResult, salt: &[u8]) -> [u8; 32] {
    let hash = match &result.activations {
        Some(record) => shard_result_hash(&result.output, &result.fingerprint, record),
        None => result_hash(&result.output, &result.fingerprint),
    };
    commitment(node, query_id, &hash, salt)
}

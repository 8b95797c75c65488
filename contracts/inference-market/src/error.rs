//! The market's errors: each says what was wrong and what to do.

use cosmwasm_std::{Addr, OverflowError, StdError, Uint128};
use cw_utils::PaymentError;
use thiserror::Error;

use nesa_market::commitment::{MAX_SALT_BYTES, MIN_SALT_BYTES};
use nesa_market::fingerprint::{FingerprintError, MAX_FINGERPRINT_BYTES};
use nesa_market::market::{QueryId, QueryStatus, USER_ENTROPY_BYTES};
use nesa_market::registry::{KernelId, Unrunnable};
use nesa_market::TokenIdsError;
use nesa_market::UpgradeError;

#[derive(Error, Debug, PartialEq)]
pub enum ContractError {
    #[error(transparent)]
    Std(#[from] StdError),

    #[error(transparent)]
    Overflow(#[from] OverflowError),

    #[error(transparent)]
    Upgrade(#[from] UpgradeError),

    #[error("pay the escrow in one coin of the market's denom: {0}")]
    Payment(#[from] PaymentError),

    #[error("only the admin {admin} may do this")]
    NotAdmin { admin: Addr },

    #[error("invalid market params: {reason}")]
    InvalidParams { reason: String },

    #[error("kernel {kernel_id} is not available: {reason}")]
    KernelNotFound { kernel_id: KernelId, reason: String },

    #[error("kernel {kernel_id} is deprecated: use a newer version of it")]
    KernelDeprecated { kernel_id: KernelId },

    #[error("kernel {kernel_id} cannot run this query: {reason}")]
    Unrunnable {
        kernel_id: KernelId,
        reason: Unrunnable,
    },

    #[error(
        "kernel {kernel_id} has {spans} shard ranges; the market runs pipelines of at most {max}"
    )]
    TooManySpans {
        kernel_id: KernelId,
        spans: usize,
        max: usize,
    },

    #[error("reveal for query {query_id}: {reason}")]
    InvalidActivations { query_id: QueryId, reason: String },

    #[error("the query's deadlines would pass the largest block height")]
    HeightOverflow {},

    #[error("the input is empty: send at least one token id")]
    EmptyInput {},

    #[error("{what}: {source}")]
    Payload {
        what: &'static str,
        source: TokenIdsError,
    },

    #[error("{what} of {bytes} bytes exceeds the market's max_payload_bytes {max}")]
    PayloadTooLarge {
        what: &'static str,
        bytes: usize,
        max: u32,
    },

    #[error("the input has {tokens} tokens, more than the market's max_input_tokens {max}")]
    TooManyInputTokens { tokens: u32, max: u32 },

    #[error("max_output_tokens {requested} is out of range: ask for 1 to {max}")]
    InvalidOutputLimit { requested: u32, max: u32 },

    #[error("redundancy {requested} is out of range: the kernel needs at least {min}, the market allows {min_market} to {max}")]
    InvalidRedundancy {
        requested: u8,
        min: u8,
        min_market: u8,
        max: u8,
    },

    #[error("invalid sampling: temperature_milli at most 10000, top_p_milli 1 to 1000")]
    InvalidSampling {},

    #[error("user_entropy must be {USER_ENTROPY_BYTES} bytes, got {len}")]
    InvalidUserEntropy { len: usize },

    #[error("escrow of {sent} is below the {required} this query may cost (k × (input × price_in + max_output × price_out))")]
    InsufficientEscrow { sent: Uint128, required: Uint128 },

    #[error(
        "kernel {kernel_id} has {available} eligible nodes, fewer than the {required} asked for"
    )]
    NotEnoughCandidates {
        kernel_id: KernelId,
        available: usize,
        required: u8,
    },

    #[error("query {id} does not exist")]
    QueryNotFound { id: QueryId },

    #[error("query {id} is {status:?}: nothing more can happen to it")]
    QueryClosed { id: QueryId, status: QueryStatus },

    #[error("{node} is not assigned to query {query_id}")]
    NotAssigned { query_id: QueryId, node: Addr },

    #[error("query {query_id} is {status:?}: tickets are taken only while it is drawing")]
    NotDrawing {
        query_id: QueryId,
        status: QueryStatus,
    },

    #[error("the draw of query {query_id} closed at height {draw_deadline}")]
    DrawClosed {
        query_id: QueryId,
        draw_deadline: u64,
    },

    #[error("query {query_id} takes tickets until height {draw_deadline}: draw after it")]
    DrawTooEarly {
        query_id: QueryId,
        draw_deadline: u64,
    },

    #[error("{node} already entered the draw of query {query_id}")]
    AlreadyEntered { query_id: QueryId, node: Addr },

    #[error("{node} cannot enter the draw of query {query_id}: {reason}")]
    NotDrawable {
        query_id: QueryId,
        node: Addr,
        reason: String,
    },

    #[error("the ticket of {node} for query {query_id} is not its signature of the draw input")]
    InvalidTicket { query_id: QueryId, node: Addr },

    #[error("{node} already committed to query {query_id}")]
    AlreadyCommitted { query_id: QueryId, node: Addr },

    #[error("the commit window of query {query_id} closed at height {commit_deadline}")]
    CommitClosed {
        query_id: QueryId,
        commit_deadline: u64,
    },

    #[error("a commitment is a sha256: 32 bytes (64 hex characters), got {len} bytes")]
    InvalidCommitment { len: usize },

    #[error("{node} did not commit to query {query_id}, so it cannot reveal")]
    NotCommitted { query_id: QueryId, node: Addr },

    #[error("{node} already revealed for query {query_id}")]
    AlreadyRevealed { query_id: QueryId, node: Addr },

    #[error("reveals for query {query_id} open when all {assigned} nodes committed ({committed} did) or after height {commit_deadline}")]
    RevealNotOpen {
        query_id: QueryId,
        committed: u8,
        assigned: u8,
        commit_deadline: u64,
    },

    #[error("the reveal window of query {query_id} closed at height {reveal_deadline}")]
    RevealClosed {
        query_id: QueryId,
        reveal_deadline: u64,
    },

    #[error("the output has {tokens} tokens, more than the query's max_output_tokens {max}")]
    OutputTooLong { tokens: u32, max: u32 },

    #[error("the salt must be {MIN_SALT_BYTES} to {MAX_SALT_BYTES} bytes, got {len}")]
    InvalidSalt { len: usize },

    #[error("the fingerprint is {len} bytes, more than {MAX_FINGERPRINT_BYTES}")]
    FingerprintTooLarge { len: usize },

    #[error("invalid fingerprint: {0}")]
    Fingerprint(#[from] FingerprintError),

    #[error("the fingerprint covers positions {found:?} but must cover {expected:?} (fingerprint_positions of the query's seed and the output length)")]
    FingerprintPositions { expected: Vec<u32>, found: Vec<u32> },

    #[error("query {id} cannot be settled yet: wait for every reveal or for height {reveal_deadline} to pass")]
    SettleTooEarly { id: QueryId, reveal_deadline: u64 },

    #[error("query {id} is not drawn yet: anyone may draw it after height {draw_deadline}")]
    NotDrawn { id: QueryId, draw_deadline: u64 },

    #[error("query {id} is already {status:?}")]
    AlreadySettled { id: QueryId, status: QueryStatus },
}

//! Errors from talking to a node.

use std::time::Duration;

use cosmrs::tendermint::Hash;

use super::TxOutcome;
use crate::{address::Address, coin::CoinError, fee::FeeError, tx::TxError};

/// What went wrong talking to the chain; each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node URL cannot be used.
    #[error("invalid node URL '{node}': {reason} (expected e.g. http://127.0.0.1:26657)")]
    InvalidNode { node: String, reason: String },
    /// The JSON-RPC request failed (node down, wrong URL, or the node refused the call).
    #[error("request to node {node} failed: {} (is the node running and reachable at that URL?)", rpc_reason(.cause))]
    Rpc {
        node: String,
        /// Not a `#[source]`: its `Display` carries a multi-line trace, so we print `rpc_reason` instead.
        cause: Box<tendermint_rpc::Error>,
    },
    /// An ABCI query answered with a non-zero code.
    #[error("query {path} failed (code {code}): {log}")]
    QueryFailed {
        path: String,
        code: u32,
        log: String,
    },
    /// A response could not be decoded.
    #[error("cannot decode the {what} returned by the node: {reason}")]
    Decode { what: &'static str, reason: String },
    /// The account has no state yet, so it has no account number or sequence to sign with.
    #[error("account {0} not found on chain: it must receive funds first")]
    AccountNotFound(Address),
    /// The account is of a kind this client cannot sign for.
    #[error("account type {0} is not supported: expected /cosmos.auth.v1beta1.BaseAccount")]
    UnexpectedAccountType(String),
    /// Simulation (`--gas auto`) failed: the transaction would fail if sent.
    #[error("transaction simulation failed: {log}")]
    Simulation { log: String },
    /// CheckTx rejected the transaction; it was not included in a block.
    #[error("transaction rejected by the node (code {code}{}): {log}", codespace_suffix(.codespace))]
    CheckTx {
        code: u32,
        codespace: String,
        log: String,
    },
    /// The transaction was included in a block but failed; fees were charged.
    #[error(
        "transaction {} failed at height {} (code {}{}): {}",
        .0.hash, .0.height, .0.code, codespace_suffix(&.0.codespace), .0.log
    )]
    DeliverTx(Box<TxOutcome>),
    /// The node has no transaction with this hash (not yet included, or pruned).
    #[error("transaction {0} not found on the node")]
    TxNotFound(Hash),
    /// The transaction was broadcast but did not appear in a block in time.
    #[error("transaction {hash} was not included within {}s: check later with `nesa query tx {hash}`", .waited.as_secs())]
    TxTimeout { hash: Hash, waited: Duration },
    /// Building or signing the transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The fee could not be computed.
    #[error(transparent)]
    Fee(#[from] FeeError),
    /// The node returned a malformed coin.
    #[error(transparent)]
    Coin(#[from] CoinError),
}

/// The message of an RPC error without the location and backtrace its tracer appends.
pub(crate) fn rpc_reason(error: &tendermint_rpc::Error) -> String {
    let full = error.to_string();
    let message = full.split("Location:").next().unwrap_or_default();
    message
        .replace("Caused by:", ":")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" :", ":")
}

fn codespace_suffix(codespace: &str) -> String {
    if codespace.is_empty() {
        String::new()
    } else {
        format!(", codespace {codespace}")
    }
}

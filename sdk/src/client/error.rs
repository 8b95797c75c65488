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
    /// Simulation failed: the transaction would fail if sent, so it was not (no fee, no funds
    /// moved). `reason` is the failing message's own error, e.g. the contract's.
    #[error("the chain refused the transaction when simulating it, so nothing was sent: {reason}")]
    Simulation { reason: String },
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

/// The innermost reason in a node's error log, without the wrappers the chain adds around a
/// message's or a contract's own error (`rpc error: code = … desc = `, `failed to execute
/// message; message index: 0: `, `: execute wasm contract failed`, `Generic error: `, …).
pub fn chain_reason(log: &str) -> String {
    const PREFIXES: [&str; 2] = [
        "Generic error: ",
        "failed to execute message; message index: ",
    ];
    const SUFFIXES: [&str; 6] = [
        ": invalid request",
        ": execute wasm contract failed",
        ": query wasm contract failed",
        ": instantiate wasm contract failed",
        ": migrate wasm contract failed",
        ": unknown request",
    ];
    let mut text = log.trim();
    loop {
        let before = text;
        if let Some((_, rest)) = text
            .split_once(" desc = ")
            .filter(|_| text.starts_with("rpc error:"))
        {
            text = rest;
        }
        for prefix in PREFIXES {
            if let Some(rest) = text.strip_prefix(prefix) {
                // "message index: N: " carries the index before the reason.
                text = match prefix.ends_with("index: ") {
                    true => rest.split_once(": ").map_or(rest, |(_, reason)| reason),
                    false => rest,
                };
            }
        }
        for suffix in SUFFIXES {
            text = text.strip_suffix(suffix).unwrap_or(text);
        }
        text = text.trim();
        if text == before {
            return text.to_owned();
        }
    }
}

fn codespace_suffix(codespace: &str) -> String {
    if codespace.is_empty() {
        String::new()
    } else {
        format!(", codespace {codespace}")
    }
}

#[cfg(test)]
mod tests {
    use super::chain_reason;

    #[test]
    fn a_contract_error_in_simulation_reads_as_the_contracts_own_words() {
        let log = "rpc error: code = InvalidArgument desc = failed to execute message; message index: 0: max_output_tokens 100000 is out of range: ask for 1 to 512: execute wasm contract failed: invalid request";
        assert_eq!(
            chain_reason(log),
            "max_output_tokens 100000 is out of range: ask for 1 to 512"
        );
    }

    #[test]
    fn a_failed_smart_query_reads_as_the_contracts_own_words() {
        let log = "rpc error: code = InvalidArgument desc = Generic error: kernel 99 is not available: kernel 99 not found: query wasm contract failed: invalid request";
        assert_eq!(
            chain_reason(log),
            "kernel 99 is not available: kernel 99 not found"
        );
    }

    #[test]
    fn a_plain_reason_is_kept_as_it_is() {
        assert_eq!(
            chain_reason("100unes is smaller than 1044unes: insufficient funds"),
            "100unes is smaller than 1044unes: insufficient funds"
        );
    }
}

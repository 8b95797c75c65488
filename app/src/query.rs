//! ABCI queries: the gRPC-style paths CosmJS and Keplr call (protobuf in, protobuf out), and
//! `store/<module>/key` raw reads with ICS-23 proofs.

use crate::modules::{auth, bank};
use crate::state::{StateError, StateRead};
use nesa_types::AddressError;

/// Why a query failed. Messages follow the SDK's gRPC wording, which clients match on.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("rpc error: code = NotFound desc = {0}: key not found")]
    NotFound(String),
    #[error("rpc error: code = InvalidArgument desc = {0}: invalid request")]
    InvalidRequest(String),
    #[error("unknown query path {0}: unknown request")]
    UnknownPath(String),
    #[error("rpc error: code = InvalidArgument desc = {0}: invalid height")]
    InvalidHeight(String),
    #[error("{0}")]
    State(#[from] StateError),
}

impl QueryError {
    /// The SDK error code reported in the ABCI query response (codespace `sdk`).
    pub fn code(&self) -> u32 {
        match self {
            QueryError::NotFound(_) => 22,
            QueryError::InvalidRequest(_) => 18,
            QueryError::UnknownPath(_) => 6,
            QueryError::InvalidHeight(_) => 26,
            QueryError::State(StateError::HeightUnavailable { .. }) => 26,
            QueryError::State(_) => 1,
        }
    }
}

impl From<prost::DecodeError> for QueryError {
    fn from(e: prost::DecodeError) -> Self {
        QueryError::InvalidRequest(format!("request is not valid protobuf: {e}"))
    }
}

impl From<AddressError> for QueryError {
    fn from(e: AddressError) -> Self {
        QueryError::InvalidRequest(e.to_string())
    }
}

/// A protobuf query handler over a state view.
type Handler<S> = fn(&S, &[u8]) -> Result<Vec<u8>, QueryError>;

/// Routes a gRPC-style query path to its module; `None` if no module serves it.
pub fn route<S: StateRead>(path: &str) -> Option<Handler<S>> {
    Some(match path {
        "/cosmos.auth.v1beta1.Query/Account" => auth::query::account_query::<S>,
        "/cosmos.bank.v1beta1.Query/Balance" => bank::query::balance_query::<S>,
        "/cosmos.bank.v1beta1.Query/AllBalances" => bank::query::all_balances_query::<S>,
        "/cosmos.bank.v1beta1.Query/SupplyOf" => bank::query::supply_of_query::<S>,
        "/cosmos.bank.v1beta1.Query/TotalSupply" => bank::query::total_supply_query::<S>,
        _ => return None,
    })
}

/// The raw-store prefix of a module for `store/<module>/key` queries.
pub fn module_prefix(module: &str) -> Option<&'static [u8]> {
    match module {
        "auth" => Some(auth::keys::PREFIX),
        "bank" => Some(bank::keys::PREFIX),
        _ => None,
    }
}

//! The error every module's query handlers report, in the SDK's gRPC wording and codes.

use nesa_types::AddressError;

use crate::state::StateError;

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

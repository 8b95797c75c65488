//! The probe's errors. Most are deliberate: tests ask for them.

use cosmwasm_std::StdError;
use cw_utils::ParseReplyError;
use thiserror::Error;

#[derive(Error, Debug, PartialEq)]
pub enum ContractError {
    #[error(transparent)]
    Std(#[from] StdError),

    /// Asked for by `fail`.
    #[error("requested failure: {0}")]
    Requested(String),

    /// Returned by `write_and_fail` after its write.
    #[error("wrote {key} and failed on purpose: the write must be rolled back")]
    WroteThenFailed { key: String },

    /// Returned by `reply` for id 999, to test that a failing reply reverts the whole call.
    #[error("reply {id} fails on purpose")]
    ReplyFailed { id: u64 },

    /// `dispatch` may not use the id `instantiate_child` replies with.
    #[error("reply id {id} is reserved for instantiate_child: use another id")]
    ReservedReplyId { id: u64 },

    /// The instantiate reply did not carry a contract address.
    #[error("instantiate_child reply: {0}")]
    ChildReply(#[from] ParseReplyError),

    /// The queried contract or the host's querier failed.
    #[error("query_other failed: {0}")]
    QueryOther(String),
}

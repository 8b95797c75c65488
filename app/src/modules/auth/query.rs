//! `/cosmos.auth.v1beta1.Query/*` handlers.

use cosmrs::proto::cosmos::auth::v1beta1::{QueryAccountRequest, QueryAccountResponse};
use cosmrs::proto::Any;
use prost::Message;

use nesa_types::Address;

use super::{account, BASE_ACCOUNT_TYPE_URL};
use crate::modules::QueryError;
use crate::state::StateRead;

/// `Query/Account`: the account at an address, as a `BaseAccount` in an `Any`.
pub fn account_query<S: StateRead>(state: &S, request: &[u8]) -> Result<Vec<u8>, QueryError> {
    let request = QueryAccountRequest::decode(request)?;
    let address: Address = request.address.parse()?;
    let found = account(state, &address)?
        .ok_or_else(|| QueryError::NotFound(format!("account {address} not found")))?;
    let any = Any {
        type_url: BASE_ACCOUNT_TYPE_URL.to_string(),
        value: found.to_proto().encode_to_vec(),
    };
    Ok(QueryAccountResponse { account: Some(any) }.encode_to_vec())
}

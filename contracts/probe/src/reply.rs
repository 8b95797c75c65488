//! Reply handlers: they record what the host reported back from each submessage.

use cosmwasm_std::{DepsMut, Event, Reply, Response, SubMsgResult};
use cw_utils::{parse_instantiate_response_data, ParseReplyError};

use crate::error::ContractError;
use crate::state::{reply_key, CHILD_KEY, ENTRIES};

/// Reply id of `instantiate_child`'s submessage; `dispatch` rejects it.
pub const CHILD_REPLY_ID: u64 = u64::MAX;
/// A reply with this id records its outcome and then fails, which must revert everything.
pub const FAILING_REPLY_ID: u64 = 999;

/// Type URLs under which x/wasm reports an instantiation in `msg_responses`.
const INSTANTIATE_RESPONSE_TYPES: [&str; 2] = [
    "/cosmwasm.wasm.v1.MsgInstantiateContractResponse",
    "/cosmwasm.wasm.v1.MsgInstantiateContract2Response",
];

/// Stores `ok:<base64 of data>` or `err:<error>` under `reply:<id>`; emits `wasm-replied`.
pub fn record(deps: DepsMut, reply: Reply) -> Result<Response, ContractError> {
    let (outcome, recorded) = match reply.result {
        SubMsgResult::Ok(response) => {
            // `data` is deprecated in favour of `msg_responses`, but x/wasm still fills it
            // and it is what older contracts read: the host must keep providing it.
            #[allow(deprecated)]
            let data = response.data.unwrap_or_default();
            ("ok", format!("ok:{}", data.to_base64()))
        }
        SubMsgResult::Err(error) => ("err", format!("err:{error}")),
    };
    ENTRIES.save(deps.storage, &reply_key(reply.id), &recorded)?;
    if reply.id == FAILING_REPLY_ID {
        return Err(ContractError::ReplyFailed { id: reply.id });
    }
    Ok(Response::new().add_event(
        Event::new("replied")
            .add_attribute("id", reply.id.to_string())
            .add_attribute("outcome", outcome),
    ))
}

/// Stores the address of the contract `instantiate_child` made under `child`.
pub fn child_instantiated(deps: DepsMut, reply: Reply) -> Result<Response, ContractError> {
    let response = reply
        .result
        .into_result()
        .map_err(ParseReplyError::SubMsgFailure)?;
    let from_msg_responses = response
        .msg_responses
        .iter()
        .find(|response| INSTANTIATE_RESPONSE_TYPES.contains(&response.type_url.as_str()))
        .map(|response| response.value.clone());
    #[allow(deprecated)]
    let encoded = from_msg_responses.or(response.data).ok_or_else(|| {
        ParseReplyError::ParseFailure("no instantiate response in the reply".to_string())
    })?;
    let instantiated = parse_instantiate_response_data(&encoded)?;
    ENTRIES.save(deps.storage, CHILD_KEY, &instantiated.contract_address)?;
    Ok(Response::new().add_event(
        Event::new("child_instantiated").add_attribute("address", instantiated.contract_address),
    ))
}

//! Handlers of instantiate, execute and migrate.

use cosmwasm_std::{
    to_json_vec, BankMsg, Binary, Coin, ContractResult, DepsMut, Empty, Event, MessageInfo, Order,
    QueryRequest, Response, SubMsg, SystemResult, WasmMsg, WasmQuery,
};

use crate::error::ContractError;
use crate::msg::{Call, InstantiateChildMsg, InstantiateMsg, MigrateMsg};
use crate::reply::CHILD_REPLY_ID;
use crate::state::{COUNTER, ENTRIES, MIGRATED, OWNER, QUERIED_KEY};

/// Data returned by instantiate, so tests can see it in the instantiate response.
pub const INSTANTIATE_DATA: &[u8] = b"probe";

pub fn instantiate(
    deps: DepsMut,
    info: MessageInfo,
    msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    let owner = match msg.owner {
        Some(owner) => deps.api.addr_validate(&owner)?,
        None => info.sender,
    };
    OWNER.save(deps.storage, &owner)?;
    COUNTER.save(deps.storage, &0)?;
    Ok(Response::new()
        .add_attribute("action", "instantiate")
        .add_attribute("owner", owner)
        .set_data(INSTANTIATE_DATA))
}

pub fn increment(deps: DepsMut) -> Result<Response, ContractError> {
    let count = COUNTER.load(deps.storage)? + 1;
    COUNTER.save(deps.storage, &count)?;
    Ok(Response::new()
        .add_attribute("action", "increment")
        .add_event(Event::new("incremented").add_attribute("count", count.to_string())))
}

pub fn set(deps: DepsMut, key: String, value: String) -> Result<Response, ContractError> {
    ENTRIES.save(deps.storage, &key, &value)?;
    Ok(Response::new()
        .add_attribute("action", "set")
        .add_attribute("key", key))
}

pub fn send(deps: DepsMut, to: String, amount: Vec<Coin>) -> Result<Response, ContractError> {
    let to = deps.api.addr_validate(&to)?;
    Ok(Response::new()
        .add_attribute("action", "send")
        .add_attribute("to", &to)
        .add_message(BankMsg::Send {
            to_address: to.into_string(),
            amount,
        }))
}

pub fn burn(amount: Vec<Coin>) -> Result<Response, ContractError> {
    Ok(Response::new()
        .add_attribute("action", "burn")
        .add_message(BankMsg::Burn { amount }))
}

pub fn dispatch(calls: Vec<Call>) -> Result<Response, ContractError> {
    let mut submessages = Vec::with_capacity(calls.len());
    for call in calls {
        if call.id == CHILD_REPLY_ID {
            return Err(ContractError::ReservedReplyId { id: call.id });
        }
        submessages.push(SubMsg {
            id: call.id,
            payload: Binary::default(),
            msg: call.msg,
            gas_limit: call.gas_limit,
            reply_on: call.reply_on,
        });
    }
    Ok(Response::new()
        .add_attribute("action", "dispatch")
        .add_submessages(submessages))
}

/// Burns gas until the host stops it: the out-of-gas test.
pub fn spin_forever() -> ! {
    let mut turns: u64 = 0;
    loop {
        // A volatile write is an effect no optimiser (rustc's or wasm-opt's) may remove, so
        // the loop stays a loop (`std::hint::black_box` is only a hint).
        // SAFETY: `turns` is a live local, properly aligned.
        unsafe { std::ptr::write_volatile(&mut turns, turns.wrapping_add(1)) };
    }
}

pub fn write_and_fail(
    deps: DepsMut,
    key: String,
    value: String,
) -> Result<Response, ContractError> {
    ENTRIES.save(deps.storage, &key, &value)?;
    Err(ContractError::WroteThenFailed { key })
}

/// Smart-queries another contract and keeps its answer byte for byte (no re-serialisation).
pub fn query_other(
    deps: DepsMut,
    contract: String,
    msg: Binary,
) -> Result<Response, ContractError> {
    let request: QueryRequest<Empty> = QueryRequest::Wasm(WasmQuery::Smart {
        contract_addr: contract.clone(),
        msg,
    });
    let answer = match deps.querier.raw_query(&to_json_vec(&request)?) {
        SystemResult::Ok(ContractResult::Ok(answer)) => answer,
        SystemResult::Ok(ContractResult::Err(error)) => {
            return Err(ContractError::QueryOther(format!(
                "{contract} answered: {error}"
            )))
        }
        SystemResult::Err(error) => {
            return Err(ContractError::QueryOther(format!("querier error: {error}")))
        }
    };
    let text = String::from_utf8(answer.to_vec())
        .map_err(|_| ContractError::QueryOther(format!("{contract} answered with non-UTF-8")))?;
    ENTRIES.save(deps.storage, QUERIED_KEY, &text)?;
    Ok(Response::new()
        .add_attribute("action", "query_other")
        .add_attribute("contract", contract)
        .set_data(answer))
}

pub fn instantiate_child(
    deps: DepsMut,
    child: InstantiateChildMsg,
) -> Result<Response, ContractError> {
    let admin = child
        .admin
        .map(|admin| deps.api.addr_validate(&admin).map(String::from))
        .transpose()?;
    let message = match child.salt {
        Some(salt) => WasmMsg::Instantiate2 {
            admin,
            code_id: child.code_id,
            label: child.label,
            msg: child.msg,
            funds: child.funds,
            salt,
        },
        None => WasmMsg::Instantiate {
            admin,
            code_id: child.code_id,
            label: child.label,
            msg: child.msg,
            funds: child.funds,
        },
    };
    Ok(Response::new()
        .add_attribute("action", "instantiate_child")
        .add_submessage(SubMsg::reply_on_success(message, CHILD_REPLY_ID)))
}

pub fn migrate(deps: DepsMut, msg: MigrateMsg) -> Result<Response, ContractError> {
    MIGRATED.save(deps.storage, &msg.note)?;
    Ok(Response::new()
        .add_attribute("action", "migrate")
        .add_attribute("note", msg.note))
}

pub fn fill(deps: DepsMut, start: u32, count: u32) -> Result<Response, ContractError> {
    for i in start..start.saturating_add(count) {
        deps.storage
            .set(format!("fill:{i:08}").as_bytes(), b"0123456789abcdef");
    }
    Ok(Response::new())
}

/// Opens every iterator first, then steps each: all stay open until the call returns.
pub fn iterate(
    deps: DepsMut,
    iterators: u32,
    steps: u32,
    reverse: bool,
) -> Result<Response, ContractError> {
    let order = if reverse {
        Order::Descending
    } else {
        Order::Ascending
    };
    let mut open: Vec<_> = (0..iterators)
        .map(|_| deps.storage.range(None, None, order))
        .collect();
    let mut seen = 0u64;
    let mut first = None;
    for iterator in &mut open {
        for (key, _) in iterator.by_ref().take(steps as usize) {
            first.get_or_insert_with(|| String::from_utf8_lossy(&key).into_owned());
            seen += 1;
        }
    }
    Ok(Response::new()
        .add_attribute("seen", seen.to_string())
        .add_attribute("first", first.unwrap_or_default()))
}

pub fn emit(attributes: u32, value_bytes: u32, data_bytes: u32) -> Response {
    let value = "v".repeat(value_bytes as usize);
    let event = Event::new("flood")
        .add_attributes((0..attributes).map(|i| (format!("a{i}"), value.clone())));
    let mut response = Response::new().add_event(event);
    if data_bytes > 0 {
        response = response.set_data(vec![7u8; data_bytes as usize]);
    }
    response
}

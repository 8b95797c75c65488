//! x/wasm semantics: code upload, instantiate, execute, migrate and admin changes; a
//! contract's response turned into events and messages; submessages each run in their own
//! cache with `reply_on`, errors redacted in replies, and reply data replacing the response
//! data — as wasmd does. Messages a contract emits go back through the app's one message
//! router ([`MessageRouter`]), the same path a transaction's messages take.

use std::sync::Arc;

use cosmrs::proto::Any;
use cosmwasm_std::{
    Addr, Binary, CosmosMsg, Event as StdEvent, MessageInfo, MsgResponse, Reply, ReplyOn, Response,
    SubMsg, SubMsgResponse, SubMsgResult,
};
use nesa_types::{Address, Coin};
use tendermint_proto::v0_38::abci::Event;

use super::limits::{
    COMPILE_COST_PER_BYTE, CUSTOM_EVENT_COST, EVENT_DATA_COST_PER_BYTE, EVENT_DATA_FREE_BYTES,
    EVENT_PER_ATTRIBUTE_COST,
};
use super::vm::{CallSite, Entry, WasmVm};
use super::{address, store, CodeInfo, ContractInfo, WasmError};
use crate::events::event;
use crate::modules::auth;
use crate::modules::bank;
use crate::state::{GasMeter, Metered, Overlay, StateWrite};

/// Executes the messages contracts emit; the app's message router implements it, so a
/// contract's `CosmosMsg` and a transaction's message take the same path.
pub trait MessageRouter {
    /// Executes `msg` as sent by `sender` (a contract) within `call`.
    fn dispatch(
        &self,
        call: &WasmCall,
        state: &mut dyn StateWrite,
        sender: &Address,
        msg: CosmosMsg,
        events: &mut Vec<Event>,
    ) -> Result<Executed, WasmError>;
}

/// Where a contract call comes from, what it may spend and where its messages go.
pub struct WasmCall<'a> {
    /// The contract VM.
    pub vm: &'a Arc<WasmVm>,
    /// The gas meter the call charges.
    pub meter: &'a GasMeter,
    /// The block, tx index and call depth.
    pub site: CallSite,
    /// Where the contract's emitted messages go.
    pub router: &'a dyn MessageRouter,
}

/// The result of one executed message: the data a contract returned (if any) and the
/// message's protobuf response.
#[derive(Clone, Debug)]
pub struct Executed {
    /// The data the contract returned (`None` for non-contract messages).
    pub data: Option<Binary>,
    /// The message's response, as it goes into `TxMsgData.msg_responses`.
    pub response: Any,
}

/// How a contract is instantiated.
pub struct Instantiate<'a> {
    pub sender: Address,
    pub admin: Option<Address>,
    pub code_id: u64,
    pub label: &'a str,
    pub msg: &'a [u8],
    pub funds: &'a [Coin],
    /// `Some(salt)` derives a predictable (instantiate2) address.
    pub salt: Option<&'a [u8]>,
}

fn std_coins(coins: &[Coin]) -> Vec<cosmwasm_std::Coin> {
    coins
        .iter()
        .map(|c| cosmwasm_std::Coin::new(c.amount, c.denom.clone()))
        .collect()
}

fn send_funds(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    from: &Address,
    to: &Address,
    funds: &[Coin],
    events: &mut Vec<Event>,
) -> Result<(), WasmError> {
    if funds.is_empty() {
        return Ok(());
    }
    Ok(bank::send(
        &mut Metered::new(state, call.meter),
        from,
        to,
        funds,
        events,
    )?)
}

/// Compiles and stores `wasm` (gunzipped) uploaded by `sender`; returns its code id and
/// checksum.
pub fn store_code(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    sender: &Address,
    wasm: &[u8],
    events: &mut Vec<Event>,
) -> Result<(u64, [u8; 32]), WasmError> {
    call.meter.consume(
        COMPILE_COST_PER_BYTE * wasm.len() as u64,
        "wasm compilation",
    )?;
    let checksum = if call.site.simulation {
        WasmVm::checksum_checked(wasm)?
    } else {
        call.vm.store(wasm)?
    };
    // The code bytes are kept in state for other nodes' caches, but (as in wasmd) only
    // compilation is charged, not storage per byte.
    let code_id = store::next_code_id(&mut Metered::new(&mut *state, call.meter))?;
    let info = CodeInfo {
        checksum: hex::encode(checksum),
        creator: sender.to_string(),
    };
    store::save_code(state, code_id, &info, wasm)?;
    events.push(event(
        "store_code",
        &[
            ("code_checksum", &info.checksum),
            ("code_id", &code_id.to_string()),
        ],
    ));
    Ok((code_id, checksum))
}

/// Instantiates a contract: address, account, funds, metadata, the `instantiate` entry point,
/// then its response. The message was checked to be JSON when it was decoded.
pub fn instantiate(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    request: Instantiate,
    events: &mut Vec<Event>,
) -> Result<(Address, Option<Binary>), WasmError> {
    if request.label.trim().is_empty() || request.label.len() > 128 {
        return Err(WasmError::InvalidMsg(
            "label must be 1 to 128 characters".into(),
        ));
    }
    let code = store::code(state, request.code_id)?;
    let contract = match request.salt {
        Some(salt) => {
            if salt.is_empty() || salt.len() > 64 {
                return Err(WasmError::InvalidMsg("salt must be 1 to 64 bytes".into()));
            }
            address::predictable(&code.checksum_bytes(), &request.sender, salt)
                .map_err(WasmError::InvalidMsg)?
                .into()
        }
        None => address::classic(request.code_id, store::next_instance_id(state)?).into(),
    };
    if store::contract_exists(state, &contract)? {
        return Err(WasmError::Duplicate(format!(
            "contract address {contract} already exists, try a different combination of creator, checksum and salt"
        )));
    }
    auth::ensure_account(&mut Metered::new(&mut *state, call.meter), &contract)?;
    send_funds(
        call,
        state,
        &request.sender,
        &contract,
        request.funds,
        events,
    )?;
    let info = ContractInfo {
        code_id: request.code_id,
        creator: request.sender.to_string(),
        admin: request.admin.map(|a| a.to_string()),
        label: request.label.to_string(),
        created_height: call.site.block.height,
        created_tx_index: call.site.tx_index.unwrap_or(0) as u64,
        instance_id: store::next_creation(state)?,
    };
    store::save_contract(state, &contract, &info)?;
    store::index_contract(state, &contract, &info)?;
    let contract_text = contract.to_string();
    events.push(event(
        "instantiate",
        &[
            ("_contract_address", &contract_text),
            ("code_id", &request.code_id.to_string()),
        ],
    ));
    let message_info = MessageInfo {
        sender: Addr::unchecked(request.sender.to_string()),
        funds: std_coins(request.funds),
    };
    let entry = Entry::Instantiate {
        info: &message_info,
        msg: request.msg,
    };
    let response = call
        .vm
        .call(state, call.meter, &call.site, &contract, entry)?;
    let data = handle_response(call, state, &contract, response, events)?;
    Ok((contract, data))
}

/// Executes a contract: funds first, then the `execute` entry point, then its response.
pub fn execute(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    sender: &Address,
    contract: &Address,
    msg: &[u8],
    funds: &[Coin],
    events: &mut Vec<Event>,
) -> Result<Option<Binary>, WasmError> {
    store::contract(state, contract)?;
    send_funds(call, state, sender, contract, funds, events)?;
    events.push(event(
        "execute",
        &[("_contract_address", &contract.to_string())],
    ));
    let info = MessageInfo {
        sender: Addr::unchecked(sender.to_string()),
        funds: std_coins(funds),
    };
    let entry = Entry::Execute { info: &info, msg };
    let response = call
        .vm
        .call(state, call.meter, &call.site, contract, entry)?;
    handle_response(call, state, contract, response, events)
}

/// Migrates a contract to `code_id`; only its admin may.
pub fn migrate(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    sender: &Address,
    contract: &Address,
    code_id: u64,
    msg: &[u8],
    events: &mut Vec<Event>,
) -> Result<Option<Binary>, WasmError> {
    let mut info = store::contract(state, contract)?;
    if info.admin.as_deref() != Some(sender.to_string().as_str()) {
        return Err(WasmError::Unauthorized(
            "can not migrate: caller is not the admin".into(),
        ));
    }
    store::code(state, code_id)?;
    store::unindex_contract(state, contract, &info)?;
    info.code_id = code_id;
    store::save_contract(state, contract, &info)?;
    store::index_contract(state, contract, &info)?;
    events.push(event(
        "migrate",
        &[
            ("code_id", &code_id.to_string()),
            ("_contract_address", &contract.to_string()),
        ],
    ));
    let response = call.vm.call(
        state,
        call.meter,
        &call.site,
        contract,
        Entry::Migrate { msg },
    )?;
    handle_response(call, state, contract, response, events)
}

/// Sets (or with `None` clears) a contract's admin; only the current admin may.
pub fn set_admin(
    state: &mut dyn StateWrite,
    sender: &Address,
    contract: &Address,
    new_admin: Option<&Address>,
    events: &mut Vec<Event>,
) -> Result<(), WasmError> {
    let mut info = store::contract(state, contract)?;
    if info.admin.as_deref() != Some(sender.to_string().as_str()) {
        return Err(WasmError::Unauthorized("caller is not the admin".into()));
    }
    info.admin = new_admin.map(Address::to_string);
    store::save_contract(state, contract, &info)?;
    let new_admin_text = info.admin.clone().unwrap_or_default();
    events.push(event(
        "update_contract_admin",
        &[
            ("_contract_address", &contract.to_string()),
            ("new_admin_address", &new_admin_text),
        ],
    ));
    Ok(())
}

/// Turns a response into events, runs its submessages, and returns the resulting data.
fn handle_response(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    contract: &Address,
    response: Response,
    events: &mut Vec<Event>,
) -> Result<Option<Binary>, WasmError> {
    call.meter
        .consume(response_cost(&response), "contract events and data")?;
    events.extend(contract_events(contract, &response)?);
    let mut data = response.data;
    for sub in response.messages {
        if let Some(replaced) = dispatch_submessage(call, state, contract, sub, events)? {
            data = Some(replaced);
        }
    }
    Ok(data)
}

/// What a response's events and data cost, as wasmd's `EventCosts`: per attribute, per byte of
/// attribute keys and values beyond a free tier shared by the whole response, per custom event
/// and per byte of its type; plus the response data per byte.
fn response_cost(response: &Response) -> u64 {
    let mut free = EVENT_DATA_FREE_BYTES;
    let mut attributes_cost = |attributes: &[cosmwasm_std::Attribute]| -> u64 {
        let bytes: u64 = attributes
            .iter()
            .map(|a| (a.key.len() + a.value.len()) as u64)
            .sum();
        let charged = bytes.saturating_sub(free);
        free = free.saturating_sub(bytes);
        charged
            .saturating_mul(EVENT_DATA_COST_PER_BYTE)
            .saturating_add((attributes.len() as u64).saturating_mul(EVENT_PER_ATTRIBUTE_COST))
    };
    let mut gas = attributes_cost(&response.attributes);
    for custom in &response.events {
        gas = gas
            .saturating_add(CUSTOM_EVENT_COST)
            .saturating_add((custom.ty.len() as u64).saturating_mul(EVENT_DATA_COST_PER_BYTE))
            .saturating_add(attributes_cost(&custom.attributes));
    }
    let data = response.data.as_ref().map_or(0, |d| d.len() as u64);
    gas.saturating_add(data.saturating_mul(EVENT_DATA_COST_PER_BYTE))
}

/// wasmd's event rules: attributes go into a `wasm` event, custom events become `wasm-<type>`,
/// each led by `_contract_address`; keys must be non-empty and not start with `_`.
fn contract_events(contract: &Address, response: &Response) -> Result<Vec<Event>, WasmError> {
    let address = contract.to_string();
    let check = |attributes: &[cosmwasm_std::Attribute]| -> Result<(), WasmError> {
        for attribute in attributes {
            let key = attribute.key.trim();
            if key.is_empty() {
                return Err(WasmError::InvalidEvent("empty attribute key".into()));
            }
            if key.starts_with('_') {
                return Err(WasmError::InvalidEvent(format!(
                    "attribute key `{key}` starts with the reserved `_`"
                )));
            }
        }
        Ok(())
    };
    let mut out = vec![];
    if !response.attributes.is_empty() {
        check(&response.attributes)?;
        let mut pairs: Vec<(&str, &str)> = vec![("_contract_address", &address)];
        pairs.extend(
            response
                .attributes
                .iter()
                .map(|a| (a.key.as_str(), a.value.as_str())),
        );
        out.push(event("wasm", &pairs));
    }
    for custom in &response.events {
        let kind = custom.ty.trim();
        if kind.len() < 2 {
            return Err(WasmError::InvalidEvent(format!(
                "event type `{kind}` is too short"
            )));
        }
        check(&custom.attributes)?;
        let mut pairs: Vec<(&str, &str)> = vec![("_contract_address", &address)];
        pairs.extend(
            custom
                .attributes
                .iter()
                .map(|a| (a.key.as_str(), a.value.as_str())),
        );
        out.push(event(&format!("wasm-{kind}"), &pairs));
    }
    Ok(out)
}

fn std_events(events: &[Event]) -> Vec<StdEvent> {
    events
        .iter()
        .map(|e| {
            // Built field by field: the builder rejects the reserved `_contract_address` key,
            // which the chain itself adds.
            let mut std_event = StdEvent::new(e.r#type.clone());
            std_event.attributes = e
                .attributes
                .iter()
                .map(|a| cosmwasm_std::Attribute {
                    key: a.key.clone(),
                    value: a.value.clone(),
                })
                .collect();
            std_event
        })
        .collect()
}

/// wasmd's `redactError`: a reply sees only the error's codespace and code, which are
/// deterministic, never its message.
fn redact(error: &WasmError) -> String {
    format!("codespace: {}, code: {}", error.codespace(), error.code())
}

/// Runs one submessage in its own cache; commits it on success; calls `reply` as asked.
/// Returns reply data that replaces the caller's response data.
fn dispatch_submessage(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    contract: &Address,
    sub: SubMsg,
    events: &mut Vec<Event>,
) -> Result<Option<Binary>, WasmError> {
    let site = call.site.deeper()?;
    let sub_meter;
    let meter = match sub.gas_limit {
        Some(limit) => {
            sub_meter =
                GasMeter::new(limit.min(call.meter.limit().saturating_sub(call.meter.used())));
            &sub_meter
        }
        None => call.meter,
    };
    let sub_call = WasmCall {
        vm: call.vm,
        meter,
        site,
        router: call.router,
    };
    let mut sub_events = vec![];
    let mut cache = Overlay::new(&*state);
    let outcome = call
        .router
        .dispatch(&sub_call, &mut cache, contract, sub.msg, &mut sub_events);
    let changes = cache.into_changes();
    if sub.gas_limit.is_some() {
        // Gas used under a submessage limit is charged to the caller either way.
        call.meter
            .consume(meter.used().min(meter.limit()), "submessage")?;
    }
    let result = match outcome {
        Ok(executed) => {
            for (key, value) in changes {
                match value {
                    Some(value) => state.put(key, value)?,
                    None => state.delete(key)?,
                }
            }
            events.extend(sub_events.iter().cloned());
            if !matches!(sub.reply_on, ReplyOn::Success | ReplyOn::Always) {
                return Ok(None);
            }
            #[allow(deprecated)]
            SubMsgResult::Ok(SubMsgResponse {
                events: std_events(&sub_events),
                data: executed.data,
                msg_responses: vec![MsgResponse {
                    type_url: executed.response.type_url,
                    value: Binary::from(executed.response.value),
                }],
            })
        }
        Err(error) => {
            // Out of gas of the whole transaction cannot be caught by a reply.
            if error.is_out_of_gas() && sub.gas_limit.is_none() {
                return Err(error);
            }
            if !matches!(sub.reply_on, ReplyOn::Error | ReplyOn::Always) {
                return Err(error);
            }
            SubMsgResult::Err(redact(&error))
        }
    };
    let reply = Reply {
        id: sub.id,
        payload: sub.payload,
        gas_used: 0,
        result,
    };
    let response = call.vm.call(
        state,
        call.meter,
        &call.site,
        contract,
        Entry::Reply(&reply),
    )?;
    events.push(event(
        "reply",
        &[("_contract_address", &contract.to_string())],
    ));
    handle_response(call, state, contract, response, events)
}

/// Which entry point failed, for the error code wasmd reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    Instantiate,
    Execute,
    Migrate,
    Reply,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wasmd's gas register test vectors (`x/wasm/types/gas_register_test.go`).
    #[test]
    fn events_and_data_cost_what_wasmd_charges() {
        let small = Response::new().add_attribute("myKey", "myData");
        assert_eq!(
            response_cost(&small),
            EVENT_PER_ATTRIBUTE_COST,
            "11 bytes are in the free tier"
        );

        let past_free_tier = Response::new()
            .add_event(cosmwasm_std::Event::new("foo").add_attribute("x".repeat(100), "myData"));
        assert_eq!(
            response_cost(&past_free_tier),
            CUSTOM_EVENT_COST + 3 + 6 + EVENT_PER_ATTRIBUTE_COST,
            "event type bytes, the 6 bytes past the free tier, one attribute, one event"
        );

        let flood = Response::new()
            .add_event(
                cosmwasm_std::Event::new("flood")
                    .add_attributes((0..1000).map(|i| (format!("a{i:03}"), "v".repeat(100)))),
            )
            .set_data(vec![0u8; 4096]);
        let attribute_bytes = 1000 * (4 + 100);
        assert_eq!(
            response_cost(&flood),
            CUSTOM_EVENT_COST
                + 5
                + (attribute_bytes - EVENT_DATA_FREE_BYTES)
                + 1000 * EVENT_PER_ATTRIBUTE_COST
                + 4096
        );
    }
}

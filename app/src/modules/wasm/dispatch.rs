//! x/wasm semantics: instantiate, execute, migrate and admin changes; a contract's response
//! turned into events and messages; submessages each run in their own cache with `reply_on`,
//! errors redacted in replies, and reply data replacing the response data — as wasmd does.

use std::sync::Arc;

use cosmwasm_std::{
    Addr, BankMsg, Binary, CosmosMsg, Event as StdEvent, MessageInfo, MsgResponse, Reply, ReplyOn,
    Response, SubMsg, SubMsgResponse, SubMsgResult, WasmMsg,
};
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::vm::{CallSite, Entry, WasmVm};
use super::{address, store, ContractInfo, WasmError};
use crate::events::event;
use crate::modules::auth;
use crate::modules::bank;
use crate::state::{GasMeter, Metered, Overlay, StateWrite};
use nesa_types::{Address, AddressError, Coin};

use cosmrs::proto::cosmwasm::wasm::v1 as proto;

/// Where a contract call comes from and what it may spend.
pub struct WasmCall<'a> {
    pub vm: &'a Arc<WasmVm>,
    pub meter: &'a GasMeter,
    pub site: CallSite,
}

/// The result of one dispatched message: its data and its protobuf response.
pub struct Dispatched {
    pub data: Option<Binary>,
    pub msg_response: MsgResponse,
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

fn check_json(msg: &[u8]) -> Result<(), WasmError> {
    serde_json::from_slice::<serde_json::Value>(msg)
        .map(|_| ())
        .map_err(|e| WasmError::InvalidMsg(format!("message is not valid JSON: {e}")))
}

fn std_coins(coins: &[Coin]) -> Vec<cosmwasm_std::Coin> {
    coins
        .iter()
        .map(|c| cosmwasm_std::Coin::new(c.amount, c.denom.clone()))
        .collect()
}

fn chain_coins(coins: &[cosmwasm_std::Coin]) -> Result<Vec<Coin>, WasmError> {
    coins
        .iter()
        .map(|c| {
            Ok(Coin {
                denom: c.denom.clone(),
                amount: c.amount.u128(),
            })
        })
        .collect()
}

fn parse_address(text: &str) -> Result<Address, WasmError> {
    text.parse()
        .map_err(|e: AddressError| WasmError::InvalidMsg(e.to_string()))
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
    bank::send(
        &mut Metered::new(state, call.meter),
        from,
        to,
        funds,
        events,
    )
    .map_err(WasmError::from)
}

/// Instantiates a contract: address, account, funds, metadata, the `instantiate` entry point,
/// then its response.
pub fn instantiate(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    request: Instantiate,
    events: &mut Vec<Event>,
) -> Result<(Address, Option<Binary>), WasmError> {
    check_json(request.msg)?;
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
    check_json(msg)?;
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
    check_json(msg)?;
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
    events.extend(contract_events(contract, &response)?);
    let mut data = response.data;
    for sub in response.messages {
        if let Some(replaced) = dispatch_submessage(call, state, contract, sub, events)? {
            data = Some(replaced);
        }
    }
    Ok(data)
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
    };
    let mut sub_events = vec![];
    let mut cache = Overlay::new(&*state);
    let outcome = dispatch_message(&sub_call, &mut cache, contract, sub.msg, &mut sub_events);
    let changes = cache.into_changes();
    if sub.gas_limit.is_some() {
        // Gas used under a submessage limit is charged to the caller either way.
        call.meter
            .consume(meter.used().min(meter.limit()), "submessage")?;
    }
    let result = match outcome {
        Ok(dispatched) => {
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
                data: dispatched.data,
                msg_responses: vec![dispatched.msg_response],
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

fn msg_response(type_url: &str, value: impl Message) -> MsgResponse {
    MsgResponse {
        type_url: type_url.to_string(),
        value: Binary::from(value.encode_to_vec()),
    }
}

/// Executes a message a contract emitted, as the contract.
fn dispatch_message(
    call: &WasmCall,
    state: &mut dyn StateWrite,
    sender: &Address,
    msg: CosmosMsg,
    events: &mut Vec<Event>,
) -> Result<Dispatched, WasmError> {
    match msg {
        CosmosMsg::Bank(BankMsg::Send { to_address, amount }) => {
            let to = parse_address(&to_address)?;
            let coins = chain_coins(&amount)?;
            bank::send(
                &mut Metered::new(state, call.meter),
                sender,
                &to,
                &coins,
                events,
            )?;
            let response = cosmrs::proto::cosmos::bank::v1beta1::MsgSendResponse {};
            Ok(Dispatched {
                data: None,
                msg_response: msg_response("/cosmos.bank.v1beta1.MsgSendResponse", response),
            })
        }
        CosmosMsg::Bank(BankMsg::Burn { amount }) => {
            let coins = chain_coins(&amount)?;
            bank::burn(&mut Metered::new(state, call.meter), sender, &coins, events)?;
            // MsgBurnResponse is an empty message.
            let msg_response = MsgResponse {
                type_url: "/cosmos.bank.v1beta1.MsgBurnResponse".into(),
                value: Binary::default(),
            };
            Ok(Dispatched {
                data: None,
                msg_response,
            })
        }
        CosmosMsg::Wasm(WasmMsg::Execute {
            contract_addr,
            msg,
            funds,
        }) => {
            let contract = parse_address(&contract_addr)?;
            let data = execute(
                call,
                state,
                sender,
                &contract,
                &msg,
                &chain_coins(&funds)?,
                events,
            )?;
            let response = proto::MsgExecuteContractResponse {
                data: data.clone().unwrap_or_default().to_vec(),
            };
            Ok(Dispatched {
                data,
                msg_response: msg_response(
                    "/cosmwasm.wasm.v1.MsgExecuteContractResponse",
                    response,
                ),
            })
        }
        CosmosMsg::Wasm(WasmMsg::Instantiate {
            admin,
            code_id,
            msg,
            funds,
            label,
        }) => {
            let funds = chain_coins(&funds)?;
            let admin = admin.as_deref().map(parse_address).transpose()?;
            let request = Instantiate {
                sender: *sender,
                admin,
                code_id,
                label: &label,
                msg: &msg,
                funds: &funds,
                salt: None,
            };
            let (contract, data) = instantiate(call, state, request, events)?;
            let response = proto::MsgInstantiateContractResponse {
                address: contract.to_string(),
                data: data.clone().unwrap_or_default().to_vec(),
            };
            Ok(Dispatched {
                data,
                msg_response: msg_response(
                    "/cosmwasm.wasm.v1.MsgInstantiateContractResponse",
                    response,
                ),
            })
        }
        CosmosMsg::Wasm(WasmMsg::Instantiate2 {
            admin,
            code_id,
            label,
            msg,
            funds,
            salt,
        }) => {
            let funds = chain_coins(&funds)?;
            let admin = admin.as_deref().map(parse_address).transpose()?;
            let request = Instantiate {
                sender: *sender,
                admin,
                code_id,
                label: &label,
                msg: &msg,
                funds: &funds,
                salt: Some(&salt),
            };
            let (contract, data) = instantiate(call, state, request, events)?;
            let response = proto::MsgInstantiateContract2Response {
                address: contract.to_string(),
                data: data.clone().unwrap_or_default().to_vec(),
            };
            Ok(Dispatched {
                data,
                msg_response: msg_response(
                    "/cosmwasm.wasm.v1.MsgInstantiateContract2Response",
                    response,
                ),
            })
        }
        CosmosMsg::Wasm(WasmMsg::Migrate {
            contract_addr,
            new_code_id,
            msg,
        }) => {
            let contract = parse_address(&contract_addr)?;
            let data = migrate(call, state, sender, &contract, new_code_id, &msg, events)?;
            let response = proto::MsgMigrateContractResponse {
                data: data.clone().unwrap_or_default().to_vec(),
            };
            Ok(Dispatched {
                data,
                msg_response: msg_response(
                    "/cosmwasm.wasm.v1.MsgMigrateContractResponse",
                    response,
                ),
            })
        }
        CosmosMsg::Wasm(WasmMsg::UpdateAdmin {
            contract_addr,
            admin,
        }) => {
            let contract = parse_address(&contract_addr)?;
            let admin = parse_address(&admin)?;
            set_admin(state, sender, &contract, Some(&admin), events)?;
            Ok(Dispatched {
                data: None,
                msg_response: msg_response(
                    "/cosmwasm.wasm.v1.MsgUpdateAdminResponse",
                    proto::MsgUpdateAdminResponse {},
                ),
            })
        }
        CosmosMsg::Wasm(WasmMsg::ClearAdmin { contract_addr }) => {
            let contract = parse_address(&contract_addr)?;
            set_admin(state, sender, &contract, None, events)?;
            Ok(Dispatched {
                data: None,
                msg_response: msg_response(
                    "/cosmwasm.wasm.v1.MsgClearAdminResponse",
                    proto::MsgClearAdminResponse {},
                ),
            })
        }
        other => Err(WasmError::UnsupportedMessage(
            format!("{other:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("message")
                .to_string(),
        )),
    }
}

/// Which entry point failed, for the error code wasmd reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    Instantiate,
    Execute,
    Migrate,
    Reply,
}

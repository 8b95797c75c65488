//! The messages a transaction may carry, decoded and statelessly validated from their `Any`
//! once; then executed against the message overlay, charging the transaction's gas meter.

use std::io::Read;

use cosmrs::proto::cosmos::bank::v1beta1::{MsgSend, MsgSendResponse};
use cosmrs::proto::cosmwasm::wasm::v1 as wasm_proto;
use cosmrs::proto::Any;
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::{TxEnv, TxError};
use crate::events::event;
use crate::modules::bank::{self, parse_coins};
use crate::modules::wasm::vm::{COMPILE_COST_PER_BYTE, MAX_WASM_BYTES};
use crate::modules::wasm::{self, dispatch, store, CallSite, WasmCall, WasmError};
use crate::state::{GasMeter, Metered, StateWrite};
use nesa_types::{Address, Coin};

/// A decoded, statelessly valid message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// `/cosmos.bank.v1beta1.MsgSend`.
    BankSend {
        from: Address,
        to: Address,
        amount: Vec<Coin>,
    },
    /// `/cosmwasm.wasm.v1.MsgStoreCode` (the wasm already gunzipped).
    StoreCode { sender: Address, wasm: Vec<u8> },
    /// `/cosmwasm.wasm.v1.MsgInstantiateContract` and `…2` (with a salt).
    Instantiate {
        sender: Address,
        admin: Option<Address>,
        code_id: u64,
        label: String,
        msg: Vec<u8>,
        funds: Vec<Coin>,
        salt: Option<Vec<u8>>,
    },
    /// `/cosmwasm.wasm.v1.MsgExecuteContract`.
    Execute {
        sender: Address,
        contract: Address,
        msg: Vec<u8>,
        funds: Vec<Coin>,
    },
    /// `/cosmwasm.wasm.v1.MsgMigrateContract`.
    Migrate {
        sender: Address,
        contract: Address,
        code_id: u64,
        msg: Vec<u8>,
    },
    /// `/cosmwasm.wasm.v1.MsgUpdateAdmin` (`Some`) and `MsgClearAdmin` (`None`).
    SetAdmin {
        sender: Address,
        contract: Address,
        new_admin: Option<Address>,
    },
}

const MSG_SEND: &str = "/cosmos.bank.v1beta1.MsgSend";
const MSG_STORE_CODE: &str = "/cosmwasm.wasm.v1.MsgStoreCode";
const MSG_INSTANTIATE: &str = "/cosmwasm.wasm.v1.MsgInstantiateContract";
const MSG_INSTANTIATE2: &str = "/cosmwasm.wasm.v1.MsgInstantiateContract2";
const MSG_EXECUTE: &str = "/cosmwasm.wasm.v1.MsgExecuteContract";
const MSG_MIGRATE: &str = "/cosmwasm.wasm.v1.MsgMigrateContract";
const MSG_UPDATE_ADMIN: &str = "/cosmwasm.wasm.v1.MsgUpdateAdmin";
const MSG_CLEAR_ADMIN: &str = "/cosmwasm.wasm.v1.MsgClearAdmin";

fn decode_as<T: Message + Default>(any: &Any) -> Result<T, TxError> {
    T::decode(any.value.as_slice()).map_err(|e| TxError::Decode(format!("{}: {e}", any.type_url)))
}

fn address(text: &str, field: &str) -> Result<Address, TxError> {
    text.parse()
        .map_err(|e| TxError::InvalidAddress(format!("{field}: {e}")))
}

fn optional_address(text: &str, field: &str) -> Result<Option<Address>, TxError> {
    if text.is_empty() {
        Ok(None)
    } else {
        address(text, field).map(Some)
    }
}

fn json_message(msg: &[u8]) -> Result<Vec<u8>, TxError> {
    serde_json::from_slice::<serde_json::Value>(msg).map_err(|e| {
        TxError::from(WasmError::InvalidMsg(format!(
            "contract message is not valid JSON: {e}"
        )))
    })?;
    Ok(msg.to_vec())
}

/// Uncompresses gzipped uploads (as CosmJS sends them) up to the size limit.
pub fn uncompress(code: &[u8]) -> Result<Vec<u8>, TxError> {
    if code.is_empty() {
        return Err(WasmError::Create("empty wasm code".into()).into());
    }
    let wasm = if code.starts_with(&[0x1f, 0x8b]) {
        let mut wasm = vec![];
        flate2::read::GzDecoder::new(code)
            .take(MAX_WASM_BYTES as u64 + 1)
            .read_to_end(&mut wasm)
            .map_err(|e| TxError::from(WasmError::Create(format!("gzip: {e}"))))?;
        wasm
    } else {
        code.to_vec()
    };
    if wasm.len() > MAX_WASM_BYTES {
        return Err(WasmError::Limit(format!("wasm code exceeds {MAX_WASM_BYTES} bytes")).into());
    }
    Ok(wasm)
}

impl Msg {
    /// Decodes and validates one message.
    pub fn decode(any: &Any) -> Result<Msg, TxError> {
        Ok(match any.type_url.as_str() {
            MSG_SEND => {
                let msg: MsgSend = decode_as(any)?;
                let amount = parse_coins(&msg.amount)?;
                if amount.is_empty() {
                    return Err(TxError::InvalidCoins("amount must not be empty".into()));
                }
                Msg::BankSend {
                    from: address(&msg.from_address, "from address")?,
                    to: address(&msg.to_address, "to address")?,
                    amount,
                }
            }
            MSG_STORE_CODE => {
                let msg: wasm_proto::MsgStoreCode = decode_as(any)?;
                Msg::StoreCode {
                    sender: address(&msg.sender, "sender")?,
                    wasm: uncompress(&msg.wasm_byte_code)?,
                }
            }
            MSG_INSTANTIATE => {
                let msg: wasm_proto::MsgInstantiateContract = decode_as(any)?;
                Msg::Instantiate {
                    sender: address(&msg.sender, "sender")?,
                    admin: optional_address(&msg.admin, "admin")?,
                    code_id: msg.code_id,
                    label: msg.label,
                    msg: json_message(&msg.msg)?,
                    funds: parse_coins(&msg.funds)?,
                    salt: None,
                }
            }
            MSG_INSTANTIATE2 => {
                let msg: wasm_proto::MsgInstantiateContract2 = decode_as(any)?;
                if msg.fix_msg {
                    return Err(WasmError::InvalidMsg("fix_msg is not supported".into()).into());
                }
                Msg::Instantiate {
                    sender: address(&msg.sender, "sender")?,
                    admin: optional_address(&msg.admin, "admin")?,
                    code_id: msg.code_id,
                    label: msg.label,
                    msg: json_message(&msg.msg)?,
                    funds: parse_coins(&msg.funds)?,
                    salt: Some(msg.salt),
                }
            }
            MSG_EXECUTE => {
                let msg: wasm_proto::MsgExecuteContract = decode_as(any)?;
                Msg::Execute {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    msg: json_message(&msg.msg)?,
                    funds: parse_coins(&msg.funds)?,
                }
            }
            MSG_MIGRATE => {
                let msg: wasm_proto::MsgMigrateContract = decode_as(any)?;
                Msg::Migrate {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    code_id: msg.code_id,
                    msg: json_message(&msg.msg)?,
                }
            }
            MSG_UPDATE_ADMIN => {
                let msg: wasm_proto::MsgUpdateAdmin = decode_as(any)?;
                Msg::SetAdmin {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    new_admin: Some(address(&msg.new_admin, "new admin")?),
                }
            }
            MSG_CLEAR_ADMIN => {
                let msg: wasm_proto::MsgClearAdmin = decode_as(any)?;
                Msg::SetAdmin {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    new_admin: None,
                }
            }
            other => {
                return Err(TxError::UnknownRequest(format!(
                    "unrecognized message type `{other}`"
                )))
            }
        })
    }

    /// The type URL clients use for this message.
    pub fn type_url(&self) -> &'static str {
        match self {
            Msg::BankSend { .. } => MSG_SEND,
            Msg::StoreCode { .. } => MSG_STORE_CODE,
            Msg::Instantiate { salt: None, .. } => MSG_INSTANTIATE,
            Msg::Instantiate { salt: Some(_), .. } => MSG_INSTANTIATE2,
            Msg::Execute { .. } => MSG_EXECUTE,
            Msg::Migrate { .. } => MSG_MIGRATE,
            Msg::SetAdmin {
                new_admin: Some(_), ..
            } => MSG_UPDATE_ADMIN,
            Msg::SetAdmin {
                new_admin: None, ..
            } => MSG_CLEAR_ADMIN,
        }
    }

    /// The account that must sign this message.
    pub fn signer(&self) -> Address {
        match self {
            Msg::BankSend { from, .. } => *from,
            Msg::StoreCode { sender, .. }
            | Msg::Instantiate { sender, .. }
            | Msg::Execute { sender, .. }
            | Msg::Migrate { sender, .. }
            | Msg::SetAdmin { sender, .. } => *sender,
        }
    }

    /// The module that handles this message (the `module` attribute of its `message` event).
    fn module(&self) -> &'static str {
        match self {
            Msg::BankSend { .. } => "bank",
            _ => "wasm",
        }
    }

    /// Executes the message over `state`, charging `meter`; returns its response for the
    /// transaction's `msg_responses`.
    pub fn execute(
        &self,
        state: &mut dyn StateWrite,
        meter: &GasMeter,
        env: &TxEnv,
        events: &mut Vec<Event>,
    ) -> Result<Any, TxError> {
        let signer = self.signer().to_string();
        events.push(event(
            "message",
            &[
                ("action", self.type_url()),
                ("sender", &signer),
                ("module", self.module()),
            ],
        ));
        if let Msg::BankSend { from, to, amount } = self {
            bank::send(&mut Metered::new(state, meter), from, to, amount, events)?;
            return Ok(response_any(
                "/cosmos.bank.v1beta1.MsgSendResponse",
                MsgSendResponse {},
            ));
        }
        let vm = env
            .wasm
            .ok_or_else(|| TxError::Internal("this node runs without the wasm VM".into()))?;
        let call = WasmCall {
            vm,
            meter,
            site: CallSite {
                block: env.block_info(),
                tx_index: Some(env.tx_index),
                depth: 0,
            },
        };
        match self {
            Msg::BankSend { .. } => unreachable!("handled above"),
            Msg::StoreCode { sender, wasm } => {
                meter.consume(
                    COMPILE_COST_PER_BYTE * wasm.len() as u64,
                    "wasm compilation",
                )?;
                let checksum = vm.store(wasm)?;
                // The code bytes are kept in state for other nodes' caches, but (as in wasmd)
                // only compilation is charged, not storage per byte.
                let code_id = store::next_code_id(&mut Metered::new(&mut *state, meter))?;
                let info = wasm::CodeInfo {
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
                Ok(response_any(
                    "/cosmwasm.wasm.v1.MsgStoreCodeResponse",
                    wasm_proto::MsgStoreCodeResponse {
                        code_id,
                        checksum: checksum.to_vec(),
                    },
                ))
            }
            Msg::Instantiate {
                sender,
                admin,
                code_id,
                label,
                msg,
                funds,
                salt,
            } => {
                let request = dispatch::Instantiate {
                    sender: *sender,
                    admin: *admin,
                    code_id: *code_id,
                    label,
                    msg,
                    funds,
                    salt: salt.as_deref(),
                };
                let (contract, data) = dispatch::instantiate(&call, state, request, events)?;
                let data = data.map(|d| d.to_vec()).unwrap_or_default();
                Ok(match salt {
                    None => response_any(
                        "/cosmwasm.wasm.v1.MsgInstantiateContractResponse",
                        wasm_proto::MsgInstantiateContractResponse {
                            address: contract.to_string(),
                            data,
                        },
                    ),
                    Some(_) => response_any(
                        "/cosmwasm.wasm.v1.MsgInstantiateContract2Response",
                        wasm_proto::MsgInstantiateContract2Response {
                            address: contract.to_string(),
                            data,
                        },
                    ),
                })
            }
            Msg::Execute {
                sender,
                contract,
                msg,
                funds,
            } => {
                let data = dispatch::execute(&call, state, sender, contract, msg, funds, events)?;
                Ok(response_any(
                    "/cosmwasm.wasm.v1.MsgExecuteContractResponse",
                    wasm_proto::MsgExecuteContractResponse {
                        data: data.map(|d| d.to_vec()).unwrap_or_default(),
                    },
                ))
            }
            Msg::Migrate {
                sender,
                contract,
                code_id,
                msg,
            } => {
                let data =
                    dispatch::migrate(&call, state, sender, contract, *code_id, msg, events)?;
                Ok(response_any(
                    "/cosmwasm.wasm.v1.MsgMigrateContractResponse",
                    wasm_proto::MsgMigrateContractResponse {
                        data: data.map(|d| d.to_vec()).unwrap_or_default(),
                    },
                ))
            }
            Msg::SetAdmin {
                sender,
                contract,
                new_admin,
            } => {
                dispatch::set_admin(state, sender, contract, new_admin.as_ref(), events)?;
                Ok(match new_admin {
                    Some(_) => response_any(
                        "/cosmwasm.wasm.v1.MsgUpdateAdminResponse",
                        wasm_proto::MsgUpdateAdminResponse {},
                    ),
                    None => response_any(
                        "/cosmwasm.wasm.v1.MsgClearAdminResponse",
                        wasm_proto::MsgClearAdminResponse {},
                    ),
                })
            }
        }
    }
}

fn response_any(type_url: &str, response: impl Message) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: response.encode_to_vec(),
    }
}

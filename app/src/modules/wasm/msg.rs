//! The wasm module's messages (`/cosmwasm.wasm.v1.Msg*`): decoded and statelessly checked
//! once — from a transaction's `Any` here, from a contract's `CosmosMsg` in `encode` — then
//! executed by one handler per message, which also builds the message's response.

use std::io::Read;

use cosmrs::proto::cosmwasm::wasm::v1 as proto;
use cosmrs::proto::Any;
use nesa_types::{Address, Coin};
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::contract::{self, Executed, Instantiate, WasmCall};
use super::limits::MAX_WASM_BYTES;
use super::WasmError;
use crate::modules::any;
use crate::modules::bank::parse_coins;
use crate::state::StateWrite;

const MSG_STORE_CODE: &str = "/cosmwasm.wasm.v1.MsgStoreCode";
const MSG_INSTANTIATE: &str = "/cosmwasm.wasm.v1.MsgInstantiateContract";
const MSG_INSTANTIATE2: &str = "/cosmwasm.wasm.v1.MsgInstantiateContract2";
const MSG_EXECUTE: &str = "/cosmwasm.wasm.v1.MsgExecuteContract";
const MSG_MIGRATE: &str = "/cosmwasm.wasm.v1.MsgMigrateContract";
const MSG_UPDATE_ADMIN: &str = "/cosmwasm.wasm.v1.MsgUpdateAdmin";
const MSG_CLEAR_ADMIN: &str = "/cosmwasm.wasm.v1.MsgClearAdmin";

/// A statelessly valid wasm message (contract messages are valid JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmMsg {
    /// `MsgStoreCode` (the wasm already gunzipped).
    StoreCode { sender: Address, wasm: Vec<u8> },
    /// `MsgInstantiateContract` and `…2` (with a salt).
    Instantiate {
        sender: Address,
        admin: Option<Address>,
        code_id: u64,
        label: String,
        msg: Vec<u8>,
        funds: Vec<Coin>,
        salt: Option<Vec<u8>>,
    },
    /// `MsgExecuteContract`.
    Execute {
        sender: Address,
        contract: Address,
        msg: Vec<u8>,
        funds: Vec<Coin>,
    },
    /// `MsgMigrateContract`.
    Migrate {
        sender: Address,
        contract: Address,
        code_id: u64,
        msg: Vec<u8>,
    },
    /// `MsgUpdateAdmin` (`Some`) and `MsgClearAdmin` (`None`).
    SetAdmin {
        sender: Address,
        contract: Address,
        new_admin: Option<Address>,
    },
}

/// Checks that a contract message is JSON (contracts only ever receive JSON).
pub fn check_json(msg: Vec<u8>) -> Result<Vec<u8>, WasmError> {
    serde_json::from_slice::<serde_json::Value>(&msg)
        .map_err(|e| WasmError::InvalidMsg(format!("contract message is not valid JSON: {e}")))?;
    Ok(msg)
}

/// Uncompresses gzipped uploads (as CosmJS sends them) up to the size limit.
pub fn uncompress(code: &[u8]) -> Result<Vec<u8>, WasmError> {
    if code.is_empty() {
        return Err(WasmError::Create("empty wasm code".into()));
    }
    let wasm = if code.starts_with(&[0x1f, 0x8b]) {
        let mut wasm = vec![];
        flate2::read::GzDecoder::new(code)
            .take(MAX_WASM_BYTES as u64 + 1)
            .read_to_end(&mut wasm)
            .map_err(|e| WasmError::Create(format!("gzip: {e}")))?;
        wasm
    } else {
        code.to_vec()
    };
    if wasm.len() > MAX_WASM_BYTES {
        return Err(WasmError::Limit(format!(
            "wasm code exceeds {MAX_WASM_BYTES} bytes"
        )));
    }
    Ok(wasm)
}

fn decode<T: Message + Default>(any: &Any) -> Result<T, WasmError> {
    any::decode(any).map_err(WasmError::Decode)
}

fn address(text: &str, field: &str) -> Result<Address, WasmError> {
    any::address(text, field).map_err(WasmError::InvalidAddress)
}

fn optional_address(text: &str, field: &str) -> Result<Option<Address>, WasmError> {
    any::optional_address(text, field).map_err(WasmError::InvalidAddress)
}

/// `MsgInstantiateContract{,2}`'s shared fields: sender, admin, code id, label, message.
type InstantiateFields = (String, String, u64, String, Vec<u8>);

fn instantiate(
    (sender, admin, code_id, label, msg): InstantiateFields,
    funds: &[cosmrs::proto::cosmos::base::v1beta1::Coin],
    salt: Option<Vec<u8>>,
) -> Result<WasmMsg, WasmError> {
    Ok(WasmMsg::Instantiate {
        sender: address(&sender, "sender")?,
        admin: optional_address(&admin, "admin")?,
        code_id,
        label,
        msg: check_json(msg)?,
        funds: parse_coins(funds)?,
        salt,
    })
}

fn response(type_url: &str, response: impl Message) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: response.encode_to_vec(),
    }
}

impl WasmMsg {
    /// Decodes a wasm message from a transaction; `None` if `any` is not one.
    pub fn from_any(any: &Any) -> Option<Result<WasmMsg, WasmError>> {
        Self::decode_any(any).transpose()
    }

    fn decode_any(any: &Any) -> Result<Option<WasmMsg>, WasmError> {
        Ok(Some(match any.type_url.as_str() {
            MSG_STORE_CODE => {
                let msg: proto::MsgStoreCode = decode(any)?;
                WasmMsg::StoreCode {
                    sender: address(&msg.sender, "sender")?,
                    wasm: uncompress(&msg.wasm_byte_code)?,
                }
            }
            MSG_INSTANTIATE => {
                let msg: proto::MsgInstantiateContract = decode(any)?;
                let fields = (msg.sender, msg.admin, msg.code_id, msg.label, msg.msg);
                instantiate(fields, &msg.funds, None)?
            }
            MSG_INSTANTIATE2 => {
                let msg: proto::MsgInstantiateContract2 = decode(any)?;
                if msg.fix_msg {
                    return Err(WasmError::InvalidMsg("fix_msg is not supported".into()));
                }
                let fields = (msg.sender, msg.admin, msg.code_id, msg.label, msg.msg);
                instantiate(fields, &msg.funds, Some(msg.salt))?
            }
            MSG_EXECUTE => {
                let msg: proto::MsgExecuteContract = decode(any)?;
                WasmMsg::Execute {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    msg: check_json(msg.msg)?,
                    funds: parse_coins(&msg.funds)?,
                }
            }
            MSG_MIGRATE => {
                let msg: proto::MsgMigrateContract = decode(any)?;
                WasmMsg::Migrate {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    code_id: msg.code_id,
                    msg: check_json(msg.msg)?,
                }
            }
            MSG_UPDATE_ADMIN => {
                let msg: proto::MsgUpdateAdmin = decode(any)?;
                WasmMsg::SetAdmin {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    new_admin: Some(address(&msg.new_admin, "new admin")?),
                }
            }
            MSG_CLEAR_ADMIN => {
                let msg: proto::MsgClearAdmin = decode(any)?;
                WasmMsg::SetAdmin {
                    sender: address(&msg.sender, "sender")?,
                    contract: address(&msg.contract, "contract")?,
                    new_admin: None,
                }
            }
            _ => return Ok(None),
        }))
    }

    /// The type URL clients use for this message.
    pub fn type_url(&self) -> &'static str {
        match self {
            WasmMsg::StoreCode { .. } => MSG_STORE_CODE,
            WasmMsg::Instantiate { salt: None, .. } => MSG_INSTANTIATE,
            WasmMsg::Instantiate { salt: Some(_), .. } => MSG_INSTANTIATE2,
            WasmMsg::Execute { .. } => MSG_EXECUTE,
            WasmMsg::Migrate { .. } => MSG_MIGRATE,
            WasmMsg::SetAdmin {
                new_admin: Some(_), ..
            } => MSG_UPDATE_ADMIN,
            WasmMsg::SetAdmin {
                new_admin: None, ..
            } => MSG_CLEAR_ADMIN,
        }
    }

    /// The account that must sign this message.
    pub fn signer(&self) -> Address {
        match self {
            WasmMsg::StoreCode { sender, .. }
            | WasmMsg::Instantiate { sender, .. }
            | WasmMsg::Execute { sender, .. }
            | WasmMsg::Migrate { sender, .. }
            | WasmMsg::SetAdmin { sender, .. } => *sender,
        }
    }

    /// Executes the message within `call`; returns the contract's data and the response.
    pub fn execute(
        &self,
        call: &WasmCall,
        state: &mut dyn StateWrite,
        events: &mut Vec<Event>,
    ) -> Result<Executed, WasmError> {
        let with_data =
            |data: Option<cosmwasm_std::Binary>, response: Any| Executed { data, response };
        let bytes = |data: &Option<cosmwasm_std::Binary>| {
            data.as_ref().map(|d| d.to_vec()).unwrap_or_default()
        };
        Ok(match self {
            WasmMsg::StoreCode { sender, wasm } => {
                let (code_id, checksum) = contract::store_code(call, state, sender, wasm, events)?;
                with_data(
                    None,
                    response(
                        "/cosmwasm.wasm.v1.MsgStoreCodeResponse",
                        proto::MsgStoreCodeResponse {
                            code_id,
                            checksum: checksum.to_vec(),
                        },
                    ),
                )
            }
            WasmMsg::Instantiate {
                sender,
                admin,
                code_id,
                label,
                msg,
                funds,
                salt,
            } => {
                let request = Instantiate {
                    sender: *sender,
                    admin: *admin,
                    code_id: *code_id,
                    label,
                    msg,
                    funds,
                    salt: salt.as_deref(),
                };
                let (address, data) = contract::instantiate(call, state, request, events)?;
                let address = address.to_string();
                let any = match salt {
                    None => response(
                        "/cosmwasm.wasm.v1.MsgInstantiateContractResponse",
                        proto::MsgInstantiateContractResponse {
                            address,
                            data: bytes(&data),
                        },
                    ),
                    Some(_) => response(
                        "/cosmwasm.wasm.v1.MsgInstantiateContract2Response",
                        proto::MsgInstantiateContract2Response {
                            address,
                            data: bytes(&data),
                        },
                    ),
                };
                with_data(data, any)
            }
            WasmMsg::Execute {
                sender,
                contract,
                msg,
                funds,
            } => {
                let data = contract::execute(call, state, sender, contract, msg, funds, events)?;
                let any = response(
                    "/cosmwasm.wasm.v1.MsgExecuteContractResponse",
                    proto::MsgExecuteContractResponse { data: bytes(&data) },
                );
                with_data(data, any)
            }
            WasmMsg::Migrate {
                sender,
                contract,
                code_id,
                msg,
            } => {
                let data = contract::migrate(call, state, sender, contract, *code_id, msg, events)?;
                let any = response(
                    "/cosmwasm.wasm.v1.MsgMigrateContractResponse",
                    proto::MsgMigrateContractResponse { data: bytes(&data) },
                );
                with_data(data, any)
            }
            WasmMsg::SetAdmin {
                sender,
                contract,
                new_admin,
            } => {
                contract::set_admin(state, sender, contract, new_admin.as_ref(), events)?;
                let any = match new_admin {
                    Some(_) => response(
                        "/cosmwasm.wasm.v1.MsgUpdateAdminResponse",
                        proto::MsgUpdateAdminResponse {},
                    ),
                    None => response(
                        "/cosmwasm.wasm.v1.MsgClearAdminResponse",
                        proto::MsgClearAdminResponse {},
                    ),
                };
                with_data(None, any)
            }
        })
    }
}

//! The one message path: a transaction's message (decoded from its `Any`) and a message a
//! contract emits (a `CosmosMsg`) become the same [`Msg`] and run through [`Msg::execute`],
//! which hands it to the module that owns it. Each module builds its own responses.

use std::sync::Arc;

use cosmrs::proto::Any;
use cosmwasm_std::CosmosMsg;
use nesa_types::Address;
use tendermint_proto::v0_38::abci::Event;

use crate::modules::bank::{BankError, BankMsg};
use crate::modules::wasm::{
    encode, CallSite, Executed, MessageRouter, WasmCall, WasmError, WasmMsg, WasmVm,
};
use crate::state::{GasMeter, Metered, StateWrite};

/// A decoded, statelessly valid message, whoever sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// `/cosmos.bank.v1beta1.*`.
    Bank(BankMsg),
    /// `/cosmwasm.wasm.v1.*`.
    Wasm(WasmMsg),
}

/// Why a message could not be decoded or failed.
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    /// The bank refused or failed the message.
    #[error(transparent)]
    Bank(#[from] BankError),
    /// The wasm module refused or failed the message.
    #[error(transparent)]
    Wasm(#[from] WasmError),
    /// No module handles this type URL.
    #[error("unrecognized message type `{0}`")]
    UnknownType(String),
}

impl From<MsgError> for WasmError {
    fn from(e: MsgError) -> Self {
        match e {
            MsgError::Bank(e) => WasmError::Bank(e),
            MsgError::Wasm(e) => e,
            MsgError::UnknownType(url) => WasmError::UnsupportedMessage(url),
        }
    }
}

/// Where a message runs: the contract VM, the gas meter it charges and the block it is in.
pub struct MsgContext<'a> {
    /// The contract VM.
    pub vm: &'a Arc<WasmVm>,
    /// The gas meter the message charges.
    pub meter: &'a GasMeter,
    /// The block, tx index and call depth.
    pub site: CallSite,
}

impl Msg {
    /// Decodes and validates a transaction's message.
    pub fn from_any(any: &Any) -> Result<Msg, MsgError> {
        if let Some(msg) = BankMsg::from_any(any) {
            return Ok(Msg::Bank(msg?));
        }
        if let Some(msg) = WasmMsg::from_any(any) {
            return Ok(Msg::Wasm(msg?));
        }
        Err(MsgError::UnknownType(any.type_url.clone()))
    }

    /// Reads a message `contract` emitted, sent by the contract.
    pub fn from_contract(contract: &Address, msg: CosmosMsg) -> Result<Msg, WasmError> {
        Ok(match msg {
            CosmosMsg::Bank(msg) => Msg::Bank(encode::bank(contract, msg)?),
            CosmosMsg::Wasm(msg) => Msg::Wasm(encode::wasm(contract, msg)?),
            other => return Err(encode::unsupported(&other)),
        })
    }

    /// The type URL clients use for this message.
    pub fn type_url(&self) -> &'static str {
        match self {
            Msg::Bank(msg) => msg.type_url(),
            Msg::Wasm(msg) => msg.type_url(),
        }
    }

    /// The account that must sign this message.
    pub fn signer(&self) -> Address {
        match self {
            Msg::Bank(msg) => msg.signer(),
            Msg::Wasm(msg) => msg.signer(),
        }
    }

    /// The module that handles this message (the `module` attribute of its `message` event).
    pub fn module(&self) -> &'static str {
        match self {
            Msg::Bank(_) => "bank",
            Msg::Wasm(_) => "wasm",
        }
    }

    /// Executes the message over `state`, charging `context.meter`.
    pub fn execute(
        &self,
        context: &MsgContext,
        state: &mut dyn StateWrite,
        events: &mut Vec<Event>,
    ) -> Result<Executed, MsgError> {
        match self {
            Msg::Bank(msg) => {
                let response = msg.execute(&mut Metered::new(state, context.meter), events)?;
                Ok(Executed {
                    data: None,
                    response,
                })
            }
            Msg::Wasm(msg) => {
                let call = WasmCall {
                    vm: context.vm,
                    meter: context.meter,
                    site: context.site.clone(),
                    router: &Router,
                };
                Ok(msg.execute(&call, state, events)?)
            }
        }
    }
}

/// Runs contract-emitted messages through [`Msg::execute`].
pub struct Router;

impl MessageRouter for Router {
    fn dispatch(
        &self,
        call: &WasmCall,
        state: &mut dyn StateWrite,
        sender: &Address,
        msg: CosmosMsg,
        events: &mut Vec<Event>,
    ) -> Result<Executed, WasmError> {
        let context = MsgContext {
            vm: call.vm,
            meter: call.meter,
            site: call.site.clone(),
        };
        Ok(Msg::from_contract(sender, msg)?.execute(&context, state, events)?)
    }
}

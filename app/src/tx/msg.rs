//! The messages a transaction may carry, decoded from their `Any` once.

use cosmrs::proto::cosmos::bank::v1beta1::{MsgSend, MsgSendResponse};
use cosmrs::proto::Any;
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::TxError;
use crate::events::event;
use crate::modules::auth::Address;
use crate::modules::bank::{self, parse_coins, Coin};
use crate::state::StateWrite;

/// A decoded, statelessly valid message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// `/cosmos.bank.v1beta1.MsgSend`.
    BankSend { from: Address, to: Address, amount: Vec<Coin> },
}

const MSG_SEND: &str = "/cosmos.bank.v1beta1.MsgSend";

impl Msg {
    /// Decodes and validates one message.
    pub fn decode(any: &Any) -> Result<Msg, TxError> {
        match any.type_url.as_str() {
            MSG_SEND => {
                let msg = MsgSend::decode(any.value.as_slice()).map_err(|e| TxError::Decode(format!("{MSG_SEND}: {e}")))?;
                let from = msg.from_address.parse().map_err(|e| TxError::InvalidAddress(format!("from address: {e}")))?;
                let to = msg.to_address.parse().map_err(|e| TxError::InvalidAddress(format!("to address: {e}")))?;
                let amount = parse_coins(&msg.amount)?;
                if amount.is_empty() {
                    return Err(TxError::InvalidCoins("amount must not be empty".into()));
                }
                Ok(Msg::BankSend { from, to, amount })
            }
            other => Err(TxError::UnknownRequest(format!("unrecognized message type `{other}`"))),
        }
    }

    /// The type URL clients use for this message.
    pub fn type_url(&self) -> &'static str {
        match self {
            Msg::BankSend { .. } => MSG_SEND,
        }
    }

    /// The account that must sign this message.
    pub fn signer(&self) -> Address {
        match self {
            Msg::BankSend { from, .. } => *from,
        }
    }

    /// The module that handles this message (the `module` attribute of its `message` event).
    fn module(&self) -> &'static str {
        match self {
            Msg::BankSend { .. } => "bank",
        }
    }

    /// Executes the message; returns its response for the tx's `msg_responses`.
    pub fn execute(&self, state: &mut impl StateWrite, events: &mut Vec<Event>) -> Result<Any, TxError> {
        let signer = self.signer().to_string();
        events.push(event("message", &[("action", self.type_url()), ("sender", &signer), ("module", self.module())]));
        match self {
            Msg::BankSend { from, to, amount } => {
                bank::send(state, from, to, amount, events)?;
                Ok(Any {
                    type_url: "/cosmos.bank.v1beta1.MsgSendResponse".into(),
                    value: MsgSendResponse {}.encode_to_vec(),
                })
            }
        }
    }
}

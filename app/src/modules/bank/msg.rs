//! The bank's messages: `MsgSend` from transactions, sends and burns from contracts.

use cosmrs::proto::cosmos::bank::v1beta1::{MsgSend, MsgSendResponse};
use cosmrs::proto::Any;
use nesa_types::{Address, Coin};
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::{burn, parse_coins, send, BankError};
use crate::modules::any;
use crate::state::StateWrite;

/// Type URL of `MsgSend`.
pub const MSG_SEND: &str = "/cosmos.bank.v1beta1.MsgSend";
/// Type URL of `MsgBurn` (only contracts burn, through `BankMsg::Burn`).
pub const MSG_BURN: &str = "/cosmos.bank.v1beta1.MsgBurn";

/// A statelessly valid bank message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankMsg {
    /// Moves `amount` from `from` to `to`.
    Send {
        from: Address,
        to: Address,
        amount: Vec<Coin>,
    },
    /// Destroys `amount` held by `from`.
    Burn { from: Address, amount: Vec<Coin> },
}

impl BankMsg {
    /// Decodes a bank message from a transaction; `None` if `any` is not one.
    pub fn from_any(any: &Any) -> Option<Result<BankMsg, BankError>> {
        (any.type_url == MSG_SEND).then(|| {
            let msg: MsgSend = any::decode(any).map_err(BankError::Decode)?;
            let amount = parse_coins(&msg.amount)?;
            if amount.is_empty() {
                return Err(BankError::InvalidCoins("amount must not be empty".into()));
            }
            let address = |text: &str, field: &str| {
                any::address(text, field).map_err(BankError::InvalidAddress)
            };
            Ok(BankMsg::Send {
                from: address(&msg.from_address, "from address")?,
                to: address(&msg.to_address, "to address")?,
                amount,
            })
        })
    }

    /// The type URL clients use for this message.
    pub fn type_url(&self) -> &'static str {
        match self {
            BankMsg::Send { .. } => MSG_SEND,
            BankMsg::Burn { .. } => MSG_BURN,
        }
    }

    /// The account that must sign this message.
    pub fn signer(&self) -> Address {
        match self {
            BankMsg::Send { from, .. } | BankMsg::Burn { from, .. } => *from,
        }
    }

    /// Executes the message over `state` (which charges gas); returns its response.
    pub fn execute(
        &self,
        state: &mut dyn StateWrite,
        events: &mut Vec<Event>,
    ) -> Result<Any, BankError> {
        match self {
            BankMsg::Send { from, to, amount } => {
                send(state, from, to, amount, events)?;
                Ok(Any {
                    type_url: "/cosmos.bank.v1beta1.MsgSendResponse".into(),
                    value: MsgSendResponse {}.encode_to_vec(),
                })
            }
            BankMsg::Burn { from, amount } => {
                burn(state, from, amount, events)?;
                // MsgBurnResponse is an empty message.
                Ok(Any {
                    type_url: "/cosmos.bank.v1beta1.MsgBurnResponse".into(),
                    value: vec![],
                })
            }
        }
    }
}

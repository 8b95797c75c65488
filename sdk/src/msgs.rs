//! Constructors for the chain's messages, packed as `Any` for the tx builder.

use cosmrs::{bank::MsgSend, tx::Msg, Any};

use crate::{address::Address, coin::Coins, tx::TxError, AddressExt, CoinsExt};

/// A `/cosmos.bank.v1beta1.MsgSend` moving `amount` from `from` to `to`.
pub fn bank_send(from: &Address, to: &Address, amount: &Coins) -> Result<Any, TxError> {
    MsgSend {
        from_address: from.to_account_id(),
        to_address: to.to_account_id(),
        amount: amount.to_cosmrs(),
    }
    .to_any()
    .map_err(|e| TxError::Encode(e.to_string()))
}

//! What a contract emits, read as chain messages: the `Bank` and `Wasm` variants of
//! `CosmosMsg` become the same [`BankMsg`] and [`WasmMsg`] a transaction carries, sent by the
//! contract (wasmd's message encoders). Errors are wasm errors: the contract sent them.

use cosmwasm_std::{BankMsg as StdBankMsg, Binary, CosmosMsg, WasmMsg as StdWasmMsg};
use nesa_types::{Address, AddressError, Coin};

use super::msg::{check_json, WasmMsg};
use super::WasmError;
use crate::modules::bank::BankMsg;

fn parse_address(text: &str) -> Result<Address, WasmError> {
    text.parse()
        .map_err(|e: AddressError| WasmError::InvalidMsg(e.to_string()))
}

fn chain_coins(coins: &[cosmwasm_std::Coin]) -> Vec<Coin> {
    coins
        .iter()
        .map(|c| Coin {
            denom: c.denom.clone(),
            amount: c.amount.u128(),
        })
        .collect()
}

/// The error for a message kind this chain does not run (its variant name, as wasmd reports).
pub fn unsupported(msg: &CosmosMsg) -> WasmError {
    WasmError::UnsupportedMessage(
        format!("{msg:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("message")
            .to_string(),
    )
}

/// A bank message from `sender`.
pub fn bank(sender: &Address, msg: StdBankMsg) -> Result<BankMsg, WasmError> {
    match msg {
        StdBankMsg::Send { to_address, amount } => Ok(BankMsg::Send {
            from: *sender,
            to: parse_address(&to_address)?,
            amount: chain_coins(&amount),
        }),
        StdBankMsg::Burn { amount } => Ok(BankMsg::Burn {
            from: *sender,
            amount: chain_coins(&amount),
        }),
        other => Err(unsupported(&CosmosMsg::Bank(other))),
    }
}

fn instantiate(
    sender: &Address,
    admin: Option<String>,
    code_id: u64,
    label: String,
    msg: Binary,
    funds: Vec<cosmwasm_std::Coin>,
    salt: Option<Binary>,
) -> Result<WasmMsg, WasmError> {
    let funds = chain_coins(&funds);
    let admin = admin.as_deref().map(parse_address).transpose()?;
    Ok(WasmMsg::Instantiate {
        sender: *sender,
        admin,
        code_id,
        label,
        msg: check_json(msg.to_vec())?,
        funds,
        salt: salt.map(|salt| salt.to_vec()),
    })
}

/// A wasm message from `sender`.
pub fn wasm(sender: &Address, msg: StdWasmMsg) -> Result<WasmMsg, WasmError> {
    Ok(match msg {
        StdWasmMsg::Execute {
            contract_addr,
            msg,
            funds,
        } => {
            let contract = parse_address(&contract_addr)?;
            let funds = chain_coins(&funds);
            WasmMsg::Execute {
                sender: *sender,
                contract,
                msg: check_json(msg.to_vec())?,
                funds,
            }
        }
        StdWasmMsg::Instantiate {
            admin,
            code_id,
            msg,
            funds,
            label,
        } => instantiate(sender, admin, code_id, label, msg, funds, None)?,
        StdWasmMsg::Instantiate2 {
            admin,
            code_id,
            label,
            msg,
            funds,
            salt,
        } => instantiate(sender, admin, code_id, label, msg, funds, Some(salt))?,
        StdWasmMsg::Migrate {
            contract_addr,
            new_code_id,
            msg,
        } => WasmMsg::Migrate {
            sender: *sender,
            contract: parse_address(&contract_addr)?,
            code_id: new_code_id,
            msg: check_json(msg.to_vec())?,
        },
        StdWasmMsg::UpdateAdmin {
            contract_addr,
            admin,
        } => WasmMsg::SetAdmin {
            sender: *sender,
            contract: parse_address(&contract_addr)?,
            new_admin: Some(parse_address(&admin)?),
        },
        StdWasmMsg::ClearAdmin { contract_addr } => WasmMsg::SetAdmin {
            sender: *sender,
            contract: parse_address(&contract_addr)?,
            new_admin: None,
        },
        other => return Err(unsupported(&CosmosMsg::Wasm(other))),
    })
}

//! Instantiation: an empty registry, its cw2 name and version recorded.

use cosmwasm_std::{DepsMut, MessageInfo, Response};
use nesa_market::upgrade::record_version;

use crate::contract::{CONTRACT_NAME, CONTRACT_VERSION};
use crate::error::ContractError;
use crate::state::KERNEL_COUNT;

pub fn instantiate(deps: DepsMut, info: MessageInfo) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    record_version(deps.storage, CONTRACT_NAME, CONTRACT_VERSION)?;
    KERNEL_COUNT.save(deps.storage, &0)?;
    Ok(Response::new().add_attribute("action", "instantiate"))
}

//! Instantiation: the staking rules and the contracts staking talks to, its cw2 name and
//! version recorded.

use cosmwasm_std::{DepsMut, MessageInfo, Response};
use nesa_market::staking::{InstantiateMsg, StakingConfig};
use nesa_market::upgrade::record_version;

use crate::contract::{CONTRACT_NAME, CONTRACT_VERSION};
use crate::error::ContractError;
use crate::execute::validate_config;
use crate::state::CONFIG;

pub fn instantiate(
    deps: DepsMut,
    info: MessageInfo,
    msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let api = deps.api;
    let config = StakingConfig {
        admin: match msg.admin {
            Some(admin) => api.addr_validate(&admin)?,
            None => info.sender,
        },
        denom: msg.denom,
        min_stake: msg.min_stake,
        unbonding_blocks: msg.unbonding_blocks,
        jail_blocks: msg.jail_blocks,
        registry: api.addr_validate(&msg.registry)?,
        market: msg.market.map(|m| api.addr_validate(&m)).transpose()?,
        slash_recipient: api.addr_validate(&msg.slash_recipient)?,
    };
    validate_config(&config)?;
    record_version(deps.storage, CONTRACT_NAME, CONTRACT_VERSION)?;
    CONFIG.save(deps.storage, &config)?;
    Ok(Response::new().add_attribute("action", "instantiate"))
}

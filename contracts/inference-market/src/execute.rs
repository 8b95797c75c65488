//! The admin's messages: new parameters, a new admin. The query lifecycle's messages have a
//! module each ([`crate::submit`], [`crate::commit_reveal`], [`crate::settle`]).

use cosmwasm_std::{DepsMut, Event, MessageInfo, Response};
use nesa_market::events::market as events;
use nesa_market::market::MarketParams;

use crate::error::ContractError;
use crate::params::validate_params;
use crate::state::{Config, CONFIG, PARAMS};

pub fn update_params(
    deps: DepsMut,
    info: MessageInfo,
    params: MarketParams,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    ensure_admin(&deps, &info)?;
    validate_params(&params)?;
    PARAMS.save(deps.storage, &params)?;
    Ok(Response::new().add_event(Event::new(events::PARAMS_UPDATED)))
}

pub fn update_admin(
    deps: DepsMut,
    info: MessageInfo,
    admin: String,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let mut config = ensure_admin(&deps, &info)?;
    config.admin = deps.api.addr_validate(&admin)?;
    CONFIG.save(deps.storage, &config)?;
    Ok(Response::new()
        .add_attribute("action", "update_admin")
        .add_attribute("admin", config.admin))
}

fn ensure_admin(deps: &DepsMut, info: &MessageInfo) -> Result<Config, ContractError> {
    let config = CONFIG.load(deps.storage)?;
    if info.sender != config.admin {
        return Err(ContractError::NotAdmin {
            admin: config.admin,
        });
    }
    Ok(config)
}

//! Instantiation and the admin's messages.

use cosmwasm_std::{DepsMut, Env, Event, MessageInfo, Response};
use nesa_market::events::market as events;
use nesa_market::market::{InstantiateMsg, MarketParams};

use crate::error::ContractError;
use crate::params::validate_params;
use crate::sampling::genesis_seed;
use crate::state::{Config, CONFIG, PARAMS, QUERY_COUNT, RUNNING_SEED};

pub fn instantiate(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    msg: InstantiateMsg,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    validate_params(&msg.params)?;
    let api = deps.api;
    let config = Config {
        admin: match msg.admin {
            Some(admin) => api.addr_validate(&admin)?,
            None => info.sender,
        },
        registry: api.addr_validate(&msg.registry)?,
        staking: api.addr_validate(&msg.staking)?,
        treasury: api.addr_validate(&msg.treasury)?,
    };
    CONFIG.save(deps.storage, &config)?;
    PARAMS.save(deps.storage, &msg.params)?;
    QUERY_COUNT.save(deps.storage, &0)?;
    let seed = genesis_seed(
        &env.contract.address,
        env.block.height,
        env.block.time.nanos(),
    );
    RUNNING_SEED.save(deps.storage, &seed)?;
    Ok(Response::new()
        .add_attribute("action", "instantiate")
        .add_attribute("admin", config.admin))
}

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

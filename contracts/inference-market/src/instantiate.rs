//! Instantiation: the wired contracts, the validated parameters and the first seed, its cw2
//! name and version recorded.

use cosmwasm_std::{DepsMut, Env, MessageInfo, Response};
use nesa_market::market::InstantiateMsg;
use nesa_market::upgrade::record_version;

use crate::contract::{CONTRACT_NAME, CONTRACT_VERSION};
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
    record_version(deps.storage, CONTRACT_NAME, CONTRACT_VERSION)?;
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

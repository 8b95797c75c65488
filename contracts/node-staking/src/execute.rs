//! Handlers of the execute messages.

use cosmwasm_std::{
    coins, Addr, BankMsg, Decimal, DepsMut, Env, Event, MessageInfo, Response, Uint128,
};
use nesa_market::events::staking::{self as events, attr};
use nesa_market::staking::{
    AssignmentLock, ConfigUpdate, NodeProfile, StakingConfig, UnbondingEntry, MAX_STAKING_BLOCKS,
    MAX_UNBONDING_ENTRIES,
};

use crate::error::ContractError;
use crate::profile::{reindex, validate_profile};
use crate::state::{Node, CONFIG, NODES};

pub fn bond(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    profile: Option<NodeProfile>,
) -> Result<Response, ContractError> {
    let config = CONFIG.load(deps.storage)?;
    let amount = cw_utils::must_pay(&info, &config.denom)?;
    let existing = NODES.may_load(deps.storage, &info.sender)?;
    if existing.is_none() {
        if profile.is_none() {
            return Err(ContractError::MissingProfile {});
        }
        if amount < config.min_stake {
            return Err(ContractError::BelowMinStake {
                amount,
                min_stake: config.min_stake,
            });
        }
    }
    if let Some(profile) = &profile {
        validate_profile(
            deps.api,
            deps.querier,
            &config.registry,
            &info.sender,
            profile,
        )?;
    }
    let mut node = match existing {
        Some(node) => node,
        None => Node {
            bonded: Uint128::zero(),
            unbonding: vec![],
            jailed_until: None,
            slashed: Uint128::zero(),
            profile: profile.clone().expect("checked above"),
            locks: vec![],
            ticket_since: 0,
        },
    };
    if let Some(profile) = profile {
        reindex(deps.storage, &info.sender, Some(&node.profile), &profile)?;
        node.profile = profile;
    }
    node.bonded = node.bonded.checked_add(amount)?;
    // Added stake (and a new key) count for draws of queries accepted from the next block on.
    node.ticket_since = env.block.height;
    NODES.save(deps.storage, &info.sender, &node)?;
    Ok(Response::new().add_event(
        Event::new(events::NODE_BONDED)
            .add_attribute(attr::NODE, &info.sender)
            .add_attribute(attr::AMOUNT, amount)
            .add_attribute(attr::BONDED, node.bonded),
    ))
}

pub fn update_profile(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    profile: NodeProfile,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let config = CONFIG.load(deps.storage)?;
    let mut node = load_node(&deps, &info.sender)?;
    validate_profile(
        deps.api,
        deps.querier,
        &config.registry,
        &info.sender,
        &profile,
    )?;
    if node.profile.sortition_key.as_ref().map(|k| &k.public_key)
        != profile.sortition_key.as_ref().map(|k| &k.public_key)
    {
        node.ticket_since = env.block.height;
    }
    reindex(deps.storage, &info.sender, Some(&node.profile), &profile)?;
    let kernels: Vec<String> = profile
        .kernels
        .iter()
        .map(|k| k.kernel_id.to_string())
        .collect();
    node.profile = profile;
    NODES.save(deps.storage, &info.sender, &node)?;
    Ok(Response::new().add_event(
        Event::new(events::NODE_PROFILE_UPDATED)
            .add_attribute(attr::NODE, &info.sender)
            .add_attribute(attr::KERNELS, kernels.join(",")),
    ))
}

pub fn unbond(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    amount: Uint128,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let config = CONFIG.load(deps.storage)?;
    let mut node = load_node(&deps, &info.sender)?;
    if amount.is_zero() {
        return Err(ContractError::ZeroUnbond {});
    }
    if amount > node.bonded {
        return Err(ContractError::InsufficientBond {
            requested: amount,
            bonded: node.bonded,
        });
    }
    if node.unbonding.len() >= MAX_UNBONDING_ENTRIES {
        return Err(ContractError::TooManyUnbondingEntries {});
    }
    let release_height = env.block.height.saturating_add(config.unbonding_blocks);
    node.bonded -= amount;
    node.unbonding.push(UnbondingEntry {
        amount,
        release_height,
        unbonded_height: env.block.height,
    });
    NODES.save(deps.storage, &info.sender, &node)?;
    Ok(Response::new().add_event(
        Event::new(events::NODE_UNBONDING)
            .add_attribute(attr::NODE, &info.sender)
            .add_attribute(attr::AMOUNT, amount)
            .add_attribute(attr::BONDED, node.bonded)
            .add_attribute(attr::RELEASE_HEIGHT, release_height.to_string()),
    ))
}

pub fn claim(deps: DepsMut, env: Env, info: MessageInfo) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let config = CONFIG.load(deps.storage)?;
    let mut node = load_node(&deps, &info.sender)?;
    let height = env.block.height;
    node.prune(height);
    // An entry is paid once its release height is reached and no query assigned before the
    // unbond is still open: stake backing an assignment stays slashable until it ends.
    let mut held_by = None;
    let (matured, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut node.unbonding)
        .into_iter()
        .partition(|entry| {
            if entry.release_height > height {
                return false;
            }
            match node.holds(entry.unbonded_height, height) {
                Some(lock) => {
                    held_by.get_or_insert(lock.clone());
                    false
                }
                None => true,
            }
        });
    node.unbonding = pending;
    let amount: Uint128 = matured.iter().map(|entry| entry.amount).sum();
    if amount.is_zero() {
        if let Some(lock) = held_by {
            return Err(ContractError::StakeLocked {
                query_id: lock.query_id,
                expires_height: lock.expires_height,
            });
        }
        return Err(ContractError::NothingToClaim {
            next_release: node.unbonding.iter().map(|e| e.release_height).min(),
        });
    }
    NODES.save(deps.storage, &info.sender, &node)?;
    Ok(Response::new()
        .add_message(BankMsg::Send {
            to_address: info.sender.to_string(),
            amount: coins(amount.u128(), &config.denom),
        })
        .add_event(
            Event::new(events::NODE_CLAIMED)
                .add_attribute(attr::NODE, &info.sender)
                .add_attribute(attr::AMOUNT, amount),
        ))
}

/// The market's `slash` message.
pub struct SlashOrder {
    pub node: String,
    pub fraction: Decimal,
    pub jail: bool,
    pub reason: String,
    pub query_id: u64,
}

/// Takes `fraction` (rounded down) of the bonded stake and of every unbonding entry, sends it
/// to the slash recipient and optionally jails. Never fails for a node without stake: the
/// market's settlement must not be blocked by a node that already left.
pub fn slash(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    order: SlashOrder,
) -> Result<Response, ContractError> {
    let SlashOrder {
        node: node_addr,
        fraction,
        jail,
        reason,
        query_id,
    } = order;
    cw_utils::nonpayable(&info)?;
    let config = ensure_market(&deps, &info)?;
    if fraction > Decimal::one() {
        return Err(ContractError::InvalidFraction { fraction });
    }
    let node_addr = deps.api.addr_validate(&node_addr)?;
    let mut event = Event::new(events::STAKE_SLASHED)
        .add_attribute(attr::NODE, &node_addr)
        .add_attribute(attr::FRACTION, fraction.to_string())
        .add_attribute(attr::REASON, &reason)
        .add_attribute(attr::QUERY_ID, query_id.to_string());
    let Some(mut node) = NODES.may_load(deps.storage, &node_addr)? else {
        return Ok(Response::new().add_event(event.add_attribute(attr::AMOUNT, "0")));
    };
    let mut slashed = node.bonded.mul_floor(fraction);
    node.bonded -= slashed;
    for entry in &mut node.unbonding {
        let taken = entry.amount.mul_floor(fraction);
        entry.amount -= taken;
        slashed += taken;
    }
    node.unbonding.retain(|entry| !entry.amount.is_zero());
    node.slashed += slashed;
    if jail {
        let until = env.block.height.saturating_add(config.jail_blocks);
        node.jailed_until = Some(
            node.jailed_until
                .map_or(until, |current| current.max(until)),
        );
        event = event.add_attribute(attr::JAILED_UNTIL, until.to_string());
    }
    NODES.save(deps.storage, &node_addr, &node)?;
    let mut response = Response::new().add_event(event.add_attribute(attr::AMOUNT, slashed));
    if !slashed.is_zero() {
        response = response.add_message(BankMsg::Send {
            to_address: config.slash_recipient.to_string(),
            amount: coins(slashed.u128(), &config.denom),
        });
    }
    Ok(response)
}

/// The market assigned `query_id` to `nodes`: each takes a capacity slot and holds its earlier
/// unbonding entries until the query ends or the lock lapses.
pub fn lock(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    query_id: u64,
    nodes: Vec<String>,
    until: u64,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let config = ensure_market(&deps, &info)?;
    let height = env.block.height;
    let expires_height = until.saturating_add(config.unbonding_blocks);
    for address in &nodes {
        let address = deps.api.addr_validate(address)?;
        let mut node = load_node(&deps, &address)?;
        node.prune(height);
        if !node.has_capacity(height) {
            return Err(ContractError::AtCapacity {
                node: address,
                capacity: node.profile.capacity,
            });
        }
        if node.locks.iter().any(|l| l.query_id == query_id) {
            return Err(ContractError::AlreadyLocked {
                node: address,
                query_id,
            });
        }
        node.locks.push(AssignmentLock {
            query_id,
            assigned_height: height,
            expires_height,
        });
        NODES.save(deps.storage, &address, &node)?;
    }
    Ok(Response::new().add_event(
        Event::new(events::ASSIGNMENT_LOCKED)
            .add_attribute(attr::QUERY_ID, query_id.to_string())
            .add_attribute(attr::NODES, nodes.join(","))
            .add_attribute(attr::EXPIRES_HEIGHT, expires_height.to_string()),
    ))
}

/// The market closed `query_id`: its locks on `nodes` go.
pub fn unlock(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    query_id: u64,
    nodes: Vec<String>,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    ensure_market(&deps, &info)?;
    let mut unlocked = Vec::new();
    for address in nodes {
        let address = deps.api.addr_validate(&address)?;
        let Some(mut node) = NODES.may_load(deps.storage, &address)? else {
            continue;
        };
        let before = node.locks.len();
        node.locks.retain(|l| l.query_id != query_id);
        let held = node.locks.len() < before;
        node.prune(env.block.height);
        NODES.save(deps.storage, &address, &node)?;
        if held {
            unlocked.push(address.to_string());
        }
    }
    Ok(Response::new().add_event(
        Event::new(events::ASSIGNMENT_UNLOCKED)
            .add_attribute(attr::QUERY_ID, query_id.to_string())
            .add_attribute(attr::NODES, unlocked.join(",")),
    ))
}

fn ensure_market(deps: &DepsMut, info: &MessageInfo) -> Result<StakingConfig, ContractError> {
    let config = CONFIG.load(deps.storage)?;
    if config.market.as_ref() != Some(&info.sender) {
        return Err(ContractError::NotMarket {
            market: config.market,
        });
    }
    Ok(config)
}

pub fn unjail(deps: DepsMut, env: Env, info: MessageInfo) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let mut node = load_node(&deps, &info.sender)?;
    let Some(jailed_until) = node.jailed_until else {
        return Err(ContractError::NotJailed { node: info.sender });
    };
    if env.block.height < jailed_until {
        return Err(ContractError::JailNotOver { jailed_until });
    }
    node.jailed_until = None;
    NODES.save(deps.storage, &info.sender, &node)?;
    Ok(Response::new()
        .add_event(Event::new(events::NODE_UNJAILED).add_attribute(attr::NODE, &info.sender)))
}

pub fn update_config(
    deps: DepsMut,
    info: MessageInfo,
    update: ConfigUpdate,
) -> Result<Response, ContractError> {
    cw_utils::nonpayable(&info)?;
    let mut config = CONFIG.load(deps.storage)?;
    if info.sender != config.admin {
        return Err(ContractError::NotAdmin {
            admin: config.admin,
        });
    }
    let api = deps.api;
    if let Some(admin) = update.admin {
        config.admin = api.addr_validate(&admin)?;
    }
    if let Some(min_stake) = update.min_stake {
        config.min_stake = min_stake;
    }
    if let Some(blocks) = update.unbonding_blocks {
        config.unbonding_blocks = blocks;
    }
    if let Some(blocks) = update.jail_blocks {
        config.jail_blocks = blocks;
    }
    if let Some(registry) = update.registry {
        config.registry = api.addr_validate(&registry)?;
    }
    if let Some(market) = update.market {
        config.market = Some(api.addr_validate(&market)?);
    }
    if let Some(recipient) = update.slash_recipient {
        config.slash_recipient = api.addr_validate(&recipient)?;
    }
    validate_config(&config)?;
    CONFIG.save(deps.storage, &config)?;
    Ok(Response::new().add_event(Event::new(events::CONFIG_UPDATED)))
}

pub(crate) fn validate_config(config: &StakingConfig) -> Result<(), ContractError> {
    let invalid = |reason: &str| ContractError::InvalidConfig {
        reason: reason.into(),
    };
    if config.denom.len() < 2
        || !config
            .denom
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:._-".contains(c))
    {
        return Err(invalid("denom must be a bank denomination such as unes"));
    }
    if config.min_stake.is_zero() {
        return Err(invalid("min_stake must be positive"));
    }
    if config.unbonding_blocks == 0 || config.unbonding_blocks > MAX_STAKING_BLOCKS {
        return Err(invalid("unbonding_blocks must be 1 to 1000000"));
    }
    if config.jail_blocks > MAX_STAKING_BLOCKS {
        return Err(invalid("jail_blocks must be at most 1000000"));
    }
    Ok(())
}

fn load_node(deps: &DepsMut, address: &Addr) -> Result<Node, ContractError> {
    NODES
        .may_load(deps.storage, address)?
        .ok_or_else(|| ContractError::NotBonded {
            node: address.clone(),
        })
}

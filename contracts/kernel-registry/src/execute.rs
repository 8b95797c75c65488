//! Handlers of the execute messages.

use cosmwasm_std::{Addr, DepsMut, Env, Event, MessageInfo, Order, Response, StdResult, Storage};
use nesa_market::events::registry::{self as events, attr};
use nesa_market::registry::{Kernel, KernelFork, KernelId, KernelStatus, KernelUpdate, NewKernel};

use crate::error::ContractError;
use crate::state::{KERNELS, KERNELS_BY_NAME, KERNELS_BY_OWNER, KERNEL_COUNT};
use crate::validation::validate_kernel;

pub fn register(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    new: NewKernel,
) -> Result<Response, ContractError> {
    if let Some(kernel_id) = latest_version(deps.storage, &new.name)?.map(|(_, id)| id) {
        return Err(ContractError::NameTaken {
            name: new.name,
            kernel_id,
        });
    }
    let kernel = Kernel {
        id: KERNEL_COUNT.load(deps.storage)? + 1,
        owner: info.sender,
        name: new.name,
        version: 1,
        parent: None,
        weights_sha256: new.weights_sha256,
        tokenizer_sha256: new.tokenizer_sha256,
        architecture: new.architecture,
        layer_count: new.layer_count,
        vocab_size: new.vocab_size,
        context_length: new.context_length,
        shard_layout: new.shard_layout,
        encryption: new.encryption,
        price_per_input_token: new.price_per_input_token,
        price_per_output_token: new.price_per_output_token,
        min_redundancy: new.min_redundancy,
        description: new.description,
        status: KernelStatus::Active,
        created_height: env.block.height,
    };
    validate_kernel(&kernel)?;
    store_new(deps.storage, &kernel)?;
    Ok(Response::new().add_event(
        Event::new(events::KERNEL_REGISTERED)
            .add_attribute(attr::KERNEL_ID, kernel.id.to_string())
            .add_attribute(attr::OWNER, &kernel.owner)
            .add_attribute(attr::NAME, &kernel.name)
            .add_attribute(attr::VERSION, kernel.version.to_string()),
    ))
}

pub fn update(
    deps: DepsMut,
    info: MessageInfo,
    update: KernelUpdate,
) -> Result<Response, ContractError> {
    let mut kernel = load_owned(deps.storage, update.kernel_id, &info.sender)?;
    if !kernel.is_active() {
        return Err(ContractError::Deprecated {
            kernel_id: kernel.id,
        });
    }
    if let Some(price) = update.price_per_input_token {
        kernel.price_per_input_token = price;
    }
    if let Some(price) = update.price_per_output_token {
        kernel.price_per_output_token = price;
    }
    if let Some(min_redundancy) = update.min_redundancy {
        kernel.min_redundancy = min_redundancy;
    }
    if let Some(description) = update.description {
        kernel.description = description;
    }
    validate_kernel(&kernel)?;
    KERNELS.save(deps.storage, kernel.id, &kernel)?;
    Ok(Response::new().add_event(
        Event::new(events::KERNEL_UPDATED).add_attribute(attr::KERNEL_ID, kernel.id.to_string()),
    ))
}

/// A new kernel id under the parent's name, one version above the name's highest.
pub fn fork(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    fork: KernelFork,
) -> Result<Response, ContractError> {
    let parent = load(deps.storage, fork.parent)?;
    let (highest_version, _) = latest_version(deps.storage, &parent.name)?
        .expect("a stored kernel is indexed under its name");
    let kernel = Kernel {
        id: KERNEL_COUNT.load(deps.storage)? + 1,
        owner: info.sender,
        version: highest_version + 1,
        parent: Some(parent.id),
        weights_sha256: fork.weights_sha256.unwrap_or(parent.weights_sha256),
        tokenizer_sha256: fork.tokenizer_sha256.unwrap_or(parent.tokenizer_sha256),
        architecture: fork.architecture.unwrap_or(parent.architecture),
        layer_count: fork.layer_count.unwrap_or(parent.layer_count),
        vocab_size: fork.vocab_size.unwrap_or(parent.vocab_size),
        context_length: fork.context_length.unwrap_or(parent.context_length),
        shard_layout: fork.shard_layout.unwrap_or(parent.shard_layout),
        encryption: fork.encryption.unwrap_or(parent.encryption),
        price_per_input_token: fork
            .price_per_input_token
            .unwrap_or(parent.price_per_input_token),
        price_per_output_token: fork
            .price_per_output_token
            .unwrap_or(parent.price_per_output_token),
        min_redundancy: fork.min_redundancy.unwrap_or(parent.min_redundancy),
        description: fork.description.unwrap_or(parent.description),
        status: KernelStatus::Active,
        created_height: env.block.height,
        name: parent.name,
    };
    validate_kernel(&kernel)?;
    store_new(deps.storage, &kernel)?;
    Ok(Response::new().add_event(
        Event::new(events::KERNEL_FORKED)
            .add_attribute(attr::KERNEL_ID, kernel.id.to_string())
            .add_attribute(attr::PARENT, parent.id.to_string())
            .add_attribute(attr::OWNER, &kernel.owner)
            .add_attribute(attr::NAME, &kernel.name)
            .add_attribute(attr::VERSION, kernel.version.to_string()),
    ))
}

pub fn deprecate(
    deps: DepsMut,
    info: MessageInfo,
    kernel_id: KernelId,
) -> Result<Response, ContractError> {
    let mut kernel = load_owned(deps.storage, kernel_id, &info.sender)?;
    if !kernel.is_active() {
        return Err(ContractError::Deprecated { kernel_id });
    }
    kernel.status = KernelStatus::Deprecated;
    KERNELS.save(deps.storage, kernel_id, &kernel)?;
    Ok(Response::new().add_event(
        Event::new(events::KERNEL_DEPRECATED).add_attribute(attr::KERNEL_ID, kernel_id.to_string()),
    ))
}

pub fn transfer_ownership(
    deps: DepsMut,
    info: MessageInfo,
    kernel_id: KernelId,
    new_owner: String,
) -> Result<Response, ContractError> {
    let mut kernel = load_owned(deps.storage, kernel_id, &info.sender)?;
    let new_owner = deps.api.addr_validate(&new_owner)?;
    KERNELS_BY_OWNER.remove(deps.storage, (&kernel.owner, kernel_id));
    KERNELS_BY_OWNER.save(deps.storage, (&new_owner, kernel_id), &())?;
    let previous_owner = std::mem::replace(&mut kernel.owner, new_owner);
    KERNELS.save(deps.storage, kernel_id, &kernel)?;
    Ok(Response::new().add_event(
        Event::new(events::KERNEL_OWNERSHIP_TRANSFERRED)
            .add_attribute(attr::KERNEL_ID, kernel_id.to_string())
            .add_attribute(attr::PREVIOUS_OWNER, previous_owner)
            .add_attribute(attr::OWNER, &kernel.owner),
    ))
}

fn load(storage: &dyn Storage, id: KernelId) -> Result<Kernel, ContractError> {
    KERNELS
        .may_load(storage, id)?
        .ok_or(ContractError::KernelNotFound { id })
}

fn load_owned(storage: &dyn Storage, id: KernelId, sender: &Addr) -> Result<Kernel, ContractError> {
    let kernel = load(storage, id)?;
    if kernel.owner != *sender {
        return Err(ContractError::NotOwner {
            kernel_id: id,
            owner: kernel.owner,
        });
    }
    Ok(kernel)
}

/// The highest (version, id) registered under `name`.
fn latest_version(storage: &dyn Storage, name: &str) -> StdResult<Option<(u32, KernelId)>> {
    KERNELS_BY_NAME
        .prefix(name)
        .range(storage, None, None, Order::Descending)
        .next()
        .transpose()
}

/// Saves a kernel with a fresh id and its index entries.
fn store_new(storage: &mut dyn Storage, kernel: &Kernel) -> StdResult<()> {
    KERNEL_COUNT.save(storage, &kernel.id)?;
    KERNELS.save(storage, kernel.id, kernel)?;
    KERNELS_BY_OWNER.save(storage, (&kernel.owner, kernel.id), &())?;
    KERNELS_BY_NAME.save(storage, (&kernel.name, kernel.version), &kernel.id)
}

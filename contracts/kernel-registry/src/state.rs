//! Every storage item of the registry, each with its key.

use cosmwasm_std::Addr;
use cw_storage_plus::{Item, Map};
use nesa_market::registry::{Kernel, KernelId};

/// Kernels registered or forked so far; the next id is this + 1.
pub const KERNEL_COUNT: Item<u64> = Item::new("kernel_count");
/// Every kernel by id.
pub const KERNELS: Map<KernelId, Kernel> = Map::new("kernels");
/// Index owner → kernel ids, for `by_owner`.
pub const KERNELS_BY_OWNER: Map<(&Addr, KernelId), ()> = Map::new("kernels_by_owner");
/// Index (name, version) → kernel id, for `versions` and the next fork's version.
pub const KERNELS_BY_NAME: Map<(&str, u32), KernelId> = Map::new("kernels_by_name");

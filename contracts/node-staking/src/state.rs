//! Every storage item of the staking contract, each with its key.

use cosmwasm_schema::cw_serde;
use cosmwasm_std::{Addr, Uint128};
use cw_storage_plus::{Item, Map};
use nesa_market::registry::KernelId;
use nesa_market::staking::{AssignmentLock, NodeProfile, StakingConfig, UnbondingEntry};

pub const CONFIG: Item<StakingConfig> = Item::new("config");
/// Every node that ever bonded, by address.
pub const NODES: Map<&Addr, Node> = Map::new("nodes");
/// Index kernel → nodes whose profile lists it, in address order (what `candidates` scans).
pub const SERVERS: Map<(KernelId, &Addr), ()> = Map::new("servers");

/// A node's stake and profile.
#[cw_serde]
pub struct Node {
    pub bonded: Uint128,
    /// Oldest first.
    pub unbonding: Vec<UnbondingEntry>,
    /// Set while jailed: the height from which `unjail` is allowed.
    pub jailed_until: Option<u64>,
    /// Total ever slashed.
    pub slashed: Uint128,
    pub profile: NodeProfile,
    /// Queries the market assigned and has not closed, oldest first (lapsed ones are pruned
    /// whenever the node changes).
    #[serde(default)]
    pub locks: Vec<AssignmentLock>,
    /// The height of the last stake increase or sortition key change
    /// (`SortitionEntry::ticket_since`).
    #[serde(default)]
    pub ticket_since: u64,
}

impl Node {
    pub fn is_jailed(&self) -> bool {
        self.jailed_until.is_some()
    }

    /// Not jailed and bonded ≥ `min_stake`.
    pub fn is_eligible(&self, min_stake: Uint128) -> bool {
        !self.is_jailed() && self.bonded >= min_stake && !self.bonded.is_zero()
    }

    /// Assignments still holding at `height`.
    pub fn open_assignments(&self, height: u64) -> u32 {
        self.locks.iter().filter(|l| l.is_open(height)).count() as u32
    }

    /// Below its declared capacity at `height`: the market may assign it one more query.
    pub fn has_capacity(&self, height: u64) -> bool {
        self.open_assignments(height) < self.profile.capacity
    }

    /// Whether an open assignment made at or before `unbonded_height` holds an entry.
    pub fn holds(&self, unbonded_height: u64, height: u64) -> Option<&AssignmentLock> {
        self.locks
            .iter()
            .find(|l| l.is_open(height) && l.assigned_height <= unbonded_height)
    }

    /// Drops lapsed locks.
    pub fn prune(&mut self, height: u64) {
        self.locks.retain(|l| l.is_open(height));
    }
}

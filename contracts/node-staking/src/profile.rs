//! Node profiles: validation against the registry, the kernel → node index, and whether a
//! profile serves a kernel's whole layer range.

use std::collections::BTreeMap;

use cosmwasm_std::{Addr, Api, QuerierWrapper, StdResult, Storage};
use nesa_market::registry::{self, Kernel, KernelId};
use nesa_market::sortition::{
    possession_message, verify, IDENTITY_PUBLIC_KEY, PUBLIC_KEY_BYTES, SIGNATURE_BYTES,
};
use nesa_market::staking::{NodeProfile, SortitionKey, MAX_CAPACITY, MAX_SERVED_KERNELS};

use crate::error::ContractError;
use crate::state::SERVERS;

const MAX_ENDPOINT_BYTES: usize = 256;

/// Checks the endpoint and every served range against the registry's layer counts.
pub fn validate_profile(
    api: &dyn Api,
    querier: QuerierWrapper,
    registry: &Addr,
    node: &Addr,
    profile: &NodeProfile,
) -> Result<(), ContractError> {
    if let Some(key) = &profile.sortition_key {
        validate_sortition_key(api, node, key)?;
    }
    let endpoint = &profile.endpoint;
    let host = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    if endpoint.len() > MAX_ENDPOINT_BYTES
        || host.is_none_or(|h| h.is_empty())
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ContractError::InvalidEndpoint {
            endpoint: endpoint.clone(),
        });
    }
    if profile.capacity == 0 || profile.capacity > MAX_CAPACITY {
        return Err(ContractError::InvalidCapacity {
            capacity: profile.capacity,
        });
    }
    if profile.kernels.len() > MAX_SERVED_KERNELS {
        return Err(ContractError::TooManyKernels {
            count: profile.kernels.len(),
        });
    }
    let mut layer_counts = BTreeMap::new();
    for served in &profile.kernels {
        let layer_count = match layer_counts.get(&served.kernel_id) {
            Some(&count) => count,
            None => {
                let count = layer_count(querier, registry, served.kernel_id)?;
                layer_counts.insert(served.kernel_id, count);
                count
            }
        };
        if served.start_layer >= served.end_layer || served.end_layer > layer_count {
            return Err(ContractError::InvalidLayerRange {
                kernel_id: served.kernel_id,
                start_layer: served.start_layer,
                end_layer: served.end_layer,
                layer_count,
            });
        }
    }
    Ok(())
}

/// The kernel's layer count, from the registry.
/// A sortition key is a valid G1 point other than the identity, and its proof is the node's
/// signature of `possession_message(node, key)` (so a key cannot be copied from another node,
/// and the node provably can sign tickets with it).
fn validate_sortition_key(
    api: &dyn Api,
    node: &Addr,
    key: &SortitionKey,
) -> Result<(), ContractError> {
    let invalid = |reason: &str| ContractError::InvalidSortitionKey {
        reason: reason.to_string(),
    };
    if key.public_key.len() != PUBLIC_KEY_BYTES || key.proof.len() != SIGNATURE_BYTES {
        return Err(invalid(
            "a public key is 48 bytes and a proof 96 (compressed BLS12-381 points)",
        ));
    }
    if key.public_key.as_slice() == IDENTITY_PUBLIC_KEY {
        return Err(invalid("the identity point is not a key"));
    }
    let message = possession_message(node.as_str(), &key.public_key);
    if !verify(api, &key.public_key, &message, &key.proof)? {
        return Err(invalid(
            "the proof is not this node's signature under the key",
        ));
    }
    Ok(())
}

pub fn layer_count(
    querier: QuerierWrapper,
    registry: &Addr,
    kernel_id: KernelId,
) -> Result<u32, ContractError> {
    let kernel: Kernel = querier
        .query_wasm_smart(registry, &registry::QueryMsg::Kernel { id: kernel_id })
        .map_err(|e| ContractError::UnknownKernel {
            kernel_id,
            reason: e.to_string(),
        })?;
    Ok(kernel.layer_count)
}

/// Whether the union of the profile's ranges for `kernel_id` covers `0..layer_count`.
pub fn serves_all_layers(profile: &NodeProfile, kernel_id: KernelId, layer_count: u32) -> bool {
    let mut ranges: Vec<(u32, u32)> = profile
        .kernels
        .iter()
        .filter(|k| k.kernel_id == kernel_id)
        .map(|k| (k.start_layer, k.end_layer))
        .collect();
    ranges.sort_unstable();
    let mut covered_to = 0;
    for (start, end) in ranges {
        if start > covered_to {
            break;
        }
        covered_to = covered_to.max(end);
    }
    covered_to >= layer_count
}

/// Replaces `node`'s entries in the kernel → node index.
pub fn reindex(
    storage: &mut dyn Storage,
    node: &Addr,
    old: Option<&NodeProfile>,
    new: &NodeProfile,
) -> StdResult<()> {
    for served in old.map(|p| p.kernels.as_slice()).unwrap_or_default() {
        SERVERS.remove(storage, (served.kernel_id, node));
    }
    for served in &new.kernels {
        SERVERS.save(storage, (served.kernel_id, node), &())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nesa_market::staking::ServedKernel;

    use super::*;

    fn profile(ranges: &[(u64, u32, u32)]) -> NodeProfile {
        NodeProfile {
            endpoint: "http://127.0.0.1:8700".into(),
            kernels: ranges
                .iter()
                .map(|&(kernel_id, start_layer, end_layer)| ServedKernel {
                    kernel_id,
                    start_layer,
                    end_layer,
                })
                .collect(),
            capacity: 1,
            sortition_key: None,
        }
    }

    #[test]
    fn a_node_serving_one_full_range_serves_the_kernel() {
        assert!(serves_all_layers(&profile(&[(1, 0, 30)]), 1, 30));
        assert!(!serves_all_layers(&profile(&[(1, 0, 30)]), 2, 30));
    }

    #[test]
    fn adjacent_or_overlapping_ranges_together_serve_the_kernel() {
        assert!(serves_all_layers(
            &profile(&[(1, 15, 30), (1, 0, 15)]),
            1,
            30
        ));
        assert!(serves_all_layers(
            &profile(&[(1, 0, 20), (1, 10, 30)]),
            1,
            30
        ));
    }

    #[test]
    fn a_gap_or_a_missing_tail_means_the_kernel_is_not_served() {
        assert!(!serves_all_layers(
            &profile(&[(1, 0, 10), (1, 11, 30)]),
            1,
            30
        ));
        assert!(!serves_all_layers(&profile(&[(1, 0, 29)]), 1, 30));
        assert!(!serves_all_layers(&profile(&[(1, 1, 30)]), 1, 30));
        assert!(!serves_all_layers(&profile(&[]), 1, 30));
    }
}

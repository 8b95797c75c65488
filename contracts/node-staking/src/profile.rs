//! Node profiles: validation against the registry and the kernel → node index. How a profile
//! serves a kernel (whole, or one span of a sharded kernel) is `nesa_market::staking::serving`.

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
    let mut kernels: BTreeMap<KernelId, Kernel> = BTreeMap::new();
    for served in &profile.kernels {
        let kernel = match kernels.entry(served.kernel_id) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(kernel(querier, registry, served.kernel_id)?)
            }
        };
        let layer_count = kernel.layer_count;
        if served.start_layer >= served.end_layer || served.end_layer > layer_count {
            return Err(ContractError::InvalidLayerRange {
                kernel_id: served.kernel_id,
                start_layer: served.start_layer,
                end_layer: served.end_layer,
                layer_count,
            });
        }
        if kernel.is_sharded() {
            let in_layout = kernel
                .shard_layout
                .iter()
                .any(|s| s.start_layer == served.start_layer && s.end_layer == served.end_layer);
            let spans = profile
                .kernels
                .iter()
                .filter(|k| k.kernel_id == served.kernel_id)
                .count();
            if !in_layout || spans > 1 {
                return Err(ContractError::NotInShardLayout {
                    kernel_id: served.kernel_id,
                    start_layer: served.start_layer,
                    end_layer: served.end_layer,
                    layout: kernel
                        .shard_layout
                        .iter()
                        .map(|s| format!("{}..{}", s.start_layer, s.end_layer))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok(())
}

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

/// The kernel, from the registry.
pub fn kernel(
    querier: QuerierWrapper,
    registry: &Addr,
    kernel_id: KernelId,
) -> Result<Kernel, ContractError> {
    querier
        .query_wasm_smart(registry, &registry::QueryMsg::Kernel { id: kernel_id })
        .map_err(|e| ContractError::UnknownKernel {
            kernel_id,
            reason: e.to_string(),
        })
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
    use cosmwasm_std::{Addr, HexBinary, Uint128};
    use nesa_market::registry::{Encryption, KernelStatus, ShardRange};
    use nesa_market::staking::{serving, ServedKernel, Serving};

    use super::*;

    fn served(ranges: &[(u64, u32, u32)]) -> Vec<ServedKernel> {
        ranges
            .iter()
            .map(|&(kernel_id, start_layer, end_layer)| ServedKernel {
                kernel_id,
                start_layer,
                end_layer,
                block_micros: None,
            })
            .collect()
    }

    fn kernel(layout: &[(u32, u32)]) -> Kernel {
        Kernel {
            id: 1,
            owner: Addr::unchecked("owner"),
            name: "k".into(),
            version: 1,
            parent: None,
            weights_sha256: HexBinary::from(vec![0; 32]),
            tokenizer_sha256: HexBinary::from(vec![0; 32]),
            architecture: "llama".into(),
            layer_count: 30,
            vocab_size: 100,
            context_length: 100,
            shard_layout: layout
                .iter()
                .map(|&(start_layer, end_layer)| ShardRange {
                    start_layer,
                    end_layer,
                    sha256: HexBinary::from(vec![0; 32]),
                })
                .collect(),
            encryption: Encryption::None,
            price_per_input_token: Uint128::one(),
            price_per_output_token: Uint128::one(),
            min_redundancy: 1,
            description: String::new(),
            status: KernelStatus::Active,
            created_height: 1,
        }
    }

    #[test]
    fn a_node_serving_one_full_range_serves_the_kernel() {
        let whole = kernel(&[(0, 30)]);
        assert_eq!(serving(&served(&[(1, 0, 30)]), &whole), Serving::Whole);
        assert_eq!(serving(&served(&[(2, 0, 30)]), &whole), Serving::Not);
    }

    #[test]
    fn adjacent_or_overlapping_ranges_together_serve_the_kernel() {
        let whole = kernel(&[(0, 30)]);
        assert_eq!(
            serving(&served(&[(1, 15, 30), (1, 0, 15)]), &whole),
            Serving::Whole
        );
        assert_eq!(
            serving(&served(&[(1, 0, 20), (1, 10, 30)]), &whole),
            Serving::Whole
        );
    }

    #[test]
    fn a_gap_or_a_missing_tail_means_the_kernel_is_not_served() {
        let whole = kernel(&[(0, 30)]);
        for ranges in [
            &[(1, 0, 10), (1, 11, 30)][..],
            &[(1, 0, 29)],
            &[(1, 1, 30)],
            &[],
        ] {
            assert_eq!(serving(&served(ranges), &whole), Serving::Not, "{ranges:?}");
        }
    }

    #[test]
    fn a_sharded_kernel_is_served_span_by_span() {
        let sharded = kernel(&[(0, 10), (10, 20), (20, 30)]);
        assert!(sharded.is_sharded());
        assert_eq!(serving(&served(&[(1, 10, 20)]), &sharded), Serving::Span(1));
        assert_eq!(serving(&served(&[(1, 0, 10)]), &sharded), Serving::Span(0));
        // A range off the layout, or the whole model, takes no seat of a pipeline.
        assert_eq!(serving(&served(&[(1, 5, 15)]), &sharded), Serving::Not);
        assert_eq!(serving(&served(&[(1, 0, 30)]), &sharded), Serving::Not);
    }
}

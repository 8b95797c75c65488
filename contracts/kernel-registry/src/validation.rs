//! The invariants every stored kernel satisfies, checked before any write.

use nesa_market::registry::{
    Kernel, ShardRange, MAX_CONTEXT_LENGTH, MAX_REDUNDANCY, MAX_VOCAB_SIZE,
};

use crate::error::ContractError;

const MAX_NAME_LEN: usize = 64;
const MAX_ARCHITECTURE_LEN: usize = 32;
const MAX_LAYERS: u32 = 4096;
const MAX_DESCRIPTION_BYTES: usize = 512;
const SHA256_BYTES: usize = 32;

/// Checks a kernel as it would be stored (after register, fork or update).
pub fn validate_kernel(kernel: &Kernel) -> Result<(), ContractError> {
    validate_name(&kernel.name)?;
    validate_sha256("weights_sha256", kernel.weights_sha256.as_slice())?;
    validate_sha256("tokenizer_sha256", kernel.tokenizer_sha256.as_slice())?;
    validate_architecture(&kernel.architecture)?;
    if kernel.layer_count == 0 || kernel.layer_count > MAX_LAYERS {
        return Err(ContractError::InvalidLayerCount {
            layer_count: kernel.layer_count,
        });
    }
    if kernel.vocab_size == 0 || kernel.vocab_size > MAX_VOCAB_SIZE {
        return Err(ContractError::InvalidVocabSize {
            vocab_size: kernel.vocab_size,
        });
    }
    if kernel.context_length == 0 || kernel.context_length > MAX_CONTEXT_LENGTH {
        return Err(ContractError::InvalidContextLength {
            context_length: kernel.context_length,
        });
    }
    validate_shard_layout(&kernel.shard_layout, kernel.layer_count)?;
    if kernel.min_redundancy == 0 || kernel.min_redundancy > MAX_REDUNDANCY {
        return Err(ContractError::InvalidMinRedundancy {
            value: kernel.min_redundancy,
        });
    }
    if kernel.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ContractError::DescriptionTooLong {
            len: kernel.description.len(),
        });
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), ContractError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./:".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(ContractError::InvalidName { name: name.into() });
    }
    Ok(())
}

fn validate_architecture(architecture: &str) -> Result<(), ContractError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if architecture.is_empty()
        || architecture.len() > MAX_ARCHITECTURE_LEN
        || !architecture.chars().all(allowed)
    {
        return Err(ContractError::InvalidArchitecture {
            architecture: architecture.into(),
        });
    }
    Ok(())
}

fn validate_sha256(field: &str, bytes: &[u8]) -> Result<(), ContractError> {
    if bytes.len() != SHA256_BYTES {
        return Err(ContractError::InvalidHash {
            field: field.into(),
            len: bytes.len(),
        });
    }
    Ok(())
}

/// The ranges must tile `0..layer_count` in order: first starts at 0, each is non-empty and
/// starts where the previous ended, the last ends at `layer_count`.
fn validate_shard_layout(layout: &[ShardRange], layer_count: u32) -> Result<(), ContractError> {
    let invalid = |reason: String| ContractError::InvalidShardLayout { reason };
    if layout.is_empty() {
        return Err(invalid(format!(
            "it is empty: list at least one range covering layers 0..{layer_count}"
        )));
    }
    let mut next_start = 0;
    for (index, shard) in layout.iter().enumerate() {
        if shard.start_layer != next_start {
            return Err(invalid(format!(
                "range {index} starts at layer {} but must start at {next_start} (ranges are contiguous, from 0)",
                shard.start_layer
            )));
        }
        if shard.end_layer <= shard.start_layer {
            return Err(invalid(format!(
                "range {index} ({}..{}) is empty: end_layer is exclusive and must exceed start_layer",
                shard.start_layer, shard.end_layer
            )));
        }
        validate_sha256(
            &format!("shard_layout[{index}].sha256"),
            shard.sha256.as_slice(),
        )?;
        next_start = shard.end_layer;
    }
    if next_start != layer_count {
        return Err(invalid(format!(
            "the ranges end at layer {next_start} but the kernel has {layer_count} layers"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{Addr, HexBinary, Uint128};
    use nesa_market::registry::{Encryption, KernelStatus};

    use super::*;

    fn hash() -> HexBinary {
        HexBinary::from(vec![0xab; 32])
    }

    fn shard(start_layer: u32, end_layer: u32) -> ShardRange {
        ShardRange {
            start_layer,
            end_layer,
            sha256: hash(),
        }
    }

    fn kernel() -> Kernel {
        Kernel {
            id: 1,
            owner: Addr::unchecked("owner"),
            name: "smollm2-135m".into(),
            version: 1,
            parent: None,
            weights_sha256: hash(),
            tokenizer_sha256: hash(),
            architecture: "llama".into(),
            layer_count: 30,
            vocab_size: 49_152,
            context_length: 8192,
            shard_layout: vec![shard(0, 10), shard(10, 30)],
            encryption: Encryption::None,
            price_per_input_token: Uint128::new(1),
            price_per_output_token: Uint128::new(2),
            min_redundancy: 3,
            description: String::new(),
            status: KernelStatus::Active,
            created_height: 1,
        }
    }

    #[test]
    fn a_well_formed_kernel_is_valid() {
        validate_kernel(&kernel()).unwrap();
    }

    #[test]
    fn shard_layouts_must_tile_every_layer_in_order() {
        for (layout, expected) in [
            (vec![], "it is empty"),
            (vec![shard(1, 30)], "range 0 starts at layer 1"),
            (
                vec![shard(0, 10), shard(11, 30)],
                "range 1 starts at layer 11",
            ),
            (
                vec![shard(0, 10), shard(5, 30)],
                "range 1 starts at layer 5",
            ),
            (vec![shard(0, 0), shard(0, 30)], "range 0 (0..0) is empty"),
            (vec![shard(0, 29)], "end at layer 29 but the kernel has 30"),
            (vec![shard(0, 31)], "end at layer 31 but the kernel has 30"),
        ] {
            let mut k = kernel();
            k.shard_layout = layout;
            match validate_kernel(&k) {
                Err(ContractError::InvalidShardLayout { reason }) => {
                    assert!(reason.contains(expected), "{reason} lacks {expected}")
                }
                other => panic!("expected a shard layout error with {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn hashes_must_be_32_bytes() {
        let mut k = kernel();
        k.weights_sha256 = HexBinary::from(vec![1; 31]);
        assert_eq!(
            validate_kernel(&k),
            Err(ContractError::InvalidHash {
                field: "weights_sha256".into(),
                len: 31
            })
        );
        let mut k = kernel();
        k.shard_layout[1].sha256 = HexBinary::from(vec![]);
        assert_eq!(
            validate_kernel(&k),
            Err(ContractError::InvalidHash {
                field: "shard_layout[1].sha256".into(),
                len: 0
            })
        );
    }

    #[test]
    fn names_architectures_layers_and_redundancy_are_bounded() {
        let mut k = kernel();
        k.name = "has space".into();
        assert!(matches!(
            validate_kernel(&k),
            Err(ContractError::InvalidName { .. })
        ));
        k.name = "x".repeat(65);
        assert!(matches!(
            validate_kernel(&k),
            Err(ContractError::InvalidName { .. })
        ));
        let mut k = kernel();
        k.architecture = "Llama".into();
        assert!(matches!(
            validate_kernel(&k),
            Err(ContractError::InvalidArchitecture { .. })
        ));
        let mut k = kernel();
        k.layer_count = 0;
        assert_eq!(
            validate_kernel(&k),
            Err(ContractError::InvalidLayerCount { layer_count: 0 })
        );
        for value in [0, 11] {
            let mut k = kernel();
            k.min_redundancy = value;
            assert_eq!(
                validate_kernel(&k),
                Err(ContractError::InvalidMinRedundancy { value })
            );
        }
        for vocab_size in [0, MAX_VOCAB_SIZE + 1] {
            let mut k = kernel();
            k.vocab_size = vocab_size;
            assert_eq!(
                validate_kernel(&k),
                Err(ContractError::InvalidVocabSize { vocab_size })
            );
        }
        for context_length in [0, MAX_CONTEXT_LENGTH + 1] {
            let mut k = kernel();
            k.context_length = context_length;
            assert_eq!(
                validate_kernel(&k),
                Err(ContractError::InvalidContextLength { context_length })
            );
        }
        let mut k = kernel();
        k.vocab_size = MAX_VOCAB_SIZE;
        k.context_length = MAX_CONTEXT_LENGTH;
        validate_kernel(&k).unwrap();
        let mut k = kernel();
        k.description = "d".repeat(513);
        assert_eq!(
            validate_kernel(&k),
            Err(ContractError::DescriptionTooLong { len: 513 })
        );
    }
}

//! `nesa-kernel-registry`: the AI kernels (models) the market serves.
//!
//! A kernel's identity — weights, tokenizer, architecture, layers and shard layout — never
//! changes: publishing different weights is a fork (a new kernel id, the next version of the
//! same name, pointing at its parent). Prices, minimum redundancy and the description are the
//! owner's to update.

use cosmwasm_schema::{cw_serde, QueryResponses};
use cosmwasm_std::{Addr, HexBinary, Uint128};

/// A kernel's id: 1, 2, … in registration order.
pub type KernelId = u64;

/// Largest `min_redundancy` a kernel may ask for (and the market's cap on k).
pub const MAX_REDUNDANCY: u8 = 10;

/// `{}`: the registry has no parameters.
#[cw_serde]
#[derive(Default)]
pub struct InstantiateMsg {}

#[cw_serde]
pub enum ExecuteMsg {
    /// Registers a kernel under a new name (version 1); the sender owns it.
    /// Emits `wasm-kernel_registered`.
    Register(NewKernel),
    /// The owner changes prices, minimum redundancy or description (fields left out keep
    /// their value). Emits `wasm-kernel_updated`.
    Update(KernelUpdate),
    /// Anyone publishes a new version of `parent`'s name: fields left out are copied from the
    /// parent. The sender owns the fork. Emits `wasm-kernel_forked`.
    Fork(KernelFork),
    /// The owner retires the kernel: the market stops accepting queries for it.
    /// Emits `wasm-kernel_deprecated`.
    Deprecate { kernel_id: KernelId },
    /// The owner hands the kernel (and its royalties) to `new_owner`.
    /// Emits `wasm-kernel_ownership_transferred`.
    TransferOwnership {
        kernel_id: KernelId,
        new_owner: String,
    },
}

/// Everything that defines a new kernel.
#[cw_serde]
pub struct NewKernel {
    /// 1–64 characters: letters, digits and `-_./:`.
    pub name: String,
    /// sha256 of the weights file (GGUF), 32 bytes as hex.
    pub weights_sha256: HexBinary,
    /// sha256 of the tokenizer (or of the GGUF's tokenizer metadata), 32 bytes as hex.
    pub tokenizer_sha256: HexBinary,
    /// Model family, lower case (`llama`, `mistral`, …): 1–32 of `a-z0-9_-`.
    pub architecture: String,
    /// Transformer blocks, 1..=4096.
    pub layer_count: u32,
    /// Contiguous layer ranges covering `0..layer_count`, each with its shard's sha256.
    pub shard_layout: Vec<ShardRange>,
    pub encryption: Encryption,
    /// unes per input token.
    pub price_per_input_token: Uint128,
    /// unes per output token.
    pub price_per_output_token: Uint128,
    /// Fewest replicas a query on this kernel must ask for, 1..=10.
    pub min_redundancy: u8,
    /// Free text, at most 512 bytes.
    #[serde(default)]
    pub description: String,
}

/// The owner's changes; `None` keeps the current value.
#[cw_serde]
pub struct KernelUpdate {
    pub kernel_id: KernelId,
    pub price_per_input_token: Option<Uint128>,
    pub price_per_output_token: Option<Uint128>,
    pub min_redundancy: Option<u8>,
    pub description: Option<String>,
}

/// A new version of `parent`; every `None` is copied from the parent.
#[cw_serde]
pub struct KernelFork {
    pub parent: KernelId,
    pub weights_sha256: Option<HexBinary>,
    pub tokenizer_sha256: Option<HexBinary>,
    pub architecture: Option<String>,
    pub layer_count: Option<u32>,
    pub shard_layout: Option<Vec<ShardRange>>,
    pub encryption: Option<Encryption>,
    pub price_per_input_token: Option<Uint128>,
    pub price_per_output_token: Option<Uint128>,
    pub min_redundancy: Option<u8>,
    pub description: Option<String>,
}

/// Layers `start_layer..end_layer` (end exclusive) and the sha256 of the shard holding them.
#[cw_serde]
pub struct ShardRange {
    pub start_layer: u32,
    pub end_layer: u32,
    pub sha256: HexBinary,
}

/// How a kernel's weights are published.
#[cw_serde]
#[derive(Copy)]
pub enum Encryption {
    /// Plain weights; inputs and outputs are ordinary token ids.
    None,
    /// Equivariant encryption v1: permuted vocabulary and transformed weights; token ids on
    /// chain are permuted with the user's key.
    #[serde(rename = "ee-v1")]
    EeV1,
}

/// Whether the market accepts queries for a kernel.
#[cw_serde]
#[derive(Copy)]
pub enum KernelStatus {
    Active,
    Deprecated,
}

/// A registered kernel, as stored and as every query returns it.
#[cw_serde]
pub struct Kernel {
    pub id: KernelId,
    pub owner: Addr,
    pub name: String,
    /// 1 for a registration; forks take the highest version of the name + 1.
    pub version: u32,
    /// The kernel this one was forked from.
    pub parent: Option<KernelId>,
    pub weights_sha256: HexBinary,
    pub tokenizer_sha256: HexBinary,
    pub architecture: String,
    pub layer_count: u32,
    pub shard_layout: Vec<ShardRange>,
    pub encryption: Encryption,
    pub price_per_input_token: Uint128,
    pub price_per_output_token: Uint128,
    pub min_redundancy: u8,
    pub description: String,
    pub status: KernelStatus,
    /// Block height of registration or fork.
    pub created_height: u64,
}

impl Kernel {
    /// Whether the market may take queries for it.
    pub fn is_active(&self) -> bool {
        self.status == KernelStatus::Active
    }
}

#[cw_serde]
#[derive(QueryResponses)]
pub enum QueryMsg {
    /// One kernel; an error when the id is unknown.
    #[returns(Kernel)]
    Kernel { id: KernelId },
    /// Kernels in id order (default 10, at most 30 per page).
    #[returns(KernelsResponse)]
    Kernels {
        start_after: Option<KernelId>,
        limit: Option<u32>,
    },
    /// Kernels owned by `owner`, in id order.
    #[returns(KernelsResponse)]
    ByOwner {
        owner: String,
        start_after: Option<KernelId>,
        limit: Option<u32>,
    },
    /// Every version of `name`, ascending (`start_after` is a version).
    #[returns(KernelsResponse)]
    Versions {
        name: String,
        start_after: Option<u32>,
        limit: Option<u32>,
    },
    #[returns(ConfigResponse)]
    Config {},
}

#[cw_serde]
pub struct KernelsResponse {
    pub kernels: Vec<Kernel>,
}

#[cw_serde]
pub struct ConfigResponse {
    /// Kernels registered or forked so far (ids are 1..=kernel_count).
    pub kernel_count: u64,
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{from_json, to_json_string};

    use super::*;

    #[test]
    fn registry_messages_parse_from_their_documented_json() {
        let hash = "ab".repeat(32);
        for example in [
            format!(
                r#"{{"register":{{"name":"smollm2-135m","weights_sha256":"{hash}","tokenizer_sha256":"{hash}","architecture":"llama","layer_count":30,"shard_layout":[{{"start_layer":0,"end_layer":30,"sha256":"{hash}"}}],"encryption":"ee-v1","price_per_input_token":"1","price_per_output_token":"2","min_redundancy":3}}}}"#
            ),
            r#"{"update":{"kernel_id":1,"price_per_output_token":"3"}}"#.to_string(),
            format!(r#"{{"fork":{{"parent":1,"weights_sha256":"{hash}"}}}}"#),
            r#"{"deprecate":{"kernel_id":1}}"#.to_string(),
            r#"{"transfer_ownership":{"kernel_id":1,"new_owner":"nesa1new"}}"#.to_string(),
        ] {
            from_json::<ExecuteMsg>(&example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        for example in [
            r#"{"kernel":{"id":1}}"#,
            r#"{"kernels":{"start_after":1,"limit":5}}"#,
            r#"{"by_owner":{"owner":"nesa1o"}}"#,
            r#"{"versions":{"name":"smollm2-135m"}}"#,
            r#"{"config":{}}"#,
        ] {
            from_json::<QueryMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }

    #[test]
    fn encryption_is_spelled_none_or_ee_v1() {
        assert_eq!(to_json_string(&Encryption::None).unwrap(), r#""none""#);
        assert_eq!(to_json_string(&Encryption::EeV1).unwrap(), r#""ee-v1""#);
        assert_eq!(
            to_json_string(&KernelStatus::Deprecated).unwrap(),
            r#""deprecated""#
        );
    }
}

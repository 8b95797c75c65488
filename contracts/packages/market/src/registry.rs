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
/// Largest vocabulary a kernel may declare: a logit fingerprint stores token ids in 3 bytes
/// (`fingerprint::MAX_TOKEN_ID` + 1).
pub const MAX_VOCAB_SIZE: u32 = crate::fingerprint::MAX_TOKEN_ID + 1;
/// Longest context a kernel may declare (2^20 tokens).
pub const MAX_CONTEXT_LENGTH: u32 = 1 << 20;

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
    /// Tokens in the model's vocabulary (`<arch>.vocab_size`, or the GGUF tokenizer's token
    /// count), 1..=2^24: the market refuses a query with a token id at or above it.
    pub vocab_size: u32,
    /// Longest sequence the model runs (`<arch>.context_length`), 1..=2^20: the market refuses
    /// a query whose input plus `max_output_tokens` exceeds it.
    pub context_length: u32,
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
    pub vocab_size: Option<u32>,
    pub context_length: Option<u32>,
    pub shard_layout: Option<Vec<ShardRange>>,
    pub encryption: Option<Encryption>,
    pub price_per_input_token: Option<Uint128>,
    pub price_per_output_token: Option<Uint128>,
    pub min_redundancy: Option<u8>,
    pub description: Option<String>,
}

impl KernelFork {
    /// A fork of `parent` that copies every field; set the ones that change.
    pub fn of(parent: KernelId) -> Self {
        Self {
            parent,
            weights_sha256: None,
            tokenizer_sha256: None,
            architecture: None,
            layer_count: None,
            vocab_size: None,
            context_length: None,
            shard_layout: None,
            encryption: None,
            price_per_input_token: None,
            price_per_output_token: None,
            min_redundancy: None,
            description: None,
        }
    }
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
    /// Tokens in the vocabulary; 0 for a kernel stored before vocabularies were recorded (the
    /// market takes no queries for it: fork it with the value).
    #[serde(default)]
    pub vocab_size: u32,
    /// Longest sequence the model runs; 0 for a kernel stored before it was recorded.
    #[serde(default)]
    pub context_length: u32,
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
    /// Whether queries for it run through pipelines of shards, one per range of its shard
    /// layout (a layout of more than one range).
    pub fn is_sharded(&self) -> bool {
        self.shard_layout.len() > 1
    }

    /// Whether the market may take queries for it.
    pub fn is_active(&self) -> bool {
        self.status == KernelStatus::Active
    }

    /// Whether a query of `input` token ids asking for up to `max_output_tokens` can run on
    /// this kernel: every id inside the vocabulary and the whole sequence inside the context.
    pub fn check_runnable(&self, input: &[u32], max_output_tokens: u32) -> Result<(), Unrunnable> {
        if self.vocab_size == 0 || self.context_length == 0 {
            return Err(Unrunnable::LimitsUnknown);
        }
        if let Some((index, &token)) = input
            .iter()
            .enumerate()
            .find(|(_, &t)| t >= self.vocab_size)
        {
            return Err(Unrunnable::TokenOutOfVocabulary {
                index,
                token,
                vocab_size: self.vocab_size,
            });
        }
        let needed = u64::from(input.len() as u32) + u64::from(max_output_tokens);
        if needed > u64::from(self.context_length) {
            return Err(Unrunnable::ContextExceeded {
                input_tokens: input.len() as u32,
                max_output_tokens,
                context_length: self.context_length,
            });
        }
        Ok(())
    }
}

/// Why no node could serve a query on a kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrunnable {
    #[error(
        "the kernel does not record its vocabulary size and context length: use a fork that does"
    )]
    LimitsUnknown,
    #[error(
        "input token {index} is id {token}, outside the kernel's vocabulary of {vocab_size} tokens"
    )]
    TokenOutOfVocabulary {
        index: usize,
        token: u32,
        vocab_size: u32,
    },
    #[error("{input_tokens} input tokens plus max_output_tokens {max_output_tokens} exceed the kernel's context length {context_length}")]
    ContextExceeded {
        input_tokens: u32,
        max_output_tokens: u32,
        context_length: u32,
    },
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
                r#"{{"register":{{"name":"smollm2-135m","weights_sha256":"{hash}","tokenizer_sha256":"{hash}","architecture":"llama","layer_count":30,"vocab_size":49152,"context_length":8192,"shard_layout":[{{"start_layer":0,"end_layer":30,"sha256":"{hash}"}}],"encryption":"ee-v1","price_per_input_token":"1","price_per_output_token":"2","min_redundancy":3}}}}"#
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
    fn a_kernel_runs_ids_inside_its_vocabulary_and_sequences_inside_its_context() {
        let kernel: Kernel = from_json(format!(
            r#"{{"id":1,"owner":"o","name":"k","version":1,"parent":null,"weights_sha256":"{h}","tokenizer_sha256":"{h}","architecture":"llama","layer_count":1,"vocab_size":100,"context_length":10,"shard_layout":[],"encryption":"none","price_per_input_token":"1","price_per_output_token":"1","min_redundancy":1,"description":"","status":"active","created_height":1}}"#,
            h = "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(kernel.check_runnable(&[0, 99], 8), Ok(()));
        assert_eq!(
            kernel.check_runnable(&[0, 100], 1),
            Err(Unrunnable::TokenOutOfVocabulary {
                index: 1,
                token: 100,
                vocab_size: 100
            })
        );
        assert_eq!(
            kernel.check_runnable(&[1, 2, 3], 8),
            Err(Unrunnable::ContextExceeded {
                input_tokens: 3,
                max_output_tokens: 8,
                context_length: 10
            })
        );
        assert!(kernel.check_runnable(&[1], u32::MAX).is_err());
        // A kernel stored before the limits were recorded takes no queries.
        let old = Kernel {
            vocab_size: 0,
            context_length: 0,
            ..kernel
        };
        assert_eq!(old.check_runnable(&[1], 1), Err(Unrunnable::LimitsUnknown));
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

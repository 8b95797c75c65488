//! The market as a test drives it on the real chain: the wasm artifacts, the kernel and query
//! every market test uses, what a node runner learns from `wasm-query_assigned`, and the result
//! a simulated model commits and reveals (computed with `nesa_market` exactly as a node runner
//! computes it).

use cosmwasm_std::{Binary, HexBinary, Uint128};
use nesa_market::market::{ExecuteMsg, Sampling};
use nesa_market::registry::{Encryption, NewKernel, ShardRange};
use nesa_market::sortition::signer::TicketKey;
use nesa_market::staking::{NodeProfile, ServedKernel, SortitionKey};
use nesa_market::{commitment, encode_token_ids, result_hash, Fingerprint};
use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::cosmrs::Any;
use nesa_sdk::CoinExt;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::abci::{Event, ExecTxResult};

use super::TestChain;

pub const PRICE_IN: u128 = 3;
pub const PRICE_OUT: u128 = 7;
pub const LAYERS: u32 = 30;
/// Nodes per query.
pub const K: u8 = 3;
/// The prompt's token ids.
pub const INPUT: [u32; 4] = [1, 4093, 198, 19556];
pub const MAX_OUTPUT: u32 = 48;
/// Tokens every replica generates.
pub const GENERATED: u32 = 32;
/// Vocabulary of the simulated model.
pub const VOCAB: u32 = 96;
/// Vocabulary and context length the kernel registers (SmolLM2's): the prompt's ids are
/// inside it, and the simulated model only ever emits its first `VOCAB` ids.
pub const KERNEL_VOCAB: u32 = 49_152;
pub const CONTEXT: u32 = 8192;

/// A contract's answer to a smart query, decoded.
pub fn smart_query<T: DeserializeOwned>(
    chain: &TestChain,
    contract: &str,
    msg: &impl Serialize,
) -> T {
    let answer = chain
        .query_smart(contract, serde_json::to_value(msg).unwrap())
        .unwrap();
    serde_json::from_value(answer).unwrap()
}

/// A `MsgExecuteContract` from `sender` calling `contract` with `msg`, sending `funds` unes.
pub fn execute_msg(sender: &str, contract: &str, msg: &impl Serialize, funds: u128) -> Any {
    let msg = proto::MsgExecuteContract {
        sender: sender.into(),
        contract: contract.into(),
        msg: serde_json::to_vec(msg).unwrap(),
        funds: if funds > 0 {
            vec![nesa_sdk::Coin::unes(funds).to_proto()]
        } else {
            vec![]
        },
    };
    any("/cosmwasm.wasm.v1.MsgExecuteContract", msg)
}

pub fn artifact(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../artifacts")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-contracts)", path.display()))
}

pub fn any(type_url: &str, msg: impl Message) -> Any {
    Any {
        type_url: type_url.into(),
        value: msg.encode_to_vec(),
    }
}

pub fn events<'a>(result: &'a ExecTxResult, kind: &str) -> Vec<&'a Event> {
    result.events.iter().filter(|e| e.r#type == kind).collect()
}

pub fn value(event: &Event, key: &str) -> Option<String> {
    event
        .attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.clone())
}

/// The value of `key` in the first event of type `kind`.
pub fn attribute(result: &ExecTxResult, kind: &str, key: &str) -> String {
    events(result, kind)
        .into_iter()
        .find_map(|e| value(e, key))
        .unwrap_or_else(|| panic!("no {kind}.{key} in {:?}", result.events))
}

pub fn assert_ok(result: &ExecTxResult, what: &str) {
    assert_eq!(result.code, 0, "{what}: {}", result.log);
}

pub fn kernel() -> NewKernel {
    NewKernel {
        name: "smollm2-135m-instruct-q4_1".into(),
        weights_sha256: HexBinary::from(vec![1; 32]),
        tokenizer_sha256: HexBinary::from(vec![2; 32]),
        architecture: "llama".into(),
        layer_count: LAYERS,
        vocab_size: KERNEL_VOCAB,
        context_length: CONTEXT,
        shard_layout: vec![ShardRange {
            start_layer: 0,
            end_layer: LAYERS,
            sha256: HexBinary::from(vec![3; 32]),
        }],
        encryption: Encryption::None,
        price_per_input_token: Uint128::new(PRICE_IN),
        price_per_output_token: Uint128::new(PRICE_OUT),
        min_redundancy: 2,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF".into(),
    }
}

pub fn submit_msg(kernel_id: u64, input: &[u32]) -> ExecuteMsg {
    ExecuteMsg::SubmitQuery {
        kernel_id,
        input: Binary::from(encode_token_ids(input)),
        max_output_tokens: MAX_OUTPUT,
        sampling: Sampling {
            seed: 7,
            temperature_milli: 0,
            top_p_milli: 1000,
        },
        redundancy: Some(K),
        user_entropy: Binary::from(Sha256::digest(b"alice's entropy").to_vec()),
    }
}

/// A test node's sortition key (derived from its address).
pub fn ticket_key(node: &str) -> TicketKey {
    TicketKey::from_seed(node.as_bytes())
}

/// The profile a node bonds with: serving every layer of `kernel_id`, one query at a time,
/// with its sortition key.
pub fn node_profile(node: &str, kernel_id: u64) -> NodeProfile {
    let key = ticket_key(node);
    NodeProfile {
        endpoint: "http://127.0.0.1:8700".into(),
        kernels: vec![ServedKernel {
            kernel_id,
            start_layer: 0,
            end_layer: LAYERS,
            block_micros: None,
        }],
        capacity: 1,
        sortition_key: Some(SortitionKey {
            public_key: HexBinary::from(key.public_key().to_vec()),
            proof: HexBinary::from(key.proof_of_possession(node).to_vec()),
        }),
    }
}

/// What a node runner learns from `wasm-query_submitted`: the draw it may enter.
pub struct Submitted {
    pub query_id: u64,
    pub draw_input: [u8; 32],
    pub draw_deadline: u64,
}

impl Submitted {
    pub fn from_result(result: &ExecTxResult) -> Submitted {
        let submitted = "wasm-query_submitted";
        let input = hex::decode(attribute(result, submitted, "draw_input")).unwrap();
        Submitted {
            query_id: attribute(result, submitted, "query_id").parse().unwrap(),
            draw_input: input.try_into().expect("a 32-byte draw input"),
            draw_deadline: attribute(result, submitted, "draw_deadline")
                .parse()
                .unwrap(),
        }
    }

    /// `node`'s entry into the draw.
    pub fn ticket_msg(&self, node: &str) -> ExecuteMsg {
        ExecuteMsg::SubmitTicket {
            query_id: self.query_id,
            ticket: HexBinary::from(ticket_key(node).ticket(&self.draw_input).to_vec()),
        }
    }
}

/// What a node runner learns from `wasm-query_assigned` (emitted by the draw).
pub struct Assigned {
    pub query_id: u64,
    pub nodes: Vec<String>,
    pub seed: [u8; 32],
    pub positions: usize,
    pub commit_deadline: u64,
}

impl Assigned {
    /// What the `wasm-query_assigned` event of a successful draw says.
    pub fn from_result(result: &ExecTxResult) -> Assigned {
        let assigned = "wasm-query_assigned";
        let seed = hex::decode(attribute(result, assigned, "seed")).unwrap();
        Assigned {
            query_id: attribute(result, assigned, "query_id").parse().unwrap(),
            nodes: attribute(result, assigned, "nodes")
                .split(',')
                .map(str::to_string)
                .collect(),
            seed: seed.try_into().expect("a 32-byte seed"),
            positions: attribute(result, assigned, "fingerprint_positions")
                .parse()
                .unwrap(),
            commit_deadline: attribute(result, assigned, "commit_deadline")
                .parse()
                .unwrap(),
        }
    }
}

/// A node's result for a query, as its runner commits and reveals it.
#[derive(Clone)]
pub struct NodeResult {
    pub output: Vec<u8>,
    pub fingerprint: Vec<u8>,
    pub salt: Vec<u8>,
}

impl NodeResult {
    /// Greedy decoding of [`GENERATED`] tokens by `model` (0 is the real kernel; any other
    /// value a different model), the fingerprint at the positions the seed draws, a salt.
    pub fn compute(node: &str, assigned: &Assigned, model: u64) -> NodeResult {
        let logits: Vec<Vec<f32>> = (0..GENERATED)
            .map(|step| simulated_logits(model, step))
            .collect();
        let generated: Vec<u32> = logits
            .iter()
            .map(|l| {
                (0..VOCAB)
                    .max_by(|&a, &b| l[a as usize].total_cmp(&l[b as usize]).then(b.cmp(&a)))
                    .unwrap()
            })
            .collect();
        let fingerprint =
            Fingerprint::from_logits(&assigned.seed, GENERATED, assigned.positions, |p| {
                &logits[p as usize]
            });
        let mut salt = Sha256::new();
        salt.update(b"salt/");
        salt.update(node.as_bytes());
        salt.update(assigned.query_id.to_be_bytes());
        NodeResult {
            output: encode_token_ids(&generated),
            fingerprint: fingerprint.encode().expect("a valid fingerprint"),
            salt: salt.finalize().to_vec(),
        }
    }

    /// `sha256(node ‖ query_id ‖ result_hash(output, fingerprint) ‖ salt)`.
    pub fn commitment(&self, node: &str, query_id: u64) -> [u8; 32] {
        commitment(
            node,
            query_id,
            &result_hash(&self.output, &self.fingerprint),
            &self.salt,
        )
    }

    pub fn commit_msg(&self, node: &str, query_id: u64) -> ExecuteMsg {
        ExecuteMsg::Commit {
            query_id,
            commitment: HexBinary::from(self.commitment(node, query_id).to_vec()),
        }
    }

    pub fn reveal_msg(&self, query_id: u64) -> ExecuteMsg {
        ExecuteMsg::Reveal {
            query_id,
            output: Binary::from(self.output.clone()),
            fingerprint: Binary::from(self.fingerprint.clone()),
            salt: Binary::from(self.salt.clone()),
            activations: None,
        }
    }
}

/// Deterministic logits in [-8, 8) for one decoding step of `model`.
pub fn simulated_logits(model: u64, step: u32) -> Vec<f32> {
    (0..VOCAB)
        .map(|token| {
            let mut x = (model << 48) ^ ((step as u64) << 24) ^ token as u64;
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            (x % 16_000) as f32 / 1000.0 - 8.0
        })
        .collect()
}

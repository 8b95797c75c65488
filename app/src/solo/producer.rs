//! The embedded single-validator consensus: builds a block whenever transactions wait (or every
//! `block_interval` otherwise), runs PrepareProposal → FinalizeBlock → Commit on the app, signs
//! the block with the validator key and stores it with its results, atomically with the state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use sha2::{Digest, Sha256};
use tendermint::block::{self, header::Version, parts, Block, Commit, CommitSig, Header};
use tendermint::crypto::default::Sha256 as MerkleSha256;
use tendermint::merkle::simple_hash_from_byte_vectors;
use tendermint::{chain, validator, vote, Hash, Time};
use tendermint_proto::v0_38::abci::{
    CommitInfo, RequestFinalizeBlock, RequestPrepareProposal, Validator, VoteInfo,
};
use tendermint_proto::v0_38::types::{BlockIdFlag, HashedParams};
use tokio::sync::broadcast;

use super::blockstore::{BlockStore, StoredBlock};
use super::mempool::Mempool;
use super::validator::ValidatorKey;
use crate::app::{App, AppError};

/// Largest block the solo producer builds (CometBFT's default `max_bytes`).
pub const MAX_BLOCK_BYTES: i64 = nesa_genesis::BLOCK_MAX_BYTES as i64;

/// Announced after every commit, for `broadcast_tx_commit` and subscribers.
#[derive(Clone, Debug)]
pub struct CommittedBlock {
    pub height: u64,
    pub tx_hashes: Vec<[u8; 32]>,
}

/// The single validator producing blocks.
pub struct Producer {
    app: Arc<App>,
    store: BlockStore,
    mempool: Arc<Mempool>,
    key: ValidatorKey,
    chain_id: chain::Id,
    validators: validator::Set,
    power: i64,
    committed: broadcast::Sender<CommittedBlock>,
    clock: Clock,
}

/// When the producer makes blocks.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    /// Longest wait for transactions before an empty block.
    pub max_wait: Duration,
    /// Shortest time between two blocks.
    pub min_interval: Duration,
}

/// Chooses the next block time from the previous one.
pub type Clock = fn(Option<Time>) -> Time;

impl Producer {
    /// A producer for `app` signing with `key` (the only validator, with `power`).
    pub fn new(
        app: Arc<App>,
        store: BlockStore,
        mempool: Arc<Mempool>,
        key: ValidatorKey,
        chain_id: chain::Id,
        power: i64,
        committed: broadcast::Sender<CommittedBlock>,
    ) -> Self {
        let info = validator::Info::new(
            key.pub_key,
            vote::Power::try_from(power).expect("positive power"),
        );
        let validators = validator::Set::new(vec![info.clone()], Some(info));
        Producer {
            app,
            store,
            mempool,
            key,
            chain_id,
            validators,
            power,
            committed,
            clock: next_time,
        }
    }

    /// Uses `clock` for block times instead of the wall clock (deterministic tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The validator set (for the `validators` RPC).
    pub fn validators(&self) -> &validator::Set {
        &self.validators
    }

    /// Produces blocks until `stop` is set (checked between blocks, so a block in progress is
    /// always committed whole) or a block fails (which halts the node). A block follows as soon
    /// as transactions wait, but never sooner than `cadence.min_interval` after the last one.
    pub fn run(
        &self,
        cadence: Cadence,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<(), AppError> {
        let mut last_block: Option<Instant> = None;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            self.mempool.wait_for_txs(cadence.max_wait);
            if let Some(last) = last_block {
                let due = last + cadence.min_interval;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            if stop.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
            let txs = self.mempool.pending(MAX_BLOCK_BYTES as usize);
            last_block = Some(Instant::now());
            self.produce(txs)?;
        }
        Ok(())
    }

    /// Builds, executes, signs and commits one block containing (the valid part of) `txs`.
    pub fn produce(&self, txs: Vec<Vec<u8>>) -> Result<StoredBlock, AppError> {
        let committed = self
            .app
            .storage()
            .committed()?
            .ok_or(AppError::NotInitialised)?;
        let initial_height = self
            .app
            .config()
            .ok_or(AppError::NotInitialised)?
            .initial_height;
        let height = committed.height + 1;
        let previous = if height > initial_height {
            self.store.block(height - 1)?
        } else {
            None
        };
        let time = (self.clock)(previous.as_ref().map(|p| p.block.header.time));
        let proposer = self.key.address;

        let prepared = self.app.prepare_proposal(RequestPrepareProposal {
            max_tx_bytes: MAX_BLOCK_BYTES,
            txs: txs.into_iter().map(Into::into).collect(),
            height: height as i64,
            time: Some(time.into()),
            next_validators_hash: self.validators.hash().as_bytes().to_vec().into(),
            proposer_address: proposer.as_bytes().to_vec().into(),
            ..Default::default()
        })?;
        let txs: Vec<Vec<u8>> = prepared.txs.into_iter().map(|tx| tx.to_vec()).collect();

        let last_commit = previous.as_ref().map(|p| self.sign_commit(p));
        let header = Header {
            version: Version { block: 11, app: 1 },
            chain_id: self.chain_id.clone(),
            height: block::Height::try_from(height).expect("height fits"),
            time,
            last_block_id: previous.as_ref().map(|p| p.id),
            last_commit_hash: Some(commit_hash(last_commit.as_ref())),
            data_hash: Some(data_hash(&txs)),
            validators_hash: self.validators.hash(),
            next_validators_hash: self.validators.hash(),
            consensus_hash: consensus_hash(),
            app_hash: tendermint::AppHash::try_from(committed.app_hash.to_vec())
                .expect("32-byte app hash"),
            last_results_hash: Some(results_hash(previous.as_ref())),
            evidence_hash: Some(Hash::Sha256(simple_hash_from_byte_vectors::<MerkleSha256>(
                &[] as &[Vec<u8>],
            ))),
            proposer_address: proposer,
        };
        let block = Block::new(header, txs.clone(), Default::default(), last_commit);
        let encoded = super::blockstore::encode_block(&block);
        let id = block::Id {
            hash: block.header.hash(),
            part_set_header: parts::Header::new(1, Hash::Sha256(Sha256::digest(&encoded).into()))
                .expect("valid part set"),
        };

        let results = self.app.finalize_block(RequestFinalizeBlock {
            txs: txs.iter().map(|tx| tx.clone().into()).collect(),
            decided_last_commit: Some(CommitInfo {
                round: 0,
                votes: if previous.is_some() {
                    vec![VoteInfo {
                        validator: Some(Validator {
                            address: proposer.as_bytes().to_vec().into(),
                            power: self.power,
                        }),
                        block_id_flag: BlockIdFlag::Commit as i32,
                    }]
                } else {
                    vec![]
                },
            }),
            hash: id.hash.as_bytes().to_vec().into(),
            height: height as i64,
            time: Some(time.into()),
            next_validators_hash: self.validators.hash().as_bytes().to_vec().into(),
            proposer_address: proposer.as_bytes().to_vec().into(),
            ..Default::default()
        })?;
        let stored = StoredBlock { id, block, results };
        let seen_commit = self.sign_commit(&stored);
        let tx_hashes: Vec<[u8; 32]> = txs.iter().map(|tx| Sha256::digest(tx).into()).collect();
        let committed = self.mempool.commit_and_recheck(&self.app, &tx_hashes, || {
            self.app
                .commit_with(|txn| BlockStore::write(txn, &stored, &seen_commit))
        })?;
        tracing::debug!(height = committed.height, txs = txs.len(), app_hash = %hex::encode_upper(committed.app_hash), "block committed");
        let _ = self.committed.send(CommittedBlock { height, tx_hashes });
        Ok(stored)
    }

    /// The validator's precommit for `block`, as the next block's last commit.
    fn sign_commit(&self, stored: &StoredBlock) -> Commit {
        let timestamp = stored.block.header.time;
        let vote = tendermint::vote::Vote {
            vote_type: tendermint::vote::Type::Precommit,
            height: stored.block.header.height,
            round: block::Round::default(),
            block_id: Some(stored.id),
            timestamp: Some(timestamp),
            validator_address: self.key.address,
            validator_index: tendermint::vote::ValidatorIndex::try_from(0u32).expect("index 0"),
            signature: None,
            extension: vec![],
            extension_signature: None,
        };
        let sign_bytes = vote.into_signable_vec(self.chain_id.clone());
        let signature = tendermint::Signature::try_from(self.key.sign(&sign_bytes)).ok();
        Commit {
            height: stored.block.header.height,
            round: block::Round::default(),
            block_id: stored.id,
            signatures: vec![CommitSig::BlockIdFlagCommit {
                validator_address: self.key.address,
                timestamp,
                signature,
            }],
        }
    }
}

/// A deterministic clock: one second after the previous block (from the Unix epoch).
pub fn one_second_blocks(previous: Option<Time>) -> Time {
    match previous {
        Some(prev) => (prev + Duration::from_secs(1)).expect("time in range"),
        None => Time::from_unix_timestamp(1_700_000_000, 0).expect("valid time"),
    }
}

/// Block time: now, but always after the previous block.
fn next_time(previous: Option<Time>) -> Time {
    let now = Time::now();
    match previous {
        Some(prev) if now <= prev => (prev + Duration::from_millis(1)).expect("time in range"),
        _ => now,
    }
}

/// CometBFT's `Txs.Hash()`: the Merkle root over the transactions' sha256 hashes.
fn data_hash(txs: &[Vec<u8>]) -> Hash {
    let leaves: Vec<[u8; 32]> = txs.iter().map(|tx| Sha256::digest(tx).into()).collect();
    Hash::Sha256(simple_hash_from_byte_vectors::<MerkleSha256>(&leaves))
}

/// CometBFT's `Commit.Hash()`: the Merkle root over the protobuf-encoded commit signatures.
fn commit_hash(commit: Option<&Commit>) -> Hash {
    let leaves: Vec<Vec<u8>> = commit
        .map(|c| {
            c.signatures
                .iter()
                .map(|sig| {
                    tendermint_proto::v0_38::types::CommitSig::from(sig.clone()).encode_to_vec()
                })
                .collect()
        })
        .unwrap_or_default();
    Hash::Sha256(simple_hash_from_byte_vectors::<MerkleSha256>(&leaves))
}

/// CometBFT's `ABCIResults.Hash()` of the previous block: the Merkle root over the deterministic
/// fields (code, data, gas wanted, gas used) of each transaction result.
fn results_hash(previous: Option<&StoredBlock>) -> Hash {
    let leaves: Vec<Vec<u8>> = previous
        .map(|p| {
            p.results
                .tx_results
                .iter()
                .map(|r| {
                    tendermint_proto::v0_38::abci::ExecTxResult {
                        code: r.code,
                        data: r.data.clone(),
                        gas_wanted: r.gas_wanted,
                        gas_used: r.gas_used,
                        ..Default::default()
                    }
                    .encode_to_vec()
                })
                .collect()
        })
        .unwrap_or_default();
    Hash::Sha256(simple_hash_from_byte_vectors::<MerkleSha256>(&leaves))
}

/// CometBFT's consensus hash: sha256 of the hashed subset of the consensus parameters.
fn consensus_hash() -> Hash {
    let params = HashedParams {
        block_max_bytes: MAX_BLOCK_BYTES,
        block_max_gas: nesa_genesis::BLOCK_MAX_GAS as i64,
    };
    Hash::Sha256(Sha256::digest(params.encode_to_vec()).into())
}

//! Blocks, their execution results and a tx-hash index for the solo node's RPC, committed in the
//! same redb transaction as the state, so blocks and state never disagree after a crash.

use prost::Message;
use redb::{ReadableDatabase, TableDefinition};
use tendermint::block::{self, Block, Commit};
use tendermint_proto::v0_38::abci::ResponseFinalizeBlock;
use tendermint_proto::v0_38::types::{
    Block as RawBlock, BlockId as RawBlockId, Commit as RawCommit,
};

use std::collections::BTreeSet;

use super::events;
use crate::state::{BlockWriter, StateError, Storage};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_blocks");
const BLOCK_IDS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_block_ids");
const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_results");
/// height → the validator's commit of that block (protobuf `Commit`), as CometBFT's seen
/// commit: the next block carries the same one as its last commit.
const COMMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_commits");
/// tx hash → height (8 bytes BE) ‖ index in block (4 bytes BE).
const TX_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("solo_tx_index");

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// A produced block with everything the RPC reports about it.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    pub id: block::Id,
    pub block: Block,
    pub results: ResponseFinalizeBlock,
}

/// Read and write access to the solo block store.
#[derive(Clone)]
pub struct BlockStore {
    storage: Storage,
}

fn storage_error(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

impl BlockStore {
    /// The block store inside `storage`'s database.
    pub fn new(storage: Storage) -> Result<Self, StateError> {
        let txn = storage.database().begin_write()?;
        txn.open_table(BLOCKS)?;
        txn.open_table(BLOCK_IDS)?;
        txn.open_table(RESULTS)?;
        txn.open_table(TX_INDEX)?;
        txn.open_table(COMMITS)?;
        txn.open_table(events::TX_EVENTS)?;
        txn.open_table(events::BLOCK_EVENTS)?;
        txn.commit()?;
        Ok(BlockStore { storage })
    }

    /// Adds `block` and the validator's `commit` of it to the commit transaction `txn`.
    pub fn write(
        txn: BlockWriter,
        stored: &StoredBlock,
        commit: &Commit,
    ) -> Result<(), StateError> {
        let height = stored.block.header.height.value();
        txn.open_table(COMMITS)?.insert(
            height,
            RawCommit::from(commit.clone()).encode_to_vec().as_slice(),
        )?;
        txn.open_table(BLOCKS)?
            .insert(height, encode_block(&stored.block).as_slice())?;
        txn.open_table(BLOCK_IDS)?.insert(
            height,
            RawBlockId::from(stored.id).encode_to_vec().as_slice(),
        )?;
        txn.open_table(RESULTS)?
            .insert(height, stored.results.encode_to_vec().as_slice())?;
        let mut index = txn.open_table(TX_INDEX)?;
        let mut searchable = Vec::with_capacity(stored.block.data.len());
        for (i, tx) in stored.block.data.iter().enumerate() {
            let hash: [u8; 32] =
                sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(tx)).into();
            let location = [
                height.to_be_bytes().as_slice(),
                (i as u32).to_be_bytes().as_slice(),
            ]
            .concat();
            index.insert(hash.as_slice(), location.as_slice())?;
            let tx_events = stored
                .results
                .tx_results
                .get(i)
                .map_or(&[][..], |r| r.events.as_slice());
            searchable.push((hex::encode_upper(hash), tx_events));
        }
        drop(index);
        events::write(txn, height, &searchable, &stored.results.events)
    }

    /// The transactions whose events satisfy `query`, by position (height, index), ascending.
    pub fn search_txs(
        &self,
        query: &events::EventQuery,
    ) -> Result<BTreeSet<events::TxPosition>, events::SearchError> {
        let txn = self
            .storage
            .database()
            .begin_read()
            .map_err(storage_error)?;
        let table = txn.open_table(events::TX_EVENTS)?;
        events::search_txs(&table, query)
    }

    /// The heights of the blocks whose events satisfy `query`, ascending.
    pub fn search_blocks(
        &self,
        query: &events::EventQuery,
    ) -> Result<BTreeSet<u64>, events::SearchError> {
        let txn = self
            .storage
            .database()
            .begin_read()
            .map_err(storage_error)?;
        let table = txn.open_table(events::BLOCK_EVENTS)?;
        events::search_blocks(&table, query)
    }

    /// The block at `height`, if produced.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, StateError> {
        let txn = self.storage.database().begin_read()?;
        let Some(block) = decoded::<RawBlock, Block>(&txn, BLOCKS, height)? else {
            return Ok(None);
        };
        let id = decoded::<RawBlockId, block::Id>(&txn, BLOCK_IDS, height)?
            .ok_or_else(|| storage_error("block id missing"))?;
        let results = txn
            .open_table(RESULTS)?
            .get(height)?
            .ok_or_else(|| storage_error("results missing"))?;
        let results = ResponseFinalizeBlock::decode(results.value()).map_err(storage_error)?;
        Ok(Some(StoredBlock { id, block, results }))
    }

    /// The validator's commit of the block at `height`, if produced.
    pub fn commit(&self, height: u64) -> Result<Option<Commit>, StateError> {
        let txn = self.storage.database().begin_read()?;
        decoded::<RawCommit, Commit>(&txn, COMMITS, height)
    }

    /// Where the transaction with `hash` was included, if it was.
    pub fn find_tx(&self, hash: &[u8]) -> Result<Option<TxLocation>, StateError> {
        let txn = self.storage.database().begin_read()?;
        let found = txn
            .open_table(TX_INDEX)?
            .get(hash)?
            .map(|v| v.value().to_vec());
        Ok(found.map(|raw| TxLocation {
            height: u64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
            index: u32::from_be_bytes(raw[8..12].try_into().expect("4 bytes")),
        }))
    }

    /// The lowest stored height.
    pub fn earliest_height(&self) -> Result<Option<u64>, StateError> {
        let txn = self.storage.database().begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let first = redb::ReadableTable::first(&table)?;
        Ok(first.map(|(k, _)| k.value()))
    }
}

/// The `Raw` protobuf stored at `height` in `table`, as its domain type `T`.
fn decoded<Raw, T>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<u64, &[u8]>,
    height: u64,
) -> Result<Option<T>, StateError>
where
    Raw: Message + Default,
    T: TryFrom<Raw>,
    T::Error: std::fmt::Display,
{
    let Some(raw) = txn.open_table(table)?.get(height)? else {
        return Ok(None);
    };
    let raw = Raw::decode(raw.value()).map_err(storage_error)?;
    T::try_from(raw).map(Some).map_err(storage_error)
}

/// The CometBFT 0.38 protobuf encoding of a block.
pub fn encode_block(block: &Block) -> Vec<u8> {
    RawBlock::from(block.clone()).encode_to_vec()
}

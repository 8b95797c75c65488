//! Blocks, their execution results and a tx-hash index for the solo node's RPC, committed in the
//! same redb transaction as the state, so blocks and state never disagree after a crash.

use prost::Message;
use redb::{ReadableDatabase, TableDefinition};
use tendermint::block::{self, Block};
use tendermint_proto::v0_38::abci::ResponseFinalizeBlock;
use tendermint_proto::v0_38::types::{Block as RawBlock, BlockId as RawBlockId};

use crate::state::{BlockWriter, StateError, Storage};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_blocks");
const BLOCK_IDS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_block_ids");
const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("solo_results");
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
        txn.commit()?;
        Ok(BlockStore { storage })
    }

    /// Adds `block` to the commit transaction `txn`.
    pub fn write(txn: BlockWriter, stored: &StoredBlock) -> Result<(), StateError> {
        let height = stored.block.header.height.value();
        txn.open_table(BLOCKS)?
            .insert(height, encode_block(&stored.block).as_slice())?;
        txn.open_table(BLOCK_IDS)?.insert(
            height,
            RawBlockId::from(stored.id).encode_to_vec().as_slice(),
        )?;
        txn.open_table(RESULTS)?
            .insert(height, stored.results.encode_to_vec().as_slice())?;
        let mut index = txn.open_table(TX_INDEX)?;
        for (i, tx) in stored.block.data.iter().enumerate() {
            let hash: [u8; 32] =
                sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(tx)).into();
            let location = [
                height.to_be_bytes().as_slice(),
                (i as u32).to_be_bytes().as_slice(),
            ]
            .concat();
            index.insert(hash.as_slice(), location.as_slice())?;
        }
        Ok(())
    }

    /// The block at `height`, if produced.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, StateError> {
        let txn = self.storage.database().begin_read()?;
        let Some(raw) = txn
            .open_table(BLOCKS)?
            .get(height)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(None);
        };
        let block = Block::try_from(RawBlock::decode(raw.as_slice()).map_err(storage_error)?)
            .map_err(storage_error)?;
        let id_raw = txn
            .open_table(BLOCK_IDS)?
            .get(height)?
            .ok_or_else(|| storage_error("block id missing"))?;
        let id = block::Id::try_from(RawBlockId::decode(id_raw.value()).map_err(storage_error)?)
            .map_err(storage_error)?;
        let results_raw = txn
            .open_table(RESULTS)?
            .get(height)?
            .ok_or_else(|| storage_error("results missing"))?;
        let results = ResponseFinalizeBlock::decode(results_raw.value()).map_err(storage_error)?;
        Ok(Some(StoredBlock { id, block, results }))
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

/// The CometBFT 0.38 protobuf encoding of a block.
pub fn encode_block(block: &Block) -> Vec<u8> {
    RawBlock::from(block.clone()).encode_to_vec()
}

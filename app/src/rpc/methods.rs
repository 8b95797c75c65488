//! One handler per RPC method, answering from the app, the block store and the mempool.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tendermint::{block, validator, Hash};
use tendermint_rpc::endpoint;
use tokio::sync::broadcast;

use super::params::Params;
use super::RpcError;
use crate::app::App;
use crate::solo::blockstore::{BlockStore, StoredBlock};
use crate::solo::events::{EventQuery, SearchError};
use crate::solo::mempool::{Mempool, MempoolError};
use crate::solo::producer::CommittedBlock;

/// How long `broadcast_tx_commit` waits for inclusion (CometBFT's `timeout_broadcast_tx_commit`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest page for `tx_search`.
const MAX_PER_PAGE: usize = 100;

/// Everything the RPC answers from.
pub struct RpcContext {
    pub app: Arc<App>,
    pub store: BlockStore,
    pub mempool: Arc<Mempool>,
    pub committed: broadcast::Sender<CommittedBlock>,
    pub genesis: Value,
    pub validators: validator::Set,
    pub node_id: String,
    pub moniker: String,
    pub rpc_address: String,
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

fn to_json(value: impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(value).map_err(internal)
}

fn rfc3339(time: tendermint::Time) -> String {
    time.to_rfc3339()
}

impl RpcContext {
    fn latest_height(&self) -> Result<u64, RpcError> {
        Ok(self
            .app
            .last_block()
            .map_err(internal)?
            .map_or(0, |c| c.height))
    }

    fn stored_block(&self, height: Option<u64>) -> Result<StoredBlock, RpcError> {
        let latest = self.latest_height()?;
        let height = height.filter(|h| *h > 0).unwrap_or(latest);
        if height > latest {
            return Err(RpcError::internal(format!(
                "height {height} must be less than or equal to the current blockchain height {latest}"
            )));
        }
        self.store
            .block(height)
            .map_err(internal)?
            .ok_or_else(|| RpcError::internal(format!("no block stored at height {height}")))
    }

    /// `status`: node, sync and validator info (reports CometBFT 0.38 so clients pick that dialect).
    pub fn status(&self) -> Result<Value, RpcError> {
        let latest = self.stored_block(None)?;
        let earliest_height = self.store.earliest_height().map_err(internal)?.unwrap_or(1);
        let earliest = self.stored_block(Some(earliest_height))?;
        let app_hash = self
            .app
            .last_block()
            .map_err(internal)?
            .map(|c| hex::encode_upper(c.app_hash))
            .unwrap_or_default();
        let validator = self
            .validators
            .validators()
            .first()
            .cloned()
            .ok_or_else(|| internal("no validator"))?;
        let chain_id = latest.block.header.chain_id.to_string();
        Ok(json!({
            "node_info": {
                "protocol_version": { "p2p": "8", "block": "11", "app": "1" },
                "id": self.node_id,
                "listen_addr": "tcp://127.0.0.1:26656",
                "network": chain_id,
                "version": "0.38.25",
                "channels": "40202122233038606100",
                "moniker": self.moniker,
                "other": { "tx_index": "on", "rpc_address": self.rpc_address },
            },
            "sync_info": {
                "latest_block_hash": latest.id.hash.to_string(),
                "latest_app_hash": app_hash,
                "latest_block_height": latest.block.header.height.to_string(),
                "latest_block_time": rfc3339(latest.block.header.time),
                "earliest_block_hash": earliest.id.hash.to_string(),
                "earliest_app_hash": earliest.block.header.app_hash.to_string(),
                "earliest_block_height": earliest_height.to_string(),
                "earliest_block_time": rfc3339(earliest.block.header.time),
                "catching_up": false,
            },
            "validator_info": {
                "address": validator.address.to_string(),
                "pub_key": validator.pub_key,
                "voting_power": validator.power.to_string(),
            },
        }))
    }

    /// `abci_info`.
    pub fn abci_info(&self) -> Result<Value, RpcError> {
        let info = self.app.info().map_err(internal)?;
        Ok(json!({
            "response": {
                "data": info.data,
                "version": info.version,
                "app_version": info.app_version.to_string(),
                "last_block_height": info.last_block_height.to_string(),
                "last_block_app_hash": base64_encode(&info.last_block_app_hash),
            }
        }))
    }

    /// `abci_query`: path, hex data, height, prove.
    pub fn abci_query(&self, params: &Params) -> Result<Value, RpcError> {
        let request = tendermint_proto::v0_38::abci::RequestQuery {
            path: params.string("path").unwrap_or_default(),
            data: params.hex_bytes("data")?.into(),
            height: params.u64("height")?.unwrap_or(0) as i64,
            prove: params.bool("prove")?,
        };
        let response = self.app.query(request);
        let proof = response.proof_ops.map(|ops| {
            json!({ "ops": ops.ops.iter().map(|op| json!({
                "type": op.r#type,
                "key": base64_encode(&op.key),
                "data": base64_encode(&op.data),
            })).collect::<Vec<_>>() })
        });
        Ok(json!({
            "response": {
                "code": response.code,
                "log": response.log,
                "info": response.info,
                "index": response.index.to_string(),
                "key": base64_encode(&response.key),
                "value": base64_encode(&response.value),
                "proofOps": proof,
                "height": response.height.to_string(),
                "codespace": response.codespace,
            }
        }))
    }

    /// `broadcast_tx_sync` (and `_async`): CheckTx, then queue for the next block.
    pub fn broadcast_tx_sync(&self, params: &Params) -> Result<Value, RpcError> {
        let tx = params.tx_bytes("tx")?;
        let hash = tx_hash(&tx);
        let check = self.mempool.submit(&self.app, tx).map_err(mempool_error)?;
        Ok(json!({
            "code": check.code,
            "data": base64_encode(&check.data),
            "log": check.log,
            "codespace": check.codespace,
            "hash": hash.to_string(),
        }))
    }

    /// `broadcast_tx_commit`: CheckTx, then wait for the block that includes it.
    pub async fn broadcast_tx_commit(self: Arc<Self>, params: &Params) -> Result<Value, RpcError> {
        let tx = params.tx_bytes("tx")?;
        let hash = tx_hash(&tx);
        let mut committed = self.committed.subscribe();
        let context = self.clone();
        let check = tokio::task::spawn_blocking(move || context.mempool.submit(&context.app, tx))
            .await
            .map_err(internal)?
            .map_err(mempool_error)?;
        let check_json = json!({
            "code": check.code, "data": base64_encode(&check.data), "log": check.log, "info": check.info,
            "gas_wanted": check.gas_wanted.to_string(), "gas_used": check.gas_used.to_string(),
            "events": events_json(&check.events), "codespace": check.codespace,
        });
        if check.code != 0 {
            return Ok(json!({
                "check_tx": check_json,
                "tx_result": exec_result_json(&Default::default()),
                "hash": hash.to_string(),
                "height": "0",
            }));
        }
        let wait = async {
            loop {
                match committed.recv().await {
                    Ok(block) if block.tx_hashes.iter().any(|h| h == hash.as_bytes()) => {
                        return Ok(block.height)
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(location) =
                            self.store.find_tx(hash.as_bytes()).map_err(internal)?
                        {
                            return Ok(location.height);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(internal("node is shutting down"))
                    }
                }
            }
        };
        let height = tokio::time::timeout(COMMIT_TIMEOUT, wait)
            .await
            .map_err(|_| internal("timed out waiting for tx to be included in a block"))??;
        let found = self
            .tx_response(hash.as_bytes())?
            .ok_or_else(|| internal("committed tx not found in its block"))?;
        Ok(json!({
            "check_tx": check_json,
            "tx_result": found["tx_result"].clone(),
            "hash": hash.to_string(),
            "height": height.to_string(),
        }))
    }

    /// `block`.
    pub fn block(&self, params: &Params) -> Result<Value, RpcError> {
        let stored = self.stored_block(params.u64("height")?)?;
        to_json(endpoint::block::Response {
            block_id: stored.id,
            block: stored.block,
        })
    }

    /// `block_results`.
    pub fn block_results(&self, params: &Params) -> Result<Value, RpcError> {
        let stored = self.stored_block(params.u64("height")?)?;
        let txs_results: Vec<Value> = stored
            .results
            .tx_results
            .iter()
            .map(exec_result_json)
            .collect();
        Ok(json!({
            "height": stored.block.header.height.to_string(),
            "txs_results": if txs_results.is_empty() { Value::Null } else { Value::Array(txs_results) },
            "finalize_block_events": events_json(&stored.results.events),
            "validator_updates": [],
            "consensus_param_updates": null,
            "app_hash": base64_encode(&stored.results.app_hash),
        }))
    }

    /// A committed transaction by hash: its block, and its index there.
    pub(super) fn committed_tx(
        &self,
        hash: &[u8],
    ) -> Result<Option<(StoredBlock, usize)>, RpcError> {
        let Some(location) = self.store.find_tx(hash).map_err(internal)? else {
            return Ok(None);
        };
        let stored = self.stored_block(Some(location.height))?;
        if location.index as usize >= stored.block.data.len().min(stored.results.tx_results.len()) {
            return Err(internal("tx index out of range"));
        }
        Ok(Some((stored, location.index as usize)))
    }

    fn tx_response(&self, hash: &[u8]) -> Result<Option<Value>, RpcError> {
        let Some((stored, index)) = self.committed_tx(hash)? else {
            return Ok(None);
        };
        tx_json(&stored, index).map(Some)
    }

    /// `tx`: a committed transaction by hash.
    pub fn tx(&self, params: &Params) -> Result<Value, RpcError> {
        let hash = params.hash("hash")?;
        self.tx_response(&hash)?.ok_or_else(|| {
            RpcError::internal(format!("tx ({}) not found", hex::encode_upper(hash)))
        })
    }

    /// `tx_search`: the transactions whose events satisfy `query` (CometBFT's query language:
    /// `message.sender='nesa1…' AND tx.height>=5`), paged, by height and index (`order_by`
    /// "asc", the default, or "desc").
    pub fn tx_search(&self, params: &Params) -> Result<Value, RpcError> {
        let query = event_query(params)?;
        let found = self.store.search_txs(&query).map_err(search_error)?;
        let (positions, total) = paged(found.into_iter().collect(), params)?;
        let mut txs = Vec::with_capacity(positions.len());
        let mut block: Option<StoredBlock> = None;
        for (height, index) in positions {
            if block
                .as_ref()
                .is_none_or(|b| b.block.header.height.value() != height)
            {
                block = Some(self.stored_block(Some(height))?);
            }
            let stored = block.as_ref().expect("just read");
            txs.push(tx_json(stored, index as usize)?);
        }
        Ok(json!({ "txs": txs, "total_count": total.to_string() }))
    }

    /// `block_search`: the blocks whose `finalize_block_events` (or `block.height`) satisfy
    /// `query`, paged as `tx_search`.
    pub fn block_search(&self, params: &Params) -> Result<Value, RpcError> {
        let query = event_query(params)?;
        let found = self.store.search_blocks(&query).map_err(search_error)?;
        let (heights, total) = paged(found.into_iter().collect(), params)?;
        let mut blocks = Vec::with_capacity(heights.len());
        for height in heights {
            let stored = self.stored_block(Some(height))?;
            blocks.push(to_json(endpoint::block::Response {
                block_id: stored.id,
                block: stored.block,
            })?);
        }
        Ok(json!({ "blocks": blocks, "total_count": total.to_string() }))
    }

    /// `validators`: the validator set at `height` (the latest by default), paged as CometBFT
    /// pages it (`page` from 1, `per_page` 30 by default, at most 100).
    pub fn validators(&self, params: &Params) -> Result<Value, RpcError> {
        let latest = self.latest_height()?;
        let height = params.u64("height")?.filter(|h| *h > 0).unwrap_or(latest);
        if height > latest {
            return Err(RpcError::internal(format!(
                "height {height} must be less than or equal to the current blockchain height {latest}"
            )));
        }
        let all = self.validators.validators().clone();
        let total = all.len();
        let (page, _) = paged(all, params)?;
        // As CometBFT renders a validator (`voting_power`, `proposer_priority`), which
        // tendermint-rs's own serialization names differently.
        let validators: Vec<Value> = page
            .iter()
            .map(|v| {
                Ok(json!({
                    "address": v.address.to_string(),
                    "pub_key": to_json(v.pub_key)?,
                    "voting_power": v.power.value().to_string(),
                    "proposer_priority": v.proposer_priority.value().to_string(),
                }))
            })
            .collect::<Result<_, RpcError>>()?;
        Ok(json!({
            "block_height": height.to_string(),
            "validators": validators,
            "count": validators.len().to_string(),
            "total": total.to_string(),
        }))
    }

    /// `commit`: the header at `height` (the latest by default) and the validator's commit of
    /// it; `canonical` once the next block carries that commit.
    pub fn commit(&self, params: &Params) -> Result<Value, RpcError> {
        let stored = self.stored_block(params.u64("height")?)?;
        let height = stored.block.header.height.value();
        let commit = self
            .store
            .commit(height)
            .map_err(internal)?
            .ok_or_else(|| RpcError::internal(format!("no commit stored at height {height}")))?;
        let canonical = height < self.latest_height()?;
        to_json(endpoint::commit::Response {
            signed_header: block::signed_header::SignedHeader::new(stored.block.header, commit)
                .map_err(internal)?,
            canonical,
        })
    }

    /// `header`: the header at `height` (the latest by default).
    pub fn header(&self, params: &Params) -> Result<Value, RpcError> {
        let stored = self.stored_block(params.u64("height")?)?;
        Ok(json!({ "header": to_json(stored.block.header)? }))
    }

    /// `consensus_params`: the parameters every header's `consensus_hash` commits to.
    pub fn consensus_params(&self, params: &Params) -> Result<Value, RpcError> {
        let stored = self.stored_block(params.u64("height")?)?;
        Ok(json!({
            "block_height": stored.block.header.height.to_string(),
            "consensus_params": nesa_genesis::consensus_params(),
        }))
    }

    /// `genesis`.
    pub fn genesis(&self) -> Result<Value, RpcError> {
        Ok(json!({ "genesis": self.genesis }))
    }

    /// `num_unconfirmed_txs`.
    pub fn unconfirmed_txs(&self) -> Result<Value, RpcError> {
        let pending = self.mempool.len().to_string();
        Ok(json!({ "n_txs": pending, "total": pending, "total_bytes": "0", "txs": [] }))
    }
}

/// An `ExecTxResult` in CometBFT 0.38's JSON shape (base64 data, string gas amounts).
pub(super) fn exec_result_json(result: &tendermint_proto::v0_38::abci::ExecTxResult) -> Value {
    json!({
        "code": result.code,
        "data": if result.data.is_empty() { Value::Null } else { Value::String(base64_encode(&result.data)) },
        "log": result.log,
        "info": result.info,
        "gas_wanted": result.gas_wanted.to_string(),
        "gas_used": result.gas_used.to_string(),
        "events": events_json(&result.events),
        "codespace": result.codespace,
    })
}

/// Events with string attributes, as CometBFT 0.38 writes them.
pub(super) fn events_json(events: &[tendermint_proto::v0_38::abci::Event]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|event| {
                json!({
                    "type": event.r#type,
                    "attributes": event.attributes.iter().map(|a| json!({
                        "key": a.key, "value": a.value, "index": a.index,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

pub(super) fn tx_hash(tx: &[u8]) -> Hash {
    use sha2::Digest;
    Hash::Sha256(sha2::Sha256::digest(tx).into())
}

pub(super) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn mempool_error(e: MempoolError) -> RpcError {
    RpcError::internal(e.to_string())
}

/// Parses `key='value'`, `key = 'value'` or `key=value`.
/// The `query` parameter of a search.
fn event_query(params: &Params) -> Result<EventQuery, RpcError> {
    params
        .string("query")
        .ok_or_else(|| RpcError::invalid_params("missing `query`"))?
        .parse()
        .map_err(search_error)
}

fn search_error(e: SearchError) -> RpcError {
    match e {
        SearchError::State(e) => internal(e),
        other => RpcError::invalid_params(other.to_string()),
    }
}

/// One page of `found` (ascending) in the order asked for, with the total: `per_page`
/// (default 30, at most 100) and `page` (from 1; a page past the last is an error, as
/// CometBFT's).
fn paged<T>(mut found: Vec<T>, params: &Params) -> Result<(Vec<T>, usize), RpcError> {
    match params.string("order_by").as_deref() {
        None | Some("") | Some("asc") => {}
        Some("desc") => found.reverse(),
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "order_by must be \"asc\" or \"desc\", got {other:?}"
            )))
        }
    }
    let total = found.len();
    // As CometBFT: 0 (or none) is the default page, more than 100 is 100.
    let per_page = match params.u64("per_page")? {
        None | Some(0) => 30,
        Some(p) => (p as usize).min(MAX_PER_PAGE),
    };
    let pages = total.div_ceil(per_page).max(1);
    let page = params.u64("page")?.unwrap_or(1) as usize;
    if page == 0 || page > pages {
        return Err(RpcError::invalid_params(format!(
            "page should be within [1, {pages}] range, given {page}"
        )));
    }
    let page = found
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Ok((page, total))
}

/// A committed transaction as `tx` and `tx_search` render it.
fn tx_json(stored: &StoredBlock, index: usize) -> Result<Value, RpcError> {
    let tx = stored
        .block
        .data
        .get(index)
        .ok_or_else(|| internal("tx index out of range"))?;
    let result = stored
        .results
        .tx_results
        .get(index)
        .ok_or_else(|| internal("tx result missing"))?;
    Ok(json!({
        "hash": hex::encode_upper(tx_hash(tx).as_bytes()),
        "height": stored.block.header.height.to_string(),
        "index": index,
        "tx_result": exec_result_json(result),
        "tx": base64_encode(tx),
    }))
}

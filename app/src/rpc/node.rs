//! What the REST and gRPC APIs read beside application state: broadcast, committed
//! transactions, blocks and node status. A solo node has them itself (its mempool and block
//! store); behind CometBFT they come from the CometBFT node's RPC, so the same two APIs serve
//! both modes. Application state is always read from the `App` in this process, through the
//! ABCI query router.

use std::sync::Arc;

use serde_json::Value;
use tendermint_proto::v0_38::abci::ExecTxResult;
use tendermint_proto::v0_38::types::{Block, BlockId};
use tendermint_rpc::Client;

use super::methods::RpcContext;
use crate::app::App;
use crate::solo::events::{EventQuery, SearchError};
use crate::solo::mempool::MempoolError;

/// Where blocks, transactions and the mempool are.
pub enum Node {
    /// The solo node's own mempool and block store.
    Solo(Arc<RpcContext>),
    /// The CometBFT node this `nesad` is the application of, through its RPC.
    Comet(tendermint_rpc::HttpClient),
}

/// Everything the REST and gRPC handlers share.
pub struct ApiContext {
    pub app: Arc<App>,
    /// The genesis document (JSON), for the chain's parameters.
    pub genesis: Value,
    pub node: Node,
}

/// CheckTx's verdict on a broadcast transaction.
pub struct Checked {
    pub code: u32,
    pub codespace: String,
    pub log: String,
}

/// A committed transaction and its result.
pub struct CommittedTx {
    pub height: i64,
    /// Its block's time, RFC 3339.
    pub time: String,
    pub tx: Vec<u8>,
    pub result: ExecTxResult,
}

/// Why a transaction search failed.
pub enum SearchFailure {
    /// The query or the page is wrong.
    Invalid(String),
    Internal(String),
}

/// Why a block cannot be returned.
pub enum BlockError {
    /// Above the chain's height (the request is wrong).
    TooHigh {
        height: u64,
        latest: u64,
    },
    /// Not stored (pruned, or before the node's first block).
    Missing(u64),
    Internal(String),
}

impl ApiContext {
    /// Checks `tx` and adds it to the mempool (CometBFT's, behind CometBFT).
    pub async fn broadcast(&self, tx: Vec<u8>) -> Result<Checked, String> {
        match &self.node {
            Node::Solo(context) => {
                let context = context.clone();
                let submitted =
                    tokio::task::spawn_blocking(move || context.mempool.submit(&context.app, tx))
                        .await
                        .map_err(|e| e.to_string())?;
                Ok(match submitted {
                    Ok(check) => Checked {
                        code: check.code,
                        codespace: check.codespace,
                        log: check.log,
                    },
                    Err(e @ MempoolError::Duplicate) => Checked {
                        code: 19,
                        codespace: "sdk".into(),
                        log: e.to_string(),
                    },
                    Err(e @ MempoolError::Full { .. }) => Checked {
                        code: 20,
                        codespace: "sdk".into(),
                        log: e.to_string(),
                    },
                })
            }
            Node::Comet(client) => {
                let response = match client.broadcast_tx_sync(tx).await {
                    Ok(response) => response,
                    // CometBFT refuses a transaction its cache holds with an RPC error; the SDK
                    // reports it as code 19.
                    Err(e) if e.to_string().contains("already exists in cache") => {
                        return Ok(Checked {
                            code: 19,
                            codespace: "sdk".into(),
                            log: "tx already in mempool".into(),
                        })
                    }
                    Err(e) => return Err(format!("the CometBFT node refused the broadcast: {e}")),
                };
                Ok(Checked {
                    code: response.code.value(),
                    codespace: response.codespace,
                    log: response.log,
                })
            }
        }
    }

    /// The committed transaction with sha256 `hash`, if any.
    pub async fn committed_tx(&self, hash: [u8; 32]) -> Result<Option<CommittedTx>, String> {
        match &self.node {
            Node::Solo(context) => {
                let context = context.clone();
                let found = tokio::task::spawn_blocking(move || context.committed_tx(&hash))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.data)?;
                Ok(found.map(|(stored, index)| CommittedTx {
                    height: i64::from(stored.block.header.height),
                    time: stored.block.header.time.to_rfc3339(),
                    tx: stored.block.data[index].clone(),
                    result: stored.results.tx_results[index].clone(),
                }))
            }
            Node::Comet(client) => {
                let hash = tendermint::Hash::Sha256(hash);
                let found = match client.tx(hash, false).await {
                    Ok(found) => found,
                    // CometBFT answers an unknown hash with an RPC error naming it.
                    Err(e) if e.to_string().contains("not found") => return Ok(None),
                    Err(e) => return Err(format!("reading the tx from CometBFT: {e}")),
                };
                let block = client
                    .block(found.height)
                    .await
                    .map_err(|e| format!("reading block {} from CometBFT: {e}", found.height))?;
                Ok(Some(CommittedTx {
                    height: i64::from(found.height),
                    time: block.block.header.time.to_rfc3339(),
                    tx: found.tx,
                    result: found.tx_result.into(),
                }))
            }
        }
    }

    /// One page (from 1) of the committed transactions whose events satisfy `query`
    /// (CometBFT's query language), in height order (`descending` reverses it), with the total.
    pub async fn search_txs(
        &self,
        query: &str,
        page: u32,
        per_page: u8,
        descending: bool,
    ) -> Result<(Vec<CommittedTx>, u32), SearchFailure> {
        match &self.node {
            Node::Solo(context) => {
                let context = context.clone();
                let query = query.to_owned();
                tokio::task::spawn_blocking(move || {
                    let query: EventQuery = query
                        .parse()
                        .map_err(|e: SearchError| SearchFailure::Invalid(e.to_string()))?;
                    let mut found: Vec<_> = context
                        .store
                        .search_txs(&query)
                        .map_err(|e| match e {
                            SearchError::State(e) => SearchFailure::Internal(e.to_string()),
                            other => SearchFailure::Invalid(other.to_string()),
                        })?
                        .into_iter()
                        .collect();
                    if descending {
                        found.reverse();
                    }
                    let total = found.len() as u32;
                    let pages = total.div_ceil(u32::from(per_page.max(1))).max(1);
                    if page > pages {
                        return Err(SearchFailure::Invalid(format!(
                            "page should be within [1, {pages}] range, given {page}"
                        )));
                    }
                    let start = (page.max(1) as usize - 1) * per_page as usize;
                    let mut txs = Vec::new();
                    // Results come in height order: each block is read once for its transactions.
                    let mut block: Option<crate::solo::blockstore::StoredBlock> = None;
                    for (height, index) in found.into_iter().skip(start).take(per_page as usize) {
                        if block
                            .as_ref()
                            .is_none_or(|b| b.block.header.height.value() != height)
                        {
                            block = Some(
                                context
                                    .store
                                    .block(height)
                                    .map_err(|e| SearchFailure::Internal(e.to_string()))?
                                    .ok_or_else(|| {
                                        SearchFailure::Internal(format!(
                                            "block {height} is not stored"
                                        ))
                                    })?,
                            );
                        }
                        let stored = block.as_ref().expect("just read");
                        let index = index as usize;
                        let (Some(tx), Some(result)) = (
                            stored.block.data.get(index),
                            stored.results.tx_results.get(index),
                        ) else {
                            return Err(SearchFailure::Internal("tx index out of range".into()));
                        };
                        txs.push(CommittedTx {
                            height: height as i64,
                            time: stored.block.header.time.to_rfc3339(),
                            tx: tx.clone(),
                            result: result.clone(),
                        });
                    }
                    Ok((txs, total))
                })
                .await
                .map_err(|e| SearchFailure::Internal(e.to_string()))?
            }
            Node::Comet(client) => {
                let parsed: tendermint_rpc::query::Query = query
                    .parse()
                    .map_err(|e: tendermint_rpc::Error| SearchFailure::Invalid(e.to_string()))?;
                let order = if descending {
                    tendermint_rpc::Order::Descending
                } else {
                    tendermint_rpc::Order::Ascending
                };
                let found = client
                    .tx_search(parsed, false, page.max(1), per_page, order)
                    .await
                    .map_err(|e| {
                        let text = e.to_string();
                        if text.contains("page should be within") {
                            SearchFailure::Invalid(text)
                        } else {
                            SearchFailure::Internal(format!(
                                "searching CometBFT's tx index: {text}"
                            ))
                        }
                    })?;
                let mut txs = Vec::with_capacity(found.txs.len());
                let mut times: Vec<(tendermint::block::Height, String)> = Vec::new();
                for tx in found.txs {
                    let time = match times.iter().find(|(h, _)| *h == tx.height) {
                        Some((_, time)) => time.clone(),
                        None => {
                            let block = client.block(tx.height).await.map_err(|e| {
                                SearchFailure::Internal(format!(
                                    "reading block {} from CometBFT: {e}",
                                    tx.height
                                ))
                            })?;
                            let time = block.block.header.time.to_rfc3339();
                            times.push((tx.height, time.clone()));
                            time
                        }
                    };
                    txs.push(CommittedTx {
                        height: i64::from(tx.height),
                        time,
                        tx: tx.tx,
                        result: tx.tx_result.into(),
                    });
                }
                Ok((txs, found.total_count))
            }
        }
    }

    /// The block at `height` (the latest when `None`).
    pub async fn block(&self, height: Option<u64>) -> Result<(BlockId, Block), BlockError> {
        let latest = self
            .app
            .last_block()
            .map_err(|e| BlockError::Internal(e.to_string()))?
            .map_or(0, |c| c.height);
        let height = height.unwrap_or(latest);
        if height > latest {
            return Err(BlockError::TooHigh { height, latest });
        }
        match &self.node {
            Node::Solo(context) => {
                let stored = context
                    .store
                    .block(height)
                    .map_err(|e| BlockError::Internal(e.to_string()))?
                    .ok_or(BlockError::Missing(height))?;
                Ok((stored.id.into(), stored.block.into()))
            }
            Node::Comet(client) => {
                let at = tendermint::block::Height::try_from(height)
                    .map_err(|e| BlockError::Internal(e.to_string()))?;
                let response = client.block(at).await.map_err(|e| {
                    if e.to_string().contains("height") {
                        BlockError::Missing(height)
                    } else {
                        BlockError::Internal(format!("reading block {height} from CometBFT: {e}"))
                    }
                })?;
                Ok((response.block_id.into(), response.block.into()))
            }
        }
    }

    /// The node's status, as CometBFT's `/status` renders it.
    pub async fn status(&self) -> Result<Value, String> {
        match &self.node {
            Node::Solo(context) => context.status().map_err(|e| e.data),
            Node::Comet(client) => {
                let status = client
                    .status()
                    .await
                    .map_err(|e| format!("reading the CometBFT node's status: {e}"))?;
                serde_json::to_value(status).map_err(|e| e.to_string())
            }
        }
    }
}

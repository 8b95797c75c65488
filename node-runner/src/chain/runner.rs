//! The node runner's loop: follow blocks, pick up queries assigned to this node, run the
//! kernel, then commit, reveal and settle as the market's phases open. State lives on chain:
//! a restarted runner asks the market for its unfinished queries and carries on (outputs are
//! deterministic and salts derived from its secret, so nothing is stored locally).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmwasm_std::{Binary, HexBinary};
use nesa_market::market::{
    ExecuteMsg, InferenceQuery, NodeOutcome, QueriesResponse, QueryMsg, QueryPhase, QueryResponse,
};
use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::{
    execute_msg, Address, BlockWatcher, ChainClient, Coins, ContractAddress, GasSetting,
    SendTxOptions, TxSender, WatchedBlock,
};
use tokio::sync::mpsc;

use super::work::{commitment_for, run_query, salt, QueryResult, WorkError};
use crate::engine::Model;
use crate::metrics::Metrics;

/// Blocks to wait before sending the same step again (the first may still be in the mempool).
const RESEND_AFTER_BLOCKS: u64 = 3;
/// Blocks a non-first node waits before settling a settleable query itself.
const SETTLE_BACKUP_BLOCKS: u64 = 2;

/// The model and what it needs to answer queries.
pub struct Worker {
    pub model: Model,
    pub stop_tokens: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Commit,
    Reveal,
    Settle,
}

struct Job {
    assigned_at: Instant,
    result: Option<QueryResult>,
    computing: bool,
    last_sent: Option<(Step, u64)>,
    settleable_since: Option<u64>,
    reveal_open_at: Option<Instant>,
}

impl Job {
    fn new() -> Self {
        Job {
            assigned_at: Instant::now(),
            result: None,
            computing: false,
            last_sent: None,
            settleable_since: None,
            reveal_open_at: None,
        }
    }

    fn recently_sent(&self, step: Step, height: u64) -> bool {
        matches!(self.last_sent, Some((s, at)) if s == step && height < at + RESEND_AFTER_BLOCKS)
    }
}

/// Everything the loop needs.
pub struct Runner {
    pub client: Arc<ChainClient>,
    pub node: Address,
    pub market: ContractAddress,
    pub secret: [u8; 32],
    pub worker: Arc<Worker>,
    pub metrics: Arc<Metrics>,
}

type Finished = (u64, Result<QueryResult, WorkError>);

impl Runner {
    /// Runs until the process stops.
    pub async fn run(&self, key: SigningKey) -> anyhow::Result<()> {
        let mut sender = TxSender::new(&self.client, key)?;
        let mut jobs = self.resume().await?;
        let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<Finished>();
        let mut watcher = BlockWatcher::from_latest(&self.client).await?;
        tracing::info!(node = %self.node, market = %self.market, pending = jobs.len(), from_height = watcher.next_height(), "serving queries");
        let mut height = watcher.next_height().saturating_sub(1);
        loop {
            tokio::select! {
                block = watcher.next_block(None) => match block {
                    Ok(Some(block)) => {
                        height = block.height;
                        self.metrics.block_height.store(height, Ordering::Relaxed);
                        self.take_assignments(&block, &mut jobs);
                        self.note_slashes(&block);
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the next block; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
                Some((query_id, outcome)) = finished_rx.recv() => {
                    if let Some(job) = jobs.get_mut(&query_id) {
                        job.computing = false;
                        match outcome {
                            Ok(result) => {
                                self.metrics.queries_served.fetch_add(1, Ordering::Relaxed);
                                self.metrics.tokens_generated.fetch_add(result.output_tokens as u64, Ordering::Relaxed);
                                self.metrics.record_speed(result.tokens_per_second);
                                tracing::info!(query_id, tokens = result.output_tokens, tokens_per_second = format!("{:.1}", result.tokens_per_second), "generated");
                                job.result = Some(result);
                            }
                            Err(e) => {
                                self.metrics.queries_failed.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(query_id, error = %e, "generation failed; the query will be settled without this node");
                                jobs.remove(&query_id);
                            }
                        }
                    }
                }
            }
            self.advance(&mut sender, &mut jobs, height, &finished_tx)
                .await;
        }
    }

    /// Unfinished queries assigned to this node, from chain state.
    async fn resume(&self) -> anyhow::Result<BTreeMap<u64, Job>> {
        let mut jobs = BTreeMap::new();
        let mut start_after = None;
        loop {
            let page: QueriesResponse = self
                .client
                .query_contract(
                    &self.market,
                    &QueryMsg::QueriesByNode {
                        node: self.node.to_string(),
                        start_after,
                        limit: Some(100),
                    },
                )
                .await?;
            let Some(last) = page.queries.last().map(|q| q.id) else {
                break;
            };
            for query in page.queries.iter().filter(|q| !q.status.is_final()) {
                tracing::info!(query_id = query.id, "resuming unfinished query");
                jobs.insert(query.id, Job::new());
            }
            start_after = Some(last);
        }
        Ok(jobs)
    }

    fn take_assignments(&self, block: &WatchedBlock, jobs: &mut BTreeMap<u64, Job>) {
        use nesa_market::events::{market, wasm_type};
        let me = self.node.to_string();
        let kind = wasm_type(market::QUERY_ASSIGNED);
        for event in block.events_of(&kind) {
            let assigned = event
                .attribute(market::attr::NODES)
                .is_some_and(|nodes| nodes.split(',').any(|n| n == me));
            let query_id = event
                .attribute(market::attr::QUERY_ID)
                .and_then(|id| id.parse::<u64>().ok());
            if let (true, Some(query_id)) = (assigned, query_id) {
                if jobs.insert(query_id, Job::new()).is_none() {
                    self.metrics
                        .queries_assigned
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(query_id, height = block.height, "assigned a query");
                }
            }
        }
    }

    fn note_slashes(&self, block: &WatchedBlock) {
        use nesa_market::events::{market, wasm_type};
        let me = self.node.to_string();
        let kind = wasm_type(market::NODE_SLASHED);
        for event in block.events_of(&kind) {
            if event.attribute("node") == Some(me.as_str()) {
                self.metrics.slashes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    query_id = event.attribute("query_id").unwrap_or("?"),
                    reason = event.attribute("reason").unwrap_or("?"),
                    "this node was slashed"
                );
            }
        }
    }

    async fn send(&self, sender: &mut TxSender<'_>, msg: &ExecuteMsg) -> bool {
        let options = SendTxOptions {
            gas: GasSetting::Auto,
            ..SendTxOptions::default()
        };
        let any = match execute_msg(&self.node, &self.market, msg, &Coins::default()) {
            Ok(any) => any,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the market message");
                return false;
            }
        };
        match sender.broadcast(vec![any], &options).await {
            Ok(signed) => {
                tracing::debug!(hash = %signed.hash, "sent");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "transaction not accepted; will retry");
                false
            }
        }
    }

    /// Moves every job forward by what its query's phase allows.
    async fn advance(
        &self,
        sender: &mut TxSender<'_>,
        jobs: &mut BTreeMap<u64, Job>,
        height: u64,
        finished: &mpsc::UnboundedSender<Finished>,
    ) {
        let ids: Vec<u64> = jobs.keys().copied().collect();
        let me = self.node.to_string();
        let me = me.as_str();
        for query_id in ids {
            let state: QueryResponse = match self
                .client
                .query_contract(&self.market, &QueryMsg::Query { id: query_id })
                .await
            {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(query_id, error = %e, "cannot read the query; retrying next block");
                    continue;
                }
            };
            let job = jobs.get_mut(&query_id).expect("listed above");
            let Some(mine) = state.assignments.iter().find(|a| a.node.as_str() == me) else {
                jobs.remove(&query_id);
                continue;
            };
            if state.query.status.is_final() {
                match &mine.outcome {
                    Some(NodeOutcome::Paid { amount }) => {
                        self.metrics
                            .paid_unes
                            .fetch_add(amount.u128() as u64, Ordering::Relaxed);
                        tracing::info!(query_id, paid = %amount, "query settled; paid");
                    }
                    Some(NodeOutcome::Slashed { reason, .. }) => {
                        tracing::warn!(query_id, reason = reason.as_str(), "query settled; slashed")
                    }
                    _ => tracing::info!(
                        query_id,
                        status = state.query.status.as_str(),
                        "query settled"
                    ),
                }
                jobs.remove(&query_id);
                continue;
            }
            let needs_result = mine.reveal.is_none()
                && !matches!(state.phase, QueryPhase::Settleable | QueryPhase::Closed);
            if job.result.is_none() && !job.computing && needs_result {
                job.computing = true;
                self.spawn_work(state.query.clone(), finished.clone());
            }
            match state.phase {
                QueryPhase::Commit if mine.commitment.is_none() => {
                    if let Some(result) = &job.result {
                        if !job.recently_sent(Step::Commit, height) {
                            let commitment =
                                commitment_for(me, query_id, result, &salt(&self.secret, query_id));
                            let msg = ExecuteMsg::Commit {
                                query_id,
                                commitment: HexBinary::from(commitment.to_vec()),
                            };
                            if self.send(sender, &msg).await {
                                job.last_sent = Some((Step::Commit, height));
                                self.metrics.commits_sent.fetch_add(1, Ordering::Relaxed);
                                self.metrics
                                    .record_commit_latency(job.assigned_at.elapsed().as_secs_f64());
                                tracing::info!(query_id, "committed");
                            }
                        }
                    }
                }
                QueryPhase::Reveal if mine.commitment.is_some() && mine.reveal.is_none() => {
                    let opened = *job.reveal_open_at.get_or_insert_with(Instant::now);
                    if let Some(result) = &job.result {
                        if !job.recently_sent(Step::Reveal, height) {
                            let msg = ExecuteMsg::Reveal {
                                query_id,
                                output: Binary::from(result.output.clone()),
                                fingerprint: Binary::from(result.fingerprint.clone()),
                                salt: Binary::from(salt(&self.secret, query_id)),
                            };
                            if self.send(sender, &msg).await {
                                job.last_sent = Some((Step::Reveal, height));
                                self.metrics.reveals_sent.fetch_add(1, Ordering::Relaxed);
                                self.metrics
                                    .record_reveal_latency(opened.elapsed().as_secs_f64());
                                tracing::info!(query_id, "revealed");
                            }
                        }
                    }
                }
                QueryPhase::Settleable => {
                    let since = *job.settleable_since.get_or_insert(height);
                    let first = state
                        .assignments
                        .first()
                        .is_some_and(|a| a.node.as_str() == me);
                    if (first || height >= since + SETTLE_BACKUP_BLOCKS)
                        && !job.recently_sent(Step::Settle, height)
                        && self.send(sender, &ExecuteMsg::Settle { query_id }).await
                    {
                        job.last_sent = Some((Step::Settle, height));
                        self.metrics.settles_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
    }

    fn spawn_work(&self, query: InferenceQuery, finished: mpsc::UnboundedSender<Finished>) {
        let worker = self.worker.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = run_query(&worker.model, &worker.stop_tokens, &query);
            let _ = finished.send((query.id, outcome));
        });
    }
}

//! The node runner's loop: follow blocks, pick up queries assigned to this node, run the
//! kernel, then commit, reveal and settle as the market's phases open. State lives on chain:
//! a restarted runner asks the market for its unfinished queries and carries on (outputs are
//! deterministic and salts derived from its secret, so nothing is stored locally).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmwasm_std::{Binary, HexBinary};
use nesa_engine::Model;
use nesa_market::market::{
    ExecuteMsg, InferenceQuery, NodeOutcome, QueriesResponse, QueryMsg, QueryPhase, QueryResponse,
    QueryStatus,
};
use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::{
    Address, BlockWatcher, ChainClient, ClientError, Coins, ContractAddress, SendTxOptions,
    TxSender, WatchedBlock,
};
use tokio::sync::mpsc;

use super::decide::{decide, Action, JobState, Step};
use super::work::{commitment_for, run_query, salt, QueryResult, WorkError};
use crate::metrics::Metrics;

/// The model and what it needs to answer queries.
pub struct Worker {
    /// The loaded kernel.
    pub model: Model,
    /// Token ids that end a generation (in the kernel's vocabulary).
    pub stop_tokens: Vec<u32>,
}

/// One query this node serves: the decision state plus the clocks its metrics need.
struct Job {
    state: JobState,
    assigned_at: Instant,
    reveal_open_at: Option<Instant>,
}

impl Job {
    fn new() -> Self {
        Job {
            state: JobState::default(),
            assigned_at: Instant::now(),
            reveal_open_at: None,
        }
    }
}

/// Everything the loop needs.
pub struct Runner {
    /// The chain's RPC client.
    pub client: Arc<ChainClient>,
    /// This node's address (it signs commits, reveals and settles).
    pub node: Address,
    /// The inference market contract.
    pub market: ContractAddress,
    /// The secret the per-query salts are derived from.
    pub secret: [u8; 32],
    /// The model that answers queries.
    pub worker: Arc<Worker>,
    /// Counters and histograms of the loop's steps.
    pub metrics: Arc<Metrics>,
}

type Finished = (u64, Result<QueryResult, WorkError>);

impl Runner {
    /// Runs until the process stops; fails only when the chain cannot be reached at the start.
    pub async fn run(&self, key: SigningKey) -> Result<(), ClientError> {
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
                        job.state.computing = false;
                        match outcome {
                            Ok(result) => {
                                self.metrics.queries_served.fetch_add(1, Ordering::Relaxed);
                                self.metrics.tokens_generated.fetch_add(result.output_tokens as u64, Ordering::Relaxed);
                                self.metrics.record_speed(result.tokens_per_second);
                                tracing::info!(query_id, tokens = result.output_tokens, tokens_per_second = format!("{:.1}", result.tokens_per_second), "generated");
                                job.state.result = Some(result);
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
    async fn resume(&self) -> Result<BTreeMap<u64, Job>, ClientError> {
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
        let options = SendTxOptions::default();
        match sender
            .broadcast_contract(&self.market, msg, &Coins::default(), &options)
            .await
        {
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
        for query_id in ids {
            let state = match self.read_query(query_id).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(query_id, error = %e, "cannot read the query; retrying next block");
                    continue;
                }
            };
            let job = jobs.get_mut(&query_id).expect("listed above");
            if let Some(state) = &state {
                job.state.observe(state.phase, height);
                if state.phase == QueryPhase::Reveal {
                    job.reveal_open_at.get_or_insert_with(Instant::now);
                }
            }
            match decide(&job.state, state.as_ref(), &me, height) {
                Action::Drop => {
                    if state.is_none() {
                        tracing::warn!(query_id, "the market has no such query; forgetting it");
                    }
                    jobs.remove(&query_id);
                }
                Action::Finished { status, outcome } => {
                    self.record_outcome(query_id, status, outcome);
                    jobs.remove(&query_id);
                }
                Action::Generate => {
                    let query = state.expect("a decision to generate has the query").query;
                    job.state.computing = true;
                    self.spawn_work(query, finished.clone());
                }
                Action::Send(step) => self.send_step(sender, query_id, job, step, height).await,
                Action::Wait => {}
            }
        }
    }

    /// The market's view of `query_id`; `None` when the market has no such query.
    async fn read_query(&self, query_id: u64) -> Result<Option<QueryResponse>, ClientError> {
        match self
            .client
            .query_contract(&self.market, &QueryMsg::Query { id: query_id })
            .await
        {
            Ok(state) => Ok(Some(state)),
            Err(ClientError::QueryFailed { log, .. })
                if log.contains(&format!("query {query_id} not found")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn record_outcome(&self, query_id: u64, status: QueryStatus, outcome: Option<NodeOutcome>) {
        match outcome {
            Some(NodeOutcome::Paid { amount }) => {
                self.metrics
                    .paid_unes
                    .fetch_add(amount.u128() as u64, Ordering::Relaxed);
                tracing::info!(query_id, paid = %amount, "query settled; paid");
            }
            Some(NodeOutcome::Slashed { reason, .. }) => {
                tracing::warn!(query_id, reason = reason.as_str(), "query settled; slashed")
            }
            _ => tracing::info!(query_id, status = status.as_str(), "query settled"),
        }
    }

    /// Builds and sends `step` for the job; on success notes it as sent and counts it.
    async fn send_step(
        &self,
        sender: &mut TxSender<'_>,
        query_id: u64,
        job: &mut Job,
        step: Step,
        height: u64,
    ) {
        let msg = match step {
            Step::Settle => ExecuteMsg::Settle { query_id },
            Step::Commit | Step::Reveal => {
                let Some(result) = &job.state.result else {
                    return;
                };
                let salt = salt(&self.secret, query_id);
                if step == Step::Commit {
                    let commitment =
                        commitment_for(&self.node.to_string(), query_id, result, &salt);
                    ExecuteMsg::Commit {
                        query_id,
                        commitment: HexBinary::from(commitment.to_vec()),
                    }
                } else {
                    ExecuteMsg::Reveal {
                        query_id,
                        output: Binary::from(result.output.clone()),
                        fingerprint: Binary::from(result.fingerprint.clone()),
                        salt: Binary::from(salt),
                    }
                }
            }
        };
        if !self.send(sender, &msg).await {
            return;
        }
        job.state.last_sent = Some((step, height));
        match step {
            Step::Commit => {
                self.metrics.commits_sent.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .record_commit_latency(job.assigned_at.elapsed().as_secs_f64());
                tracing::info!(query_id, "committed");
            }
            Step::Reveal => {
                self.metrics.reveals_sent.fetch_add(1, Ordering::Relaxed);
                let opened = *job.reveal_open_at.get_or_insert_with(Instant::now);
                self.metrics
                    .record_reveal_latency(opened.elapsed().as_secs_f64());
                tracing::info!(query_id, "revealed");
            }
            Step::Settle => {
                self.metrics.settles_sent.fetch_add(1, Ordering::Relaxed);
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

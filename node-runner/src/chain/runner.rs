//! The node runner's loop: follow blocks, enter the draws of new queries for its kernel that
//! its work queue would take on, draw those it leads (or that nobody drew), pick up queries
//! assigned to this node, run the kernel, then commit, reveal and settle as the market's phases
//! open. State lives on chain: a restarted runner asks the market for its unfinished queries
//! and carries on (outputs are deterministic and salts derived from its secret, so nothing is
//! stored locally).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmwasm_std::{Binary, HexBinary};
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

use super::decide::{
    assignment_of, decide, decide_draw, draw_of, emitted_by, Action, DrawAction, DrawEnd,
    DrawState, DrawStep, JobState, Step,
};
use super::queue::{Admission, Demand, Pace, QueueLimits, Refusal, WorkQueue};
use super::shards::ShardContext;
use super::sortition::Sortition;
use super::work::{commitment_for, run_query, salt, QueryResult, WorkError};
use crate::metrics::Metrics;
use crate::worker::Worker;

/// One query this node serves: the decision state plus the clocks its metrics need.
struct Job {
    state: JobState,
    assigned_at: Instant,
    reveal_open_at: Option<Instant>,
    /// The query as read when it was queued, to start it when its turn comes.
    query: Option<InferenceQuery>,
}

impl Job {
    fn new() -> Self {
        Job {
            state: JobState::default(),
            assigned_at: Instant::now(),
            reveal_open_at: None,
            query: None,
        }
    }
}

/// The loop's view of time: the latest height and how fast blocks and tokens come.
struct Clock {
    height: u64,
    last_block_at: Option<Instant>,
    block_seconds: f64,
    tokens_per_second: Option<f64>,
    /// When the engine's token counter was last read, its value, and whether it had work.
    last_engine_sample: Option<(Instant, u64, bool)>,
}

impl Clock {
    fn new(height: u64) -> Self {
        Clock {
            height,
            last_block_at: None,
            block_seconds: 1.0,
            tokens_per_second: None,
            last_engine_sample: None,
        }
    }

    /// Notes a new block; the block time is a moving average of the gaps seen.
    fn block(&mut self, height: u64) {
        let now = Instant::now();
        if let Some(last) = self.last_block_at {
            let gap = now.duration_since(last).as_secs_f64();
            // A gap after a catch-up of several blocks says nothing about block time.
            if height == self.height + 1 && gap > 0.0 {
                self.block_seconds = 0.8 * self.block_seconds + 0.2 * gap;
            }
        }
        self.last_block_at = Some(now);
        self.height = height;
    }

    /// Notes the engine's token counter: while it had work since the last sample, the tokens
    /// it made per second (all sequences of its batch together) feed a moving average.
    fn engine(&mut self, generated: u64, busy: bool) {
        let now = Instant::now();
        if let Some((at, before, was_busy)) = self.last_engine_sample {
            let seconds = now.duration_since(at).as_secs_f64();
            if was_busy && busy && generated > before && seconds > 0.0 {
                let rate = (generated - before) as f64 / seconds;
                self.tokens_per_second = Some(match self.tokens_per_second {
                    Some(old) => 0.7 * old + 0.3 * rate,
                    None => rate,
                });
            }
        }
        self.last_engine_sample = Some((now, generated, busy));
    }

    fn pace(&self) -> Pace {
        Pace {
            height: self.height,
            tokens_per_second: self.tokens_per_second,
            block_seconds: self.block_seconds,
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
    /// The kernel this runner serves: it enters the draws of that kernel's queries (none
    /// without one).
    pub kernel_id: Option<u64>,
    /// The key that signs this node's tickets (registered in its profile).
    pub sortition: Sortition,
    /// The model that answers queries.
    pub worker: Arc<Worker>,
    /// Counters and histograms of the loop's steps.
    pub metrics: Arc<Metrics>,
    /// How many generations run at once and how many may wait.
    pub limits: QueueLimits,
    /// Seats of sharded queries: driving a pipeline, or serving a span of one.
    pub shards: Arc<ShardContext>,
}

/// The loop's mutable state: the draws, the jobs, the work queue and the clock.
struct Book {
    /// Draws of queries this node takes part in (entered, or about to).
    draws: BTreeMap<u64, DrawState>,
    jobs: BTreeMap<u64, Job>,
    queue: WorkQueue,
    clock: Clock,
}

type Finished = (u64, Result<QueryResult, WorkError>);

impl Runner {
    /// Runs until the process stops; fails only when the chain cannot be reached at the start.
    pub async fn run(&self, key: SigningKey) -> Result<(), ClientError> {
        let mut sender = TxSender::new(&self.client, key)?;
        let jobs = self.resume().await?;
        let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<Finished>();
        let mut watcher = BlockWatcher::from_latest(&self.client).await?;
        tracing::info!(node = %self.node, market = %self.market, kernel_id = ?self.kernel_id, pending = jobs.len(), capacity = self.limits.capacity, queue_limit = self.limits.queue_limit, from_height = watcher.next_height(), "serving queries");
        if self.kernel_id.is_none() {
            tracing::warn!("no kernel_id in the config: this runner enters no draws, so the market draws it for no query");
        }
        let mut book = Book {
            draws: BTreeMap::new(),
            jobs,
            queue: WorkQueue::new(self.limits),
            clock: Clock::new(watcher.next_height().saturating_sub(1)),
        };
        loop {
            tokio::select! {
                block = watcher.next_block(None) => match block {
                    Ok(Some(block)) => {
                        book.clock.block(block.height);
                        let stats = self.worker.engine.stats();
                        book.clock.engine(
                            stats.generated_tokens.load(Ordering::Relaxed),
                            stats.running.load(Ordering::Relaxed) > 0,
                        );
                        self.metrics.block_height.store(block.height, Ordering::Relaxed);
                        self.take_draws(&block, &mut book);
                        self.take_assignments(&block, &mut book.jobs);
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
                    if let Some(job) = book.jobs.get_mut(&query_id) {
                        job.state.computing = false;
                        match outcome {
                            Ok(result) => {
                                self.metrics.queries_served.fetch_add(1, Ordering::Relaxed);
                                self.metrics.tokens_generated.fetch_add(result.output_tokens as u64, Ordering::Relaxed);
                                // A pipeline seat past span 0 makes no tokens of its own.
                                if result.output_tokens > 0 {
                                    self.metrics.record_speed(result.tokens_per_second);
                                }
                                tracing::info!(query_id, tokens = result.output_tokens, tokens_per_second = format!("{:.1}", result.tokens_per_second), "generated");
                                job.state.result = Some(result);
                                job.state.note_progress();
                            }
                            Err(e) => {
                                self.metrics.queries_failed.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(query_id, error = %e, "generation failed; the query will be settled without this node");
                                book.jobs.remove(&query_id);
                            }
                        }
                    }
                    self.release(&mut book, query_id, &finished_tx);
                }
            }
            self.advance(&mut sender, &mut book, &finished_tx).await;
        }
    }

    /// Frees `query_id`'s place in the work queue and starts what may start now.
    fn release(&self, book: &mut Book, query_id: u64, finished: &mpsc::UnboundedSender<Finished>) {
        let (start, late) = book.queue.finish(query_id, &book.clock.pace());
        for query_id in start {
            let query = book.jobs.get_mut(&query_id).and_then(|job| {
                job.state.queued = false;
                let query = job.query.take()?;
                job.state.computing = true;
                Some(query)
            });
            match query {
                Some(query) => self.spawn_work(query, finished.clone()),
                // Nothing to run after all: hand its place on.
                None => self.release(book, query_id, finished),
            }
        }
        for (query_id, refusal) in late {
            self.decline(book, query_id, &refusal);
        }
        self.publish_queue(book);
    }

    /// Forgets a query the runner will not generate, with the reason in the log.
    fn decline(&self, book: &mut Book, query_id: u64, refusal: &Refusal) {
        self.metrics
            .queries_declined
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(query_id, reason = %refusal, "not generating this query; the market settles it without this node");
        book.jobs.remove(&query_id);
    }

    fn publish_queue(&self, book: &Book) {
        self.metrics
            .queue_length
            .store(book.queue.waiting() as u64, Ordering::Relaxed);
        self.metrics
            .jobs_in_flight
            .store(book.queue.running() as u64, Ordering::Relaxed);
    }

    /// What `query` asks of the engine: tokens, deadline, worst-case key/value cache.
    fn demand(&self, query: &InferenceQuery) -> Demand {
        Demand {
            query_id: query.id,
            max_output_tokens: query.max_output_tokens,
            commit_deadline: query.commit_deadline,
            kv_bytes: self.worker.model().worst_case_kv_bytes(
                query.input_tokens as usize,
                query.max_output_tokens as usize,
            ),
        }
    }

    /// Takes a query that needs generating: starts it, queues it or declines it.
    fn admit(
        &self,
        book: &mut Book,
        query: InferenceQuery,
        finished: &mpsc::UnboundedSender<Finished>,
    ) {
        let query_id = query.id;
        let demand = self.demand(&query);
        match book.queue.offer(demand, &book.clock.pace()) {
            Admission::Start => {
                if let Some(job) = book.jobs.get_mut(&query_id) {
                    job.state.computing = true;
                }
                self.spawn_work(query, finished.clone());
            }
            Admission::Queued(position) => {
                if let Some(job) = book.jobs.get_mut(&query_id) {
                    job.state.queued = true;
                    job.query = Some(query);
                }
                tracing::info!(query_id, position, "queued for the engine");
            }
            Admission::Refused(refusal) => self.decline(book, query_id, &refusal),
        }
        self.publish_queue(book);
    }

    /// Forgets a job, and its place in the work queue if it waits there.
    fn forget(&self, book: &mut Book, query_id: u64, finished: &mpsc::UnboundedSender<Finished>) {
        if let Some(job) = book.jobs.remove(&query_id) {
            if job.state.queued {
                self.release(book, query_id, finished);
            }
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
        let market_contract = self.market.to_string();
        let kind = wasm_type(market::QUERY_ASSIGNED);
        for event in block.events_of(&kind) {
            if !emitted_by(event, &market_contract) {
                tracing::debug!(
                    height = block.height,
                    contract = event.attribute("_contract_address").unwrap_or("?"),
                    "ignoring a query_assigned event of another contract"
                );
                continue;
            }
            if let Some(query_id) = assignment_of(event, &market_contract, &me) {
                self.take_job(jobs, query_id, block.height);
            }
        }
    }

    /// Starts a job for `query_id`, assigned to this node, unless there is one.
    fn take_job(&self, jobs: &mut BTreeMap<u64, Job>, query_id: u64, height: u64) {
        if let std::collections::btree_map::Entry::Vacant(slot) = jobs.entry(query_id) {
            slot.insert(Job::new());
            self.metrics
                .queries_assigned
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(query_id, height, "assigned a query");
        }
    }

    /// Follows the draws that `block` opens for this runner's kernel, while the work queue has
    /// room for what they may bring (whether each query could be done in time is checked when
    /// entering, with the query's deadlines).
    fn take_draws(&self, block: &WatchedBlock, book: &mut Book) {
        use nesa_market::events::{market, wasm_type};
        let Some(kernel_id) = self.kernel_id else {
            return;
        };
        let market_contract = self.market.to_string();
        let kind = wasm_type(market::QUERY_SUBMITTED);
        for event in block.events_of(&kind) {
            if !emitted_by(event, &market_contract) {
                tracing::debug!(
                    height = block.height,
                    contract = event.attribute("_contract_address").unwrap_or("?"),
                    "ignoring a query_submitted event of another contract"
                );
                continue;
            }
            let Some(invite) = draw_of(event, &market_contract, kernel_id) else {
                // Another kernel's query, or attributes this runner cannot read.
                continue;
            };
            let query_id = invite.query_id;
            if book.draws.contains_key(&query_id) || book.jobs.contains_key(&query_id) {
                continue;
            }
            if let Err(refusal) = book.queue.has_room(book.draws.len()) {
                self.decline_draw(query_id, &refusal);
                continue;
            }
            book.draws.insert(query_id, DrawState::new(&invite));
        }
    }

    /// Notes a draw not entered, with the reason in the log.
    fn decline_draw(&self, query_id: u64, refusal: &Refusal) {
        self.metrics.draws_declined.fetch_add(1, Ordering::Relaxed);
        tracing::info!(query_id, reason = %refusal, "not entering the draw");
    }

    fn note_slashes(&self, block: &WatchedBlock) {
        use nesa_market::events::{market, wasm_type};
        let me = self.node.to_string();
        let market_contract = self.market.to_string();
        let kind = wasm_type(market::NODE_SLASHED);
        for event in block.events_of(&kind) {
            if emitted_by(event, &market_contract) && event.attribute("node") == Some(me.as_str()) {
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
        book: &mut Book,
        finished: &mpsc::UnboundedSender<Finished>,
    ) {
        self.advance_draws(sender, book).await;
        let ids: Vec<u64> = book.jobs.keys().copied().collect();
        let me = self.node.to_string();
        let height = book.clock.height;
        for query_id in ids {
            let read = self.read_query(query_id).await;
            // A job may have been declined or finished since the list was taken.
            let Some(job) = book.jobs.get_mut(&query_id) else {
                continue;
            };
            let state = match read {
                Ok(state) => state,
                Err(e) => {
                    if let Action::GiveUp { attempts } = job.state.note_failure() {
                        self.give_up(book, query_id, attempts, &e.to_string(), finished);
                    } else {
                        tracing::warn!(query_id, error = %e, "cannot read the query; retrying next block");
                    }
                    continue;
                }
            };
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
                    } else {
                        tracing::warn!(
                            query_id,
                            "the market does not assign this query to this node; forgetting it"
                        );
                    }
                    self.forget(book, query_id, finished);
                }
                Action::Finished { status, outcome } => {
                    self.record_outcome(query_id, status, outcome);
                    self.forget(book, query_id, finished);
                }
                Action::GiveUp { attempts } => {
                    self.give_up(book, query_id, attempts, "see the warnings above", finished);
                }
                Action::Generate => {
                    let query = state.expect("a decision to generate has the query").query;
                    self.admit(book, query, finished);
                }
                Action::Send(step) => {
                    if !self.send_step(sender, query_id, job, step, height).await {
                        if let Action::GiveUp { attempts } = job.state.note_failure() {
                            self.give_up(
                                book,
                                query_id,
                                attempts,
                                "transactions not accepted",
                                finished,
                            );
                        }
                    }
                }
                Action::Wait => {}
            }
        }
    }

    /// Moves every draw forward: enters it, draws it, or forgets it once drawn (the assignment
    /// is then a job like any other).
    async fn advance_draws(&self, sender: &mut TxSender<'_>, book: &mut Book) {
        let ids: Vec<u64> = book.draws.keys().copied().collect();
        let me = self.node.to_string();
        let height = book.clock.height;
        for query_id in ids {
            let read = self.read_query(query_id).await;
            // The other draws this node may be drawn for, ahead of this one.
            let others = book.draws.len().saturating_sub(1);
            let Some(draw) = book.draws.get_mut(&query_id) else {
                continue;
            };
            let state = match read {
                Ok(state) => state,
                Err(e) => {
                    if let DrawAction::GiveUp { attempts } = draw.note_failure() {
                        tracing::warn!(query_id, attempts, error = %e, "cannot read the query; leaving its draw");
                        book.draws.remove(&query_id);
                    } else {
                        tracing::warn!(query_id, error = %e, "cannot read the query; retrying next block");
                    }
                    continue;
                }
            };
            if let Some(state) = &state {
                draw.observe(state, &me);
            }
            let step = match decide_draw(draw, state.as_ref(), &me, height) {
                DrawAction::Wait => continue,
                DrawAction::Forget(end) => {
                    match end {
                        DrawEnd::Unknown => {
                            tracing::warn!(
                                query_id,
                                "the market has no such query; leaving its draw"
                            )
                        }
                        DrawEnd::Missed => {
                            tracing::info!(query_id, "the draw closed without this node's ticket")
                        }
                        DrawEnd::Drawn => {
                            // The assignment event makes the job; the query's own node list
                            // too, should that event have been missed.
                            let drawn = state
                                .as_ref()
                                .is_some_and(|s| s.query.nodes.iter().any(|n| n.as_str() == me));
                            if drawn {
                                self.take_job(&mut book.jobs, query_id, height);
                            } else {
                                tracing::debug!(query_id, "drawn without this node");
                            }
                        }
                    }
                    book.draws.remove(&query_id);
                    continue;
                }
                DrawAction::GiveUp { attempts } => {
                    tracing::warn!(
                        query_id,
                        attempts,
                        "leaving the draw after repeated failures; see the warnings above"
                    );
                    book.draws.remove(&query_id);
                    continue;
                }
                DrawAction::Enter => DrawStep::Enter,
                DrawAction::Draw { leader } => {
                    if !leader {
                        tracing::info!(query_id, "the draw's leader has not drawn it; drawing it");
                    }
                    DrawStep::Draw
                }
            };
            let Some(query) = state.as_ref().map(|s| &s.query) else {
                continue;
            };
            let msg = match step {
                DrawStep::Enter => {
                    // The generation starts once the query is drawn, after its draw deadline.
                    let demand = self.demand(query);
                    let pace = Pace {
                        height: height.max(query.draw_deadline.saturating_add(1)),
                        ..book.clock.pace()
                    };
                    if let Err(refusal) = book.queue.would_admit(&demand, &pace, others) {
                        self.decline_draw(query_id, &refusal);
                        book.draws.remove(&query_id);
                        continue;
                    }
                    ExecuteMsg::SubmitTicket {
                        query_id,
                        ticket: self.sortition.ticket(&draw.draw_input),
                    }
                }
                DrawStep::Draw => ExecuteMsg::Draw { query_id },
            };
            if !self.send(sender, &msg).await {
                if let DrawAction::GiveUp { attempts } = draw.note_failure() {
                    tracing::warn!(
                        query_id,
                        attempts,
                        "leaving the draw: transactions not accepted"
                    );
                    book.draws.remove(&query_id);
                }
                continue;
            }
            draw.last_sent = Some((step, height));
            draw.note_progress();
            match step {
                DrawStep::Enter => {
                    self.metrics
                        .tickets_submitted
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        query_id,
                        draw_deadline = query.draw_deadline,
                        "entered the draw"
                    );
                }
                DrawStep::Draw => {
                    self.metrics.draws_sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(query_id, "drew the query");
                }
            }
        }
    }

    /// Forgets a job that failed [`super::decide::MAX_FAILED_ATTEMPTS`] times in a row.
    fn give_up(
        &self,
        book: &mut Book,
        query_id: u64,
        attempts: u32,
        last_error: &str,
        finished: &mpsc::UnboundedSender<Finished>,
    ) {
        self.metrics
            .queries_abandoned
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            query_id,
            attempts,
            last_error,
            "giving this query up after repeated failures; the market settles it without this node"
        );
        self.forget(book, query_id, finished);
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
    /// Returns whether the chain accepted the transaction.
    async fn send_step(
        &self,
        sender: &mut TxSender<'_>,
        query_id: u64,
        job: &mut Job,
        step: Step,
        height: u64,
    ) -> bool {
        let msg = match step {
            Step::Settle => ExecuteMsg::Settle { query_id },
            Step::Commit | Step::Reveal => {
                let Some(result) = &job.state.result else {
                    return true;
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
                        activations: result.activations.clone().map(Binary::from),
                    }
                }
            }
        };
        if !self.send(sender, &msg).await {
            return false;
        }
        job.state.last_sent = Some((step, height));
        job.state.note_progress();
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
        true
    }

    fn spawn_work(&self, query: InferenceQuery, finished: mpsc::UnboundedSender<Finished>) {
        let worker = self.worker.clone();
        let shards = self.shards.clone();
        tokio::spawn(async move {
            let outcome = if query.shards.is_empty() {
                run_query(&worker, &query).await
            } else {
                shards.run(&worker, &query).await
            };
            let _ = finished.send((query.id, outcome));
        });
    }
}

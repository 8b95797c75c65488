//! The inference market from a user's side: quote, submit a query with escrow, follow it to
//! settlement. Message types come from the market's own package (`nesa-market`).

pub mod progress;

use std::time::{Duration, Instant};

use cosmwasm_std::{Binary, Uint128};
use nesa_market::events::market::{attr, QUERY_SUBMITTED};
use nesa_market::market::{
    ExecuteMsg, MarketParams, QueryMsg, QueryPhase, QueryResponse, QuoteResponse, Sampling,
};
use nesa_market::registry::{Kernel, KernelsResponse, QueryMsg as RegistryQuery};
use nesa_market::staking::{CandidatesResponse, QueryMsg as StakingQuery, CANDIDATES_PAGE};

use self::progress::draw_overdue;
use crate::client::{
    chain_reason, execute_msg, ChainClient, ClientError, MarketContracts, SendTxOptions, TxOutcome,
    DEFAULT_TX_TIMEOUT,
};
use crate::tx::{SignDocParts, SignedTx};
use crate::{Address, AddressExt, Coin, Coins};

/// Blocks the user waits for the nodes to draw a query (after its draw deadline) or to settle
/// it (once settleable) before `wait_for_settlement` does it.
pub const USER_BACKUP_BLOCKS: u64 = 4;

/// Why a query could not be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The market (or the bank, for the escrow) refused the query, in its own words: from the
    /// quote, or from simulating the submission. Nothing was sent and no funds moved.
    #[error("the query was refused before anything was sent: {0}")]
    Refused(String),
    /// The submission executed but its event is missing (a market of another version?).
    #[error("the market did not report the new query's id (tx {0})")]
    NoQueryId(String),
    /// The chain could not be reached or answered something unreadable.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl SubmitError {
    /// A chain error as what it means for a submission: a refusal when the chain judged the
    /// query (a failed quote or simulation), else a client error.
    fn from_chain(error: ClientError) -> SubmitError {
        match error {
            ClientError::QueryFailed { log, .. } => SubmitError::Refused(chain_reason(&log)),
            ClientError::Simulation { reason } => SubmitError::Refused(reason),
            other => SubmitError::Client(other),
        }
    }
}

/// What a user asks.
pub struct QueryRequest {
    pub kernel_id: u64,
    pub input: Vec<u32>,
    pub max_output_tokens: u32,
    pub sampling: Sampling,
    pub redundancy: Option<u8>,
}

/// A submitted query.
pub struct Submitted {
    pub query_id: u64,
    pub escrow: Coin,
    pub tx_hash: String,
    /// The fee the submission paid, in unes (its `tx.fee` event).
    pub fee: u128,
}

/// The market's view of a client.
pub struct MarketClient<'c> {
    pub client: &'c ChainClient,
    pub contracts: MarketContracts,
}

impl<'c> MarketClient<'c> {
    /// Finds the market contracts the chain reports.
    pub async fn connect(client: &'c ChainClient) -> Result<MarketClient<'c>, ClientError> {
        let contracts = client.market_contracts().await?;
        Ok(MarketClient { client, contracts })
    }

    /// A registered kernel.
    pub async fn kernel(&self, id: u64) -> Result<Kernel, ClientError> {
        self.client
            .query_contract(&self.contracts.registry, &RegistryQuery::Kernel { id })
            .await
    }

    /// One page of registered kernels in id order, after `start_after` (at most 30).
    pub async fn kernels(
        &self,
        start_after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<Kernel>, ClientError> {
        let page: KernelsResponse = self
            .client
            .query_contract(
                &self.contracts.registry,
                &RegistryQuery::Kernels { start_after, limit },
            )
            .await?;
        Ok(page.kernels)
    }

    /// Every registered kernel after `start_after`, in id order (read page by page).
    pub async fn all_kernels(
        &self,
        mut start_after: Option<u64>,
    ) -> Result<Vec<Kernel>, ClientError> {
        const PAGE: u32 = 30;
        let mut kernels = Vec::new();
        loop {
            let page = self.kernels(start_after, Some(PAGE)).await?;
            let full = page.len() as u32 == PAGE;
            start_after = page.last().map(|k| k.id);
            kernels.extend(page);
            if !full {
                return Ok(kernels);
            }
        }
    }

    /// Nodes the market may draw for kernel `id` now (bonded, not jailed, serving its layers,
    /// below capacity), counted up to `most`.
    pub async fn candidates(&self, id: u64, most: usize) -> Result<usize, ClientError> {
        let mut start_after = None;
        let mut count = 0;
        loop {
            let page: CandidatesResponse = self
                .client
                .query_contract(
                    &self.contracts.staking,
                    &StakingQuery::Candidates {
                        kernel_id: id,
                        start_after,
                        limit: Some(CANDIDATES_PAGE),
                    },
                )
                .await?;
            count += page.candidates.len();
            if page.candidates.len() < CANDIDATES_PAGE as usize || count >= most {
                return Ok(count.min(most));
            }
            start_after = page.candidates.last().map(|c| c.address.to_string());
        }
    }

    /// The market parameters.
    pub async fn params(&self) -> Result<MarketParams, ClientError> {
        self.client
            .query_contract(&self.contracts.market, &QueryMsg::Params {})
            .await
    }

    /// A query's full state.
    pub async fn query(&self, id: u64) -> Result<QueryResponse, ClientError> {
        self.client
            .query_contract(&self.contracts.market, &QueryMsg::Query { id })
            .await
    }

    /// The escrow the market asks for `request`; the market's refusal (unknown or inactive
    /// kernel, limits) in its own words.
    pub async fn quote(&self, request: &QueryRequest) -> Result<Coin, SubmitError> {
        let quote: QuoteResponse = self
            .client
            .query_contract(
                &self.contracts.market,
                &QueryMsg::Quote {
                    kernel_id: request.kernel_id,
                    input_tokens: u32::try_from(request.input.len()).unwrap_or(u32::MAX),
                    max_output_tokens: request.max_output_tokens,
                    redundancy: request.redundancy,
                },
            )
            .await
            .map_err(SubmitError::from_chain)?;
        Ok(
            Coin::new(quote.escrow.amount.u128(), &quote.escrow.denom).map_err(|e| {
                ClientError::Decode {
                    what: "quote",
                    reason: e.to_string(),
                }
            })?,
        )
    }

    /// Submits `request` with the escrow the market quotes for it. The market judges the
    /// request itself (kernel, limits, escrow): its quote and a simulation of the submission run
    /// first, so a query it would refuse fails with the market's own reason before any funds
    /// move.
    pub async fn submit(
        &self,
        key: &cosmrs::crypto::secp256k1::SigningKey,
        request: &QueryRequest,
    ) -> Result<Submitted, SubmitError> {
        let escrow = self.quote(request).await?;
        self.submit_with_escrow(key, request, escrow).await
    }

    /// Submits `request` with `escrow` (from [`MarketClient::quote`]); a submission the market
    /// would refuse fails in simulation, before any funds move.
    pub async fn submit_with_escrow(
        &self,
        key: &cosmrs::crypto::secp256k1::SigningKey,
        request: &QueryRequest,
        escrow: Coin,
    ) -> Result<Submitted, SubmitError> {
        let outcome = self
            .client
            .execute_contract(
                key,
                &self.contracts.market,
                &submit_msg(request),
                &Coins::from(escrow.clone()),
                &SendTxOptions::default(),
            )
            .await
            .map_err(SubmitError::from_chain)?;
        submitted(outcome, escrow)
    }

    /// The transaction submitting `request` with `escrow` from the account of `public_key`, as
    /// a `SignDoc` for that account's wallet to sign; simulated first, so a submission the
    /// market would refuse fails here with its reason. [`MarketClient::submit_signed`] sends it.
    pub async fn submission_to_sign(
        &self,
        public_key: cosmrs::crypto::PublicKey,
        request: &QueryRequest,
        escrow: &Coin,
    ) -> Result<SignDocParts, SubmitError> {
        let user = Address::from_public_key(&public_key)
            .map_err(|e| SubmitError::Refused(format!("not a secp256k1 account key: {e}")))?;
        let msg = execute_msg(
            &user,
            &self.contracts.market,
            &submit_msg(request),
            &Coins::from(escrow.clone()),
        )?;
        self.client
            .sign_doc_for(public_key, vec![msg], &SendTxOptions::default())
            .await
            .map_err(SubmitError::from_chain)
    }

    /// Broadcasts a submission signed elsewhere (from [`MarketClient::submission_to_sign`]) and
    /// waits for its block.
    pub async fn submit_signed(
        &self,
        tx: &SignedTx,
        escrow: Coin,
    ) -> Result<Submitted, SubmitError> {
        self.client.broadcast_sync(tx).await?;
        let outcome = self.client.wait_for_tx(tx.hash, DEFAULT_TX_TIMEOUT).await?;
        submitted(outcome, escrow)
    }

    /// Follows query `id` block by block until it is settled or disputed, calling `progress`
    /// with each new state. Anyone may draw a query once its draw closed and settle it once it
    /// is settleable; the nodes do both within a couple of blocks, and when they have not after
    /// [`USER_BACKUP_BLOCKS`], the user does it. Gives up after `timeout`.
    pub async fn wait_for_settlement(
        &self,
        key: &cosmrs::crypto::secp256k1::SigningKey,
        id: u64,
        timeout: Duration,
        mut progress: impl FnMut(&QueryResponse),
    ) -> Result<QueryResponse, ClientError> {
        let started = Instant::now();
        let mut watcher = crate::client::BlockWatcher::from_latest(self.client).await?;
        let mut settleable_blocks = 0u64;
        let mut draw_sent_at: Option<u64> = None;
        loop {
            let height = watcher.next_height().saturating_sub(1);
            let state = self.query(id).await?;
            progress(&state);
            if state.query.status.is_final() {
                return Ok(state);
            }
            // Still drawing well past its draw deadline: draw it, again every few blocks while an
            // earlier draw has not landed (a node may draw in the same block: the next state read
            // tells).
            let draw_due = draw_sent_at.is_none_or(|at| height >= at + USER_BACKUP_BLOCKS);
            if draw_overdue(&state, height, USER_BACKUP_BLOCKS) && draw_due {
                draw_sent_at = Some(height);
                let _ = self.execute(key, &ExecuteMsg::Draw { query_id: id }).await;
            }
            if matches!(state.phase, QueryPhase::Settleable) {
                settleable_blocks += 1;
                if settleable_blocks == USER_BACKUP_BLOCKS {
                    let _ = self
                        .execute(key, &ExecuteMsg::Settle { query_id: id })
                        .await;
                }
            }
            if started.elapsed() > timeout {
                return Err(ClientError::Decode {
                    what: "query",
                    reason: format!("query {id} not settled after {timeout:?}"),
                });
            }
            watcher
                .next_block(Some(Instant::now() + Duration::from_secs(10)))
                .await?;
        }
    }

    /// Sends `msg` to the market without funds.
    async fn execute(
        &self,
        key: &cosmrs::crypto::secp256k1::SigningKey,
        msg: &ExecuteMsg,
    ) -> Result<(), ClientError> {
        self.client
            .execute_contract(
                key,
                &self.contracts.market,
                msg,
                &Coins::default(),
                &SendTxOptions::default(),
            )
            .await
            .map(|_| ())
    }
}

/// The market message submitting `request`, with fresh user entropy for the draw.
fn submit_msg(request: &QueryRequest) -> ExecuteMsg {
    let entropy: [u8; 32] = rand::random();
    ExecuteMsg::SubmitQuery {
        kernel_id: request.kernel_id,
        input: Binary::from(nesa_market::tokens::encode_token_ids(&request.input)),
        max_output_tokens: request.max_output_tokens,
        sampling: request.sampling,
        redundancy: request.redundancy,
        user_entropy: Binary::from(entropy.to_vec()),
    }
}

/// The submission `outcome` as the query it opened.
fn submitted(outcome: TxOutcome, escrow: Coin) -> Result<Submitted, SubmitError> {
    let query_id = outcome
        .contract_attribute(QUERY_SUBMITTED, attr::QUERY_ID)
        .ok_or_else(|| SubmitError::NoQueryId(outcome.hash.to_string()))?;
    let fee = outcome
        .event_attribute("tx", "fee")
        .and_then(|fee| fee.parse::<Coins>().ok())
        .map_or(0, |fee| fee.amount_of(crate::BASE_DENOM));
    Ok(Submitted {
        query_id,
        escrow,
        tx_hash: outcome.hash.to_string(),
        fee,
    })
}

/// `amount` of the market's denomination as a coin.
pub fn unes(amount: Uint128) -> Coin {
    Coin::unes(amount.u128())
}

//! The inference market from a user's side: quote, submit a query with escrow, follow it to
//! settlement. Message types come from the market's own package (`nesa-market`).

pub mod progress;

use std::time::{Duration, Instant};

use cosmwasm_std::{Binary, Uint128};
use nesa_market::market::{
    ExecuteMsg, MarketParams, QueryMsg, QueryResponse, QuoteResponse, Sampling,
};
use nesa_market::registry::{Kernel, KernelStatus, KernelsResponse, QueryMsg as RegistryQuery};

use crate::client::{execute_msg, ChainClient, ClientError, MarketContracts, SendTxOptions};
use crate::{Address, AddressExt, Coin, Coins, GasSetting};

/// Why a query could not be submitted (checked before any funds move).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("kernel {0} does not exist: list kernels with `nesa query market kernels`")]
    UnknownKernel(u64),
    #[error("kernel {0} is deprecated")]
    Deprecated(u64),
    #[error("the prompt is {tokens} tokens; the market accepts at most {limit}")]
    PromptTooLong { tokens: u32, limit: u32 },
    #[error("the prompt is {bytes} bytes on chain; the market accepts at most {limit}")]
    PayloadTooLarge { bytes: usize, limit: u32 },
    #[error("at most {limit} output tokens may be asked for, not {asked}")]
    TooManyOutputTokens { asked: u32, limit: u32 },
    #[error("the escrow needs {needed} but the account holds {held}: fund {address} first")]
    InsufficientFunds {
        needed: Coin,
        held: Coin,
        address: Address,
    },
    #[error("the market did not report the new query's id (tx {0})")]
    NoQueryId(String),
    #[error(transparent)]
    Client(#[from] ClientError),
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

    /// Validates `request` against the kernel, the market's limits and the user's balance,
    /// then submits it with the quoted escrow.
    pub async fn submit(
        &self,
        key: &cosmrs::crypto::secp256k1::SigningKey,
        request: &QueryRequest,
    ) -> Result<Submitted, SubmitError> {
        if request.input.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        let kernel = self.kernel(request.kernel_id).await.map_err(|e| match e {
            ClientError::QueryFailed { .. } => SubmitError::UnknownKernel(request.kernel_id),
            other => SubmitError::Client(other),
        })?;
        if kernel.status == KernelStatus::Deprecated {
            return Err(SubmitError::Deprecated(request.kernel_id));
        }
        let params = self.params().await?;
        let tokens = request.input.len() as u32;
        if tokens > params.max_input_tokens {
            return Err(SubmitError::PromptTooLong {
                tokens,
                limit: params.max_input_tokens,
            });
        }
        let input = nesa_market::tokens::encode_token_ids(&request.input);
        if input.len() > params.max_payload_bytes as usize {
            return Err(SubmitError::PayloadTooLarge {
                bytes: input.len(),
                limit: params.max_payload_bytes,
            });
        }
        if request.max_output_tokens == 0 || request.max_output_tokens > params.max_output_tokens {
            return Err(SubmitError::TooManyOutputTokens {
                asked: request.max_output_tokens,
                limit: params.max_output_tokens,
            });
        }
        let quote: QuoteResponse = self
            .client
            .query_contract(
                &self.contracts.market,
                &QueryMsg::Quote {
                    kernel_id: request.kernel_id,
                    input_tokens: tokens,
                    max_output_tokens: request.max_output_tokens,
                    redundancy: request.redundancy,
                },
            )
            .await?;
        let escrow = Coin::new(quote.escrow.amount.u128(), &quote.escrow.denom).map_err(|e| {
            ClientError::Decode {
                what: "quote",
                reason: e.to_string(),
            }
        })?;
        let user =
            Address::from_public_key(&key.public_key()).map_err(|e| ClientError::Decode {
                what: "key",
                reason: e.to_string(),
            })?;
        let held = self.client.balance(&user, &escrow.denom).await?;
        if held.amount < escrow.amount {
            return Err(SubmitError::InsufficientFunds {
                needed: escrow,
                held,
                address: user,
            });
        }
        let entropy: [u8; 32] = rand::random();
        let msg = ExecuteMsg::SubmitQuery {
            kernel_id: request.kernel_id,
            input: Binary::from(input),
            max_output_tokens: request.max_output_tokens,
            sampling: request.sampling,
            redundancy: request.redundancy,
            user_entropy: Binary::from(entropy.to_vec()),
        };
        let any = execute_msg(
            &user,
            &self.contracts.market,
            &msg,
            &Coins::from(escrow.clone()),
        )?;
        let outcome = self
            .client
            .send_tx(
                key,
                vec![any],
                &SendTxOptions {
                    gas: GasSetting::Auto,
                    ..Default::default()
                },
            )
            .await?;
        let kind = nesa_market::events::wasm_type(nesa_market::events::market::QUERY_SUBMITTED);
        let query_id = outcome
            .event_attribute(&kind, nesa_market::events::market::attr::QUERY_ID)
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| SubmitError::NoQueryId(outcome.hash.to_string()))?;
        Ok(Submitted {
            query_id,
            escrow,
            tx_hash: outcome.hash.to_string(),
        })
    }

    /// Follows query `id` block by block until it is settled or disputed, calling `progress`
    /// with each new state; settles it itself once it is settleable and the nodes have not
    /// (anyone may). Gives up after `timeout`.
    pub async fn wait_for_settlement(
        &self,
        key: &cosmrs::crypto::secp256k1::SigningKey,
        id: u64,
        timeout: Duration,
        mut progress: impl FnMut(&QueryResponse),
    ) -> Result<QueryResponse, ClientError> {
        let started = Instant::now();
        let user =
            Address::from_public_key(&key.public_key()).map_err(|e| ClientError::Decode {
                what: "key",
                reason: e.to_string(),
            })?;
        let mut watcher = crate::client::BlockWatcher::from_latest(self.client).await?;
        let mut settleable_blocks = 0u32;
        loop {
            let state = self.query(id).await?;
            progress(&state);
            if state.query.status.is_final() {
                return Ok(state);
            }
            if matches!(state.phase, nesa_market::market::QueryPhase::Settleable) {
                settleable_blocks += 1;
                // Nodes settle within a couple of blocks; after that the user does it.
                if settleable_blocks == 4 {
                    let any = execute_msg(
                        &user,
                        &self.contracts.market,
                        &ExecuteMsg::Settle { query_id: id },
                        &Coins::default(),
                    )?;
                    let _ = self
                        .client
                        .send_tx(
                            key,
                            vec![any],
                            &SendTxOptions {
                                gas: GasSetting::Auto,
                                ..Default::default()
                            },
                        )
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
}

/// `amount` of the market's denomination as a coin.
pub fn unes(amount: Uint128) -> Coin {
    Coin::unes(amount.u128())
}

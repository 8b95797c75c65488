//! A sharded query's work: the seat this node holds in one of its pipelines.
//!
//! The market lays a sharded query's seats out pipeline by pipeline (`nodes[p × spans + s]`).
//! The node at span 0 drives its pipeline: it runs the embedding, its own blocks and the head,
//! sends hidden states through the seats of its pipeline (spares: the same spans' seats of the
//! other pipelines, should one die), and commits to the output, the fingerprint and the record
//! of its own blocks' rows. A node at a later span computes its blocks on the stream its
//! driver claims and commits to that stream's record: its outputs and the digest of its
//! inputs, so settlement can find the one seat that turned the same inputs into other rows.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use nesa_market::fingerprint::TOP_K;
use nesa_market::market::InferenceQuery;
use nesa_market::registry::ShardRange;
use nesa_market::staking::{NodeResponse, QueryMsg as StakingQuery};
use nesa_market::tokens::{decode_token_ids, encode_token_ids};
use nesa_market::{ActivationRecord, SeatRecord};
use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::swarm::{probe, Candidate, Claimer, Hop, Pipeline, PipelineOptions};
use nesa_sdk::{ChainClient, ContractAddress};

use super::work::{fingerprint_of, sampling_of, QueryResult, WorkError};
use crate::api::shard::SeatExpectation;
use crate::api::ApiState;
use crate::worker::Worker;

/// How long a seat past span 0 waits for its driver's stream to commit.
const SEAT_WAIT: Duration = Duration::from_secs(600);

/// What a node needs to serve a seat of a pipeline.
pub struct ShardContext {
    pub client: Arc<ChainClient>,
    pub market: ContractAddress,
    pub staking: ContractAddress,
    /// This node's address.
    pub node: String,
    /// Signs the claims a driver sends its pipeline's seats (the node's account key).
    pub key: Arc<SigningKey>,
    /// The API whose shard streams this node's seats are served on.
    pub api: Arc<ApiState>,
    pub http: reqwest::Client,
}

/// The seat `node` holds in a sharded query: `(pipeline, span)`.
pub fn seat_of(query: &InferenceQuery, node: &str) -> Option<(usize, usize)> {
    let spans = query.shards.len();
    if spans == 0 {
        return None;
    }
    let index = query.nodes.iter().position(|n| n.as_str() == node)?;
    Some((index / spans, index % spans))
}

fn blocks(range: &ShardRange) -> Range<usize> {
    range.start_layer as usize..range.end_layer as usize
}

impl ShardContext {
    /// Serves this node's seat of `query`.
    pub async fn run(
        &self,
        worker: &Worker,
        query: &InferenceQuery,
    ) -> Result<QueryResult, WorkError> {
        let (pipeline, span) = seat_of(query, &self.node)
            .ok_or_else(|| WorkError::Pipeline("this node holds no seat of the query".into()))?;
        let loaded = worker.model().loaded_layers();
        let wanted = blocks(&query.shards[span]);
        if loaded != wanted {
            return Err(WorkError::Pipeline(format!(
                "the seat runs blocks {}..{} but this node loaded {}..{}",
                wanted.start, wanted.end, loaded.start, loaded.end
            )));
        }
        if span == 0 {
            self.drive(worker, query, pipeline).await
        } else {
            self.serve_seat(query, pipeline, span).await
        }
    }

    /// Span 0: drives pipeline `pipeline` through its seats.
    async fn drive(
        &self,
        worker: &Worker,
        query: &InferenceQuery,
        pipeline: usize,
    ) -> Result<QueryResult, WorkError> {
        let spans = query.shards.len();
        let pipelines = query.nodes.len() / spans;
        // Every seat past span 0, own pipeline's first, as route candidates.
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut own: Vec<Option<usize>> = vec![None; spans];
        let order = std::iter::once(pipeline).chain((0..pipelines).filter(|&p| p != pipeline));
        for p in order {
            for (s, seat) in own.iter_mut().enumerate().skip(1) {
                let node = &query.nodes[p * spans + s];
                match self.candidate(node.as_str(), &query.shards[s]).await {
                    Ok(candidate) => {
                        if p == pipeline {
                            *seat = Some(candidates.len());
                        }
                        candidates.push(candidate);
                    }
                    Err(reason) => {
                        tracing::warn!(query_id = query.id, %node, span = s, %reason, "a pipeline seat cannot be reached; routing around it")
                    }
                }
            }
        }
        // The pipeline's own seats when every one answered; otherwise the fastest route.
        let route: Option<Vec<Hop>> = (1..spans)
            .map(|s| {
                own[s].map(|candidate| Hop {
                    candidate,
                    layers: blocks(&query.shards[s]),
                })
            })
            .collect();
        let options = PipelineOptions {
            top_logprobs: TOP_K,
            route,
            claimer: Some(Arc::new(Claimer {
                key: self.key.clone(),
                market: self.market.to_string(),
                query_id: query.id,
                pipeline: pipeline as u8,
            })),
            ..PipelineOptions::default()
        };
        let prompt = decode_token_ids(&query.input).map_err(|e| WorkError::Input(e.to_string()))?;
        let pipe = Pipeline::connect(worker.engine.model().clone(), candidates, options)
            .await
            .map_err(|e| WorkError::Pipeline(e.to_string()))?;
        let output = pipe
            .generate(
                &prompt,
                query.max_output_tokens as usize,
                sampling_of(query),
                &worker.stop_tokens,
                |_| {},
            )
            .await
            .map_err(|e| WorkError::Pipeline(e.to_string()))?;
        for hop in &output.hops {
            tracing::info!(query_id = query.id, node = %hop.endpoint, blocks = ?hop.layers, positions = hop.positions, failed = ?hop.failed, "pipeline hop");
        }
        for failover in &output.failovers {
            tracing::warn!(query_id = query.id, node = %failover.endpoint, blocks = ?failover.layers, position = failover.position, replaced_by = ?failover.replaced_by, seconds = format!("{:.3}", failover.seconds), "a pipeline hop was replaced");
        }
        let record = SeatRecord {
            outputs: ActivationRecord::from_leaves(
                &output.local_leaves,
                query.input_tokens as usize,
            ),
            input_digest: None,
        };
        Ok(QueryResult {
            output: encode_token_ids(&output.tokens),
            fingerprint: fingerprint_of(query, &output.tokens, &output.top_logprobs)?,
            output_tokens: output.tokens.len() as u32,
            tokens_per_second: output.decode_tokens_per_second,
            activations: Some(record.encode()),
        })
    }

    /// A seat past span 0: the record of the stream the pipeline's driver claims.
    async fn serve_seat(
        &self,
        query: &InferenceQuery,
        pipeline: usize,
        span: usize,
    ) -> Result<QueryResult, WorkError> {
        let spans = query.shards.len();
        let expectation = SeatExpectation {
            market: self.market.to_string(),
            pipeline: pipeline as u8,
            layers: blocks(&query.shards[span]),
            driver: query.nodes[pipeline * spans].to_string(),
            prompt_len: query.input_tokens as usize,
        };
        tracing::info!(query_id = query.id, pipeline, span, driver = %expectation.driver, "waiting for the pipeline's driver");
        let receiver = self.api.seats.expect(query.id, expectation);
        let outcome = tokio::time::timeout(SEAT_WAIT, receiver).await;
        self.api.seats.forget(query.id);
        let record = match outcome {
            Ok(Ok(record)) => record,
            Ok(Err(_)) => {
                return Err(WorkError::Pipeline(
                    "the seat was given up before its driver committed".into(),
                ))
            }
            Err(_) => {
                return Err(WorkError::Pipeline(format!(
                    "the pipeline's driver did not commit a stream to this seat within {}s",
                    SEAT_WAIT.as_secs()
                )))
            }
        };
        Ok(QueryResult {
            output: Vec::new(),
            fingerprint: Vec::new(),
            output_tokens: 0,
            tokens_per_second: 0.0,
            activations: Some(record.encode()),
        })
    }

    /// A seat's node as a route candidate: its endpoint from its profile, measured.
    async fn candidate(&self, node: &str, range: &ShardRange) -> Result<Candidate, String> {
        let profile: NodeResponse = self
            .client
            .query_contract(
                &self.staking,
                &StakingQuery::Node {
                    address: node.to_string(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let candidate = probe(&self.http, &profile.profile.endpoint)
            .await
            .map_err(|e| e.to_string())?;
        // It serves at least the seat's blocks; it runs only those for this pipeline.
        let layers = blocks(range);
        if candidate.layers.start > layers.start || candidate.layers.end < layers.end {
            return Err(format!(
                "{} serves blocks {}..{}, not its seat's {}..{}",
                candidate.endpoint,
                candidate.layers.start,
                candidate.layers.end,
                layers.start,
                layers.end
            ));
        }
        Ok(Candidate {
            layers,
            ..candidate
        })
    }
}

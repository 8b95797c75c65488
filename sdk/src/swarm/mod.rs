//! Sharded inference across a swarm: node runners each serve a range of a kernel's blocks,
//! and a driver that holds the embedding and the head (and optionally the first blocks) sends
//! hidden states through a pipeline of them, one persistent stream per hop.
//!
//! - [`protocol`]: the shard stream's messages and binary frames;
//! - [`claim`]: how a market pipeline's driver shows a shard which seat a stream serves;
//! - [`route`]: which candidate serves which blocks, by measured latency and throughput;
//! - [`pipeline`]: the driver, with failover of a hop that dies mid-generation.
//!
//! The driver is the hub of a star, as in Petals: hidden states go driver → hop → driver →
//! next hop. That costs a round trip per hop where a chain of hops forwarding to each other
//! would cost one, but the driver sees every hop's output, so it can replace a dead hop from
//! what it already holds and check each hop's activation commitment against what it received.

pub mod claim;
pub mod pipeline;
pub mod protocol;
pub mod route;

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use claim::{Claim, ClaimError, Claimer};
pub use pipeline::{Failover, HopReport, Pipeline, PipelineError, PipelineOptions, PipelineOutput};
pub use route::{plan, Candidate, Hop, NoRoute};

/// What a node runner's `/health` says about the blocks it serves.
#[derive(Clone, Debug, Deserialize)]
struct ShardHealth {
    layers: [usize; 2],
    #[serde(default)]
    seconds_per_layer: f64,
}

/// A candidate could not be measured.
#[derive(Debug, thiserror::Error)]
#[error("cannot probe node runner at {endpoint}: {reason}")]
pub struct ProbeError {
    pub endpoint: String,
    pub reason: String,
}

/// Measures a node runner as a pipeline candidate: the blocks it serves and its time per
/// block from its `/health`, its round trip as the fastest of three `/health` calls.
pub async fn probe(http: &reqwest::Client, endpoint: &str) -> Result<Candidate, ProbeError> {
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let fail = |reason: String| ProbeError {
        endpoint: endpoint.clone(),
        reason,
    };
    let mut rtt = f64::INFINITY;
    let mut health = None;
    for _ in 0..3 {
        let started = Instant::now();
        let response = http
            .get(format!("{endpoint}/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("/health answered {}", response.status())));
        }
        let body: ShardHealth = response
            .json()
            .await
            .map_err(|e| fail(format!("/health does not list the blocks it serves: {e}")))?;
        rtt = rtt.min(started.elapsed().as_secs_f64());
        health = Some(body);
    }
    let health = health.expect("probed three times");
    let layers: Range<usize> = health.layers[0]..health.layers[1];
    if layers.is_empty() {
        return Err(fail("serves no blocks".into()));
    }
    Ok(Candidate {
        endpoint,
        layers,
        rtt,
        seconds_per_layer: health.seconds_per_layer.max(0.0),
    })
}

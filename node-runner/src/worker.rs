//! The node's one engine and what every caller needs to use it from async code: market
//! queries, the operator's `/v1/generate` and split sessions all go through the same batch.

use std::ops::Range;
use std::sync::Arc;

use nesa_engine::{
    Cancellation, Engine, EngineError, ForwardJob, GenerateJob, GenerateRequest, GenerationOutput,
    Hidden, Job, KvCache, Model, SchedulerConfig,
};
use tokio::sync::oneshot;

/// The loaded kernel behind its batching engine.
pub struct Worker {
    /// The engine thread every caller shares.
    pub engine: Engine,
    /// Token ids that end a generation (in the kernel's vocabulary).
    pub stop_tokens: Vec<u32>,
}

impl Worker {
    /// Starts the engine over `model`.
    pub fn new(model: Model, stop_tokens: Vec<u32>, config: SchedulerConfig) -> Self {
        Self {
            engine: Engine::start(Arc::new(model), config),
            stop_tokens,
        }
    }

    /// The kernel.
    pub fn model(&self) -> &Model {
        self.engine.model()
    }

    /// Generates `request` in the shared batch. Dropping the future (the requester went
    /// away) cancels the generation at the engine's next step.
    pub async fn generate(
        &self,
        request: GenerateRequest,
    ) -> Result<GenerationOutput, EngineError> {
        let (reply, outcome) = oneshot::channel();
        let cancel = Cancellation::new();
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        self.engine.submit(Job::Generate(GenerateJob {
            request,
            on_token: Box::new(|_| {}),
            done: Box::new(move |result| {
                let _ = reply.send(result);
            }),
            cancel,
        }));
        outcome.await.unwrap_or(Err(EngineError::Stopped))
    }

    /// Runs `hidden` through `layers` in the shared batch, continuing `cache` from
    /// `position`; the cache comes back with the output (`None` only if the engine stopped).
    pub async fn forward(
        &self,
        hidden: Hidden,
        layers: Range<usize>,
        position: usize,
        cache: KvCache,
    ) -> (Result<Hidden, EngineError>, Option<KvCache>) {
        let (reply, outcome) = oneshot::channel();
        self.engine.submit(Job::Forward(ForwardJob {
            hidden,
            layers,
            position,
            cache,
            done: Box::new(move |result, cache| {
                let _ = reply.send((result, cache));
            }),
        }));
        match outcome.await {
            Ok((result, cache)) => (result, Some(cache)),
            Err(_) => (Err(EngineError::Stopped), None),
        }
    }
}

struct CancelOnDrop(Cancellation);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

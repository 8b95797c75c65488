//! One engine per process: a thread that owns the [`Scheduler`] and runs steps while there is
//! work, fed through a channel by every part of the node (market queries, the operator's
//! endpoint, split sessions). All of them share each forward pass, and the process uses the
//! cores it is given once rather than once per request.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use crate::batch::{Cancellation, EngineStats, GenerateJob, Job, Scheduler, SchedulerConfig};
use crate::error::{EngineError, Result};
use crate::generate::{GenerateRequest, GenerationOutput};
use crate::model::Model;

/// A handle to the engine thread; cloning it shares the same thread.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job<'static>>,
    model: Arc<Model>,
    config: SchedulerConfig,
    stats: Arc<EngineStats>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the engine thread over `model`. It ends when every handle is dropped.
    pub fn start(model: Arc<Model>, config: SchedulerConfig) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job<'static>>();
        let stats = Arc::new(EngineStats::default());
        let thread_model = model.clone();
        let thread_stats = stats.clone();
        thread::Builder::new()
            .name("nesa-engine".into())
            .spawn(move || {
                let mut scheduler = Scheduler::new(&thread_model, config, thread_stats);
                loop {
                    if scheduler.is_idle() {
                        match inbox.recv() {
                            Ok(job) => scheduler.submit(job),
                            Err(mpsc::RecvError) => break,
                        }
                    }
                    while let Ok(job) = inbox.try_recv() {
                        scheduler.submit(job);
                    }
                    scheduler.step();
                }
            })
            .expect("spawning the engine thread");
        Self {
            jobs,
            model,
            config,
            stats,
        }
    }

    /// The model every job runs on.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Live counters: batch sizes, queue, cache use.
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.stats
    }

    /// Hands `job` to the engine; its `done` callback runs on the engine thread (keep it
    /// short: send the result somewhere).
    pub fn submit(&self, job: Job<'static>) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.fail(EngineError::Stopped);
        }
    }

    /// Generates `request` in the shared batch and waits for it (for callers on their own
    /// thread; async callers submit a [`Job`] whose `done` completes a future).
    pub fn generate_blocking(
        &self,
        request: GenerateRequest,
        on_token: impl FnMut(u32) + Send + 'static,
    ) -> Result<GenerationOutput> {
        let (reply, result) = mpsc::channel();
        self.submit(Job::Generate(GenerateJob {
            request,
            on_token: Box::new(on_token),
            done: Box::new(move |outcome| {
                let _ = reply.send(outcome);
            }),
            cancel: Cancellation::new(),
        }));
        result.recv().unwrap_or(Err(EngineError::Stopped))
    }
}

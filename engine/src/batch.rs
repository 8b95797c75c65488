//! Continuous batching: every sequence in flight — the decode step of a running generation,
//! the next chunk of a new prompt, the hidden states a split-mode client sent — goes through
//! one forward pass per step. A sequence joins at any step (when its worst-case key/value
//! cache fits the budget) and leaves at any step (stop token, token budget, cancelled).
//!
//! Each projection and MLP matrix multiplies the stacked rows of every sequence at once, so
//! the weights are read once per step rather than once per sequence; attention runs per
//! sequence against its own cache. Every operation is row by row or per sequence, and a
//! prompt is always cut into the same chunks (multiples of [`PREFILL_CHUNK`] from its first
//! position), so a sequence's tokens and log-probabilities are bit for bit the same alone, in
//! a batch of eight, or joining half-way: what commit–reveal needs from every honest node.
//!
//! [`Scheduler`] is the state machine (driven by [`crate::Engine`]'s thread, or by
//! [`Model::generate`] for one sequence); it never blocks.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{EngineError, Result};
use crate::generate::{FinishReason, GenerateRequest, GenerationOutput};
use crate::layers::KvCache;
use crate::model::{Hidden, Model, Rows, PREFILL_CHUNK};
use crate::sampling::{top_logprobs, Sampler};

/// How much the scheduler takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Bytes the key/value caches of all generations in flight may take. A generation is
    /// admitted only once its worst case (prompt + `max_tokens` positions) fits; one that
    /// could never fit is refused when submitted.
    pub kv_budget_bytes: usize,
    /// Most sequences in one step.
    pub max_sequences: usize,
    /// Prompt positions fed per step besides the decode rows (at least one chunk is always
    /// fed): bounds how much a new prompt delays the tokens of running generations.
    pub prefill_tokens_per_step: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            kv_budget_bytes: 512 << 20,
            max_sequences: 16,
            prefill_tokens_per_step: PREFILL_CHUNK,
        }
    }
}

impl SchedulerConfig {
    /// No memory bound and no sequence bound: one caller's own sequences.
    pub fn unbounded() -> Self {
        Self {
            kv_budget_bytes: usize::MAX,
            max_sequences: usize::MAX,
            ..Self::default()
        }
    }
}

/// Stops a submitted generation at the next step (e.g. its requester went away); its
/// `done` callback then gets [`EngineError::Cancelled`].
#[derive(Clone, Debug, Default)]
pub struct Cancellation(Arc<AtomicBool>);

impl Cancellation {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the generation(s) holding this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancellation::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Called with each token as soon as it is chosen.
pub type OnToken<'a> = Box<dyn FnMut(u32) + Send + 'a>;

/// Gets a forward job's output rows (or why it failed) and its cache back.
pub type ForwardDone<'a> = Box<dyn FnOnce(Result<Hidden>, KvCache) + Send + 'a>;

/// `(sequence index, rows fed this step)` of the sequences sharing one layer range.
type Members = Vec<(usize, usize)>;

/// A generation to run.
pub struct GenerateJob<'a> {
    /// What to generate.
    pub request: GenerateRequest,
    /// Sees each token as soon as it is chosen.
    pub on_token: OnToken<'a>,
    /// Gets the finished generation or why it failed (exactly once).
    pub done: Box<dyn FnOnce(Result<GenerationOutput>) + Send + 'a>,
    /// Lets the requester stop it.
    pub cancel: Cancellation,
}

/// Hidden states to run through a layer range of this process, continuing a cache (split
/// mode and shard pipelines), as [`Model::forward_layers`] does alone.
pub struct ForwardJob<'a> {
    /// Rows to run; the first sits at `position`.
    pub hidden: Hidden,
    /// Blocks to run (within those loaded).
    pub layers: Range<usize>,
    /// Position of the first row; the cache must hold at least that many positions, and
    /// the ones from `position` on are dropped first.
    pub position: usize,
    /// The sequence's cache, handed back to `done` with the outputs.
    pub cache: KvCache,
    /// Gets the output rows (or why it failed) and the cache back (exactly once).
    pub done: ForwardDone<'a>,
}

/// Work for the scheduler.
pub enum Job<'a> {
    /// A whole generation: prompt, then token by token.
    Generate(GenerateJob<'a>),
    /// One pass of hidden states through a layer range.
    Forward(ForwardJob<'a>),
}

impl<'a> Job<'a> {
    /// Fails the job without running it.
    pub fn fail(self, error: EngineError) {
        match self {
            Job::Generate(job) => (job.done)(Err(error)),
            Job::Forward(job) => (job.done)(Err(error), job.cache),
        }
    }
}

/// Counters an operator reads (the node runner exports them in `/metrics`).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Forward passes run.
    pub steps: AtomicU64,
    /// Sum over steps of the sequences in each (÷ `steps` = mean batch size).
    pub step_sequences: AtomicU64,
    /// Sequences in the last step.
    pub last_batch: AtomicUsize,
    /// Most sequences seen in one step.
    pub max_batch: AtomicUsize,
    /// Sequences admitted and not finished.
    pub running: AtomicUsize,
    /// Generations waiting for cache memory or a batch place.
    pub waiting: AtomicUsize,
    /// Key/value bytes reserved by the generations running.
    pub kv_reserved_bytes: AtomicUsize,
    /// The key/value budget.
    pub kv_budget_bytes: AtomicUsize,
    /// Prompt positions processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
}

/// Rows a sequence still has to feed through the layers.
enum Input {
    Tokens(Vec<u32>),
    Hidden(Hidden),
}

impl Input {
    fn len(&self) -> usize {
        match self {
            Input::Tokens(tokens) => tokens.len(),
            Input::Hidden(hidden) => hidden.positions(),
        }
    }

    /// Appends rows `start..start + len` to `x`.
    fn rows_into(&self, model: &Model, start: usize, len: usize, x: &mut Vec<f32>) -> Result<()> {
        match self {
            Input::Tokens(tokens) => {
                x.extend_from_slice(model.embed(&tokens[start..start + len])?.values())
            }
            Input::Hidden(hidden) => x.extend_from_slice(hidden.rows(start, len)),
        }
        Ok(())
    }
}

struct Generation<'a> {
    request: GenerateRequest,
    sampler: Sampler,
    output: GenerationOutput,
    on_token: OnToken<'a>,
    done: Option<Box<dyn FnOnce(Result<GenerationOutput>) + Send + 'a>>,
    cancel: Cancellation,
    /// Key/value bytes held against the budget.
    reserved: usize,
    submitted: Instant,
    started: Option<Instant>,
    first_logits: Option<Instant>,
}

impl Generation<'_> {
    /// Takes the logits of the last position fed; returns the token to feed next, or `None`
    /// when the generation is over. The same rules as a generation alone: the budget, stop
    /// tokens, the context.
    fn advance(&mut self, logits: &[f32], cached: usize, context_length: usize) -> Option<u32> {
        let now = Instant::now();
        self.first_logits.get_or_insert(now);
        if self.output.tokens.len() >= self.request.max_tokens {
            return None;
        }
        let token = self.sampler.sample(logits);
        if self.request.stop_tokens.contains(&token) {
            self.output.finish_reason = FinishReason::Stop;
            return None;
        }
        self.output
            .top_logprobs
            .push(top_logprobs(logits, self.request.top_logprobs));
        self.output.tokens.push(token);
        (self.on_token)(token);
        if self.output.tokens.len() == self.request.max_tokens || cached >= context_length {
            return None;
        }
        Some(token)
    }

    fn finish(&mut self, result: Result<()>) {
        let Some(done) = self.done.take() else {
            return;
        };
        let now = Instant::now();
        let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
        let started = self.started.unwrap_or(now);
        let first_logits = self.first_logits.unwrap_or(now);
        self.output.queued_ms = ms(self.submitted, started);
        self.output.prefill_ms = ms(started, first_logits);
        self.output.decode_ms = ms(first_logits, now);
        done(result.map(|()| std::mem::replace(&mut self.output, GenerationOutput::empty())));
    }
}

enum Kind<'a> {
    Generate(Box<Generation<'a>>),
    Forward {
        /// Output rows so far.
        outputs: Vec<f32>,
        done: Option<ForwardDone<'a>>,
    },
}

/// A sequence admitted to the batch.
struct Sequence<'a> {
    input: Input,
    /// Rows of `input` fed so far.
    fed: usize,
    /// Position of the next row fed.
    position: usize,
    layers: Range<usize>,
    cache: KvCache,
    kind: Kind<'a>,
    finished: bool,
}

impl Sequence<'_> {
    fn fail(&mut self, error: EngineError) {
        self.finished = true;
        match &mut self.kind {
            Kind::Generate(generation) => {
                if let Some(done) = generation.done.take() {
                    done(Err(error));
                }
            }
            Kind::Forward { done, .. } => {
                if let Some(done) = done.take() {
                    done(
                        Err(error),
                        std::mem::replace(&mut self.cache, KvCache::new(0..0)),
                    );
                }
            }
        }
    }
}

/// The batching state machine: admits submitted work within its budget and runs steps.
pub struct Scheduler<'a> {
    model: &'a Model,
    config: SchedulerConfig,
    waiting: VecDeque<Job<'a>>,
    running: Vec<Sequence<'a>>,
    reserved: usize,
    stats: Arc<EngineStats>,
}

impl<'a> Scheduler<'a> {
    /// A scheduler over `model` reporting into `stats`.
    pub fn new(model: &'a Model, config: SchedulerConfig, stats: Arc<EngineStats>) -> Self {
        let config = SchedulerConfig {
            max_sequences: config.max_sequences.max(1),
            prefill_tokens_per_step: config.prefill_tokens_per_step.max(1),
            ..config
        };
        stats
            .kv_budget_bytes
            .store(config.kv_budget_bytes, Ordering::Relaxed);
        Self {
            model,
            config,
            waiting: VecDeque::new(),
            running: Vec::new(),
            reserved: 0,
            stats,
        }
    }

    /// Key/value bytes a generation of `request` may need at most: its prompt and every token
    /// it may generate, within the context.
    pub fn worst_case_kv_bytes(model: &Model, request: &GenerateRequest) -> usize {
        model.worst_case_kv_bytes(request.prompt.len(), request.max_tokens)
    }

    /// Queues `job`; a job that can never run (bad input, or more cache than the whole
    /// budget) fails at once, before any compute.
    pub fn submit(&mut self, job: Job<'a>) {
        if let Err(error) = self.check(&job) {
            job.fail(error);
            return;
        }
        self.waiting.push_back(job);
        self.publish();
    }

    /// Nothing running and nothing waiting.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    fn check(&self, job: &Job<'_>) -> Result<()> {
        match job {
            Job::Generate(job) => {
                let config = self.model.config();
                let layers = 0..config.layer_count;
                if self.model.loaded_layers() != layers {
                    let loaded = self.model.loaded_layers();
                    return Err(EngineError::LayerRange {
                        start: 0,
                        end: layers.end,
                        first: loaded.start,
                        loaded: loaded.len(),
                    });
                }
                let request = &job.request;
                if request.prompt.is_empty() {
                    return Err(EngineError::EmptyPrompt);
                }
                if let Some(&token) = request
                    .prompt
                    .iter()
                    .find(|&&t| t as usize >= config.vocab_size)
                {
                    return Err(EngineError::TokenOutOfRange {
                        token,
                        vocab_size: config.vocab_size,
                    });
                }
                if request.prompt.len() > config.context_length {
                    return Err(EngineError::ContextOverflow {
                        needed: request.prompt.len(),
                        context_length: config.context_length,
                    });
                }
                request.sampling.validate()?;
                let needed = Self::worst_case_kv_bytes(self.model, request);
                if needed > self.config.kv_budget_bytes {
                    return Err(EngineError::KvBudget {
                        needed,
                        budget: self.config.kv_budget_bytes,
                    });
                }
                Ok(())
            }
            Job::Forward(job) => {
                if job.hidden.positions() == 0 {
                    return Err(EngineError::EmptyPrompt);
                }
                self.model
                    .check_forward(&job.hidden, job.layers.clone(), job.position, &job.cache)
            }
        }
    }

    /// Moves waiting jobs into the batch, in arrival order, while they fit.
    fn admit(&mut self) {
        while self.running.len() < self.config.max_sequences {
            let Some(job) = self.waiting.front() else {
                break;
            };
            let needed = match job {
                Job::Generate(job) if job.cancel.is_cancelled() => {
                    let Some(Job::Generate(job)) = self.waiting.pop_front() else {
                        unreachable!("the front job is a generation");
                    };
                    (job.done)(Err(EngineError::Cancelled));
                    continue;
                }
                Job::Generate(job) => Self::worst_case_kv_bytes(self.model, &job.request),
                Job::Forward(_) => 0,
            };
            if needed > self.config.kv_budget_bytes - self.reserved {
                break;
            }
            let job = self.waiting.pop_front().expect("a front job");
            self.reserved += needed;
            self.running.push(self.start(job, needed));
        }
    }

    fn start(&self, job: Job<'a>, reserved: usize) -> Sequence<'a> {
        match job {
            Job::Generate(job) => {
                let config = self.model.config();
                let positions = reserved / self.model.kv_bytes_per_position(config.layer_count);
                let sampler = Sampler::new(job.request.sampling).expect("validated on submit");
                Sequence {
                    input: Input::Tokens(job.request.prompt.clone()),
                    fed: 0,
                    position: 0,
                    layers: 0..config.layer_count,
                    cache: KvCache::with_capacity(0..config.layer_count, positions),
                    kind: Kind::Generate(Box::new(Generation {
                        request: job.request,
                        sampler,
                        output: GenerationOutput::empty(),
                        on_token: job.on_token,
                        done: Some(job.done),
                        cancel: job.cancel,
                        reserved,
                        submitted: Instant::now(),
                        started: None,
                        first_logits: None,
                    })),
                    finished: false,
                }
            }
            Job::Forward(mut job) => {
                job.cache.truncate(job.position);
                Sequence {
                    input: Input::Hidden(job.hidden),
                    fed: 0,
                    position: job.position,
                    layers: job.layers,
                    cache: job.cache,
                    kind: Kind::Forward {
                        outputs: Vec::new(),
                        done: Some(job.done),
                    },
                    finished: false,
                }
            }
        }
    }

    /// Runs one step: admits what fits, feeds every running sequence its next rows in one
    /// forward pass per layer range, samples the generations that reached their last
    /// position, and retires what finished. Returns the sequences that took part.
    pub fn step(&mut self) -> usize {
        for sequence in &mut self.running {
            if let Kind::Generate(generation) = &sequence.kind {
                if generation.cancel.is_cancelled() {
                    sequence.fail(EngineError::Cancelled);
                }
            }
        }
        self.retire();
        self.admit();
        let plan = self.plan();
        if plan.is_empty() {
            self.publish();
            return 0;
        }
        let mut groups: Vec<(Range<usize>, Members)> = Vec::new();
        for &(index, len) in &plan {
            let layers = self.running[index].layers.clone();
            match groups.iter_mut().find(|(l, _)| *l == layers) {
                Some((_, members)) => members.push((index, len)),
                None => groups.push((layers, vec![(index, len)])),
            }
        }
        for (layers, mut members) in groups {
            members.sort_unstable();
            if let Err(error) = self.run_group(layers, &members) {
                let message = error.to_string();
                for &(index, _) in &members {
                    self.running[index].fail(EngineError::Batch(message.clone()));
                }
            }
        }
        let stats = &self.stats;
        stats.steps.fetch_add(1, Ordering::Relaxed);
        stats
            .step_sequences
            .fetch_add(plan.len() as u64, Ordering::Relaxed);
        stats.last_batch.store(plan.len(), Ordering::Relaxed);
        stats.max_batch.fetch_max(plan.len(), Ordering::Relaxed);
        self.retire();
        self.publish();
        plan.len()
    }

    /// `(sequence, rows)` to feed this step: every sequence with one row left (a decode step)
    /// and, in arrival order, prompt chunks up to the per-step prefill allowance.
    fn plan(&self) -> Vec<(usize, usize)> {
        let mut plan = Vec::new();
        let mut longer = Vec::new();
        for (index, sequence) in self.running.iter().enumerate() {
            let left = sequence.input.len() - sequence.fed;
            match left {
                0 => {}
                1 => plan.push((index, 1)),
                _ => longer.push((index, left.min(PREFILL_CHUNK))),
            }
        }
        let mut allowance = self.config.prefill_tokens_per_step;
        for (index, len) in longer {
            if allowance == 0 {
                break;
            }
            allowance = allowance.saturating_sub(len);
            plan.push((index, len));
        }
        plan
    }

    fn run_group(&mut self, layers: Range<usize>, members: &[(usize, usize)]) -> Result<()> {
        let model = self.model;
        let now = Instant::now();
        let width = model.config().hidden_size;
        let mut x = Vec::with_capacity(members.iter().map(|(_, len)| len).sum::<usize>() * width);
        for &(index, len) in members {
            let sequence = &mut self.running[index];
            sequence.input.rows_into(model, sequence.fed, len, &mut x)?;
            if let Kind::Generate(generation) = &mut sequence.kind {
                generation.started.get_or_insert(now);
            }
        }
        let mut rows: Vec<Rows<'_>> = Vec::with_capacity(members.len());
        let mut member = members.iter().peekable();
        for (index, sequence) in self.running.iter_mut().enumerate() {
            if let Some(&(_, len)) = member.next_if(|(i, _)| *i == index) {
                rows.push(Rows {
                    len,
                    position: sequence.position,
                    cache: &mut sequence.cache,
                });
            }
        }
        let out = model.forward_rows(x, layers, &mut rows)?;
        drop(rows);

        // Hand out each sequence's rows; generations that fed their last row need logits.
        let mut offset = 0;
        let mut last_rows = Vec::new();
        let mut sampled = Vec::new();
        for &(index, len) in members {
            let sequence = &mut self.running[index];
            let rows = &out[offset * width..(offset + len) * width];
            offset += len;
            sequence.fed += len;
            sequence.position += len;
            let complete = sequence.fed == sequence.input.len();
            match &mut sequence.kind {
                Kind::Forward { outputs, done } => {
                    outputs.extend_from_slice(rows);
                    if complete {
                        let hidden = Hidden::from_vec(std::mem::take(outputs), width);
                        let cache = std::mem::replace(&mut sequence.cache, KvCache::new(0..0));
                        if let Some(done) = done.take() {
                            done(hidden, cache);
                        }
                        sequence.finished = true;
                    }
                }
                Kind::Generate(generation) => {
                    // Every prompt row is fed before the first token is chosen.
                    if generation.output.tokens.is_empty() {
                        self.stats
                            .prompt_tokens
                            .fetch_add(len as u64, Ordering::Relaxed);
                    }
                    if complete {
                        last_rows.extend_from_slice(&rows[(len - 1) * width..]);
                        sampled.push(index);
                    }
                }
            }
        }
        if sampled.is_empty() {
            return Ok(());
        }
        let logits = model.head_rows(&last_rows)?;
        let context_length = model.config().context_length;
        for (index, logits) in sampled.into_iter().zip(logits) {
            let sequence = &mut self.running[index];
            let Kind::Generate(generation) = &mut sequence.kind else {
                unreachable!("only generations are sampled");
            };
            let before = generation.output.tokens.len();
            let next = generation.advance(&logits, sequence.position, context_length);
            self.stats.generated_tokens.fetch_add(
                (generation.output.tokens.len() - before) as u64,
                Ordering::Relaxed,
            );
            match next {
                Some(token) => {
                    sequence.input = Input::Tokens(vec![token]);
                    sequence.fed = 0;
                }
                None => {
                    generation.finish(Ok(()));
                    sequence.finished = true;
                }
            }
        }
        Ok(())
    }

    /// Drops finished sequences and releases their cache reservations.
    fn retire(&mut self) {
        let reserved = &mut self.reserved;
        self.running.retain(|sequence| {
            if !sequence.finished {
                return true;
            }
            if let Kind::Generate(generation) = &sequence.kind {
                *reserved -= generation.reserved;
            }
            false
        });
    }

    fn publish(&self) {
        let stats = &self.stats;
        stats.running.store(self.running.len(), Ordering::Relaxed);
        stats.waiting.store(self.waiting.len(), Ordering::Relaxed);
        stats
            .kv_reserved_bytes
            .store(self.reserved, Ordering::Relaxed);
    }
}

impl Drop for Scheduler<'_> {
    /// Whatever is left when the scheduler goes away fails rather than being forgotten.
    fn drop(&mut self) {
        for sequence in &mut self.running {
            if !sequence.finished {
                sequence.fail(EngineError::Stopped);
            }
        }
        for job in self.waiting.drain(..) {
            job.fail(EngineError::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadOptions;
    use crate::sampling::Sampling;
    use crate::tiny::{tiny_model_file, tiny_vocab_size, TinyModelSpec};
    use candle_core::quantized::GgmlDType;
    use rand::{Rng, SeedableRng};
    use std::sync::Mutex;

    fn tiny(weight_dtype: GgmlDType) -> Model {
        let spec = TinyModelSpec {
            weight_dtype,
            ..Default::default()
        };
        Model::load(&tiny_model_file(&spec).unwrap(), &LoadOptions::default()).unwrap()
    }

    fn request(rng: &mut impl Rng) -> GenerateRequest {
        // Some prompts span several prefill chunks; some sequences sample, some are greedy.
        let prompt_len = if rng.gen_bool(0.3) {
            rng.gen_range(120..200)
        } else {
            rng.gen_range(1..40)
        };
        let vocab = tiny_vocab_size() as u32;
        GenerateRequest {
            prompt: (0..prompt_len).map(|_| rng.gen_range(0..vocab)).collect(),
            max_tokens: rng.gen_range(0..40),
            sampling: if rng.gen_bool(0.5) {
                Sampling::Greedy
            } else {
                Sampling::Seeded {
                    temperature: 0.9,
                    top_p: 0.9,
                    seed: rng.gen(),
                }
            },
            stop_tokens: if rng.gen_bool(0.3) {
                vec![rng.gen_range(0..vocab)]
            } else {
                vec![]
            },
            top_logprobs: 5,
        }
    }

    /// Tokens, log-probability bits and finish reason: everything the market compares.
    type Answer = (Vec<u32>, Vec<Vec<(u32, u32)>>, FinishReason);

    fn answer(output: &GenerationOutput) -> Answer {
        (
            output.tokens.clone(),
            output
                .top_logprobs
                .iter()
                .map(|top| top.iter().map(|(t, lp)| (*t, lp.to_bits())).collect())
                .collect(),
            output.finish_reason,
        )
    }

    type Results = Arc<Mutex<Vec<Option<Result<GenerationOutput>>>>>;

    fn job(request: GenerateRequest, slot: usize, results: &Results) -> Job<'static> {
        let results = results.clone();
        Job::Generate(GenerateJob {
            request,
            on_token: Box::new(|_| {}),
            done: Box::new(move |outcome| results.lock().unwrap()[slot] = Some(outcome)),
            cancel: Cancellation::new(),
        })
    }

    /// Submits `requests[i]` before step `arrivals[i]` and steps until everything is done.
    fn run_batched(
        model: &Model,
        config: SchedulerConfig,
        requests: &[GenerateRequest],
        arrivals: &[usize],
    ) -> (Vec<Result<GenerationOutput>>, usize) {
        let results: Results = Arc::new(Mutex::new((0..requests.len()).map(|_| None).collect()));
        let stats = Arc::new(EngineStats::default());
        let mut scheduler = Scheduler::new(model, config, stats.clone());
        let mut step = 0;
        loop {
            for (slot, request) in requests.iter().enumerate() {
                if arrivals[slot] == step {
                    scheduler.submit(job(request.clone(), slot, &results));
                }
            }
            if scheduler.is_idle() && arrivals.iter().all(|&a| a <= step) {
                break;
            }
            scheduler.step();
            step += 1;
        }
        drop(scheduler);
        let results = std::mem::take(&mut *results.lock().unwrap());
        (
            results
                .into_iter()
                .map(|r| r.expect("every job is done"))
                .collect(),
            stats.max_batch.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn a_sequence_gives_the_same_bits_alone_in_a_batch_or_joining_midway() {
        for (dtype, seed) in [(GgmlDType::Q8_0, 1), (GgmlDType::Q4_1, 2)] {
            let model = tiny(dtype);
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            for round in 0..3 {
                let requests: Vec<GenerateRequest> = (0..8).map(|_| request(&mut rng)).collect();
                let alone: Vec<Answer> = requests
                    .iter()
                    .map(|r| answer(&model.generate(r, |_| {}).unwrap()))
                    .collect();
                // All at once, then arriving at random steps.
                let at_once = vec![0; requests.len()];
                let staggered: Vec<usize> =
                    (0..requests.len()).map(|_| rng.gen_range(0..30)).collect();
                for arrivals in [at_once, staggered] {
                    let (batched, max_batch) =
                        run_batched(&model, SchedulerConfig::default(), &requests, &arrivals);
                    assert!(
                        max_batch > 1,
                        "{dtype:?} round {round}: sequences shared steps"
                    );
                    for (i, output) in batched.iter().enumerate() {
                        assert_eq!(
                            answer(output.as_ref().unwrap()),
                            alone[i],
                            "{dtype:?} round {round}, sequence {i}, arrivals {arrivals:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_cache_budget_admits_what_fits_and_refuses_what_never_can() {
        let model = tiny(GgmlDType::Q8_0);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let requests: Vec<GenerateRequest> = (0..4)
            .map(|_| GenerateRequest {
                max_tokens: 20,
                ..request(&mut rng)
            })
            .collect();
        let largest = requests
            .iter()
            .map(|r| Scheduler::worst_case_kv_bytes(&model, r))
            .max()
            .unwrap();
        // Room for one sequence at a time: all finish, one after another, same answers.
        let one_at_a_time = SchedulerConfig {
            kv_budget_bytes: largest,
            ..Default::default()
        };
        let (outputs, max_batch) = run_batched(&model, one_at_a_time, &requests, &[0; 4]);
        assert_eq!(max_batch, 1);
        for (output, request) in outputs.iter().zip(&requests) {
            assert_eq!(
                answer(output.as_ref().unwrap()),
                answer(&model.generate(request, |_| {}).unwrap())
            );
        }
        let too_small = SchedulerConfig {
            kv_budget_bytes: largest - 1,
            ..Default::default()
        };
        let widest = requests
            .iter()
            .position(|r| Scheduler::worst_case_kv_bytes(&model, r) == largest)
            .unwrap();
        let (outputs, _) = run_batched(&model, too_small, &requests[widest..=widest], &[0]);
        assert!(matches!(
            outputs[0],
            Err(EngineError::KvBudget { needed, budget }) if needed == largest && budget == largest - 1
        ));
    }

    #[test]
    fn bad_requests_fail_on_submit_and_cancelled_ones_stop() {
        let model = tiny(GgmlDType::Q8_0);
        let vocab = tiny_vocab_size() as u32;
        let base = GenerateRequest {
            prompt: vec![1, 2, 3],
            max_tokens: 200,
            sampling: Sampling::Greedy,
            stop_tokens: vec![],
            top_logprobs: 0,
        };
        let bad = [
            GenerateRequest {
                prompt: vec![],
                ..base.clone()
            },
            GenerateRequest {
                prompt: vec![vocab],
                ..base.clone()
            },
            GenerateRequest {
                prompt: vec![1; 300],
                ..base.clone()
            },
        ];
        let stats = Arc::new(EngineStats::default());
        let mut scheduler = Scheduler::new(&model, SchedulerConfig::default(), stats);
        let results: Results = Arc::new(Mutex::new((0..4).map(|_| None).collect()));
        for (slot, request) in bad.into_iter().enumerate() {
            scheduler.submit(job(request, slot, &results));
        }
        assert!(scheduler.is_idle(), "nothing invalid is queued");
        let cancel = Cancellation::new();
        let tokens = Arc::new(AtomicUsize::new(0));
        let (seen, done_results) = (tokens.clone(), results.clone());
        scheduler.submit(Job::Generate(GenerateJob {
            request: base,
            on_token: Box::new(move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            }),
            done: Box::new(move |outcome| done_results.lock().unwrap()[3] = Some(outcome)),
            cancel: cancel.clone(),
        }));
        for _ in 0..5 {
            scheduler.step();
        }
        cancel.cancel();
        scheduler.step();
        assert!(scheduler.is_idle());
        let results = results.lock().unwrap();
        assert!(matches!(results[0], Some(Err(EngineError::EmptyPrompt))));
        assert!(matches!(
            results[1],
            Some(Err(EngineError::TokenOutOfRange { .. }))
        ));
        assert!(matches!(
            results[2],
            Some(Err(EngineError::ContextOverflow { .. }))
        ));
        assert!(matches!(results[3], Some(Err(EngineError::Cancelled))));
        assert_eq!(
            tokens.load(Ordering::Relaxed),
            5,
            "one token per step until cancelled"
        );
    }

    #[test]
    fn forward_jobs_in_a_batch_match_forward_layers_alone() {
        let model = tiny(GgmlDType::Q4_1);
        let prompt: Vec<u32> = (0..150).map(|i| (i * 7 % 200) as u32).collect();
        let hidden = model.embed(&prompt).unwrap();
        let mut alone_cache = model.new_cache(1..4);
        let alone = model
            .forward_layers(&hidden, 1..4, 0, &mut alone_cache)
            .unwrap()
            .to_vec()
            .unwrap();
        let stats = Arc::new(EngineStats::default());
        let mut scheduler = Scheduler::new(&model, SchedulerConfig::default(), stats.clone());
        let results: Results = Arc::new(Mutex::new((0..2).map(|_| None).collect()));
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for slot in 0..2 {
            scheduler.submit(job(
                GenerateRequest {
                    max_tokens: 10,
                    ..request(&mut rng)
                },
                slot,
                &results,
            ));
        }
        let forwarded = Arc::new(Mutex::new(None));
        let out = forwarded.clone();
        scheduler.submit(Job::Forward(ForwardJob {
            hidden: Hidden::from_vec(hidden.to_vec().unwrap(), 64).unwrap(),
            layers: 1..4,
            position: 0,
            cache: model.new_cache(1..4),
            done: Box::new(move |hidden, cache| {
                *out.lock().unwrap() = Some((hidden.unwrap().to_vec().unwrap(), cache.len()))
            }),
        }));
        while !scheduler.is_idle() {
            scheduler.step();
        }
        let (values, cached) = forwarded.lock().unwrap().take().unwrap();
        assert_eq!(cached, 150);
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(stats.max_batch.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn the_engine_thread_serves_concurrent_callers() {
        let model = Arc::new(tiny(GgmlDType::Q8_0));
        let engine = crate::Engine::start(model.clone(), SchedulerConfig::default());
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let requests: Vec<GenerateRequest> = (0..6).map(|_| request(&mut rng)).collect();
        let handles: Vec<_> = requests
            .iter()
            .cloned()
            .map(|request| {
                let engine = engine.clone();
                std::thread::spawn(move || engine.generate_blocking(request, |_| {}))
            })
            .collect();
        for (handle, request) in handles.into_iter().zip(&requests) {
            let output = handle.join().unwrap().unwrap();
            assert_eq!(
                answer(&output),
                answer(&model.generate(request, |_| {}).unwrap())
            );
        }
        // Stats are published after each step, so just after the last answer was handed over.
        let stats = engine.stats();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stats.running.load(Ordering::Relaxed) != 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(stats.running.load(Ordering::Relaxed), 0);
        assert_eq!(stats.kv_reserved_bytes.load(Ordering::Relaxed), 0);
    }
}

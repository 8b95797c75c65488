//! Counters and gauges the node exports in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nesa_engine::EngineStats;

/// The node runner's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Sortition tickets the market accepted from this node.
    pub tickets_submitted: AtomicU64,
    /// Draws of queries not entered: the work queue could not take the query on.
    pub draws_declined: AtomicU64,
    /// Draw transactions sent (as leader or as backup).
    pub draws_sent: AtomicU64,
    pub queries_assigned: AtomicU64,
    pub queries_served: AtomicU64,
    pub queries_failed: AtomicU64,
    pub tokens_generated: AtomicU64,
    pub commits_sent: AtomicU64,
    pub reveals_sent: AtomicU64,
    pub settles_sent: AtomicU64,
    pub slashes: AtomicU64,
    pub paid_unes: AtomicU64,
    pub block_height: AtomicU64,
    /// Queries not started because the queue was full or the commit deadline too close.
    pub queries_declined: AtomicU64,
    /// Queries given up after repeated failures.
    pub queries_abandoned: AtomicU64,
    /// Queries waiting for the engine (gauge).
    pub queue_length: AtomicU64,
    /// Generations running now (gauge).
    pub jobs_in_flight: AtomicU64,
    /// The engine's batching counters, once it runs.
    pub engine: OnceLock<Arc<EngineStats>>,
    latencies: Mutex<Latencies>,
}

#[derive(Default)]
struct Latencies {
    decode_tokens_per_second: f64,
    commit_seconds_sum: f64,
    commit_count: u64,
    reveal_seconds_sum: f64,
    reveal_count: u64,
}

impl Metrics {
    /// Records the decode speed of the last generation.
    pub fn record_speed(&self, tokens_per_second: f64) {
        self.latencies
            .lock()
            .expect("metrics lock")
            .decode_tokens_per_second = tokens_per_second;
    }

    /// Records how long after assignment a commit was sent.
    pub fn record_commit_latency(&self, seconds: f64) {
        let mut l = self.latencies.lock().expect("metrics lock");
        l.commit_seconds_sum += seconds;
        l.commit_count += 1;
    }

    /// Records how long after the reveal window opened a reveal was sent.
    pub fn record_reveal_latency(&self, seconds: f64) {
        let mut l = self.latencies.lock().expect("metrics lock");
        l.reveal_seconds_sum += seconds;
        l.reveal_count += 1;
    }

    /// The Prometheus exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "nesa_node_tickets_total",
            "Sortition tickets the market accepted from this node.",
            load(&self.tickets_submitted),
        );
        counter(
            &mut out,
            "nesa_node_draws_declined_total",
            "Query draws not entered: the work queue could not take the query on.",
            load(&self.draws_declined),
        );
        counter(
            &mut out,
            "nesa_node_draws_total",
            "Draw transactions sent.",
            load(&self.draws_sent),
        );
        counter(
            &mut out,
            "nesa_node_queries_assigned_total",
            "Queries assigned to this node.",
            load(&self.queries_assigned),
        );
        counter(
            &mut out,
            "nesa_node_queries_served_total",
            "Queries this node generated a result for.",
            load(&self.queries_served),
        );
        counter(
            &mut out,
            "nesa_node_queries_failed_total",
            "Queries whose generation failed.",
            load(&self.queries_failed),
        );
        counter(
            &mut out,
            "nesa_node_tokens_generated_total",
            "Tokens generated for queries.",
            load(&self.tokens_generated),
        );
        counter(
            &mut out,
            "nesa_node_commits_total",
            "Commit transactions sent.",
            load(&self.commits_sent),
        );
        counter(
            &mut out,
            "nesa_node_reveals_total",
            "Reveal transactions sent.",
            load(&self.reveals_sent),
        );
        counter(
            &mut out,
            "nesa_node_settles_total",
            "Settle transactions sent.",
            load(&self.settles_sent),
        );
        counter(
            &mut out,
            "nesa_node_slashes_total",
            "Times this node was slashed.",
            load(&self.slashes),
        );
        counter(
            &mut out,
            "nesa_node_paid_unes_total",
            "unes paid to this node for queries.",
            load(&self.paid_unes),
        );
        counter(
            &mut out,
            "nesa_node_queries_declined_total",
            "Queries not started: work queue full or commit deadline too close.",
            load(&self.queries_declined),
        );
        counter(
            &mut out,
            "nesa_node_queries_abandoned_total",
            "Queries given up after repeated failures.",
            load(&self.queries_abandoned),
        );
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "nesa_node_block_height",
            "Latest block seen.",
            load(&self.block_height),
        );
        gauge(
            &mut out,
            "nesa_node_queue_length",
            "Queries waiting for the engine.",
            load(&self.queue_length),
        );
        gauge(
            &mut out,
            "nesa_node_jobs_in_flight",
            "Generations running now.",
            load(&self.jobs_in_flight),
        );
        if let Some(engine) = self.engine.get() {
            render_engine(&mut out, engine);
        }
        let l = self.latencies.lock().expect("metrics lock");
        let _ = writeln!(
            out,
            "# HELP nesa_node_decode_tokens_per_second Decode speed of the last query.\n# TYPE nesa_node_decode_tokens_per_second gauge\nnesa_node_decode_tokens_per_second {:.2}",
            l.decode_tokens_per_second
        );
        for (name, help, sum, count) in [
            (
                "nesa_node_commit_latency_seconds",
                "From assignment to commit sent.",
                l.commit_seconds_sum,
                l.commit_count,
            ),
            (
                "nesa_node_reveal_latency_seconds",
                "From reveal window open to reveal sent.",
                l.reveal_seconds_sum,
                l.reveal_count,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {sum:.3}\n{name}_count {count}");
        }
        out
    }
}

/// The engine's batch, queue and cache figures.
fn render_engine(out: &mut String, stats: &EngineStats) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let size = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u64;
    for (kind, name, help, value) in [
        ("counter", "nesa_engine_steps_total", "Batched forward passes run.", load(&stats.steps)),
        ("counter", "nesa_engine_step_sequences_total", "Sum over steps of the sequences in each (divided by nesa_engine_steps_total: the mean batch size).", load(&stats.step_sequences)),
        ("gauge", "nesa_engine_batch_size", "Sequences in the last forward pass.", size(&stats.last_batch)),
        ("gauge", "nesa_engine_batch_size_max", "Most sequences seen in one forward pass.", size(&stats.max_batch)),
        ("gauge", "nesa_engine_sequences_running", "Sequences admitted to the batch and not finished.", size(&stats.running)),
        ("gauge", "nesa_engine_sequences_waiting", "Generations waiting for key/value memory or a batch place.", size(&stats.waiting)),
        ("gauge", "nesa_engine_kv_reserved_bytes", "Key/value cache bytes reserved by the running generations (their worst case).", size(&stats.kv_reserved_bytes)),
        ("gauge", "nesa_engine_kv_budget_bytes", "Key/value cache budget of the engine.", size(&stats.kv_budget_bytes)),
        ("counter", "nesa_engine_prompt_tokens_total", "Prompt positions processed.", load(&stats.prompt_tokens)),
        ("counter", "nesa_engine_generated_tokens_total", "Tokens generated, all callers together.", load(&stats.generated_tokens)),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_lists_every_metric_with_its_type() {
        let metrics = Metrics::default();
        metrics.queries_served.fetch_add(2, Ordering::Relaxed);
        metrics.record_commit_latency(1.5);
        let text = metrics.render();
        assert!(text.contains(
            "# TYPE nesa_node_queries_served_total counter\nnesa_node_queries_served_total 2"
        ));
        assert!(text.contains(
            "nesa_node_commit_latency_seconds_sum 1.500\nnesa_node_commit_latency_seconds_count 1"
        ));
        assert!(text.contains("nesa_node_slashes_total 0"));
        assert!(text.contains("# TYPE nesa_node_tickets_total counter\nnesa_node_tickets_total 0"));
        assert!(text.contains("nesa_node_draws_total 0"));
    }

    #[test]
    fn the_exposition_reports_the_work_queue() {
        let metrics = Metrics::default();
        metrics.queue_length.store(3, Ordering::Relaxed);
        metrics.jobs_in_flight.store(1, Ordering::Relaxed);
        metrics.queries_declined.fetch_add(2, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains("# TYPE nesa_node_queue_length gauge\nnesa_node_queue_length 3"));
        assert!(text.contains("# TYPE nesa_node_jobs_in_flight gauge\nnesa_node_jobs_in_flight 1"));
        assert!(text.contains("nesa_node_queries_declined_total 2"));
        assert!(text.contains("nesa_node_queries_abandoned_total 0"));
    }

    #[test]
    fn the_exposition_reports_the_engines_batches_and_cache() {
        let metrics = Metrics::default();
        assert!(!metrics.render().contains("nesa_engine_"), "no engine yet");
        let stats = Arc::new(EngineStats::default());
        stats.max_batch.store(6, Ordering::Relaxed);
        stats.kv_budget_bytes.store(1 << 29, Ordering::Relaxed);
        stats.steps.fetch_add(10, Ordering::Relaxed);
        let _ = metrics.engine.set(stats);
        let text = metrics.render();
        assert!(
            text.contains("# TYPE nesa_engine_batch_size_max gauge\nnesa_engine_batch_size_max 6")
        );
        assert!(text.contains("nesa_engine_kv_budget_bytes 536870912"));
        assert!(text.contains("# TYPE nesa_engine_steps_total counter\nnesa_engine_steps_total 10"));
    }
}

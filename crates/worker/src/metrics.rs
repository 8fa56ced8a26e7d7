//! The worker's metrics (listed in docs/metrics.md). Labels are bounded:
//! tool names, limit keys and outcome kinds — never job ids or args.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Counters, gauges and histograms of one worker.
#[derive(Clone)]
pub(crate) struct WorkerMetrics {
    /// Tasks answered by this worker, by tool and outcome (`ok` or the error kind).
    pub(crate) tasks: IntCounterVec,
    /// Seconds a tool ran, by tool.
    pub(crate) run_seconds: HistogramVec,
    /// Seconds from a task's dispatch to its tool's start, by tool.
    pub(crate) queue_wait_seconds: HistogramVec,
    /// Tool starts (attempts), by tool.
    pub(crate) attempts: IntCounterVec,
    /// Attempts that failed retryably and were handed back for a retry, by tool.
    pub(crate) retries: IntCounterVec,
    /// Tools running now, by tool.
    pub(crate) in_flight_by_tool: IntGaugeVec,
    /// Tools running now on this worker.
    pub(crate) in_flight: IntGauge,
    /// Tasks stopped because their job ended (cancel, policy, deadline), by tool.
    pub(crate) aborted: IntCounterVec,
    /// Times a task was told to wait by a limit, by the key that denied it.
    pub(crate) limit_waits: IntCounterVec,
    /// Of those, denials by a concurrency cap, by key.
    pub(crate) lease_denials: IntCounterVec,
    /// Seconds tasks spent waiting for their limits, by the last key that held them.
    pub(crate) limit_wait_seconds: HistogramVec,
    /// Limiter calls that found Redis unreachable, by what the task did (`fail_closed`: waited, `fail_open`: ran).
    pub(crate) limits_unavailable: IntCounterVec,
    /// Cuts of a key's fleet-wide effective rate after a backend's "too many", by key.
    pub(crate) limit_backoffs: IntCounterVec,
    /// Units by which real costs reported after calls corrected their
    /// estimates, by key and direction (`debit`: cost more, `credit`: less).
    pub(crate) limit_charged_units: IntCounterVec,
    /// Reconnects to NATS.
    pub(crate) nats_reconnects: IntCounter,
    /// Cached calls by what the cache did: `hit` (a stored outcome),
    /// `miss` (this call ran the tool), `joined` (it waited for a running
    /// call's outcome), `unavailable` (no cache or Redis down: it ran uncached).
    pub(crate) cache: IntCounterVec,
    /// Prefetched calls by what became of them: `ran`, `unclaimed`
    /// (cancelled: nobody claimed it within its TTL), `skipped` (already
    /// stored or running elsewhere).
    pub(crate) prefetch: IntCounterVec,
    /// Items per call of a batch tool's handler, by tool.
    pub(crate) batch_size: HistogramVec,
}

const SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

impl WorkerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        fn add<M: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            m: M,
        ) -> Result<M, prometheus::Error> {
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        }
        let counters = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(SECONDS.to_vec()),
                labels,
            )
        };
        Ok(Self {
            tasks: add(
                registry,
                counters(
                    "toolfan_tasks_total",
                    "Tasks answered by this worker, by tool and outcome.",
                    &["tool", "outcome"],
                )?,
            )?,
            run_seconds: add(
                registry,
                histogram("toolfan_task_run_seconds", "Seconds a tool ran.", &["tool"])?,
            )?,
            queue_wait_seconds: add(
                registry,
                histogram(
                    "toolfan_task_queue_wait_seconds",
                    "Seconds from a task's dispatch to its tool's start.",
                    &["tool"],
                )?,
            )?,
            attempts: add(
                registry,
                counters("toolfan_task_attempts_total", "Tool starts.", &["tool"])?,
            )?,
            retries: add(
                registry,
                counters(
                    "toolfan_task_retries_total",
                    "Retryable failures handed back for another attempt.",
                    &["tool"],
                )?,
            )?,
            in_flight_by_tool: add(
                registry,
                IntGaugeVec::new(
                    Opts::new("toolfan_tool_in_flight", "Tools running now, by tool."),
                    &["tool"],
                )?,
            )?,
            in_flight: add(
                registry,
                IntGauge::new(
                    "toolfan_worker_in_flight",
                    "Tools running now on this worker.",
                )?,
            )?,
            aborted: add(
                registry,
                counters(
                    "toolfan_tasks_aborted_total",
                    "Tasks stopped because their job ended.",
                    &["tool"],
                )?,
            )?,
            limit_waits: add(
                registry,
                counters(
                    "toolfan_limit_waits_total",
                    "Times a limit told a task to wait, by the key that denied it.",
                    &["key"],
                )?,
            )?,
            lease_denials: add(
                registry,
                counters(
                    "toolfan_lease_denials_total",
                    "Waits caused by a concurrency cap, by key.",
                    &["key"],
                )?,
            )?,
            limit_wait_seconds: add(
                registry,
                histogram(
                    "toolfan_limit_wait_seconds",
                    "Seconds tasks waited for their limits.",
                    &["key"],
                )?,
            )?,
            limits_unavailable: add(
                registry,
                counters(
                    "toolfan_limits_unavailable_total",
                    "Limiter calls that found Redis unreachable, by what the task did.",
                    &["mode"],
                )?,
            )?,
            limit_backoffs: add(
                registry,
                counters(
                    "toolfan_limit_backoffs_total",
                    "Cuts of a key's fleet-wide effective rate after a backend said too many, by key.",
                    &["key"],
                )?,
            )?,
            limit_charged_units: add(
                registry,
                counters(
                    "toolfan_limit_charged_units_total",
                    "Units by which real costs corrected estimates after calls, by key and direction.",
                    &["key", "direction"],
                )?,
            )?,
            nats_reconnects: add(
                registry,
                IntCounter::new("toolfan_nats_reconnects_total", "Reconnects to NATS.")?,
            )?,
            cache: add(
                registry,
                counters(
                    "toolfan_cache_total",
                    "Cached calls by what the cache did (hit, miss, joined, unavailable).",
                    &["tool", "outcome"],
                )?,
            )?,
            prefetch: add(
                registry,
                counters(
                    "toolfan_prefetch_total",
                    "Prefetched calls by what became of them (ran, unclaimed, skipped).",
                    &["tool", "outcome"],
                )?,
            )?,
            batch_size: add(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "toolfan_batch_size",
                        "Items per call of a batch tool's handler.",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                    &["tool"],
                )?,
            )?,
        })
    }
}

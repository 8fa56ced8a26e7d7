//! The coordinator's metrics (listed in docs/metrics.md). Labels are bounded:
//! policies, statuses, outcome kinds — never job ids or args.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Counters and histograms of one coordinator.
#[derive(Clone)]
pub struct CoordinatorMetrics {
    /// Jobs accepted, by policy.
    pub jobs_submitted: IntCounterVec,
    /// Jobs refused as invalid.
    pub jobs_refused: IntCounter,
    /// Jobs answered, by status, policy and what ended them.
    pub jobs_completed: IntCounterVec,
    /// Time from submission to answer, by policy.
    pub job_duration: HistogramVec,
    /// Jobs live on this coordinator.
    pub live_jobs: IntGauge,
    /// First results per task, by outcome (`ok` or the error kind).
    pub task_results: IntCounterVec,
    /// Tasks answered `deadline_exceeded` by this coordinator.
    pub deadline_misses: IntCounter,
    /// Tasks answered `cancelled` by this coordinator (cancel, policy, caller gone).
    pub tasks_cancelled: IntCounter,
    /// Results dropped because their task already had one.
    pub duplicate_results: IntCounter,
    /// Jobs taken over from a coordinator that died.
    pub jobs_taken_over: IntCounter,
    /// Reconnects to NATS.
    pub nats_reconnects: IntCounter,
    /// Redeliveries of a job this coordinator was running (its ack wait
    /// lapsed); the job runs on.
    pub jobs_redelivered_live: IntCounter,
    /// Tasks the safety net found lost (no result, message gone from the
    /// tasks stream) and dispatched again.
    pub tasks_redispatched: IntCounter,
    /// Overdue tasks the safety net looked up in the tasks stream.
    pub net_looks: IntCounter,
    /// Task dispatches and verdicts queued to be published.
    pub publishes_waiting: IntGauge,
    /// Publishes awaiting their JetStream acks.
    pub publishes_in_flight: IntGauge,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl CoordinatorMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let job_duration = HistogramVec::new(
            HistogramOpts::new(
                "toolfan_job_duration_seconds",
                "Time from a job's submission to its answer.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["policy"],
        )?;
        registry.register(Box::new(job_duration.clone()))?;
        let live_jobs = IntGauge::new("toolfan_live_jobs", "Jobs live on this coordinator.")?;
        registry.register(Box::new(live_jobs.clone()))?;
        Ok(Self {
            jobs_submitted: counter_vec(
                registry,
                "toolfan_jobs_submitted_total",
                "Jobs accepted, by policy.",
                &["policy"],
            )?,
            jobs_refused: counter(
                registry,
                "toolfan_jobs_refused_total",
                "Jobs refused as invalid.",
            )?,
            jobs_completed: counter_vec(
                registry,
                "toolfan_jobs_completed_total",
                "Jobs answered, by status, policy and what ended them.",
                &["status", "policy", "ended_by"],
            )?,
            job_duration,
            live_jobs,
            task_results: counter_vec(
                registry,
                "toolfan_task_results_total",
                "First result of each task, by outcome (ok or the error kind).",
                &["outcome"],
            )?,
            deadline_misses: counter(
                registry,
                "toolfan_deadline_misses_total",
                "Tasks answered deadline_exceeded by the coordinator.",
            )?,
            tasks_cancelled: counter(
                registry,
                "toolfan_tasks_cancelled_total",
                "Tasks answered cancelled by the coordinator.",
            )?,
            duplicate_results: counter(
                registry,
                "toolfan_duplicate_results_total",
                "Results dropped because their task already had one.",
            )?,
            jobs_taken_over: counter(
                registry,
                "toolfan_jobs_taken_over_total",
                "Jobs taken over from a coordinator that died.",
            )?,
            nats_reconnects: counter(
                registry,
                "toolfan_nats_reconnects_total",
                "Reconnects to NATS.",
            )?,
            jobs_redelivered_live: counter(
                registry,
                "toolfan_jobs_redelivered_live_total",
                "Redeliveries of a job this coordinator was still running.",
            )?,
            tasks_redispatched: counter(
                registry,
                "toolfan_tasks_redispatched_total",
                "Tasks found lost (no result, message gone from the tasks stream) and dispatched again.",
            )?,
            net_looks: counter(
                registry,
                "toolfan_net_looks_total",
                "Overdue tasks looked up in the tasks stream by the safety net.",
            )?,
            publishes_waiting: gauge(
                registry,
                "toolfan_publishes_waiting",
                "Task dispatches and verdicts queued to be published.",
            )?,
            publishes_in_flight: gauge(
                registry,
                "toolfan_publishes_in_flight",
                "JetStream publishes awaiting their acks.",
            )?,
        })
    }
}

/// The label of a policy.
pub(crate) fn policy_label(policy: toolfan_protocol::Policy) -> &'static str {
    use toolfan_protocol::Policy;
    match policy {
        Policy::All => "all",
        Policy::FailFast => "fail_fast",
        Policy::FirstOk => "first_ok",
        Policy::Quorum(_) => "quorum",
    }
}

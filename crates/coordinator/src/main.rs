//! `toolfan-coordinator`: takes jobs, dispatches tasks, answers callers.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use toolfan_coordinator::{CoordinatorOptions, FairOptions};
use toolfan_protocol::{JobLimits, Subjects};
use toolfan_telemetry::{MetricsAddr, ServiceArgs};

/// Takes toolfan jobs from JetStream, fans their tasks out to the workers and
/// answers each caller in order by its deadline.
/// Where /metrics is served unless told otherwise.
const DEFAULT_METRICS_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9470);

#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    /// Most tasks in one job.
    #[arg(long, env = "TOOLFAN_MAX_TASKS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_tasks: u64,
    /// Largest job body in bytes.
    #[arg(long, env = "TOOLFAN_MAX_JOB_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_job_bytes: u64,
    /// Largest args of one task, in bytes of JSON.
    #[arg(long, env = "TOOLFAN_MAX_ARGS_BYTES", default_value_t = 256 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_args_bytes: u64,
    /// Most jobs run at once by this coordinator.
    #[arg(long, env = "TOOLFAN_MAX_LIVE_JOBS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_live_jobs: u64,
    /// Most JetStream publishes (dispatches and verdicts of all jobs)
    /// awaiting their acks at once.
    #[arg(long, env = "TOOLFAN_MAX_PUBLISHES_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_publishes_in_flight: u64,
    /// Seconds an answered job's results stay in the stream after its
    /// deadline, for a client that missed events to read them.
    #[arg(long, env = "TOOLFAN_RESULTS_KEEP_S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    results_keep_s: u64,
    /// Seconds a shutdown waits for live jobs before handing them back.
    #[arg(long, env = "TOOLFAN_DRAIN_TIMEOUT", default_value_t = 10)]
    drain_timeout: u64,
    /// Serve /metrics, /healthz and /readyz on this address; `off` to
    /// disable. Default: 127.0.0.1:9470, or if another service on this host
    /// has it, the next free port (logged); a given address that is taken
    /// fails.
    #[arg(long, env = "TOOLFAN_METRICS_ADDR")]
    metrics_addr: Option<MetricsAddr>,
    /// The limits store, where callers' fair-share weights and caps are
    /// read (`toolfan limits set caller:NAME --weight 2 --concurrency 200`);
    /// without it every caller weighs 1.
    #[arg(long, env = "TOOLFAN_REDIS_URL")]
    redis_url: Option<String>,
    /// Tasks queued for a tool beyond the fleet's slots for it, as a
    /// fraction of them (at least 8): keeps workers fed between a result
    /// and the next dispatch; a caller arriving at a busy fleet waits
    /// behind about this many tasks' worth of the queue.
    #[arg(long, env = "TOOLFAN_FAIR_SLACK", default_value_t = 1.0, value_parser = slack)]
    fair_slack: f64,
    /// Dispatch every job up to its own window, first come first served,
    /// instead of sharing the fleet fairly between callers.
    #[arg(long, env = "TOOLFAN_NO_FAIR")]
    no_fair: bool,
}

fn slack(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 0 to 100")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Flushes the last spans when main returns.
    let _traces = toolfan_telemetry::logging::init(args.service.log_format, "toolfan-coordinator");
    let options = CoordinatorOptions {
        nats_url: args.service.nats_url.clone(),
        nats_auth: args.service.auth.to_auth(),
        subjects: Subjects::new(&args.service.prefix)?,
        limits: JobLimits {
            max_tasks: args.max_tasks as usize,
            max_job_bytes: args.max_job_bytes as usize,
            max_args_bytes: args.max_args_bytes as usize,
            ..JobLimits::default()
        },
        max_live_jobs: args.max_live_jobs as usize,
        max_publishes_in_flight: args.max_publishes_in_flight as usize,
        results_keep: Duration::from_secs(args.results_keep_s),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        metrics_addr: args
            .metrics_addr
            .map_or(Some(DEFAULT_METRICS_ADDR), |a| a.0),
        metrics_addr_is_default: args.metrics_addr.is_none(),
        topology: args.service.topology(),
        fair: FairOptions {
            enabled: !args.no_fair,
            slack: args.fair_slack,
            ..FairOptions::default()
        },
        redis_url: args.redis_url,
        ..CoordinatorOptions::default()
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(toolfan_telemetry::shutdown_on_signal(shutdown.clone()));
    toolfan_coordinator::run(options, shutdown)
        .await
        .context("coordinator failed")
}

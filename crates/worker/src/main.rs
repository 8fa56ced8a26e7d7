//! `toolfan-worker`: a worker process serving the built-in tools.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::Subjects;
use toolfan_worker::builtin::{add_builtin, BUILTIN_TOOLS};
use toolfan_worker::{Worker, WorkerOptions};

/// Serves toolfan's built-in tools (sleep, echo, fail, flaky) to the fleet.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// NATS server URL.
    #[arg(
        long,
        env = "TOOLFAN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// Redis URL for fleet-wide rate limits and concurrency caps. Accepted
    /// for forward compatibility; this version enforces no Redis limits.
    #[arg(long, env = "TOOLFAN_REDIS_URL")]
    redis_url: Option<String>,
    /// How many tasks run at once.
    #[arg(long, env = "TOOLFAN_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// Comma-separated built-in tools to serve (default: all of them).
    #[arg(long, env = "TOOLFAN_TOOLS", value_delimiter = ',')]
    tools: Vec<String>,
    /// This worker's id in the fleet (default: w- and random hex).
    #[arg(long, env = "TOOLFAN_WORKER_ID")]
    id: Option<String>,
    /// Subject prefix.
    #[arg(long, env = "TOOLFAN_PREFIX", default_value = "toolfan")]
    prefix: String,
    /// Seconds a shutdown waits for running tasks.
    #[arg(long, env = "TOOLFAN_DRAIN_TIMEOUT", default_value_t = 30)]
    drain_timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut options = WorkerOptions {
        nats_url: args.nats_url,
        concurrency: args.concurrency,
        subjects: Subjects::new(&args.prefix)?,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..WorkerOptions::default()
    };
    if let Some(id) = args.id {
        options.id = id;
    }
    if args.redis_url.is_some() {
        tracing::info!("--redis-url is set; this version runs tools without Redis limits");
    }
    let names: Vec<String> = if args.tools.is_empty() {
        BUILTIN_TOOLS.iter().map(|s| s.to_string()).collect()
    } else {
        args.tools
    };
    let mut builder = Worker::builder().options(options);
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        builder = add_builtin(builder, name).map_err(anyhow::Error::msg)?;
    }
    let worker = builder.build()?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(shutdown.clone()));
    worker.run(shutdown).await.context("worker failed")
}

async fn shutdown_on_signal(token: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing running tasks");
    token.cancel();
}

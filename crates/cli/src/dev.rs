//! `toolfan dev`: a whole cluster on this machine — nats-server, redis-server,
//! a coordinator and workers — and a demo fan-out through it.

use clap::Args;
use toolfan_tools::builtin::BUILTIN_TOOLS;

use crate::local::{LocalCluster, LocalOptions};

/// Options of `toolfan dev`.
#[derive(Args, Debug)]
pub(crate) struct DevArgs {
    /// How many workers to run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Tasks each worker runs at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Use this NATS server (with JetStream) instead of starting one.
    #[arg(long)]
    nats_url: Option<String>,
    /// Use this Redis server instead of starting one.
    #[arg(long)]
    redis_url: Option<String>,
    /// Keep the cluster up after the demo, for `toolfan submit`, until Ctrl-C or SIGTERM.
    #[arg(long)]
    keep: bool,
    /// Skip the demo fan-out (with --keep: just run the cluster).
    #[arg(long)]
    no_demo: bool,
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let options = LocalOptions {
        nats_url: args.nats_url.clone(),
        redis_url: args.redis_url.clone(),
        workers: args.workers,
        concurrency: args.concurrency,
    };
    let cluster = LocalCluster::start(&options, |b| b).await?;
    println!("toolfan dev cluster");
    println!("  NATS   {}  (JetStream)", cluster.nats_url);
    println!("  Redis  {}  (limits)", cluster.redis_url);
    println!(
        "  1 coordinator, {} workers × {} slots, tools: {}\n",
        args.workers,
        args.concurrency,
        BUILTIN_TOOLS.join(", ")
    );
    // Ctrl-C or SIGTERM at any point ends the run normally, so the servers
    // it started are stopped (killed on drop) instead of being left behind.
    let signalled = tokio_util::sync::CancellationToken::new();
    tokio::spawn(toolfan_telemetry::shutdown_on_signal(signalled.clone()));
    let outcome = tokio::select! {
        outcome = demo_and_keep(&args, &cluster) => outcome,
        _ = signalled.cancelled() => {
            println!("\nstopping the dev cluster");
            Ok(())
        }
    };
    cluster.stop().await;
    outcome
}

async fn demo_and_keep(args: &DevArgs, cluster: &LocalCluster) -> anyhow::Result<()> {
    if !args.no_demo {
        crate::demo::run(&cluster.client).await?;
    }
    if args.keep {
        println!("\nThe cluster is up. In another terminal:");
        println!("  export TOOLFAN_NATS_URL={}", cluster.nats_url);
        println!("  export TOOLFAN_REDIS_URL={}", cluster.redis_url);
        println!("  cargo run -q --release -p toolfan-cli -- submit examples/job.json");
        println!("  cargo run -q --release -p toolfan-cli -- limits set global 20/s --burst 5");
        println!("Press Ctrl-C (or send SIGTERM) to stop it.");
        std::future::pending::<()>().await;
    }
    Ok(())
}

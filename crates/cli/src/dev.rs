//! `toolfan dev`: a whole cluster on this machine — nats-server, redis-server,
//! a coordinator and workers — and a demo fan-out through it.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions};
use toolfan_coordinator::CoordinatorOptions;
use toolfan_testkit::{NatsServer, RedisServer};
use toolfan_worker::builtin::{add_builtin, BUILTIN_TOOLS};
use toolfan_worker::Worker;

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
    /// Keep the cluster up after the demo, for `toolfan submit`, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Skip the demo fan-out (with --keep: just run the cluster).
    #[arg(long)]
    no_demo: bool,
}

/// Servers this command started; they stop when it is dropped.
struct Servers {
    _nats: Option<NatsServer>,
    _redis: Option<RedisServer>,
    nats_url: String,
    redis_url: String,
}

fn start_servers(args: &DevArgs) -> anyhow::Result<Servers> {
    let (nats, nats_url) = match &args.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = NatsServer::start().context("cannot start nats-server")?;
            let url = server.url();
            (Some(server), url)
        }
    };
    let (redis, redis_url) = match &args.redis_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = RedisServer::start().context("cannot start redis-server")?;
            let url = server.url();
            (Some(server), url)
        }
    };
    Ok(Servers {
        _nats: nats,
        _redis: redis,
        nats_url,
        redis_url,
    })
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let servers = start_servers(&args)?;
    // Ctrl-C at any point ends the run normally, so the servers it started
    // are stopped on the way out instead of being left behind.
    tokio::select! {
        outcome = run_cluster(&args, &servers) => outcome,
        _ = tokio::signal::ctrl_c() => {
            println!("\nstopping the dev cluster");
            Ok(())
        }
    }
}

async fn run_cluster(args: &DevArgs, servers: &Servers) -> anyhow::Result<()> {
    println!("toolfan dev cluster");
    println!("  NATS   {}  (JetStream)", servers.nats_url);
    println!("  Redis  {}", servers.redis_url);

    let shutdown = CancellationToken::new();
    let coordinator = tokio::spawn(toolfan_coordinator::run(
        CoordinatorOptions {
            nats_url: servers.nats_url.clone(),
            ..CoordinatorOptions::default()
        },
        shutdown.clone(),
    ));
    let mut ids = Vec::new();
    let mut workers = Vec::new();
    for i in 1..=args.workers {
        let mut builder = Worker::builder()
            .nats_url(&servers.nats_url)
            .id(format!("dev-w{i}"))
            .concurrency(args.concurrency);
        for name in BUILTIN_TOOLS {
            builder = add_builtin(builder, name).map_err(anyhow::Error::msg)?;
        }
        let worker = builder.build()?;
        ids.push(worker.id().to_owned());
        workers.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    let client = Client::connect(ClientOptions::new(&servers.nats_url).caller("dev")?).await?;
    wait_for_workers(&client, &ids).await?;
    println!(
        "  1 coordinator, {} workers × {} slots, tools: {}\n",
        args.workers,
        args.concurrency,
        BUILTIN_TOOLS.join(", ")
    );

    if !args.no_demo {
        crate::demo::run(&client).await?;
    }
    if args.keep {
        println!("\nThe cluster is up. In another terminal:");
        println!("  export TOOLFAN_NATS_URL={}", servers.nats_url);
        println!("  cargo run -q --release -p toolfan-cli -- submit examples/job.json");
        println!("Press Ctrl-C to stop it.");
        std::future::pending::<()>().await;
    }

    shutdown.cancel();
    let stop = async {
        let _ = coordinator.await;
        for worker in workers {
            let _ = worker.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), stop).await;
    Ok(())
}

async fn wait_for_workers(client: &Client, ids: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let live = client.workers(Duration::from_millis(200)).await?;
        if ids.iter().all(|id| live.iter().any(|w| &w.id == id)) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            anyhow::bail!("the workers did not announce themselves within 15 s");
        }
    }
}

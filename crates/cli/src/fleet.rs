//! `toolfan workers` and `toolfan stats`: what the fleet and its queues look like.

use std::time::Duration;

use clap::Args;
use toolfan::{Client, ClientOptions};
use toolfan_protocol::Subjects;
use toolfan_telemetry::NatsAuthArgs;
use toolfan_transport::{Topology, TopologyOptions};

/// Where the cluster is.
#[derive(Args, Debug)]
pub(crate) struct FleetArgs {
    /// NATS server URL; several, comma-separated, for a cluster.
    #[arg(
        long,
        env = "TOOLFAN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// Subject prefix.
    #[arg(long, env = "TOOLFAN_PREFIX", default_value = "toolfan")]
    prefix: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// NATS credentials and TLS.
    #[command(flatten)]
    auth: NatsAuthArgs,
}

/// Lists live workers: id, host, tools, concurrency, in-flight.
pub(crate) async fn workers(args: FleetArgs) -> anyhow::Result<()> {
    let mut options = ClientOptions::new(&args.nats_url);
    options.subjects = Subjects::new(&args.prefix)?;
    options.auth = args.auth.to_auth();
    let client = Client::connect(options).await?;
    let workers = client.workers(Duration::from_millis(500)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&workers)?);
        return Ok(());
    }
    // Every worker listed answered this command's ping within the last 500 ms.
    println!(
        "{:<16} {:<16} {:>5} {:>9}  tools",
        "id", "host", "slots", "in flight"
    );
    for w in &workers {
        let tools: Vec<&str> = w.tools.iter().map(|t| t.as_str()).collect();
        println!(
            "{:<16} {:<16} {:>5} {:>9}  {}",
            w.id,
            w.host,
            w.concurrency,
            w.in_flight,
            tools.join(",")
        );
    }
    println!(
        "{} live worker(s), each heard within the last 0.5 s",
        workers.len()
    );
    Ok(())
}

/// Shows stream depths and, per consumer, queued / in-flight / redelivered.
pub(crate) async fn stats(args: FleetArgs) -> anyhow::Result<()> {
    let nats = toolfan_transport::connect_observed(
        &args.nats_url,
        "toolfan-cli stats",
        &args.auth.to_auth(),
        None,
    )
    .await?;
    let topology = Topology::new(
        nats,
        Subjects::new(&args.prefix)?,
        TopologyOptions::default(),
    );
    let (streams, consumers) = topology.stats().await?;
    if args.json {
        let streams: serde_json::Map<String, serde_json::Value> = streams
            .iter()
            .map(|(n, m)| (n.clone(), (*m).into()))
            .collect();
        let consumers: Vec<serde_json::Value> = consumers
            .iter()
            .map(|c| {
                serde_json::json!({"stream": c.stream, "consumer": c.name, "pending": c.pending,
                    "ack_pending": c.ack_pending, "redelivered": c.redelivered, "waiting": c.waiting})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"streams": streams, "consumers": consumers})
            )?
        );
        return Ok(());
    }
    for (name, messages) in &streams {
        println!("{name:<20} {messages:>10} messages");
    }
    println!();
    println!(
        "{:<16} {:<20} {:>9} {:>11} {:>11} {:>8}",
        "stream", "consumer", "queued", "in flight", "redelivered", "pullers"
    );
    for c in &consumers {
        println!(
            "{:<16} {:<20} {:>9} {:>11} {:>11} {:>8}",
            c.stream, c.name, c.pending, c.ack_pending, c.redelivered, c.waiting
        );
    }
    Ok(())
}

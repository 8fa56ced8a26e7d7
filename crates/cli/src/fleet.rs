//! `toolfan workers`, `toolfan tools` and `toolfan stats`: what the fleet,
//! its tools and its queues look like.

use std::time::Duration;

use clap::{Args, ValueEnum};
use toolfan::llm::{anthropic, openai};
use toolfan::{Client, ClientOptions};
use toolfan_protocol::Subjects;
use toolfan_telemetry::NatsAuthArgs;
use toolfan_transport::{ConsumerStats, StreamStats, Topology, TopologyOptions};

/// `toolfan workers` and `toolfan stats`' arguments.
#[derive(Args, Debug)]
pub(crate) struct FleetArgs {
    /// Where the cluster is.
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where the cluster is.
#[derive(Args, Debug)]
pub(crate) struct ClusterArgs {
    /// NATS server URL; several, comma-separated, for a cluster.
    #[arg(
        long,
        global = true,
        env = "TOOLFAN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub(crate) nats_url: String,
    /// Subject prefix.
    #[arg(long, global = true, env = "TOOLFAN_PREFIX", default_value = "toolfan")]
    pub(crate) prefix: String,
    /// NATS credentials and TLS.
    #[command(flatten)]
    pub(crate) auth: NatsAuthArgs,
}

/// How `toolfan tools` prints the tools.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ToolsFormat {
    /// Name, description and arguments, one tool per line.
    Table,
    /// toolfan's own descriptions (name, description, parameters).
    Json,
    /// The `tools` array of an OpenAI chat-completions request.
    Openai,
    /// The `tools` array of an Anthropic messages request.
    Anthropic,
}

/// `toolfan tools`' arguments.
#[derive(Args, Debug)]
pub(crate) struct ToolsArgs {
    /// Where the cluster is.
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: ToolsFormat,
    /// How long to collect workers' answers, in ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    listen_ms: u64,
}

async fn connect(args: &ClusterArgs) -> anyhow::Result<Client> {
    let mut options = ClientOptions::new(&args.nats_url);
    options.subjects = Subjects::new(&args.prefix)?;
    options.auth = args.auth.to_auth();
    Ok(Client::connect(options).await?)
}

/// Lists the tools the live workers serve, in the format an LLM API takes.
pub(crate) async fn tools(args: ToolsArgs) -> anyhow::Result<()> {
    let client = connect(&args.cluster).await?;
    let tools = client.tools(Duration::from_millis(args.listen_ms)).await?;
    let json = match args.format {
        ToolsFormat::Json => serde_json::to_string_pretty(&tools)?,
        ToolsFormat::Openai => serde_json::to_string_pretty(&openai::tool_definitions(&tools))?,
        ToolsFormat::Anthropic => {
            serde_json::to_string_pretty(&anthropic::tool_definitions(&tools))?
        }
        ToolsFormat::Table => {
            print!("{}", crate::table::tools_table(&tools));
            println!(
                "{} tool(s) served by the workers that answered within {} ms",
                tools.len(),
                args.listen_ms
            );
            return Ok(());
        }
    };
    println!("{json}");
    Ok(())
}

/// Lists live workers: id, host, tools, concurrency, in-flight.
pub(crate) async fn workers(args: FleetArgs) -> anyhow::Result<()> {
    let client = connect(&args.cluster).await?;
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
        &args.cluster.nats_url,
        "toolfan-cli stats",
        &args.cluster.auth.to_auth(),
        None,
    )
    .await?;
    let topology = Topology::new(
        nats,
        Subjects::new(&args.cluster.prefix)?,
        TopologyOptions::default(),
    );
    let (streams, consumers) = topology.stats().await?;
    if args.json {
        print_stats_json(&streams, &consumers)
    } else {
        print_stats_table(&streams, &consumers);
        Ok(())
    }
}

fn print_stats_json(streams: &[StreamStats], consumers: &[ConsumerStats]) -> anyhow::Result<()> {
    let streams: serde_json::Map<String, serde_json::Value> = streams
        .iter()
        .map(|s| {
            let value = serde_json::json!({"messages": s.messages, "bytes": s.bytes,
                "max_bytes": s.max_bytes, "consumers": s.consumers});
            (s.name.clone(), value)
        })
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
    Ok(())
}

fn print_stats_table(streams: &[StreamStats], consumers: &[ConsumerStats]) {
    println!(
        "{:<20} {:>10} {:>14} {:>14} {:>10}",
        "stream", "messages", "bytes", "max bytes", "consumers"
    );
    for s in streams {
        let max = if s.max_bytes < 0 {
            "unbounded".to_owned()
        } else {
            s.max_bytes.to_string()
        };
        println!(
            "{:<20} {:>10} {:>14} {:>14} {:>10}",
            s.name, s.messages, s.bytes, max, s.consumers
        );
    }
    println!();
    println!(
        "{:<16} {:<20} {:>9} {:>11} {:>11} {:>8}",
        "stream", "consumer", "queued", "in flight", "redelivered", "pullers"
    );
    for c in consumers {
        println!(
            "{:<16} {:<20} {:>9} {:>11} {:>11} {:>8}",
            c.stream, c.name, c.pending, c.ack_pending, c.redelivered, c.waiting
        );
    }
}

//! The flags every toolfan service takes.

use crate::{LogFormat, NatsAuthArgs};

/// Where a service connects and how it shares the JetStream topology.
#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// NATS server URL; several, comma-separated, for a cluster.
    #[arg(
        long,
        env = "TOOLFAN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Subject prefix.
    #[arg(long, env = "TOOLFAN_PREFIX", default_value = "toolfan")]
    pub prefix: String,
    /// Milliseconds a job (coordinator) or task (worker) may go unacknowledged
    /// before it moves on to another process: sets the shared consumers' ack
    /// wait. Live work sends progress every third of it.
    #[arg(long, env = "TOOLFAN_ACK_WAIT_MS", value_parser = clap::value_parser!(u64).range(500..=3_600_000))]
    pub ack_wait_ms: Option<u64>,
    /// Copies of each stream when this process creates them (3 on a
    /// three-node NATS cluster).
    #[arg(long, env = "TOOLFAN_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub stream_replicas: u64,
    /// Log format.
    #[arg(long, env = "TOOLFAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// NATS credentials and TLS.
    #[command(flatten)]
    pub auth: NatsAuthArgs,
}

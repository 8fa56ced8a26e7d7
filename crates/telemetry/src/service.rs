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
    /// Most bytes the results stream holds when this process creates it
    /// (or finds it unbounded); at the bound new results are refused and
    /// retried, never old ones of live jobs discarded.
    #[arg(long, env = "TOOLFAN_RESULTS_MAX_BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(1 << 20..=1 << 50))]
    pub results_max_bytes: u64,
    /// Seconds an outcome stays in the results stream at most (coordinators
    /// purge an answered job's outcomes sooner).
    #[arg(long, env = "TOOLFAN_RESULTS_MAX_AGE_S", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(10..=30 * 24 * 3600))]
    pub results_max_age_s: u64,
    /// Most bytes each of the jobs and tasks streams holds when this process
    /// creates it (or finds it unbounded); at the bound new jobs are refused
    /// with an error the caller sees.
    #[arg(long, env = "TOOLFAN_QUEUE_MAX_BYTES", default_value_t = 512 << 20, value_parser = clap::value_parser!(u64).range(1 << 20..=1 << 50))]
    pub queue_max_bytes: u64,
    /// Milliseconds a JetStream request or publish waits for its reply
    /// before it fails and is retried (a publish to a stream leader that
    /// just died is never answered: this is what it costs).
    #[arg(long, env = "TOOLFAN_NATS_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(200..=120_000))]
    pub nats_timeout_ms: u64,
    /// Log format.
    #[arg(long, env = "TOOLFAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// NATS credentials and TLS.
    #[command(flatten)]
    pub auth: NatsAuthArgs,
}

impl ServiceArgs {
    /// The stream and consumer settings these flags give.
    pub fn topology(&self) -> toolfan_transport::TopologyOptions {
        let mut topology = toolfan_transport::TopologyOptions {
            replicas: self.stream_replicas as usize,
            results_max_bytes: self.results_max_bytes as i64,
            results_max_age: std::time::Duration::from_secs(self.results_max_age_s),
            queue_max_bytes: self.queue_max_bytes as i64,
            request_timeout: std::time::Duration::from_millis(self.nats_timeout_ms),
            ..Default::default()
        };
        if let Some(ms) = self.ack_wait_ms {
            topology.ack_wait = std::time::Duration::from_millis(ms);
            topology.enforce_ack_wait = true;
        }
        topology
    }
}

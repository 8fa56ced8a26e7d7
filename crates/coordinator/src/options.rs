//! Where and how a coordinator runs: [`CoordinatorOptions`], their
//! defaults, and the check they pass before anything starts.

use std::time::Duration;

use toolfan_protocol::{JobLimits, Subjects};
use toolfan_transport::{NatsAuth, TopologyOptions};

use crate::error::CoordinatorError;
use crate::fair::FairOptions;

/// Where and how a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorOptions {
    /// NATS server URL.
    pub nats_url: String,
    /// NATS credentials and TLS.
    pub nats_auth: NatsAuth,
    /// Subject prefix (default `toolfan`).
    pub subjects: Subjects,
    /// Stream and consumer settings.
    pub topology: TopologyOptions,
    /// Bounds every job is held to.
    pub limits: JobLimits,
    /// Most jobs this coordinator runs at once; more wait in JetStream.
    pub max_live_jobs: usize,
    /// Most JetStream publishes (task dispatches and verdicts, across all
    /// jobs) awaiting their acks at once. Must stay below
    /// `topology.max_publishes_in_flight`.
    pub max_publishes_in_flight: usize,
    /// How long an answered job's results stay in the stream after its
    /// deadline (a client that missed events reads them from there); then
    /// they are purged with everything else no job needs.
    pub results_keep: Duration,
    /// A worker silent this long is taken for dead.
    pub worker_ttl: Duration,
    /// How long to listen for workers before taking the first job.
    pub registry_warmup: Duration,
    /// After a job's deadline, how long its own verdicts may take to come
    /// back through the results stream before it is answered from memory.
    pub deadline_grace: Duration,
    /// How long a shutdown waits for live jobs.
    pub drain_timeout: Duration,
    /// Where the metrics go.
    pub metrics: prometheus::Registry,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// If `metrics_addr`'s port is taken, serve on the next free one
    /// instead of failing (for a default address, not one the user gave).
    pub metrics_addr_is_default: bool,
    /// How the fleet is shared fairly between callers and their jobs.
    pub fair: FairOptions,
    /// The limits store, where callers' weights and caps are read
    /// (`caller:<name>` keys); without one every caller weighs 1.
    pub redis_url: Option<String>,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_auth: NatsAuth::default(),
            subjects: Subjects::default(),
            topology: TopologyOptions::default(),
            limits: JobLimits::default(),
            max_live_jobs: 1024,
            max_publishes_in_flight: 1024,
            results_keep: Duration::from_secs(30),
            worker_ttl: Duration::from_secs(3),
            registry_warmup: Duration::from_millis(300),
            deadline_grace: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
            metrics: prometheus::Registry::new(),
            metrics_addr: None,
            metrics_addr_is_default: false,
            fair: FairOptions::default(),
            redis_url: None,
        }
    }
}

impl CoordinatorOptions {
    /// Refuses options a coordinator cannot run with.
    pub(crate) fn check(&self) -> Result<(), CoordinatorError> {
        let invalid = |why: String| Err(CoordinatorError::Config(why));
        if self.max_live_jobs == 0 {
            return invalid("max_live_jobs must be at least 1".into());
        }
        let context_bound = self.topology.max_publishes_in_flight;
        if self.max_publishes_in_flight == 0 || self.max_publishes_in_flight > context_bound {
            return invalid(format!(
                "max_publishes_in_flight must be between 1 and the JetStream context's bound of {context_bound}, not {}",
                self.max_publishes_in_flight
            ));
        }
        Ok(())
    }
}

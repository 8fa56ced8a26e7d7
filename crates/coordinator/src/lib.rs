//! toolfan coordinator: takes jobs from JetStream, dispatches their tasks to
//! the worker fleet in a window, gathers the results (first per task wins),
//! enforces each job's deadline and answers the caller.
//!
//! It keeps nothing that a crash could lose: jobs stay in the jobs stream
//! until answered, task outcomes live in the results stream, and the
//! deadline counts from the moment JetStream stored the job. Run several
//! for availability; they share one durable consumer.
//!
//! # Layout
//! - [`run`] — the pull loop over the jobs stream (this file).
//! - `intake`: reading and validating a job message.
//! - `job`: one job message to its ack: refused, a redelivery of a live job, or run.
//! - `live`: a live job's loop, from dispatch to summary.
//! - `dispatch`: tasks out to the workers, verdicts to the results stream, aborts.
//! - `publisher`: every JetStream publish of the coordinator, bounded and
//!   shared fairly between jobs.
//! - `routes`: results (one consumer for all jobs), cancels, keepalives and
//!   redeliveries routed to their live job.
//! - `retention`: which results jobs still need; the rest purged below a
//!   fleet-wide floor.
//! - `net`: the safety net: a task past its time budget with no result is
//!   looked up in the tasks stream, and dispatched again if it was lost.
//! - `window`: which task is dispatched next.
//! - `gather`: which tasks have their result.
//! - `policy`: when a join policy ends a job early.
//! - `reply`: events to the caller.
//! - [`registry`] — the live view of workers and the tools they serve.
//! - [`metrics`] — what the coordinator counts (docs/metrics.md).

mod dispatch;
mod gather;
mod intake;
mod job;
mod live;
pub mod metrics;
mod net;
mod policy;
mod publisher;
pub mod registry;
mod reply;
mod retention;
mod routes;
mod window;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{JobLimits, Subjects};
use toolfan_transport::{pull_with_slots, NatsAuth, Topology, TopologyOptions, TransportError};

pub use metrics::CoordinatorMetrics;
pub use registry::Registry;

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
        }
    }
}

/// Why a coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The configuration is unusable.
    #[error("invalid coordinator configuration: {0}")]
    Config(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] toolfan_telemetry::http::ServeError),
}

/// What every job of a coordinator shares.
pub(crate) struct Shared {
    pub(crate) options: CoordinatorOptions,
    pub(crate) client: async_nats::Client,
    pub(crate) topology: Topology,
    pub(crate) registry: Arc<Registry>,
    /// The jobs consumer's ack wait: live jobs signal progress every third of it.
    pub(crate) job_ack_wait: Duration,
    /// Cancelled when the drain timeout passes: live jobs are handed back.
    pub(crate) abandon: CancellationToken,
    pub(crate) metrics: CoordinatorMetrics,
    pub(crate) publisher: publisher::Publisher,
    pub(crate) routes: Arc<routes::Routes>,
    pub(crate) retention: retention::Retention,
    /// The highest results-stream sequence the follower has handed out.
    pub(crate) seen: Arc<std::sync::atomic::AtomicU64>,
    /// Bounds the safety net's lookups in flight, across all jobs.
    pub(crate) net_looks: Arc<Semaphore>,
}

/// Most safety-net lookups in flight at once, across a coordinator's jobs.
const MAX_NET_LOOKS: usize = 32;

/// Runs a coordinator until `shutdown` is cancelled, then stops taking jobs
/// and waits up to the drain timeout for live ones; jobs still live then
/// are handed back (nak) for another coordinator to take over.
pub async fn run(
    options: CoordinatorOptions,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    check(&options)?;
    let metrics = CoordinatorMetrics::register(&options.metrics)
        .map_err(|e| CoordinatorError::Config(format!("registering metrics: {e}")))?;
    let reconnects = metrics.nats_reconnects.clone();
    let client = toolfan_transport::connect_observed(
        &options.nats_url,
        "toolfan-coordinator",
        &options.nats_auth,
        Some(Arc::new(move || reconnects.inc())),
    )
    .await?;
    if let Some(addr) = options.metrics_addr {
        let nats = client.clone();
        let ready: toolfan_telemetry::Readiness = Arc::new(move || match nats.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(format!("NATS is {state:?}")),
        });
        toolfan_telemetry::serve(addr, options.metrics.clone(), ready, shutdown.clone()).await?;
    }
    let topology = Topology::new(
        client.clone(),
        options.subjects.clone(),
        options.topology.clone(),
    );
    topology.ensure_streams().await?;
    let consumer = topology.coordinators_consumer().await?;
    let job_ack_wait = consumer.cached_info().config.ack_wait;
    let registry = Arc::new(Registry::new(options.worker_ttl));
    let follower = registry::follow(
        &client,
        &options.subjects,
        registry.clone(),
        options.registry_warmup,
        shutdown.clone(),
    )
    .await
    .map_err(|e| TransportError::jetstream("subscribing to worker heartbeats", e))?;
    // Results and callers' messages are followed before the first job is
    // taken, so nothing of a job is missed.
    let routes = Arc::new(routes::Routes::default());
    let stop = CancellationToken::new();
    // (From the sequence after the last one stored now: the follower's
    // consumer is made lazily, and must not skip what comes meanwhile.)
    let last_stored = topology.results_last_sequence().await?;
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(last_stored));
    let following = topology.follow_all_results(Some(last_stored + 1));
    let results = routes::follow_results(
        &topology,
        following,
        routes.clone(),
        seen.clone(),
        stop.clone(),
    );
    let callers = routes::follow_callers(&client, &options.subjects, routes.clone(), stop.clone())
        .await
        .map_err(|e| TransportError::jetstream("subscribing to cancels and keepalives", e))?;
    let gauges = publisher::PublishGauges {
        waiting: metrics.publishes_waiting.clone(),
        in_flight: metrics.publishes_in_flight.clone(),
    };
    let publisher = publisher::Publisher::start(
        topology.js.clone(),
        options.max_publishes_in_flight,
        gauges,
        stop.clone(),
    );
    let retention = retention::Retention::new(seen.clone());
    let coordinator_id = format!("coordinator-{}", toolfan_protocol::JobId::generate());
    let trimmer = retention::run(
        retention.clone(),
        topology.clone(),
        coordinator_id,
        floor_ttl(job_ack_wait),
        stop.clone(),
    )
    .await
    .map_err(|e| TransportError::jetstream("subscribing to coordinator floors", e))?;
    let slots = Arc::new(Semaphore::new(options.max_live_jobs));
    let shared = Arc::new(Shared {
        options,
        client,
        topology,
        registry,
        job_ack_wait,
        abandon: CancellationToken::new(),
        metrics,
        publisher,
        routes,
        retention,
        seen,
        net_looks: Arc::new(Semaphore::new(MAX_NET_LOOKS)),
    });
    tracing::info!(
        workers = shared.registry.live().len(),
        "coordinator started"
    );

    let mut jobs = JoinSet::new();
    pull_with_slots(consumer, slots, shutdown.clone(), |message, permit| {
        while jobs.try_join_next().is_some() {}
        let shared = shared.clone();
        jobs.spawn(async move {
            job::handle(&shared, message).await;
            drop(permit);
        });
        std::future::ready(())
    })
    .await;

    let drain = async { while jobs.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.options.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!("drain timeout passed with jobs still live; they will be redelivered");
    }
    stop.cancel();
    let _ = tokio::join!(follower, results, callers, trimmer);
    tracing::info!("coordinator stopped");
    Ok(())
}

/// How long a coordinator's results floor outlives its last word: longer
/// than a dead coordinator's jobs take to reach a new owner.
fn floor_ttl(job_ack_wait: Duration) -> Duration {
    3 * job_ack_wait + Duration::from_secs(5)
}

impl Shared {
    pub(crate) fn floor_ttl(&self) -> Duration {
        floor_ttl(self.job_ack_wait)
    }
}

fn check(options: &CoordinatorOptions) -> Result<(), CoordinatorError> {
    let invalid = |why: String| Err(CoordinatorError::Config(why));
    if options.max_live_jobs == 0 {
        return invalid("max_live_jobs must be at least 1".into());
    }
    let context_bound = options.topology.max_publishes_in_flight;
    if options.max_publishes_in_flight == 0 || options.max_publishes_in_flight > context_bound {
        return invalid(format!(
            "max_publishes_in_flight must be between 1 and the JetStream context's bound of {context_bound}, not {}",
            options.max_publishes_in_flight
        ));
    }
    Ok(())
}

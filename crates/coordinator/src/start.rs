//! Bringing a coordinator up: its connection and metrics endpoint, the
//! streams and the jobs consumer, and the coordinator-wide services every
//! job shares (worker registry, results and callers followed, publisher,
//! retention); and stopping those services again ([`Background::stop`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_nats::jetstream::consumer::{pull, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use toolfan_transport::Topology;

use crate::board::{self, Board};
use crate::error::CoordinatorError;
use crate::fair::{self, Fair};
use crate::metrics::CoordinatorMetrics;
use crate::net::Lookups;
use crate::options::CoordinatorOptions;
use crate::publisher::{PublishGauges, Publisher};
use crate::registry::{self, Registry};
use crate::retention::{self, Retention};
use crate::routes::{self, Routes};
use crate::shared::{floor_ttl, Shared};

/// A coordinator ready to take jobs.
pub(crate) struct Started {
    /// What its jobs share.
    pub(crate) shared: Arc<Shared>,
    /// The jobs consumer it pulls from.
    pub(crate) consumer: Consumer<pull::Config>,
    /// Its services' tasks.
    pub(crate) background: Background,
}

/// The tasks of a coordinator's services.
pub(crate) struct Background {
    /// Stops the results and callers followers, the publisher and retention.
    stop: CancellationToken,
    /// Following heartbeats (until the coordinator's shutdown), results and
    /// callers; retention's.
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Stops the services and waits for their tasks.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        futures::future::join_all(self.tasks).await;
    }
}

/// Connects, makes sure of the streams and starts every service; nothing
/// of a job is missed from when this returns (results and callers'
/// messages are followed before the first job is taken). The registry
/// follower stops with `shutdown`.
pub(crate) async fn start(
    options: CoordinatorOptions,
    shutdown: &CancellationToken,
) -> Result<Started, CoordinatorError> {
    let metrics = CoordinatorMetrics::register(&options.metrics)
        .map_err(CoordinatorError::RegisterMetrics)?;
    let client = connect(&options, &metrics, shutdown).await?;
    let topology = Topology::new(
        client.clone(),
        options.subjects.clone(),
        options.topology.clone(),
    );
    topology.ensure_streams().await?;
    let consumer = topology.coordinators_consumer().await?;
    let job_ack_wait = consumer.cached_info().config.ack_wait;
    let stop = CancellationToken::new();
    let followed = follow(&client, &topology, &options, &stop, shutdown).await?;
    let publisher = start_publisher(&topology, &options, &metrics, &stop);
    let retention = Retention::new(followed.seen.clone());
    let coordinator_id = format!("coordinator-{}", toolfan_protocol::JobId::generate());
    let board = Arc::new(Board::new(coordinator_id.clone()));
    let (fair, fair_tasks) = start_fair(
        &client,
        &options,
        &followed.registry,
        &coordinator_id,
        &stop,
    )
    .await?;
    let trimmer =
        start_retention(&retention, &topology, coordinator_id, job_ack_wait, &stop).await?;
    let told = board::serve(&client, &options.subjects, board.clone(), stop.clone())
        .await
        .map_err(CoordinatorError::subscribe("subscribing to jobs requests"))?;
    let mut tasks = followed.tasks;
    tasks.extend([trimmer, told]);
    tasks.extend(fair_tasks);
    let shared = Arc::new(Shared {
        fair,
        lookups: Lookups::new(topology.clone(), followed.seen),
        options,
        client,
        topology,
        registry: followed.registry,
        job_ack_wait,
        abandon: CancellationToken::new(),
        metrics,
        publisher,
        routes: followed.routes,
        retention,
        board,
    });
    Ok(Started {
        shared,
        consumer,
        background: Background { stop, tasks },
    })
}

/// What the coordinator follows, and the tasks following it.
struct Followed {
    /// The workers, from their heartbeats.
    registry: Arc<Registry>,
    /// Where results and callers' messages go.
    routes: Arc<Routes>,
    /// The highest results-stream sequence handed out to jobs.
    seen: Arc<AtomicU64>,
    /// Following heartbeats, results and callers.
    tasks: Vec<JoinHandle<()>>,
}

/// Follows the workers' heartbeats (until `shutdown`), every job's results
/// and every caller's cancels and keepalives (until `stop`).
async fn follow(
    client: &async_nats::Client,
    topology: &Topology,
    options: &CoordinatorOptions,
    stop: &CancellationToken,
    shutdown: &CancellationToken,
) -> Result<Followed, CoordinatorError> {
    let registry = Arc::new(Registry::new(options.worker_ttl));
    let heartbeats = registry::follow(
        client,
        &options.subjects,
        registry.clone(),
        options.registry_warmup,
        shutdown.clone(),
    )
    .await
    .map_err(CoordinatorError::subscribe(
        "subscribing to worker heartbeats",
    ))?;
    let routes = Arc::new(Routes::default());
    let (seen, results) = follow_results(topology, &routes, stop).await?;
    let callers = routes::follow_callers(client, &options.subjects, routes.clone(), stop.clone())
        .await
        .map_err(CoordinatorError::subscribe(
            "subscribing to cancels and keepalives",
        ))?;
    Ok(Followed {
        registry,
        routes,
        seen,
        tasks: vec![heartbeats, results, callers],
    })
}

/// Connects to NATS (counting reconnects) and serves the metrics
/// endpoint, if one is set, until `shutdown`.
async fn connect(
    options: &CoordinatorOptions,
    metrics: &CoordinatorMetrics,
    shutdown: &CancellationToken,
) -> Result<async_nats::Client, CoordinatorError> {
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
        let registry = options.metrics.clone();
        if options.metrics_addr_is_default {
            toolfan_telemetry::http::serve_near(addr, registry, ready, shutdown.clone()).await?;
        } else {
            toolfan_telemetry::serve(addr, registry, ready, shutdown.clone()).await?;
        }
    }
    Ok(client)
}

/// Follows every job's results into `routes` from the sequence after the
/// last one stored now (the follower's consumer is made lazily, and must
/// not skip what comes meanwhile); returns the highest sequence handed
/// out so far, kept up to date, and the follower's task.
async fn follow_results(
    topology: &Topology,
    routes: &Arc<Routes>,
    stop: &CancellationToken,
) -> Result<(Arc<AtomicU64>, JoinHandle<()>), CoordinatorError> {
    let last_stored = topology.results_last_sequence().await?;
    let seen = Arc::new(AtomicU64::new(last_stored));
    let following = topology.follow_all_results(Some(last_stored + 1));
    let results = routes::follow_results(
        topology,
        following,
        routes.clone(),
        seen.clone(),
        stop.clone(),
    );
    Ok((seen, results))
}

/// Starts the coordinator-wide publisher, its gauges in `metrics`.
fn start_publisher(
    topology: &Topology,
    options: &CoordinatorOptions,
    metrics: &CoordinatorMetrics,
    stop: &CancellationToken,
) -> Publisher {
    let gauges = PublishGauges {
        waiting: metrics.publishes_waiting.clone(),
        in_flight: metrics.publishes_in_flight.clone(),
    };
    Publisher::start(
        topology.js.clone(),
        options.max_publishes_in_flight,
        gauges,
        stop.clone(),
    )
}

/// Starts the fair shares: the exchange with the other coordinators and,
/// with a Redis URL, the callers' weights and caps.
async fn start_fair(
    client: &async_nats::Client,
    options: &CoordinatorOptions,
    registry: &Arc<Registry>,
    coordinator_id: &str,
    stop: &CancellationToken,
) -> Result<(Arc<Fair>, Vec<JoinHandle<()>>), CoordinatorError> {
    let fair = Arc::new(Fair::new(registry.clone(), options.fair));
    let mut tasks = Vec::new();
    if !options.fair.enabled {
        return Ok((fair, tasks));
    }
    let exchange = fair::start_exchange(
        fair.clone(),
        client.clone(),
        options.subjects.coordinator_fair(),
        coordinator_id.to_owned(),
        stop.clone(),
    )
    .await
    .map_err(CoordinatorError::subscribe(
        "subscribing to fair-share reports",
    ))?;
    tasks.push(exchange);
    if let Some(url) = &options.redis_url {
        let redis = toolfan_limits::LazyRedis::new(url)
            .map_err(|e| CoordinatorError::Config(format!("invalid Redis URL {url:?}: {e}")))?;
        let prefix = options.subjects.prefix().to_owned();
        tasks.push(fair::follow_rules(
            fair.clone(),
            redis,
            prefix,
            stop.clone(),
        ));
    }
    Ok((fair, tasks))
}

/// Starts telling this coordinator's results floor and purging below the
/// fleet's, under a new coordinator id.
async fn start_retention(
    retention: &Retention,
    topology: &Topology,
    coordinator_id: String,
    job_ack_wait: std::time::Duration,
    stop: &CancellationToken,
) -> Result<JoinHandle<()>, CoordinatorError> {
    retention::run(
        retention.clone(),
        topology.clone(),
        coordinator_id,
        floor_ttl(job_ack_wait),
        stop.clone(),
    )
    .await
    .map_err(CoordinatorError::subscribe(
        "subscribing to coordinator floors",
    ))
}

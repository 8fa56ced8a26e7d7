//! [`Worker::run`]: connect, one pull loop per tool (all sharing one budget
//! of slots, see [`toolfan_transport::pull`]), the announcer and the abort
//! listener; on shutdown stop pulling and drain.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::consumer;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toolfan_limits::Limiter;
use toolfan_protocol::{ToolDescription, ToolName};
use toolfan_transport::{pull_with_slots, Topology};

use crate::abort;
use crate::announce::{self, Announcement};
use crate::cache::Cache;
use crate::describe::Described;
use crate::error::{ConfigError, WorkerError};
use crate::metrics::WorkerMetrics;
use crate::options::WorkerOptions;
use crate::pipeline;
use crate::runtime::{Shared, ToolEntry};
use crate::slots::{PullSlots, TaskSlots};
use crate::tool::{Tool, ToolRuntime};

/// A worker serving a set of tools; build one with
/// [`Worker::builder`](crate::WorkerBuilder).
pub struct Worker {
    options: WorkerOptions,
    tools: BTreeMap<ToolName, Arc<dyn Tool>>,
    descriptions: Vec<ToolDescription>,
}

type Pulled = consumer::Consumer<consumer::pull::Config>;
type Running = Arc<Mutex<JoinSet<()>>>;

impl Worker {
    pub(crate) fn new(
        options: WorkerOptions,
        tools: BTreeMap<ToolName, Arc<dyn Tool>>,
        descriptions: Vec<ToolDescription>,
    ) -> Self {
        Self {
            options,
            tools,
            descriptions,
        }
    }

    /// What each tool does and the JSON Schema of its arguments, as callers see them.
    pub fn descriptions(&self) -> &[ToolDescription] {
        &self.descriptions
    }

    /// Connects with these NATS credentials.
    pub fn with_nats_auth(mut self, auth: toolfan_transport::NatsAuth) -> Self {
        self.options.nats_auth = auth;
        self
    }

    /// The worker's id in the fleet.
    pub fn id(&self) -> &str {
        &self.options.id
    }

    /// Connects, serves until `shutdown` is cancelled, then stops pulling and
    /// waits up to the drain timeout for running tasks.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let metrics =
            WorkerMetrics::register(&self.options.metrics).map_err(ConfigError::Metrics)?;
        let client = connect(&self.options, &metrics).await?;
        let topology = Topology::new(
            client.clone(),
            self.options.subjects.clone(),
            self.options.topology.clone(),
        );
        topology.ensure_streams().await?;
        let consumers = consumers(&topology, &self.tools, &self.options).await?;
        let limiter = limiter(&self.options, &shutdown).await?;
        let cache = match &self.options.cache {
            Some(options) => Some(Arc::new(
                Cache::new(
                    options.clone(),
                    client.clone(),
                    self.options.subjects.clone(),
                )
                .map_err(ConfigError::from)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            slots: Arc::new(TaskSlots::new(
                self.options.concurrency,
                self.options.max_held_factor,
                self.options.prefetch_share,
            )),
            in_flight: Arc::default(),
            limiter,
            turns: Default::default(),
            cache,
            abandon: CancellationToken::new(),
            aborts: Arc::default(),
            metrics,
            topology,
            options: self.options,
        });
        serve_metrics(&client, &shared, &shutdown).await?;
        let descriptions: Described = Arc::new(RwLock::new(self.descriptions));
        start_tools(&self.tools, &shared, &descriptions);
        let announcement = Announcement {
            client: client.clone(),
            subjects: shared.options.subjects.clone(),
            id: shared.options.id.clone(),
            concurrency: shared.options.concurrency,
            in_flight: shared.in_flight.clone(),
            every: shared.options.heartbeat_interval,
            tools: self.tools.keys().cloned().collect(),
            descriptions,
        };
        serve(client, shared, consumers, announcement, shutdown).await;
        Ok(())
    }
}

/// Serves /metrics, /healthz and /readyz if the options ask for them; a
/// default address whose port is taken moves to the next free one.
async fn serve_metrics(
    client: &async_nats::Client,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let Some(addr) = shared.options.metrics_addr else {
        return Ok(());
    };
    let ready = readiness(client, shared);
    let registry = shared.options.metrics.clone();
    if shared.options.metrics_addr_is_default {
        toolfan_telemetry::http::serve_near(addr, registry, ready, shutdown.clone()).await?;
    } else {
        toolfan_telemetry::serve(addr, registry, ready, shutdown.clone()).await?;
    }
    Ok(())
}

/// Connects to NATS, counting reconnects.
async fn connect(
    options: &WorkerOptions,
    metrics: &WorkerMetrics,
) -> Result<async_nats::Client, WorkerError> {
    let reconnects = metrics.nats_reconnects.clone();
    Ok(toolfan_transport::connect_observed(
        &options.nats_url,
        &format!("toolfan-worker {}", options.id),
        &options.nats_auth,
        Some(Arc::new(move || reconnects.inc())),
    )
    .await?)
}

/// Each tool's shared consumer, with what its tasks need to know of it.
async fn consumers(
    topology: &Topology,
    tools: &BTreeMap<ToolName, Arc<dyn Tool>>,
    options: &WorkerOptions,
) -> Result<Vec<(Pulled, ToolEntry)>, WorkerError> {
    let mut consumers = Vec::new();
    for (name, tool) in tools {
        let max = options.tool_max_in_flight.get(name.as_str()).copied();
        let keys = options.tool_limit_keys.get(name.as_str());
        let consumer = topology.tool_consumer(name, max).await?;
        let entry = ToolEntry {
            name: name.clone(),
            tool: tool.clone(),
            limit_keys: Arc::new(keys.cloned().unwrap_or_default()),
            ack_wait: consumer.cached_info().config.ack_wait,
        };
        consumers.push((consumer, entry));
    }
    Ok(consumers)
}

/// The limiter, with its definitions read once and kept current until
/// `shutdown`; a Redis down at start is waited for, not an error.
async fn limiter(
    options: &WorkerOptions,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<Limiter>>, ConfigError> {
    let Some(limits) = &options.limits else {
        return Ok(None);
    };
    let limiter = Arc::new(Limiter::new(limits.clone())?);
    if let Err(e) = limiter.refresh().await {
        tracing::warn!(error = %e, "Redis unreachable at start; limited tasks wait until it answers");
    }
    limiter.spawn_refresh(shutdown.clone());
    Ok(Some(limiter))
}

/// Ready when connected to NATS and, if the worker takes limits, when it
/// has read them from Redis lately.
fn readiness(client: &async_nats::Client, shared: &Shared) -> toolfan_telemetry::Readiness {
    let nats = client.clone();
    let limiter = shared.limiter.clone();
    Arc::new(move || {
        let state = nats.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(format!("NATS is {state:?}"));
        }
        match &limiter {
            Some(limiter) if !limiter.healthy() => {
                Err("Redis, which keeps the limits, is unreachable".into())
            }
            _ => Ok(()),
        }
    })
}

/// Lets each tool start its background work (a batch tool's batcher, an
/// MCP session's watch on its tool list).
fn start_tools(
    tools: &BTreeMap<ToolName, Arc<dyn Tool>>,
    shared: &Shared,
    descriptions: &Described,
) {
    for (name, tool) in tools {
        let batch_sizes = shared
            .metrics
            .batch_size
            .with_label_values(&[name.as_str()]);
        tool.start(ToolRuntime {
            batch_sizes,
            name: name.clone(),
            descriptions: descriptions.clone(),
        });
    }
    let names: Vec<&ToolName> = tools.keys().collect();
    tracing::info!(worker = %shared.options.id, tools = ?names, concurrency = shared.options.concurrency, "worker started");
}

/// Pulls and runs tasks until `shutdown`, then drains and disconnects.
async fn serve(
    client: async_nats::Client,
    shared: Arc<Shared>,
    consumers: Vec<(Pulled, ToolEntry)>,
    announcement: Announcement,
    shutdown: CancellationToken,
) {
    let stop_pulling = shutdown.child_token();
    let mut loops = JoinSet::new();
    let running: Running = Arc::default();
    for (consumer, entry) in consumers {
        let (shared, running, stop) = (shared.clone(), running.clone(), stop_pulling.clone());
        loops.spawn(pull_loop(shared, consumer, entry, running, stop));
    }
    let subjects = shared.options.subjects.clone();
    let aborts = abort::follow(
        client.clone(),
        subjects,
        shared.aborts.clone(),
        shutdown.clone(),
    );
    let aborts = tokio::spawn(aborts);
    let announcer = tokio::spawn(announce::run(announcement, shutdown.clone()));

    shutdown.cancelled().await;
    while loops.join_next().await.is_some() {}
    drain(&shared, &running).await;
    let _ = announcer.await;
    let _ = aborts.await;
    // Close the connection now (every clone of it), rather than
    // whenever the last handle happens to drop.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.drain()).await;
    tracing::info!(worker = %shared.options.id, "worker stopped");
}

/// Waits for running tasks up to the drain timeout; tasks still running
/// then are aborted and handed back (nak) so another worker takes them at
/// once rather than after their ack wait.
async fn drain(shared: &Shared, running: &Mutex<JoinSet<()>>) {
    let mut tasks = running.lock().await;
    let count = tasks.len();
    if count > 0 {
        tracing::info!(running = count, "draining: waiting for running tasks");
    }
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.options.drain_timeout, all)
        .await
        .is_err()
    {
        tracing::warn!(
            left = tasks.len(),
            "drain timeout passed with tasks still running; handing them back"
        );
        shared.abandon.cancel();
        let handed_back = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), handed_back).await;
    }
}

async fn pull_loop(
    shared: Arc<Shared>,
    consumer: Pulled,
    entry: ToolEntry,
    running: Running,
    stop: CancellationToken,
) {
    let slots = PullSlots(shared.slots.clone());
    pull_with_slots(consumer, slots, stop, |message, permits| {
        let shared = shared.clone();
        let entry = entry.clone();
        let running = running.clone();
        async move {
            let mut tasks = running.lock().await;
            // Reap finished tasks so the set does not grow without bound.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move {
                pipeline::run_task(&shared, &entry, message, permits).await;
            });
        }
    })
    .await;
}

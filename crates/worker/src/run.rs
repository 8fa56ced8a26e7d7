//! The worker's run loop: one pull loop per tool, all sharing one budget of
//! `concurrency` slots (see [`toolfan_transport::pull`]), plus the announcer.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{ToolDescription, ToolName};
use toolfan_transport::{pull_with_slots, Slots, Topology};

use crate::abort::{self, Aborts};
use crate::admission::Turns;
use crate::cache::Cache;
use crate::limits::Limiter;
use crate::metrics::WorkerMetrics;
use crate::{announce, execute, Tool, ToolRuntime, WorkerBuilder, WorkerError, WorkerOptions};

/// A worker serving a set of tools; build one with [`Worker::builder`].
pub struct Worker {
    options: WorkerOptions,
    tools: BTreeMap<ToolName, Arc<dyn Tool>>,
    descriptions: Vec<ToolDescription>,
}

/// What every task of a worker shares.
pub(crate) struct Shared {
    pub(crate) options: WorkerOptions,
    pub(crate) topology: Topology,
    /// Slots for running tools (`concurrency`).
    pub(crate) slots: Arc<Semaphore>,
    /// Slots for tasks held at all, running or waiting for a limit.
    pub(crate) held: Arc<Semaphore>,
    pub(crate) in_flight: AtomicU32,
    pub(crate) limiter: Option<Arc<Limiter>>,
    /// The result cache, if the worker has one.
    pub(crate) cache: Option<Arc<Cache>>,
    /// Slots prefetched calls may run in.
    pub(crate) prefetch_slots: Arc<Semaphore>,
    pub(crate) turns: Turns,
    /// Cancelled when the drain timeout passes: running tasks are handed back.
    pub(crate) abandon: CancellationToken,
    /// Jobs whose tasks must stop.
    pub(crate) aborts: Arc<Aborts>,
    pub(crate) metrics: WorkerMetrics,
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

/// A pulled task's hold on the worker: a held slot for as long as the task
/// is here, and a run slot that it gives back while it waits (for a limit,
/// a prefetch slot, or an equal call running elsewhere).
pub(crate) struct TaskPermits {
    pub(crate) run: Option<OwnedSemaphorePermit>,
    pub(crate) _held: OwnedSemaphorePermit,
}

impl TaskPermits {
    /// Gives the run slot back for the length of a wait.
    pub(crate) fn give_back_run_slot(&mut self) {
        self.run = None;
    }

    /// Takes a run slot again after a wait (at once if it kept its own).
    pub(crate) async fn retake_run_slot(&mut self, slots: &Arc<Semaphore>) {
        if self.run.is_none() {
            self.run = slots.clone().acquire_owned().await.ok();
        }
    }
}

/// Pulls are sized by whichever budget is tighter.
struct WorkerSlots(Arc<Shared>);

impl Slots for WorkerSlots {
    type Permit = TaskPermits;

    fn free(&self) -> usize {
        self.0
            .slots
            .available_permits()
            .min(self.0.held.available_permits())
    }

    async fn acquire(&self) -> Option<TaskPermits> {
        let held = self.0.held.clone().acquire_owned().await.ok()?;
        let run = self.0.slots.clone().acquire_owned().await.ok()?;
        Some(TaskPermits {
            run: Some(run),
            _held: held,
        })
    }
}

impl Worker {
    /// Starts building a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

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
        let options = self.options;
        let metrics = WorkerMetrics::register(&options.metrics)
            .map_err(|e| WorkerError::Config(format!("registering metrics: {e}")))?;
        let reconnects = metrics.nats_reconnects.clone();
        let client = toolfan_transport::connect_observed(
            &options.nats_url,
            &format!("toolfan-worker {}", options.id),
            &options.nats_auth,
            Some(Arc::new(move || reconnects.inc())),
        )
        .await?;
        let topology = Topology::new(
            client.clone(),
            options.subjects.clone(),
            options.topology.clone(),
        );
        topology.ensure_streams().await?;
        let mut consumers = Vec::new();
        for (name, tool) in &self.tools {
            let max = options.tool_max_in_flight.get(name.as_str()).copied();
            let keys = options
                .tool_limit_keys
                .get(name.as_str())
                .cloned()
                .unwrap_or_default();
            let consumer = topology.tool_consumer(name, max).await?;
            let entry = ToolEntry {
                name: name.clone(),
                tool: tool.clone(),
                limit_keys: Arc::new(keys),
                ack_wait: consumer.cached_info().config.ack_wait,
            };
            consumers.push((consumer, entry));
        }
        let limiter = match &options.limits {
            Some(limits) => {
                let limiter = Arc::new(
                    Limiter::new(limits.clone()).map_err(|e| WorkerError::Config(e.to_string()))?,
                );
                if let Err(e) = limiter.refresh().await {
                    tracing::warn!(error = %e, "Redis unreachable at start; limited tasks wait until it answers");
                }
                limiter.spawn_refresh(shutdown.clone());
                Some(limiter)
            }
            None => None,
        };
        let cache = match &options.cache {
            Some(cache) => Some(Arc::new(
                Cache::new(cache.clone(), client.clone(), options.subjects.clone())
                    .map_err(|e| WorkerError::Config(e.to_string()))?,
            )),
            None => None,
        };
        let concurrency = options.concurrency as usize;
        let prefetch_slots = ((concurrency as f64 * options.prefetch_share) as usize).max(1);
        let shared = Arc::new(Shared {
            cache,
            prefetch_slots: Arc::new(Semaphore::new(prefetch_slots)),
            slots: Arc::new(Semaphore::new(concurrency)),
            held: Arc::new(Semaphore::new(
                concurrency * options.max_held_factor as usize,
            )),
            in_flight: AtomicU32::new(0),
            limiter,
            turns: Turns::default(),
            abandon: CancellationToken::new(),
            aborts: Arc::default(),
            metrics,
            topology,
            options,
        });
        if let Some(addr) = shared.options.metrics_addr {
            toolfan_telemetry::serve(
                addr,
                shared.options.metrics.clone(),
                readiness(&client, &shared),
                shutdown.clone(),
            )
            .await?;
        }
        for (name, tool) in &self.tools {
            tool.start(ToolRuntime {
                batch_sizes: shared
                    .metrics
                    .batch_size
                    .with_label_values(&[name.as_str()]),
            });
        }
        let tool_names: Vec<ToolName> = self.tools.keys().cloned().collect();
        tracing::info!(worker = %shared.options.id, tools = ?tool_names, concurrency = shared.options.concurrency, "worker started");

        let stop_pulling = shutdown.child_token();
        let mut loops = JoinSet::new();
        let tasks = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        for (consumer, entry) in consumers {
            loops.spawn(pull_loop(
                shared.clone(),
                consumer,
                entry,
                tasks.clone(),
                stop_pulling.clone(),
            ));
        }
        let aborts = tokio::spawn(abort::follow(
            client.clone(),
            shared.topology.subjects.clone(),
            shared.aborts.clone(),
            shutdown.clone(),
        ));
        let announcer = tokio::spawn(announce::run(
            client.clone(),
            shared.clone(),
            tool_names,
            self.descriptions,
            shutdown.clone(),
        ));

        shutdown.cancelled().await;
        while loops.join_next().await.is_some() {}
        drain(&shared, &tasks).await;
        let _ = announcer.await;
        let _ = aborts.await;
        // Close the connection now (every clone of it), rather than
        // whenever the last handle happens to drop.
        let _ = tokio::time::timeout(Duration::from_secs(2), client.drain()).await;
        tracing::info!(worker = %shared.options.id, "worker stopped");
        Ok(())
    }
}

/// Waits for running tasks up to the drain timeout; tasks still running
/// then are aborted and handed back (nak) so another worker takes them at
/// once rather than after their ack wait.
async fn drain(shared: &Shared, tasks: &tokio::sync::Mutex<JoinSet<()>>) {
    let mut tasks = tasks.lock().await;
    let running = tasks.len();
    if running > 0 {
        tracing::info!(running, "draining: waiting for running tasks");
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

/// A served tool, the limit keys its calls are under, and its consumer's ack wait.
#[derive(Clone)]
pub(crate) struct ToolEntry {
    pub(crate) name: ToolName,
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) limit_keys: Arc<Vec<String>>,
    pub(crate) ack_wait: Duration,
}

async fn pull_loop(
    shared: Arc<Shared>,
    consumer: consumer::Consumer<consumer::pull::Config>,
    entry: ToolEntry,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    stop: CancellationToken,
) {
    let slots = WorkerSlots(shared.clone());
    pull_with_slots(consumer, slots, stop, |message, permits| {
        let shared = shared.clone();
        let entry = entry.clone();
        let tasks = tasks.clone();
        async move {
            let mut tasks = tasks.lock().await;
            // Reap finished tasks so the set does not grow without bound.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move {
                execute::run_task(&shared, &entry, message, permits).await;
            });
        }
    })
    .await;
}

//! The worker's run loop: one pull loop per tool, all sharing one budget of
//! `concurrency` slots (see [`toolfan_transport::pull`]), plus the announcer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_nats::jetstream::consumer;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::ToolName;
use toolfan_transport::{pull_with_slots, Topology};

use crate::{announce, execute, Tool, WorkerBuilder, WorkerError, WorkerOptions};

/// A worker serving a set of tools; build one with [`Worker::builder`].
pub struct Worker {
    options: WorkerOptions,
    tools: BTreeMap<ToolName, Arc<dyn Tool>>,
}

/// What every task of a worker shares.
pub(crate) struct Shared {
    pub(crate) options: WorkerOptions,
    pub(crate) topology: Topology,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) in_flight: AtomicU32,
}

impl Worker {
    /// Starts building a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    pub(crate) fn new(options: WorkerOptions, tools: BTreeMap<ToolName, Arc<dyn Tool>>) -> Self {
        Self { options, tools }
    }

    /// The worker's id in the fleet.
    pub fn id(&self) -> &str {
        &self.options.id
    }

    /// Connects, serves until `shutdown` is cancelled, then stops pulling and
    /// waits up to the drain timeout for running tasks.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let options = self.options;
        let client = toolfan_transport::connect(
            &options.nats_url,
            &format!("toolfan-worker {}", options.id),
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
            consumers.push((topology.tool_consumer(name).await?, tool.clone()));
        }
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(options.concurrency as usize)),
            in_flight: AtomicU32::new(0),
            topology,
            options,
        });
        let tool_names: Vec<ToolName> = self.tools.keys().cloned().collect();
        tracing::info!(worker = %shared.options.id, tools = ?tool_names, concurrency = shared.options.concurrency, "worker started");

        let stop_pulling = shutdown.child_token();
        let mut loops = JoinSet::new();
        let tasks = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        for (consumer, tool) in consumers {
            loops.spawn(pull_loop(
                shared.clone(),
                consumer,
                tool,
                tasks.clone(),
                stop_pulling.clone(),
            ));
        }
        let announcer = tokio::spawn(announce::run(
            client,
            shared.clone(),
            tool_names,
            shutdown.clone(),
        ));

        shutdown.cancelled().await;
        while loops.join_next().await.is_some() {}
        drain(&shared, &tasks).await;
        let _ = announcer.await;
        tracing::info!(worker = %shared.options.id, "worker stopped");
        Ok(())
    }
}

/// Waits for running tasks up to the drain timeout; what is still running
/// then is abandoned and JetStream redelivers it after its ack wait.
async fn drain(shared: &Shared, tasks: &tokio::sync::Mutex<JoinSet<()>>) {
    let mut tasks = tasks.lock().await;
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.options.drain_timeout, all)
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = shared.in_flight.load(Ordering::Relaxed),
            "drain timeout passed with tasks still running; they will be redelivered"
        );
    }
}

async fn pull_loop(
    shared: Arc<Shared>,
    consumer: consumer::Consumer<consumer::pull::Config>,
    tool: Arc<dyn Tool>,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    stop: CancellationToken,
) {
    let slots = shared.slots.clone();
    pull_with_slots(consumer, slots, stop, |message, permit| {
        let shared = shared.clone();
        let tool = tool.clone();
        let tasks = tasks.clone();
        async move {
            let mut tasks = tasks.lock().await;
            // Reap finished tasks so the set does not grow without bound.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move {
                execute::run_task(&shared, tool.as_ref(), message).await;
                drop(permit);
            });
        }
    })
    .await;
}

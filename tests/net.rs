//! The coordinator's safety net: a task whose message vanished from the
//! tasks stream without a result is dispatched again and answered long
//! before the job deadline; a task that is merely queued behind others is
//! never sent twice, however long it waits.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::Cluster;
use toolfan_protocol::{decode, Subjects, TaskMessage, ToolName};
use toolfan_transport::{Topology, TopologyOptions};

/// A coordinator whose consumers' ack wait is 1 s (so a task's budget is
/// a few seconds), reporting into `registry`.
async fn cluster(registry: &prometheus::Registry) -> anyhow::Result<Cluster> {
    cluster_sharing(registry, true).await
}

/// The same, with fair shares on or off (off, a job's whole window goes
/// into the queue at once, as under coordinators without them).
async fn cluster_sharing(registry: &prometheus::Registry, fair: bool) -> anyhow::Result<Cluster> {
    let registry = registry.clone();
    Cluster::start_with(move |options| {
        options.topology.ack_wait = Duration::from_secs(1);
        options.metrics = registry;
        options.fair.enabled = fair;
    })
    .await
}

fn counter(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .map(|metric| metric.get_counter().get_value())
        .sum()
}

/// Takes up to `n` messages off the echo tool's shared consumer and acks
/// them without answering: what a broker losing them, or a foreign worker
/// acking before it publishes and then dying, looks like to the job.
/// Returns the indices it swallowed.
async fn swallow(url: String, n: usize) -> anyhow::Result<Vec<u32>> {
    let client = async_nats::connect(url).await?;
    let topology = Topology::new(client, Subjects::default(), TopologyOptions::default());
    let consumer = topology
        .tool_consumer(&ToolName::new("echo")?, None)
        .await?;
    let mut taken = Vec::new();
    let started = Instant::now();
    while taken.len() < n && started.elapsed() < Duration::from_secs(10) {
        let mut batch = consumer
            .fetch()
            .max_messages(n - taken.len())
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!(e))?;
            let task: TaskMessage = decode("task", &message.payload)?;
            // Acked for sure (a plain ack could be lost with the connection).
            message.double_ack().await.map_err(|e| anyhow::anyhow!(e))?;
            taken.push(task.index);
        }
    }
    Ok(taken)
}

#[tokio::test]
async fn tasks_whose_messages_vanished_are_dispatched_again_long_before_the_deadline(
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let cluster = cluster(&registry).await?;
    let client = cluster.client().await?;
    // The swallower asks first, so it surely gets some of the tasks.
    let swallower = tokio::spawn(swallow(cluster.nats.url(), 5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.builtin_worker(4).await?;
    let tasks = (0..40)
        .map(|i| Task::new("echo", json!({ "i": i })))
        .collect();
    let job = Job::new(tasks)
        .max_concurrency(40)
        .deadline(Duration::from_secs(60));
    let started = Instant::now();
    let results = client.submit(job).await?.results().await?;
    let elapsed = started.elapsed();
    let swallowed = swallower.await??;

    assert!(
        !swallowed.is_empty(),
        "nothing was swallowed: nothing was tested"
    );
    assert_eq!(results.len(), 40);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.index as usize, i);
        assert!(result.is_ok(), "task {i}: {result:?}");
        assert_eq!(result.value().map(|v| v["i"].clone()), Some(json!(i)));
    }
    // Budget of an untimed task: 1 s ack wait + 2 s margin; a round every
    // second. Far from the 60 s deadline the loss was noticed at before.
    assert!(
        elapsed < Duration::from_secs(20),
        "lost tasks answered after {elapsed:?}"
    );
    assert_eq!(
        counter(&registry, "toolfan_tasks_redispatched_total"),
        swallowed.len() as f64,
        "each swallowed task ({swallowed:?}) dispatched again, once"
    );
    Ok(())
}

#[tokio::test]
async fn queued_tasks_past_their_budget_are_never_sent_twice() -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    // Fair shares would keep the queue short; the net must also be right
    // about a deep one (coordinators without them, or no worker heard).
    let cluster = cluster_sharing(&registry, false).await?;
    let client = cluster.client().await?;
    cluster.builtin_worker(2).await?;
    // 40 × 300 ms on 2 slots: ~6 s, while each task's budget is
    // 1 s timeout + 1 s ack wait + 2 s margin = 4 s. The last ~13 tasks
    // wait in the queue past their budget.
    let task = Task::new("sleep", json!({ "ms": 300 })).timeout(Duration::from_secs(1));
    let job = Job::new(vec![task; 40])
        .max_concurrency(40)
        .deadline(Duration::from_secs(60));
    let results = client.submit(job).await?.results().await?;

    assert_eq!(results.len(), 40);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(
        results.iter().all(|r| r.attempts == 1),
        "every task ran once: {:?}",
        results.iter().map(|r| r.attempts).collect::<Vec<_>>()
    );
    assert!(
        counter(&registry, "toolfan_net_looks_total") >= 1.0,
        "no task was overdue: nothing was tested"
    );
    assert_eq!(counter(&registry, "toolfan_tasks_redispatched_total"), 0.0);
    Ok(())
}

#[tokio::test]
async fn a_coordinator_just_started_waits_for_workers_instead_of_failing_the_tasks(
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let cluster = cluster(&registry).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("sleep", json!({ "ms": 10 })); 5])
        .deadline(Duration::from_secs(30));
    let handle = client.submit(job).await?;
    // The worker comes up a second after the job: within the worker TTL
    // (3 s) of the coordinator's start, so its silence proved nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.builtin_worker(4).await?;
    let results = handle.results().await?;
    assert!(
        results.iter().all(|r| r.is_ok()),
        "tasks failed while the fleet was still being heard: {results:?}"
    );
    Ok(())
}

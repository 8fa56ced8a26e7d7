//! `toolfan bench throughput`: echo tasks through the whole cluster, next to
//! the ceiling of this machine measured in the same run — a bare JetStream
//! publish → pull → core-NATS reply loop with the same message size and
//! the same number of messages in flight.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;
use toolfan::{Job, Task};
use toolfan_protocol::{encode, JobId, TaskMessage, PROTOCOL_VERSION};

use super::common::Figures;
use crate::local::{LocalCluster, LocalOptions};

const JOB_SIZE: u32 = 100;

pub(crate) async fn run(tasks: u32, jobs_in_flight: u32) -> anyhow::Result<Figures> {
    let options = LocalOptions {
        nats_url: None,
        redis_url: None,
        workers: 2,
        concurrency: 256,
    };
    let cluster = LocalCluster::start(&options, |b| b).await?;
    let jobs = tasks.div_ceil(JOB_SIZE);
    let toolfan_s = through_toolfan(&cluster, jobs, jobs_in_flight).await?;
    let in_flight = (jobs_in_flight * JOB_SIZE) as usize;
    let payload = task_message_bytes();
    let bare_s = bare_loop(
        &cluster.nats_url,
        jobs * JOB_SIZE,
        in_flight,
        payload.clone(),
    )
    .await?;
    cluster.stop().await;

    let total = f64::from(jobs * JOB_SIZE);
    let (toolfan_rate, bare_rate) = (total / toolfan_s, total / bare_s);
    let table = format!(
        "throughput: {total} echo tasks in jobs of {JOB_SIZE}, {jobs_in_flight} jobs in flight, 2 workers × 256 slots\n\n\
         \x20 toolfan end to end              {toolfan_rate:>9.0} tasks/s   ({toolfan_s:.2} s)\n\
         \x20 bare JetStream loop (ceiling)   {bare_rate:>9.0} msgs/s    ({bare_s:.2} s, {} B messages, {in_flight} in flight)\n\
         \x20 ratio                           {:>9.3}",
        payload.len(),
        toolfan_rate / bare_rate
    );
    Ok(Figures {
        table,
        json: json!({"scenario": "throughput", "tasks": total, "job_size": JOB_SIZE, "jobs_in_flight": jobs_in_flight,
            "toolfan_tasks_per_s": toolfan_rate, "bare_loop_msgs_per_s": bare_rate, "ratio": toolfan_rate / bare_rate,
            "message_bytes": payload.len()}),
    })
}

/// `jobs` jobs of echo tasks, `in_flight` at a time; seconds taken.
async fn through_toolfan(cluster: &LocalCluster, jobs: u32, in_flight: u32) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let mut runners = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (client, next) = (cluster.client.clone(), next.clone());
        runners.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < jobs {
                let tasks = (0..JOB_SIZE)
                    .map(|i| Task::new("echo", json!({"i": i})))
                    .collect();
                let job = Job::new(tasks)
                    .max_concurrency(JOB_SIZE)
                    .deadline(Duration::from_secs(120));
                let results = client.submit(job).await?.results().await?;
                anyhow::ensure!(results.iter().all(|r| r.is_ok()), "an echo task failed");
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = runners.join_next().await {
        done??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The bytes of a dispatched echo task, so the bare loop moves the same size.
pub(super) fn task_message_bytes() -> bytes::Bytes {
    let message = TaskMessage {
        v: PROTOCOL_VERSION,
        job: JobId::generate(),
        index: 42,
        caller: "bench".parse().expect("a valid caller"),
        task: Task::new("echo", json!({"i": 42})),
        deadline_unix_ms: 1_800_000_000_000,
        dispatch: 1,
    };
    encode(&message).into()
}

/// Publishes `total` messages to a work-queue stream with `in_flight`
/// outstanding, a pull consumer answers each on a core-NATS subject; seconds
/// from the first publish to the last answer.
pub(super) async fn bare_loop(
    url: &str,
    total: u32,
    in_flight: usize,
    payload: bytes::Bytes,
) -> anyhow::Result<f64> {
    let nats = toolfan_transport::connect(url, "toolfan-bench loop").await?;
    let js = jetstream::new(nats.clone());
    let consumer = loop_consumer(&js).await?;
    let replies = nats.subscribe("bench.reply").await?;
    let answerer = tokio::spawn(answer(consumer, nats));
    let window = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let counter = tokio::spawn(count_replies(replies, total, window.clone()));
    let mut acks = FuturesUnordered::new();
    for _ in 0..total {
        window.acquire().await?.forget();
        acks.push(
            js.publish("bench.loop", payload.clone())
                .await?
                .into_future(),
        );
        while acks.len() > 1024 {
            acks.next().await.transpose()?;
        }
    }
    while let Some(ack) = acks.next().await {
        ack?;
    }
    let seen = tokio::time::timeout(Duration::from_secs(120), counter).await??;
    let elapsed = started.elapsed().as_secs_f64();
    answerer.abort();
    anyhow::ensure!(seen == total, "the bare loop answered {seen} of {total}");
    Ok(elapsed)
}

/// The loop's work-queue stream and the durable pull consumer on it.
async fn loop_consumer(
    js: &jetstream::Context,
) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
    let stream = js
        .create_stream(stream::Config {
            name: "BENCH_LOOP".into(),
            subjects: vec!["bench.loop".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("loop".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await?;
    Ok(consumer)
}

/// Answers each pulled message on `bench.reply` and acks it.
async fn answer(
    consumer: consumer::Consumer<consumer::pull::Config>,
    nats: async_nats::Client,
) -> anyhow::Result<()> {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .messages()
        .await?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!(e))?;
        nats.publish("bench.reply", message.payload.clone()).await?;
        message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
    }
    anyhow::Ok(())
}

/// Counts replies up to `total`, freeing a slot of `window` for each;
/// returns how many came.
async fn count_replies(
    mut replies: async_nats::Subscriber,
    total: u32,
    window: Arc<Semaphore>,
) -> u32 {
    let mut seen = 0;
    while seen < total {
        if replies.next().await.is_none() {
            break;
        }
        seen += 1;
        window.add_permits(1);
    }
    seen
}

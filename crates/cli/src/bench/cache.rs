//! `toolfan bench cache`: what batching, the result cache and prefetch buy.
//!
//! - Batching: a backend that serves one request at a time, 20 ms each (a
//!   model server), behind a plain tool and behind a batch tool (16 per
//!   request), each given 200 one-task jobs at once.
//! - Cache and prefetch: 5 calls of a 500 ms tool, answered cold, again
//!   from the cache, and prefetched 300 ms before the fanout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{Client, Task};
use toolfan_worker::{BatchOptions, TaskContext, ToolError};

use super::common::Figures;
use crate::local::{LocalCluster, LocalOptions};

/// One request of the backend: it serves one at a time.
const REQUEST: Duration = Duration::from_millis(20);
const JOBS: usize = 200;

pub(crate) async fn run() -> anyhow::Result<Figures> {
    let requests = Arc::new(AtomicU64::new(0));
    let cluster = start(requests.clone()).await?;
    let client = &cluster.client;

    let plain = one_task_jobs(client, "score").await?;
    let plain_requests = requests.swap(0, Ordering::Relaxed);
    let batched = one_task_jobs(client, "score_batch").await?;
    let batched_requests = requests.swap(0, Ordering::Relaxed);
    let batching = Batching {
        plain,
        plain_requests,
        batched,
        batched_requests,
    };
    let cache = cache_and_prefetch(client).await?;
    cluster.stop().await;
    Ok(figures(batching, cache))
}

/// A one-worker cluster whose `score` and `score_batch` tools share one
/// backend that serves a request at a time, counting its requests.
async fn start(requests: Arc<AtomicU64>) -> anyhow::Result<LocalCluster> {
    let backend = Arc::new(tokio::sync::Mutex::new(()));
    let options = LocalOptions {
        nats_url: None,
        redis_url: None,
        workers: 1,
        concurrency: 256,
    };
    let (b1, b2, r1, r2) = (backend.clone(), backend, requests.clone(), requests);
    LocalCluster::start(&options, move |builder| {
        let (b1, b2, r1, r2) = (b1.clone(), b2.clone(), r1.clone(), r2.clone());
        builder
            .tool("score", move |_ctx: TaskContext, args: Value| {
                let (backend, requests) = (b1.clone(), r1.clone());
                async move {
                    let _turn = backend.lock().await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(REQUEST).await;
                    Ok(json!({"score": args["n"]}))
                }
            })
            .batch_tool(
                "score_batch",
                BatchOptions::new(16, Duration::from_millis(10)),
                move |inputs: Vec<Value>| {
                    let (backend, requests) = (b2.clone(), r2.clone());
                    async move {
                        let _turn = backend.lock().await;
                        requests.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(REQUEST).await;
                        Ok::<_, ToolError>(
                            inputs
                                .iter()
                                .map(|a| Ok(json!({"score": a["n"]})))
                                .collect(),
                        )
                    }
                },
            )
    })
    .await
}

/// The plain tool against the batch tool: time taken and backend requests.
struct Batching {
    plain: Duration,
    plain_requests: u64,
    batched: Duration,
    batched_requests: u64,
}

/// Five calls of a 500 ms tool: cold, from the cache, and prefetched.
struct CacheTimes {
    cold: Duration,
    hit: Duration,
    prefetched: Duration,
}

async fn cache_and_prefetch(client: &Client) -> anyhow::Result<CacheTimes> {
    // `sleep` takes only `ms`, so the five calls differ by a millisecond.
    let calls: Vec<Task> = (0..5)
        .map(|i| Task::new("sleep", json!({ "ms": 500 + i })).cached())
        .collect();
    let cold = timed(client, calls.clone()).await?;
    let hit = timed(client, calls).await?;
    let fresh: Vec<Task> = (0..5)
        .map(|i| Task::new("sleep", json!({ "ms": 510 + i })))
        .collect();
    client.prefetch(fresh.clone()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let prefetched = timed(client, fresh).await?;
    Ok(CacheTimes {
        cold,
        hit,
        prefetched,
    })
}

fn figures(batching: Batching, cache: CacheTimes) -> Figures {
    let Batching {
        plain,
        plain_requests,
        batched,
        batched_requests,
    } = batching;
    let CacheTimes {
        cold,
        hit,
        prefetched,
    } = cache;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let figures = json!({
        "scenario": "cache",
        "batching": {
            "jobs": JOBS, "request_ms": ms(REQUEST),
            "plain_s": plain.as_secs_f64(), "plain_requests": plain_requests,
            "batched_s": batched.as_secs_f64(), "batched_requests": batched_requests,
            "speedup": plain.as_secs_f64() / batched.as_secs_f64(),
        },
        "cache": {
            "tool_ms": 500, "cold_ms": ms(cold), "hit_ms": ms(hit),
            "prefetched_300ms_before_ms": ms(prefetched),
        },
    });
    let table = format!(
        "cache: batching ({JOBS} one-task jobs; a backend serving one request of {} ms at a time)\n\
         \n  plain tool     {:>8.2} s  {plain_requests:>4} backend requests\
         \n  batch tool     {:>8.2} s  {batched_requests:>4} backend requests  ({:.1}× faster)\
         \n\ncache and prefetch (5 calls of a 500 ms tool)\
         \n  cold                       {:>7.1} ms\
         \n  again, from the cache      {:>7.1} ms\
         \n  prefetched 300 ms before   {:>7.1} ms  (ideal 200)",
        REQUEST.as_millis(),
        plain.as_secs_f64(),
        batched.as_secs_f64(),
        plain.as_secs_f64() / batched.as_secs_f64(),
        ms(cold),
        ms(hit),
        ms(prefetched),
    );
    Figures {
        table,
        json: figures,
    }
}

/// Submits `JOBS` one-task jobs for `tool` at once; the time until the last answer.
async fn one_task_jobs(client: &Client, tool: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let jobs = (0..JOBS).map(|n| async move {
        let results = client
            .fanout(vec![Task::new(tool, json!({ "n": n }))])
            .await?;
        anyhow::ensure!(
            results[0].value() == Some(&json!({ "score": n })),
            "job {n} got {:?}",
            results[0]
        );
        anyhow::Ok(())
    });
    futures::future::try_join_all(jobs).await?;
    Ok(started.elapsed())
}

async fn timed(client: &Client, tasks: Vec<Task>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let results = client.fanout(tasks).await?;
    if let Some(failed) = results.iter().find(|r| !r.is_ok()) {
        anyhow::bail!("task {} failed: {:?}", failed.index, failed.error());
    }
    Ok(started.elapsed())
}

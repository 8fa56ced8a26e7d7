//! Latency-bound scenarios: `fanout`, `overhead` and `scale`.

use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Client, Job, Task};

use super::common::{percentile, Figures};
use crate::local::{LocalCluster, LocalOptions};

fn options(workers: u32, concurrency: u32) -> LocalOptions {
    LocalOptions {
        nats_url: None,
        redis_url: None,
        workers,
        concurrency,
    }
}

/// Runs `job()` `warmup + n` times one after another; the last `n` times in ms.
async fn makespans(
    client: &Client,
    job: impl Fn() -> Job,
    warmup: u32,
    n: u32,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(n as usize);
    for round in 0..warmup + n {
        let started = Instant::now();
        let results = client.submit(job()).await?.results().await?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(failed) = results.iter().find(|r| !r.is_ok()) {
            anyhow::bail!("a benchmark task failed: {failed:?}");
        }
        if round >= warmup {
            times.push(elapsed);
        }
    }
    Ok(times)
}

/// 50 × sleep 100 ms per job on 1 worker of 64 slots, then on 4.
pub(crate) async fn fanout(jobs: u32) -> anyhow::Result<Figures> {
    let job = || Job::new(vec![Task::new("sleep", json!({"ms": 100})); 50]).max_concurrency(50);
    let mut table = format!("fanout: 50 × sleep 100 ms per job, {jobs} jobs per row (ideal 100 ms, one after another 5000 ms)\n\n");
    table += "  workers   p50 ms   p99 ms   p50/ideal   p99/ideal   speed-up over sequential\n";
    let mut rows = Vec::new();
    for workers in [1, 4] {
        let cluster = LocalCluster::start(&options(workers, 64), |b| b).await?;
        let times = makespans(&cluster.client, job, 3, jobs).await?;
        cluster.stop().await;
        let (p50, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));
        table += &format!(
            "  {workers:>7}   {p50:>6.1}   {p99:>6.1}   {:>9.3}   {:>9.3}   {:>6.1}×\n",
            p50 / 100.0,
            p99 / 100.0,
            5000.0 / p50
        );
        rows.push(json!({"workers": workers, "p50_ms": p50, "p99_ms": p99,
            "p50_over_ideal": p50 / 100.0, "p99_over_ideal": p99 / 100.0, "speedup_over_sequential": 5000.0 / p50}));
    }
    Ok(Figures {
        table,
        json: json!({"scenario": "fanout", "tasks_per_job": 50, "task_ms": 100, "jobs": jobs, "rows": rows}),
    })
}

/// One-task echo jobs, one after another.
pub(crate) async fn overhead(jobs: u32) -> anyhow::Result<Figures> {
    let cluster = LocalCluster::start(&options(1, 64), |b| b).await?;
    let job = || Job::new(vec![Task::new("echo", json!({"x": 1}))]);
    let times = makespans(&cluster.client, job, 50, jobs).await?;
    cluster.stop().await;
    let (p50, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    Ok(Figures {
        table: format!(
            "overhead: {jobs} one-task echo jobs, one after another\n\n  p50 {p50:.2} ms   p99 {p99:.2} ms   mean {mean:.2} ms   ({:.0} jobs/s)",
            1000.0 / mean
        ),
        json: json!({"scenario": "overhead", "jobs": jobs, "p50_ms": p50, "p99_ms": p99, "mean_ms": mean}),
    })
}

/// 500 × sleep 50 ms with 1, 2 and 4 workers of 10 slots each.
pub(crate) async fn scale() -> anyhow::Result<Figures> {
    let job = || {
        Job::new(vec![Task::new("sleep", json!({"ms": 50})); 500])
            .max_concurrency(500)
            .deadline(Duration::from_secs(60))
    };
    let mut table = String::from("scale: 500 × sleep 50 ms, 10 slots per worker (ideal: 200 tasks/s per worker)\n\n  workers   seconds   tasks/s   vs 1 worker\n");
    let mut rows = Vec::new();
    let mut one = None;
    for workers in [1u32, 2, 4] {
        let cluster = LocalCluster::start(&options(workers, 10), |b| b).await?;
        let times = makespans(&cluster.client, job, 1, 3).await?;
        cluster.stop().await;
        let seconds = percentile(&times, 50.0) / 1000.0;
        let rate = 500.0 / seconds;
        let base = *one.get_or_insert(rate);
        table += &format!(
            "  {workers:>7}   {seconds:>7.2}   {rate:>7.0}   {:>9.2}×\n",
            rate / base
        );
        rows.push(json!({"workers": workers, "seconds": seconds, "tasks_per_s": rate, "vs_one_worker": rate / base}));
    }
    Ok(Figures {
        table,
        json: json!({"scenario": "scale", "tasks": 500, "task_ms": 50, "slots_per_worker": 10, "rows": rows}),
    })
}

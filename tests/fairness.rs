//! Fair shares of the fleet between callers (real nats-server and
//! redis-server, coordinators and a worker in this process): a small job
//! of one caller starts soon behind another caller's wide job, on one
//! coordinator or across two; a caller's weight and cap from the limits
//! store shape what it gets.

use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Client, ClientOptions, Job, Task, TaskResult};
use toolfan_e2e::Cluster;
use toolfan_limits::{LimitSpec, LimitStore};
use toolfan_testkit::RedisServer;

/// Every task's work, and the worker's slots.
const TASK_MS: u64 = 100;
const SLOTS: u32 = 8;

async fn caller(cluster: &Cluster, name: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(ClientOptions::new(cluster.nats.url()).caller(name)?).await?)
}

fn spans(n: usize, ms: u64) -> Job {
    Job::new(vec![Task::new("span", json!({ "ms": ms })); n])
        .max_concurrency(n as u32)
        .deadline(Duration::from_secs(60))
}

/// (started, ended) of each span result, µs.
fn intervals(results: &[TaskResult]) -> Vec<(u64, u64)> {
    results
        .iter()
        .map(|r| {
            let v = r.value().unwrap_or_else(|| panic!("a span failed: {r:?}"));
            (
                v["started_us"].as_u64().unwrap(),
                v["ended_us"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The most intervals open at once.
fn peak(intervals: &[(u64, u64)]) -> usize {
    let mut edges: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    edges.sort_by_key(|&(t, d)| (t, d));
    let mut open = 0;
    let mut most = 0;
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as usize
}

/// A wide job of caller A fills the fleet; 300 ms later caller B's small
/// job is submitted: how long B's job takes, and A's results.
async fn small_behind_wide(
    cluster: &Cluster,
    wide: usize,
) -> anyhow::Result<(Duration, Vec<TaskResult>)> {
    let (a, b) = (
        caller(cluster, "wide-a").await?,
        caller(cluster, "small-b").await?,
    );
    let a_job = a.submit(spans(wide, TASK_MS)).await?;
    let a_run = tokio::spawn(async move { a_job.results().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let b_results = b.submit(spans(4, TASK_MS)).await?.results().await?;
    let b_took = started.elapsed();
    assert!(b_results.iter().all(TaskResult::is_ok), "{b_results:?}");
    let a_results = tokio::time::timeout(Duration::from_secs(30), a_run).await???;
    Ok((b_took, a_results))
}

#[tokio::test]
async fn a_small_job_starts_soon_behind_another_callers_wide_job() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(SLOTS).await?;
    // 400 × 100 ms on 8 slots is 5 s of work: first come first served, B
    // would wait behind most of it.
    let (b_took, a_results) = small_behind_wide(&cluster, 400).await?;
    eprintln!("B's 4 × 100 ms job took {b_took:?} behind A's 400 tasks on {SLOTS} slots");
    assert!(
        b_took < Duration::from_millis(1500),
        "B waited {b_took:?} behind A's job"
    );
    assert_eq!(
        intervals(&a_results).len(),
        400,
        "every one of A's tasks ran"
    );
    Ok(())
}

#[tokio::test]
async fn shares_hold_across_coordinators() -> anyhow::Result<()> {
    // The first coordinator runs one job at a time, so B's job goes to the
    // second: the two learn of each other only through their reports.
    let cluster = Cluster::start_with(|o| o.max_live_jobs = 1).await?;
    cluster.builtin_worker(SLOTS).await?;
    let a = caller(&cluster, "wide-a").await?;
    let a_job = a.submit(spans(400, TASK_MS)).await?;
    let a_run = tokio::spawn(async move { a_job.results().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_coordinator(|_| {});
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = caller(&cluster, "small-b").await?;
    let started = Instant::now();
    let b_results = b.submit(spans(4, TASK_MS)).await?.results().await?;
    let b_took = started.elapsed();
    eprintln!("B's job on the second coordinator took {b_took:?}");
    assert!(b_results.iter().all(TaskResult::is_ok), "{b_results:?}");
    assert!(
        b_took < Duration::from_millis(2000),
        "B waited {b_took:?} behind A's job on another coordinator"
    );
    let a_results = tokio::time::timeout(Duration::from_secs(30), a_run).await???;
    assert_eq!(intervals(&a_results).len(), 400);
    Ok(())
}

#[tokio::test]
async fn a_callers_cap_and_weight_come_from_the_limits_store() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    store
        .set("caller:capped", &LimitSpec::concurrency(3))
        .await?;
    let heavy = LimitSpec {
        rate: None,
        burst: 1,
        concurrency: None,
        weight: Some(3),
    };
    store.set("caller:heavy", &heavy).await?;
    let url = redis.url();
    let cluster = Cluster::start_with(|o| o.redis_url = Some(url)).await?;
    cluster.builtin_worker(SLOTS).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await; // the rules are read every second

    // A cap of 3 on a fleet of 8 slots: never more than 3 at once.
    let capped = caller(&cluster, "capped").await?;
    let results = capped.submit(spans(12, 200)).await?.results().await?;
    let most = peak(&intervals(&results));
    eprintln!("the capped caller ran at most {most} at once");
    assert!(most <= 3, "{most} ran at once under a cap of 3");

    // Weight 3 against 1, both wanting more than the fleet: while both
    // run, the heavy caller starts about three times as many tasks.
    let (heavy, light) = (
        caller(&cluster, "heavy").await?,
        caller(&cluster, "light").await?,
    );
    let (h, l) = tokio::try_join!(
        async {
            heavy
                .submit(spans(120, TASK_MS))
                .await?
                .results()
                .await
                .map_err(anyhow::Error::from)
        },
        async {
            light
                .submit(spans(120, TASK_MS))
                .await?
                .results()
                .await
                .map_err(anyhow::Error::from)
        },
    )?;
    let (h, l) = (intervals(&h), intervals(&l));
    // Count starts from 1 s in (shares settled) until the first caller is done.
    let first_start = h.iter().chain(&l).map(|i| i.0).min().unwrap_or(0);
    let from = first_start + 1_000_000;
    let until = h
        .iter()
        .map(|i| i.1)
        .max()
        .min(l.iter().map(|i| i.1).max())
        .unwrap_or(0);
    let count = |v: &[(u64, u64)]| v.iter().filter(|i| i.0 >= from && i.0 < until).count();
    let (hn, ln) = (count(&h), count(&l));
    eprintln!("from 1 s until the first was done: heavy started {hn}, light {ln}");
    assert!(ln > 0 && hn > 0, "both ran in the window: {hn} and {ln}");
    let ratio = hn as f64 / ln as f64;
    assert!(
        (2.0..=4.5).contains(&ratio),
        "heavy/light = {ratio:.2}, weights 3:1"
    );
    Ok(())
}

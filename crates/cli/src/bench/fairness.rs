//! `fairness`: a wide job of one caller saturates the fleet, then another
//! caller's small jobs arrive. Their latency against the same jobs on an
//! idle fleet, and the wide job's throughput against it alone, with the
//! fleet shared fairly and (for comparison) first come first served.

use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Client, ClientOptions, Job, Task};
use toolfan_coordinator::{CoordinatorOptions, FairOptions};

use super::common::{percentile, Figures};
use crate::local::{LocalCluster, LocalOptions};

/// The scenario's sizes.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Tasks of A's job (its window as wide).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub(crate) wide: u32,
    /// B's jobs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) small_jobs: u32,
    /// Tasks per B job.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) small_tasks: u32,
    /// How long every task sleeps, ms.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) task_ms: u64,
    /// Workers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) workers: u32,
    /// Slots per worker.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) slots: u32,
    /// The coordinator's fair-share slack (tasks queued beyond the slots, as a fraction of them).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) slack: f64,
}

/// What one configuration measured, over all rounds.
#[derive(Default)]
struct Measured {
    /// B's job latencies on an idle fleet and on the busy one, ms.
    b_idle: Vec<f64>,
    b_busy: Vec<f64>,
    /// A's tasks per second alone, and with B's jobs in the middle.
    a_alone: Vec<f64>,
    a_busy: Vec<f64>,
}

/// Rounds per configuration: each runs B alone, A alone, then both.
const ROUNDS: usize = 3;

fn sleep_job(n: u32, ms: u64) -> Job {
    Job::new(vec![Task::new("sleep", json!({ "ms": ms })); n as usize])
        .max_concurrency(n)
        .deadline(Duration::from_secs(120))
}

async fn caller(cluster: &LocalCluster, name: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(ClientOptions::new(&cluster.nats_url).caller(name)?).await?)
}

/// Runs B's jobs all at once; each one's latency in ms.
async fn small_jobs(b: &Client, sizes: Sizes) -> anyhow::Result<Vec<f64>> {
    let runs = (0..sizes.small_jobs).map(|_| async {
        let started = Instant::now();
        let results = b
            .submit(sleep_job(sizes.small_tasks, sizes.task_ms))
            .await?
            .results()
            .await?;
        anyhow::ensure!(
            results.iter().all(|r| r.is_ok()),
            "a small job's task failed"
        );
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    });
    futures::future::try_join_all(runs).await
}

/// A's wide job; its tasks per second.
async fn wide_alone(a: &Client, sizes: Sizes) -> anyhow::Result<f64> {
    let started = Instant::now();
    let results = a
        .submit(sleep_job(sizes.wide, sizes.task_ms))
        .await?
        .results()
        .await?;
    anyhow::ensure!(
        results.iter().all(|r| r.is_ok()),
        "a wide job's task failed"
    );
    Ok(f64::from(sizes.wide) / started.elapsed().as_secs_f64())
}

/// A's wide job, B's small jobs 100 ms into it.
async fn busy(a: &Client, b: &Client, sizes: Sizes) -> anyhow::Result<(f64, Vec<f64>)> {
    let small = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        small_jobs(b, sizes).await
    };
    tokio::try_join!(wide_alone(a, sizes), small)
}

async fn configuration(sizes: Sizes, fair: bool) -> anyhow::Result<Measured> {
    let local = LocalOptions {
        nats_url: None,
        redis_url: None,
        workers: sizes.workers,
        concurrency: sizes.slots,
    };
    let coordinator = CoordinatorOptions {
        fair: FairOptions {
            enabled: fair,
            slack: sizes.slack,
            ..FairOptions::default()
        },
        max_live_jobs: 4096,
        ..CoordinatorOptions::default()
    };
    let cluster = LocalCluster::start_with_coordinator(&local, coordinator, |b| b).await?;
    let (a, b) = (
        caller(&cluster, "bench-a").await?,
        caller(&cluster, "bench-b").await?,
    );
    small_jobs(&b, sizes).await?; // warm up
    let mut m = Measured::default();
    for _ in 0..ROUNDS {
        m.b_idle.extend(small_jobs(&b, sizes).await?);
        m.a_alone.push(wide_alone(&a, sizes).await?);
        let (rate, latencies) = busy(&a, &b, sizes).await?;
        m.a_busy.push(rate);
        m.b_busy.extend(latencies);
    }
    cluster.stop().await;
    Ok(m)
}

/// Runs the scenario fairly and first come first served.
pub(crate) async fn run(sizes: Sizes) -> anyhow::Result<Figures> {
    let mut table = format!(
        "fairness: caller A 1 job × {} sleep {} ms (window {}); 100 ms later caller B {} jobs × {}; {} workers × {} slots; slack {}\n\n",
        sizes.wide, sizes.task_ms, sizes.wide, sizes.small_jobs, sizes.small_tasks, sizes.workers, sizes.slots, sizes.slack
    );
    table += &format!(
        "  {ROUNDS} rounds each of B alone, A alone, A with B; A's figures are medians\n\n"
    );
    table += "  sharing      B idle p50/p99 ms   B busy p50/p99 ms   B p99 busy/idle   A alone tasks/s   A busy tasks/s   A loses\n";
    let mut rows = Vec::new();
    for fair in [true, false] {
        let m = configuration(sizes, fair).await?;
        let (idle50, idle99) = (percentile(&m.b_idle, 50.0), percentile(&m.b_idle, 99.0));
        let (busy50, busy99) = (percentile(&m.b_busy, 50.0), percentile(&m.b_busy, 99.0));
        let (a_alone, a_busy) = (percentile(&m.a_alone, 50.0), percentile(&m.a_busy, 50.0));
        let loss = 1.0 - a_busy / a_alone;
        let name = if fair { "fair" } else { "fifo" };
        table += &format!(
            "  {name:<10} {idle50:>8.1} / {idle99:<8.1} {busy50:>8.1} / {busy99:<8.1} {:>15.2}× {a_alone:>17.0} {:>16.0} {:>8.1} %\n",
            busy99 / idle99,
            a_busy,
            loss * 100.0
        );
        rows.push(json!({"sharing": name, "b_idle_p50_ms": idle50, "b_idle_p99_ms": idle99,
            "b_busy_p50_ms": busy50, "b_busy_p99_ms": busy99, "b_p99_busy_over_idle": busy99 / idle99,
            "a_alone_tasks_per_s": a_alone, "a_busy_tasks_per_s": a_busy, "a_loss": loss}));
    }
    table += "\n  targets (fair): B p99 busy/idle ≤ 3×, A loses ≤ 10 %";
    Ok(Figures {
        table,
        json: json!({"scenario": "fairness", "wide": sizes.wide, "small_jobs": sizes.small_jobs,
            "small_tasks": sizes.small_tasks, "task_ms": sizes.task_ms, "workers": sizes.workers,
            "slots": sizes.slots, "slack": sizes.slack, "rows": rows}),
    })
}

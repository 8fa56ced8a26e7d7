//! A fleet for the limits tests: NATS, a coordinator, real Redis and
//! worker processes serving `span`.

use std::time::Duration;

use toolfan::{Job, Task, TaskResult};
use toolfan_limits::{LimitSpec, LimitStore};
use toolfan_testkit::{Process, RedisServer};

use crate::{spawn, timed, Cluster};

/// A cluster with Redis and `n` worker processes serving `span`, each
/// started with `extra` arguments.
pub struct Fleet {
    /// NATS and a coordinator.
    pub cluster: Cluster,
    /// The limits' Redis.
    pub redis: RedisServer,
    /// Where limits are defined.
    pub store: LimitStore,
    /// The worker processes.
    pub workers: Vec<Process>,
}

impl Fleet {
    /// Starts the cluster, Redis and the workers, and waits for them.
    pub async fn start(n: usize, extra: &[&str]) -> anyhow::Result<Self> {
        let cluster = Cluster::start().await?;
        let redis = RedisServer::start()?;
        let store = LimitStore::connect(&redis.url(), "toolfan").await?;
        let mut fleet = Self {
            cluster,
            redis,
            store,
            workers: Vec::new(),
        };
        let ids: Vec<String> = (1..=n).map(|i| format!("lim-w{i}")).collect();
        for id in &ids {
            fleet.workers.push(fleet.worker(id, extra)?);
        }
        fleet.cluster.wait_for_workers(&ids).await?;
        Ok(fleet)
    }

    /// Starts one more worker process `id` (not waited for).
    pub fn worker(&self, id: &str, extra: &[&str]) -> anyhow::Result<Process> {
        let (nats, redis) = (self.cluster.nats.url(), self.redis.url());
        let mut args = vec![
            "--nats-url",
            &nats,
            "--redis-url",
            &redis,
            "--id",
            id,
            "--tools",
            "span",
        ];
        args.extend_from_slice(extra);
        spawn("toolfan-worker", &args)
    }

    /// Runs `tasks` as one job (window 1000, deadline 60 s), timed.
    pub async fn run(&self, tasks: Vec<Task>) -> anyhow::Result<(Vec<TaskResult>, Duration)> {
        let client = self.cluster.client().await?;
        let job = Job::new(tasks)
            .max_concurrency(1000)
            .deadline(Duration::from_secs(60));
        timed(&client, job).await
    }
}

/// A rate limit.
pub fn rate(per_second: u64, burst: u64) -> LimitSpec {
    LimitSpec::per_second(per_second, burst)
}

/// A concurrency cap.
pub fn cap(n: u32) -> LimitSpec {
    LimitSpec::concurrency(n)
}

impl Fleet {
    /// Defines `key` in Redis and waits until every worker has read it.
    pub async fn define(&self, key: &str, spec: LimitSpec) -> anyhow::Result<()> {
        self.store.set(key, &spec).await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
        Ok(())
    }
}

/// Asserts every result succeeded.
pub fn all_ok(results: &[TaskResult]) {
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| !r.is_ok())
    );
}

/// The most spans running at once.
pub fn max_overlap(results: &[TaskResult]) -> usize {
    let mut edges: Vec<(u64, i32)> = results
        .iter()
        .flat_map(|r| {
            let v = r.value().expect("a span result");
            [
                (v["started_us"].as_u64().unwrap(), 1),
                (v["ended_us"].as_u64().unwrap(), -1),
            ]
        })
        .collect();
    edges.sort_unstable_by_key(|&(t, d)| (t, d)); // ends before starts at the same instant
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

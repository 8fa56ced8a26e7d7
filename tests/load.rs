//! Load and liveness (DESIGN.md, "Load and liveness") on the reference
//! set-up: one coordinator, two built-in workers × 256 slots, real
//! nats-server. Each test is bounded in time and fails with a message
//! rather than hanging. What each guards:
//!
//! - `one_job_of_10000_echo_tasks_in_one_window_...`: a window wider than
//!   async-nats' 5,000 outstanding publish acks per JetStream context must
//!   not deadlock the dispatch; order and values hold at that size.
//! - `jobs_256_of_100_echo_tasks_at_once_...`: the bound on publishes is
//!   shared by all of a coordinator's jobs (25,600 tasks in flight at once,
//!   100 per job).
//! - `jobs_10000_of_5_echo_tasks_at_once_...`: jobs beyond `max_live_jobs`
//!   (1,024) wait in JetStream and are all answered.
//! - `a_2s_deadline_is_kept_behind_50000_queued_tasks`: a job's deadline
//!   runs on its own timer, not behind dispatch, however deep the queue.
//! - every test: no coordinator takes over a job it still runs
//!   (`toolfan_jobs_taken_over_total` stays 0).
//!
//! The tests run one at a time (a file-wide lock): each loads the 2-core
//! machine on its own. Debug build, this machine: about 30 s for the file
//! when nothing stalls (10,000 × 5 takes ~14 s of it; measured with a
//! throwaway fix that awaited each publish ack on its own task).
//!
//! On the coordinator of commit 6c46040 (dispatch pipelines a whole window
//! before awaiting any ack) three fail, in ~100 s for the file: the wide
//! window and the 256 jobs stall at 5,000 unacked publishes and end in
//! `NoAnswer` at deadline + grace (35 s), the coordinator meanwhile taking
//! over its own jobs (3, and 400-850 times); behind the flood, stopped at
//! 5,000 queued tasks, the 2 s job gets no answer at all (`NoAnswer` at
//! 7 s). 10,000 × 5 passes (≤ 1,024 live jobs × 5 tasks rarely hold 5,000
//! acks at once).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};
use toolfan::{Client, ErrorKind, Job, JobHandle, Task, TaskResult};
use toolfan_e2e::Cluster;
use toolfan_protocol::Subjects;

/// One load test at a time in this file.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The default names of streams and consumers.
static SUBJECTS: std::sync::LazyLock<Subjects> = std::sync::LazyLock::new(Subjects::default);

/// Slots of each of the two workers.
const SLOTS: u32 = 256;

/// A cluster on the reference set-up, with the coordinator's metrics at hand.
struct Load {
    client: Client,
    metrics: prometheus::Registry,
    cluster: Cluster,
    // Dropped last: the next test starts once this one's servers are gone.
    _serial: MutexGuard<'static, ()>,
}

impl Load {
    async fn start() -> anyhow::Result<Self> {
        Self::start_sharing(true).await
    }

    /// With `fair` off, the coordinator dispatches every job's whole
    /// window at once, first come first served: how a queue grows deep.
    async fn start_sharing(fair: bool) -> anyhow::Result<Self> {
        let serial = SERIAL.lock().await;
        let metrics = prometheus::Registry::new();
        let registry = metrics.clone();
        let cluster = Cluster::start_with(move |o| {
            o.metrics = registry;
            o.fair.enabled = fair;
        })
        .await?;
        cluster.builtin_worker(SLOTS).await?;
        cluster.builtin_worker(SLOTS).await?;
        let client = cluster.client().await?;
        Ok(Self {
            client,
            metrics,
            cluster,
            _serial: serial,
        })
    }

    /// The coordinator's counter `name` (0 if it was never touched).
    fn counter(&self, name: &str) -> f64 {
        self.metrics
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    /// Runs `scenario` within `bound`, then checks that the coordinator
    /// took over none of its own jobs.
    async fn check(
        &self,
        name: &str,
        bound: Duration,
        scenario: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(bound, scenario).await;
        let taken_over = self.counter("toolfan_jobs_taken_over_total");
        let redelivered = self.jobs_redelivered().await.unwrap_or(u64::MAX);
        eprintln!(
            "{name}: {:.1} s, jobs taken over {taken_over}, job messages redelivered {redelivered}",
            started.elapsed().as_secs_f64()
        );
        let context =
            format!("{name} (meanwhile the coordinator took over {taken_over} of its own jobs)");
        match outcome {
            Err(_) => anyhow::bail!("{context}: stalled, not done within {bound:?}"),
            Ok(result) => result.map_err(|e| e.context(context))?,
        }
        assert_eq!(
            taken_over, 0.0,
            "{name}: the coordinator took over jobs it still ran"
        );
        Ok(())
    }

    /// How many job messages JetStream delivered again (for the log line).
    async fn jobs_redelivered(&self) -> anyhow::Result<u64> {
        let js = jetstream::new(async_nats::connect(self.cluster.nats.url()).await?);
        let mut consumer: jetstream::consumer::PullConsumer = js
            .get_consumer_from_stream(SUBJECTS.coordinators_consumer(), SUBJECTS.jobs_stream())
            .await?;
        Ok(consumer.info().await?.num_redelivered as u64)
    }

    /// Messages in the tasks stream: queued plus delivered and not yet acked.
    async fn tasks_queued(&self, js: &jetstream::Context) -> anyhow::Result<u64> {
        Ok(js
            .get_stream(SUBJECTS.tasks_stream())
            .await?
            .info()
            .await?
            .state
            .messages)
    }
}

/// Echo tasks whose args name their job and index.
fn echo_tasks(job: usize, n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| Task::new("echo", json!({"job": job, "i": i})))
        .collect()
}

/// Every result of job `job` is ok, in input order, and echoes its own args.
fn assert_echoed(job: usize, results: &[TaskResult], n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        results.len() == n,
        "job {job}: {} results for {n} tasks",
        results.len()
    );
    for (i, result) in results.iter().enumerate() {
        anyhow::ensure!(
            result.index as usize == i,
            "job {job}: result {i} has index {}",
            result.index
        );
        let want = json!({"job": job, "i": i});
        anyhow::ensure!(
            result.value() == Some(&want),
            "job {job}: result {i} is {:?}, not an echo of {want}",
            result.outcome
        );
    }
    Ok(())
}

/// Submits `jobs` echo jobs of `size` tasks at once (each on its own tokio
/// task) and checks every one; returns how many were answered.
async fn echo_jobs_at_once(
    client: &Client,
    jobs: usize,
    size: usize,
    window: u32,
    deadline: Duration,
) -> anyhow::Result<usize> {
    let mut running = tokio::task::JoinSet::new();
    for job in 0..jobs {
        let client = client.clone();
        running.spawn(async move {
            let spec = Job::new(echo_tasks(job, size))
                .max_concurrency(window)
                .deadline(deadline);
            let results = client.submit(spec).await?.results().await?;
            assert_echoed(job, &results, size)
        });
    }
    let mut answered = 0;
    while let Some(done) = running.join_next().await {
        done??;
        answered += 1;
    }
    Ok(answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_of_10000_echo_tasks_in_one_window_comes_back_whole_and_in_order(
) -> anyhow::Result<()> {
    let load = Load::start().await?;
    let scenario = async {
        let job = Job::new(echo_tasks(0, 10_000))
            .max_concurrency(10_000)
            .deadline(Duration::from_secs(30));
        let results = load.client.submit(job).await?.results().await?;
        assert_echoed(0, &results, 10_000)
    };
    load.check(
        "1 × 10,000 echo, window 10,000",
        Duration::from_secs(40),
        scenario,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_256_of_100_echo_tasks_at_once_all_complete() -> anyhow::Result<()> {
    let load = Load::start().await?;
    let scenario = async {
        let answered =
            echo_jobs_at_once(&load.client, 256, 100, 100, Duration::from_secs(30)).await?;
        anyhow::ensure!(answered == 256, "{answered} of 256 jobs answered");
        Ok(())
    };
    load.check(
        "256 × 100 echo, window 100",
        Duration::from_secs(40),
        scenario,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_10000_of_5_echo_tasks_at_once_all_complete() -> anyhow::Result<()> {
    let load = Load::start().await?;
    let scenario = async {
        // 9,000 of them wait in JetStream behind max_live_jobs (1,024), so
        // the deadline is long: it counts from the submission.
        let answered =
            echo_jobs_at_once(&load.client, 10_000, 5, 5, Duration::from_secs(120)).await?;
        anyhow::ensure!(answered == 10_000, "{answered} of 10,000 jobs answered");
        Ok(())
    };
    load.check(
        "10,000 × 5 echo at once",
        Duration::from_secs(135),
        scenario,
    )
    .await
}

/// Submits 5 jobs × 10,000 one-minute sleeps (512 run, the rest queue in
/// the sleep tool's stream) and waits until the queue stops growing or
/// holds them all (60 s at most); returns the handles and the depth.
async fn flood_sleep_queue(load: &Load) -> anyhow::Result<(Vec<JobHandle>, u64)> {
    let mut flood = Vec::new();
    for _ in 0..5 {
        let job = Job::new(vec![Task::new("sleep", json!({"ms": 60_000})); 10_000])
            .max_concurrency(10_000)
            .deadline(Duration::from_secs(120));
        flood.push(load.client.submit(job).await?);
    }
    let js = jetstream::new(async_nats::connect(load.cluster.nats.url()).await?);
    let started = Instant::now();
    let (mut depth, mut grew_at) = (0, Instant::now());
    while depth < 50_000 && grew_at.elapsed() < Duration::from_secs(5) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the flood reached only {depth} queued tasks in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = load.tasks_queued(&js).await?;
        if now > depth {
            (depth, grew_at) = (now, Instant::now());
        }
    }
    eprintln!(
        "flood: {depth} tasks in the queue after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((flood, depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2s_deadline_is_kept_behind_50000_queued_tasks() -> anyhow::Result<()> {
    // Fair shares keep one coordinator's queues short; a queue still grows
    // deep under coordinators without them, or while no worker of the tool
    // is heard (no room to share). The deadline must hold behind it.
    let load = Load::start_sharing(false).await?;
    let scenario = async {
        let (_flood, depth) = flood_sleep_queue(&load).await?;
        let job = Job::new(vec![Task::new("sleep", json!({"ms": 10})); 10])
            .max_concurrency(10)
            .deadline(Duration::from_secs(2));
        let started = Instant::now();
        let results = load.client.submit(job).await?.results().await;
        let elapsed = started.elapsed();
        eprintln!("the 2 s job behind {depth} queued tasks: answered after {elapsed:?}");
        let results = results.map_err(|e| {
            anyhow::anyhow!("behind {depth} queued tasks, no answer after {elapsed:?}: {e}")
        })?;
        anyhow::ensure!(
            elapsed < Duration::from_secs(5),
            "behind {depth} queued tasks, a 2 s job was answered after {elapsed:?}"
        );
        for result in &results {
            anyhow::ensure!(
                result.error().map(|e| e.kind.clone()) == Some(ErrorKind::DeadlineExceeded),
                "a task that could not run reads {result:?}"
            );
        }
        // The premise: the flood was really queued in front of the job.
        anyhow::ensure!(depth >= 45_000, "only {depth} of 50,000 tasks were queued");
        Ok(())
    };
    load.check(
        "2 s deadline behind 50,000 queued sleeps",
        Duration::from_secs(90),
        scenario,
    )
    .await
}

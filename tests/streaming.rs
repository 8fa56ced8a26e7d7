//! Streaming, cancellation and join policies, against a real nats-server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use toolfan::{EndedBy, ErrorKind, Job, JobStatus, Policy, Task, TaskResult};
use toolfan_e2e::{spawn, stored_results, timed, Cluster};
use toolfan_worker::{TaskContext, ToolError, Worker};

/// A test tool that sleeps `ms` and counts how many naps started and how
/// many slept to the end (an aborted nap never does).
#[derive(Clone, Default)]
struct Naps {
    started: Arc<Mutex<Vec<Instant>>>,
    completed: Arc<AtomicUsize>,
}

impl Naps {
    async fn serve(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let naps = self.clone();
        let builder =
            Worker::builder()
                .concurrency(64)
                .tool("nap", move |_ctx: TaskContext, args: Value| {
                    let naps = naps.clone();
                    async move {
                        naps.started.lock().unwrap().push(Instant::now());
                        if args["fail"].as_bool() == Some(true) {
                            return Err(ToolError::new("failed on purpose"));
                        }
                        tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(0)))
                            .await;
                        naps.completed.fetch_add(1, Ordering::SeqCst);
                        Ok(args)
                    }
                });
        let builder =
            toolfan_tools::builtin::add_builtin(builder, "span").map_err(anyhow::Error::msg)?;
        cluster.worker(builder).await
    }
}

fn nap(ms: u64) -> Task {
    Task::new("nap", json!({"ms": ms}))
}

fn kind(r: &TaskResult) -> Option<ErrorKind> {
    r.error().map(|e| e.kind.clone())
}

async fn idle_within(cluster: &Cluster, limit: Duration) -> anyhow::Result<Duration> {
    let client = cluster.client().await?;
    let started = Instant::now();
    loop {
        let workers = client.workers(Duration::from_millis(50)).await?;
        if workers.iter().all(|w| w.in_flight == 0) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "workers still busy after {limit:?}: {workers:?}"
        );
    }
}

#[tokio::test]
async fn the_stream_is_in_completion_order_and_results_in_input_order() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    Naps::default().serve(&cluster).await?;
    let client = cluster.client().await?;
    // Task i runs (10 - i) × 30 ms: they finish in reverse order.
    let tasks = (0..10u64)
        .map(|i| Task::new("span", json!({"ms": (10 - i) * 30})))
        .collect();
    let mut handle = client.submit(Job::new(tasks).max_concurrency(10)).await?;
    let mut seen = Vec::new();
    let mut ends = Vec::new();
    let mut events = handle.events();
    while let Some(event) = events.next().await {
        let event = event?;
        assert_eq!(event.total, 10);
        assert_eq!(
            event.finished,
            seen.len() + 1,
            "progress counts each task once"
        );
        ends.push(event.result.value().unwrap()["ended_us"].as_u64().unwrap());
        seen.push(event.index);
    }
    drop(events);
    let outcome = handle.wait().await?;
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..10).collect::<Vec<u32>>(),
        "every index exactly once"
    );
    assert!(
        ends.windows(2).all(|w| w[0] <= w[1]),
        "events came in completion order: {seen:?}"
    );
    assert_ne!(seen, sorted, "completion order differed from input order");
    let indices: Vec<u32> = outcome.results.iter().map(|r| r.index).collect();
    assert_eq!(indices, sorted, "results in input order");
    assert_eq!(outcome.summary.ended_by, EndedBy::AllDone);
    Ok(())
}

#[tokio::test]
async fn first_ok_returns_the_first_success_and_aborts_the_rest() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let naps = Naps::default();
    naps.serve(&cluster).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![nap(50), nap(3000), nap(3000)]).policy(Policy::FirstOk);
    let started = Instant::now();
    let outcome = client.submit(job).await?.wait().await?;
    let elapsed = started.elapsed();
    eprintln!("first_ok answered in {elapsed:?}");
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    let r = &outcome.results;
    assert_eq!(r[0].value(), Some(&json!({"ms": 50})));
    assert_eq!(
        (kind(&r[1]), kind(&r[2])),
        (Some(ErrorKind::Cancelled), Some(ErrorKind::Cancelled))
    );
    assert_eq!(outcome.summary.ended_by, EndedBy::Policy);
    assert_eq!(
        outcome.summary.reason.as_deref(),
        Some("first_ok: task 0 succeeded")
    );
    // The two long naps were aborted on the worker, not left sleeping.
    let idle = idle_within(&cluster, Duration::from_millis(1000)).await?;
    eprintln!("the worker was idle {idle:?} after the answer");
    assert_eq!(
        naps.completed.load(Ordering::SeqCst),
        1,
        "only the 50 ms nap slept to its end"
    );
    Ok(())
}

#[tokio::test]
async fn fail_fast_answers_right_after_the_first_failure() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let naps = Naps::default();
    naps.serve(&cluster).await?;
    let client = cluster.client().await?;
    let mut tasks = vec![nap(2000); 20];
    tasks[5] = Task::new("nap", json!({"fail": true}));
    let job = Job::new(tasks).max_concurrency(20).policy(Policy::FailFast);
    let (results, elapsed) = timed(&client, job).await?;
    assert!(elapsed < Duration::from_millis(700), "took {elapsed:?}");
    assert_eq!(kind(&results[5]), Some(ErrorKind::ToolError));
    for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != 5) {
        assert_eq!(kind(r), Some(ErrorKind::Cancelled), "task {i}: {r:?}");
    }
    idle_within(&cluster, Duration::from_millis(1000)).await?;
    assert_eq!(naps.completed.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn quorum_returns_after_the_kth_success() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    Naps::default().serve(&cluster).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![nap(100), nap(200), nap(1500), nap(3000), nap(3000)])
        .policy(Policy::Quorum(2));
    let started = Instant::now();
    let outcome = client.submit(job).await?.wait().await?;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(900),
        "took {elapsed:?}"
    );
    let ok = outcome.results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 2, "{:?}", outcome.results);
    assert!(outcome.results[2..]
        .iter()
        .all(|r| kind(r) == Some(ErrorKind::Cancelled)));
    assert_eq!(
        outcome.summary.reason.as_deref(),
        Some("quorum(2): task 1 was success number 2")
    );
    Ok(())
}

#[tokio::test]
async fn a_cancel_stops_every_task_from_starting_after_it() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let naps = Naps::default();
    naps.serve(&cluster).await?;
    let client = cluster.client().await?;
    let mut handle = client
        .submit(Job::new(vec![nap(100); 100]).max_concurrency(10))
        .await?;
    // Let about three waves of ten start, then cancel.
    let mut finished = 0;
    while finished < 25 {
        if let Some(toolfan::JobEvent::Task(_)) = handle.next_event().await.transpose()? {
            finished += 1;
        }
    }
    handle.cancel().await?;
    let cancelled_at = Instant::now();
    handle.cancel().await?; // twice is harmless
    let canceller = handle.canceller();
    let outcome = handle.wait().await?;
    canceller.cancel().await?; // so is cancelling a finished job

    let starts = naps.started.lock().unwrap().clone();
    let late = starts
        .iter()
        .filter(|&&s| s > cancelled_at + Duration::from_millis(50))
        .count();
    let cancelled = outcome
        .results
        .iter()
        .filter(|r| kind(r) == Some(ErrorKind::Cancelled))
        .count();
    eprintln!(
        "{} of 100 started; {cancelled} cancelled; {late} started after the cancel",
        starts.len()
    );
    assert_eq!(
        late, 0,
        "tasks started after the cancel reached the coordinator"
    );
    assert_eq!(outcome.summary.status, JobStatus::Cancelled);
    assert_eq!(outcome.summary.ended_by, EndedBy::Cancel);
    assert!(cancelled >= 50, "only {cancelled} tasks were cancelled");
    assert_eq!(outcome.results.len(), 100);
    Ok(())
}

#[tokio::test]
async fn the_job_deadline_ends_the_job_and_aborts_its_tasks() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let naps = Naps::default();
    naps.serve(&cluster).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![nap(100), nap(5000), nap(5000)]).deadline(Duration::from_millis(400));
    let outcome = client.submit(job).await?.wait().await?;
    assert!(outcome.results[0].is_ok());
    assert_eq!(kind(&outcome.results[1]), Some(ErrorKind::DeadlineExceeded));
    assert_eq!(outcome.summary.ended_by, EndedBy::Deadline);
    idle_within(&cluster, Duration::from_millis(1000)).await?;
    assert_eq!(naps.completed.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn a_cancel_sent_before_any_coordinator_has_the_job_still_lands() -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("sleep", json!({"ms": 3000})); 4]);
    let handle = client.submit(job).await?;
    // Nobody listens for the cancel yet: the job waits in the stream.
    handle.cancel().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_coordinator(|_| {});
    let started = Instant::now();
    let outcome = handle.wait().await?;
    let took = started.elapsed();
    assert_eq!(outcome.summary.status, JobStatus::Cancelled);
    assert!(
        outcome
            .results
            .iter()
            .all(|r| r.error().map(|e| e.kind.clone()) == Some(ErrorKind::Cancelled)),
        "{:?}",
        outcome.results
    );
    // The naps take 3 s; the re-sent cancel ends the job long before.
    assert!(took < Duration::from_millis(2000), "{took:?}");
    eprintln!("a cancel sent before the coordinator started ended the job {took:?} after it did");
    Ok(())
}

#[tokio::test]
async fn a_dropped_handle_lets_the_job_be_cancelled_after_the_grace() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    Naps::default().serve(&cluster).await?;
    let mut options = toolfan::ClientOptions::new(cluster.nats.url());
    options.caller_grace = Some(Duration::from_millis(600));
    let client = toolfan::Client::connect(options).await?;
    let handle = client
        .submit(Job::new(vec![nap(10_000); 3]).deadline(Duration::from_secs(30)))
        .await?;
    let job = handle.id().clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(handle);
    let dropped = Instant::now();
    idle_within(&cluster, Duration::from_secs(3)).await?;
    let after = dropped.elapsed();
    eprintln!("the orphaned job stopped {after:?} after its handle was dropped (grace 600 ms)");
    assert!(
        after >= Duration::from_millis(400),
        "cancelled before the grace: {after:?}"
    );
    let stored = stored_results(&cluster.nats.url(), &job).await?;
    let verdicts = stored
        .iter()
        .filter(|r| r.worker.is_none() && kind(r) == Some(ErrorKind::Cancelled));
    assert_eq!(
        verdicts.count(),
        3,
        "the coordinator cancelled every task: {stored:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_killed_caller_process_gets_its_job_cancelled_after_the_grace() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    Naps::default().serve(&cluster).await?;
    let url = cluster.nats.url();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("job.json");
    std::fs::write(
        &path,
        r#"{"id": "orphan-1", "tasks": [{"tool": "nap", "args": {"ms": 20000}}, {"tool": "nap", "args": {"ms": 20000}}], "deadline_ms": 60000}"#,
    )?;
    let mut caller = spawn(
        "toolfan",
        &[
            "submit",
            path.to_str().unwrap(),
            "--nats-url",
            &url,
            "--caller-grace-ms",
            "800",
        ],
    )?;
    let client = cluster.client().await?;
    let started = Instant::now();
    while !client
        .workers(Duration::from_millis(50))
        .await?
        .iter()
        .any(|w| w.in_flight == 2)
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the job never started"
        );
    }
    caller.kill();
    let killed = Instant::now();
    idle_within(&cluster, Duration::from_secs(4)).await?;
    eprintln!(
        "the dead caller's job stopped {:?} after the kill (grace 800 ms)",
        killed.elapsed()
    );
    let stored = stored_results(&url, &"orphan-1".parse()?).await?;
    let cancelled: Vec<_> = stored
        .iter()
        .filter(|r| r.worker.is_none() && kind(r) == Some(ErrorKind::Cancelled))
        .collect();
    assert_eq!(
        cancelled.len(),
        2,
        "the coordinator cancelled every task: {stored:?}"
    );
    assert!(cancelled[0]
        .error()
        .unwrap()
        .message
        .contains("no keepalive from the caller"));
    Ok(())
}

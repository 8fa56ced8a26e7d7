//! Retries, crashes and restarts: every task gets exactly one result, in
//! order, by its deadline. Real binaries as child processes, SIGKILL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{ErrorKind, Job, Task, TaskResult};
use toolfan_e2e::{spawn, stored_results, terminate, timed, Cluster};
use toolfan_testkit::Process;
use toolfan_tools::builtin::add_builtin;
use toolfan_worker::{TaskContext, ToolError, Worker, WorkerOptions};

#[tokio::test]
async fn retryable_failures_are_retried_up_to_the_limit() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let results = client
        .fanout(vec![
            Task::new("flaky", json!({"fail_attempts": 2})).retries(2),
            Task::new("flaky", json!({"fail_attempts": 2})).retries(1),
            Task::new("fail", json!({"message": "permanent"})).retries(3),
            Task::new("fail", json!({"message": "transient", "retryable": true})).retries(2),
            Task::new("sleep", json!({"ms": "bad"})).retries(3),
        ])
        .await?;
    assert_eq!(
        results[0].value(),
        Some(&json!({"attempt": 3})),
        "{:?}",
        results[0]
    );
    assert_eq!(results[0].attempts, 3);
    assert_eq!(
        results[1].error().map(|e| e.kind.clone()),
        Some(ErrorKind::ToolError)
    );
    assert_eq!(results[1].attempts, 2, "one retry, then the failure stands");
    assert_eq!(
        results[2].attempts, 1,
        "a non-retryable error is not retried"
    );
    assert_eq!(results[3].attempts, 3, "a retryable error uses every retry");
    assert_eq!(
        results[4].error().map(|e| e.kind.clone()),
        Some(ErrorKind::InvalidArgs)
    );
    assert_eq!(results[4].attempts, 1, "invalid_args is never retried");
    Ok(())
}

#[tokio::test]
async fn retries_back_off_exponentially_with_jitter() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let seen: Arc<Mutex<HashMap<u32, Vec<Instant>>>> = Arc::default();
    let log = seen.clone();
    let options = WorkerOptions {
        retry_base: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    cluster
        .worker(Worker::builder().options(options).tool(
            "twice",
            move |ctx: TaskContext, _: Value| {
                let log = log.clone();
                async move {
                    log.lock()
                        .unwrap()
                        .entry(ctx.index())
                        .or_default()
                        .push(Instant::now());
                    if ctx.attempt() <= 2 {
                        return Err(ToolError::retryable("not yet"));
                    }
                    Ok(json!(ctx.attempt()))
                }
            },
        ))
        .await?;
    let client = cluster.client().await?;
    let results = client
        .fanout(vec![Task::new("twice", json!({})).retries(2); 20])
        .await?;
    assert!(
        results.iter().all(|r| r.value() == Some(&json!(3))),
        "{results:?}"
    );

    let seen = seen.lock().unwrap();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for times in seen.values() {
        assert_eq!(times.len(), 3);
        first.push(times[1] - times[0]);
        second.push(times[2] - times[1]);
    }
    let mean = |gaps: &[Duration]| gaps.iter().sum::<Duration>() / gaps.len() as u32;
    let slack = Duration::from_millis(150);
    eprintln!(
        "mean backoff before attempt 2: {:?}, before attempt 3: {:?}",
        mean(&first),
        mean(&second)
    );
    // Full jitter: uniform up to 200 ms, then up to 400 ms (means 100 and 200 ms).
    assert!(
        first
            .iter()
            .all(|g| *g <= Duration::from_millis(200) + slack),
        "{first:?}"
    );
    assert!(
        second
            .iter()
            .all(|g| *g <= Duration::from_millis(400) + slack),
        "{second:?}"
    );
    assert!(
        mean(&first) >= Duration::from_millis(40),
        "no backoff before retry 1: {first:?}"
    );
    assert!(
        mean(&second) >= Duration::from_millis(80),
        "no backoff before retry 2: {second:?}"
    );
    assert!(mean(&second) > mean(&first), "the backoff did not grow");
    Ok(())
}

#[tokio::test]
async fn no_retry_starts_that_cannot_finish_before_the_deadline() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut builder = Worker::builder().options(WorkerOptions {
        retry_base: Duration::from_secs(5),
        retry_cap: Duration::from_secs(5),
        ..WorkerOptions::default()
    });
    builder = add_builtin(builder, "fail").map_err(anyhow::Error::msg)?;
    cluster.worker(builder).await?;
    let client = cluster.client().await?;
    let mut ran_out = 0;
    // A retry waits up to 5 s; the job has 1 s. Some retries draw a short
    // delay and run; none may be started past the deadline.
    let task = Task::new("fail", json!({"retryable": true})).retries(5);
    let (results, elapsed) = timed(
        &client,
        Job::new(vec![task; 10]).deadline(Duration::from_secs(1)),
    )
    .await?;
    for r in &results {
        let kind = r.error().map(|e| e.kind.clone());
        assert!(
            matches!(
                kind,
                Some(ErrorKind::ToolError) | Some(ErrorKind::DeadlineExceeded)
            ),
            "{r:?}"
        );
        ran_out += usize::from(kind == Some(ErrorKind::DeadlineExceeded));
    }
    assert!(
        elapsed < Duration::from_millis(1800),
        "answered late: {elapsed:?}"
    );
    eprintln!(
        "{ran_out} of 10 ended at the deadline mid-backoff; the rest stopped retrying in time"
    );
    Ok(())
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !check().await? {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_worker_killed_mid_task_hands_the_task_to_another() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster.nats.url();
    let ids = ["kill-a".to_owned(), "kill-b".to_owned()];
    let mut workers: BTreeMap<String, Process> = BTreeMap::new();
    for id in &ids {
        let worker = spawn(
            "toolfan-worker",
            &[
                "--nats-url",
                &url,
                "--id",
                id,
                "--tools",
                "sleep,echo",
                "--ack-wait-ms",
                "1000",
            ],
        )?;
        workers.insert(id.clone(), worker);
    }
    cluster.wait_for_workers(&ids).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![
        Task::new("echo", json!({"i": 0})),
        Task::new("sleep", json!({"ms": 2000})),
        Task::new("echo", json!({"i": 2})),
    ])
    .deadline(Duration::from_secs(20));
    let mut handle = client.submit(job).await?;
    // Once both echoes are answered, the only task in flight is the 2 s one
    // (a heartbeat taken earlier may count an echo still publishing).
    let mut echoed = 0;
    while echoed < 2 {
        match handle.next_event().await {
            Some(Ok(toolfan::JobEvent::Task(event))) if event.index != 1 => echoed += 1,
            other => anyhow::bail!("unexpected event {other:?}"),
        }
    }

    // Kill whichever worker is running the 2 s task.
    let mut victim = String::new();
    wait_until(
        "a worker runs the long task",
        Duration::from_secs(5),
        async || {
            let busy = client
                .workers(Duration::from_millis(100))
                .await?
                .into_iter()
                .find(|w| w.in_flight > 0);
            Ok(busy.map(|w| victim = w.id).is_some())
        },
    )
    .await?;
    workers.get_mut(&victim).unwrap().kill();

    let results = handle.results().await?;
    assert_eq!(results[0].value(), Some(&json!({"i": 0})));
    assert_eq!(
        results[1].value(),
        Some(&json!({"slept_ms": 2000})),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].value(), Some(&json!({"i": 2})));
    let survivor = results[1].worker.as_deref().unwrap();
    assert_ne!(survivor, victim, "the killed worker cannot have answered");
    assert_eq!(results[1].attempts, 2, "the second delivery ran it");
    Ok(())
}

#[tokio::test]
async fn a_coordinator_killed_mid_job_is_taken_over_without_rerunning_finished_tasks(
) -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let coordinator = |_: &str| {
        spawn(
            "toolfan-coordinator",
            &["--nats-url", &url, "--ack-wait-ms", "1000"],
        )
    };
    let mut first = coordinator("a")?;
    let ids = ["co-w1".to_owned(), "co-w2".to_owned()];
    let _workers = ids
        .iter()
        .map(|id| {
            spawn(
                "toolfan-worker",
                &[
                    "--nats-url",
                    &url,
                    "--id",
                    id,
                    "--tools",
                    "span",
                    "--concurrency",
                    "16",
                ],
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    cluster.wait_for_workers(&ids).await?;

    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("span", json!({"ms": 100})); 200])
        .max_concurrency(10)
        .deadline(Duration::from_secs(60));
    let mut handle = client.submit(job).await?;
    let job_id = handle.id().clone();
    // Let the first coordinator answer part of the job, then start a second and kill the first.
    let mut before_kill = Vec::new();
    while before_kill.len() < 40 {
        match handle.next_event().await {
            Some(Ok(toolfan::JobEvent::Task(result))) => before_kill.push(result.index),
            other => anyhow::bail!("unexpected event {other:?}"),
        }
    }
    let _second = coordinator("b")?;
    first.kill();
    let killed = Instant::now();

    let results = handle.results().await?;
    let took_over_in = killed.elapsed();
    assert_eq!(results.len(), 200);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.index as usize, i);
        assert!(r.is_ok(), "{r:?}");
    }
    let mut executions: BTreeMap<u32, usize> = BTreeMap::new();
    for r in stored_results(&url, &job_id).await? {
        if r.worker.is_some() {
            *executions.entry(r.index).or_default() += 1;
        }
    }
    let reruns: usize = executions.values().map(|n| n - 1).sum();
    eprintln!("coordinator killed after {} results; job finished {took_over_in:?} later; {reruns} of 200 tasks ran twice", before_kill.len());
    for index in before_kill {
        assert_eq!(
            executions[&index], 1,
            "task {index} finished before the kill and ran again"
        );
    }
    assert_eq!(executions.len(), 200, "every task ran");
    Ok(())
}

#[tokio::test]
async fn a_nats_restart_mid_job_does_not_lose_the_job() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let tasks = (0..20)
        .map(|i| Task::new("sleep", json!({"ms": 300 + i})))
        .collect();
    let handle = client
        .submit(
            Job::new(tasks)
                .max_concurrency(4)
                .deadline(Duration::from_secs(45)),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nats.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.nats.restart()?;
    let restarted = Instant::now();

    let results = handle.results().await?;
    eprintln!(
        "job finished {:?} after NATS came back",
        restarted.elapsed()
    );
    assert_eq!(results.len(), 20);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.value(), Some(&json!({"slept_ms": 300 + i})), "{r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_a_worker_finish_its_tasks_and_exit_cleanly() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster.nats.url();
    let mut leaving = spawn(
        "toolfan-worker",
        &[
            "--nats-url",
            &url,
            "--id",
            "leaving",
            "--tools",
            "sleep",
            "--concurrency",
            "4",
        ],
    )?;
    cluster.wait_for_workers(&["leaving".to_owned()]).await?;
    let client = cluster.client().await?;
    let tasks = (0..12)
        .map(|i| Task::new("sleep", json!({"ms": 1000 + i})))
        .collect();
    let handle = client
        .submit(
            Job::new(tasks)
                .max_concurrency(12)
                .deadline(Duration::from_secs(30)),
        )
        .await?;
    wait_until("the worker is busy", Duration::from_secs(5), async || {
        Ok(client
            .workers(Duration::from_millis(100))
            .await?
            .iter()
            .any(|w| w.in_flight == 4))
    })
    .await?;
    let _stays = spawn(
        "toolfan-worker",
        &[
            "--nats-url",
            &url,
            "--id",
            "stays",
            "--tools",
            "sleep",
            "--concurrency",
            "8",
        ],
    )?;
    terminate(&leaving)?;
    let asked = Instant::now();
    let status = tokio::task::spawn_blocking(move || leaving.wait()).await??;
    let exited_after = asked.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        exited_after < Duration::from_secs(3),
        "took {exited_after:?} to drain 1 s tasks"
    );

    let results: Vec<TaskResult> = handle.results().await?;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.value(), Some(&json!({"slept_ms": 1000 + i})), "{r:?}");
    }
    let by_leaving = results
        .iter()
        .filter(|r| r.worker.as_deref() == Some("leaving"))
        .count();
    eprintln!(
        "the leaving worker finished {by_leaving} tasks and exited {exited_after:?} after SIGTERM"
    );
    assert!(
        by_leaving >= 4,
        "its running tasks were finished, not dropped"
    );
    Ok(())
}

#[tokio::test]
async fn an_idle_worker_serving_many_tools_exits_promptly_on_sigterm() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster.nats.url();
    // The built-in tools: six pull loops, each with a pull request open.
    let worker = spawn("toolfan-worker", &["--nats-url", &url, "--id", "idle"])?;
    cluster.wait_for_workers(&["idle".to_owned()]).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    terminate(&worker)?;
    let asked = Instant::now();
    let mut worker = worker;
    let status = tokio::task::spawn_blocking(move || worker.wait()).await??;
    let exited_after = asked.elapsed();
    assert!(status.success(), "exit status {status}");
    // Each pull loop waits out its open pull request (1 s) and then stops;
    // none may start another.
    assert!(
        exited_after < Duration::from_millis(1800),
        "an idle worker took {exited_after:?} to exit"
    );
    eprintln!("an idle worker with 6 tools exited {exited_after:?} after SIGTERM");
    Ok(())
}

#[tokio::test]
async fn sigterm_makes_a_coordinator_hand_its_jobs_to_another() -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let mut leaving = spawn(
        "toolfan-coordinator",
        &["--nats-url", &url, "--drain-timeout", "1"],
    )?;
    let _worker = spawn(
        "toolfan-worker",
        &["--nats-url", &url, "--id", "hand-w", "--tools", "sleep"],
    )?;
    cluster.wait_for_workers(&["hand-w".to_owned()]).await?;
    let client = cluster.client().await?;
    let tasks = (0..20)
        .map(|i| Task::new("sleep", json!({"ms": 200 + i})))
        .collect();
    let mut handle = client
        .submit(
            Job::new(tasks)
                .max_concurrency(2)
                .deadline(Duration::from_secs(30)),
        )
        .await?;
    // The job is live on the first coordinator (its first results are in).
    handle.next_event().await.expect("an event")?;
    let _taker = spawn("toolfan-coordinator", &["--nats-url", &url])?;
    let terminated = std::time::Instant::now();
    terminate(&leaving)?;
    let status = tokio::task::spawn_blocking(move || leaving.wait()).await??;
    assert!(status.success(), "exit status {status}");

    let results = handle.results().await?;
    // Handed back at the 1 s drain timeout, not redelivered after the jobs
    // consumer's 10 s ack wait: about 1 s more of the job's 2 s of tasks.
    let answered_after = terminated.elapsed();
    assert!(
        answered_after < Duration::from_secs(7),
        "answered {answered_after:?} after the SIGTERM"
    );
    assert_eq!(results.len(), 20);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.value(), Some(&json!({"slept_ms": 200 + i})), "{r:?}");
    }
    Ok(())
}

//! End-to-end fan-out through a real nats-server: order, parallelism, the
//! window, failure isolation, deadlines and bad input.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{ClientError, ErrorKind, Job, Task};
use toolfan_e2e::{assert_all_missed_a_500ms_deadline, timed, Cluster};
use toolfan_worker::{TaskContext, ToolError, Worker};

#[tokio::test]
async fn results_come_back_in_input_order_whatever_order_they_finish_in() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let finished = Arc::new(Mutex::new(Vec::new()));
    let log = finished.clone();
    cluster
        .worker(Worker::builder().concurrency(64).tool(
            "shuffle",
            move |_ctx: TaskContext, args: Value| {
                let log = log.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(0)))
                        .await;
                    log.lock().unwrap().push(args["i"].as_u64().unwrap());
                    Ok(args)
                }
            },
        ))
        .await?;
    let client = cluster.client().await?;
    // Later tasks sleep less, with a stride so the finish order is scrambled.
    let tasks = (0..50u64)
        .map(|i| Task::new("shuffle", json!({"i": i, "ms": (i * 37 % 50) * 4})))
        .collect();
    let results = client
        .submit(Job::new(tasks).max_concurrency(50))
        .await?
        .results()
        .await?;

    assert_eq!(results.len(), 50);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.index as usize, i);
        assert_eq!(
            result.value().unwrap()["i"],
            json!(i),
            "result {i} carries its own task's value"
        );
    }
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.len(), 50);
    assert_ne!(
        finished,
        (0..50).collect::<Vec<u64>>(),
        "the tasks really finished out of order"
    );
    Ok(())
}

#[tokio::test]
async fn fifty_sleeps_of_100_ms_take_well_under_a_second() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(64).await?;
    let client = cluster.client().await?;
    let tasks = vec![Task::new("sleep", json!({"ms": 100})); 50];
    let started = Instant::now();
    let results = client
        .submit(Job::new(tasks).max_concurrency(50))
        .await?
        .results()
        .await?;
    let elapsed = started.elapsed();
    assert_eq!(results.len(), 50);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    // Run one after another they would take 5 s.
    assert!(elapsed < Duration::from_millis(1000), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn the_window_keeps_at_most_max_concurrency_tasks_running() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let running = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let (r, m) = (running.clone(), most.clone());
    cluster
        .worker(Worker::builder().concurrency(64).tool(
            "count",
            move |_ctx: TaskContext, _args: Value| {
                let (running, most) = (r.clone(), m.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(json!(null))
                }
            },
        ))
        .await?;
    let client = cluster.client().await?;
    let tasks = vec![Task::new("count", json!({})); 30];
    let results = client
        .submit(Job::new(tasks).max_concurrency(5))
        .await?
        .results()
        .await?;
    assert!(results.iter().all(|r| r.is_ok()));
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 5, "{most} tasks ran at once under a window of 5");
    assert!(
        most >= 3,
        "the window was barely used: at most {most} at once"
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_panicking_or_slow_task_touches_no_other_task() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut builder = Worker::builder().concurrency(16).tool(
        "panic",
        |_ctx: TaskContext, _args: Value| async move {
            if true {
                panic!("boom");
            }
            Ok::<Value, ToolError>(json!(null))
        },
    );
    for name in ["echo", "fail", "sleep"] {
        builder = toolfan_tools::builtin::add_builtin(builder, name).map_err(anyhow::Error::msg)?;
    }
    cluster.worker(builder).await?;
    let client = cluster.client().await?;
    let results = client
        .fanout(vec![
            Task::new("echo", json!({"n": 1})),
            Task::new("fail", json!({"message": "nope"})),
            Task::new("panic", json!({})),
            Task::new("sleep", json!({"ms": 5000})).timeout(Duration::from_millis(200)),
            Task::new("sleep", json!({"ms": 10})),
            Task::new("sleep", json!({"ms": "ten"})),
        ])
        .await?;
    assert_eq!(results[0].value(), Some(&json!({"n": 1})), "{results:?}");
    let kind = |i: usize| results[i].error().map(|e| e.kind.clone());
    assert_eq!(kind(1), Some(ErrorKind::ToolError), "{results:?}");
    assert_eq!(results[1].error().unwrap().message, "nope");
    assert_eq!(kind(2), Some(ErrorKind::ToolError), "{results:?}");
    assert!(
        results[2]
            .error()
            .unwrap()
            .message
            .contains("panicked: boom"),
        "{results:?}"
    );
    assert_eq!(kind(3), Some(ErrorKind::Timeout), "{results:?}");
    assert_eq!(
        results[4].value(),
        Some(&json!({"slept_ms": 10})),
        "{results:?}"
    );
    assert_eq!(kind(5), Some(ErrorKind::InvalidArgs), "{results:?}");
    Ok(())
}

#[tokio::test]
async fn with_no_worker_the_caller_gets_unknown_tool_at_once() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client().await?;
    // A coordinator believes "nobody serves it" only once it has listened
    // to the fleet for a full worker TTL (3 s) since it started: before
    // that a task waits (a worker's heartbeat may not have come yet).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let started = Instant::now();
    let results = client
        .submit(
            Job::new(vec![Task::new("sleep", json!({"ms": 10})); 3])
                .deadline(Duration::from_secs(5)),
        )
        .await?
        .results()
        .await?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    for result in &results {
        assert_eq!(
            result.error().map(|e| e.kind.clone()),
            Some(ErrorKind::UnknownTool)
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_tool_names_the_closest_served_tool() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let echo = |_ctx: TaskContext, args: Value| async move { Ok::<_, ToolError>(args) };
    cluster
        .worker(Worker::builder().tool("search", echo).tool("sleep", echo))
        .await?;
    let client = cluster.client().await?;
    // "Nobody serves it" is believed after a full worker TTL (3 s).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let tasks = ["serch", "weather", "search"]
        .into_iter()
        .map(|tool| Task::new(tool, json!({})))
        .collect();
    let results = client
        .submit(Job::new(tasks).deadline(Duration::from_secs(5)))
        .await?
        .results()
        .await?;
    let typo = results[0].error().expect("serch is served by nobody");
    assert_eq!(typo.kind, ErrorKind::UnknownTool);
    assert_eq!(
        typo.message,
        r#"no live worker serves the tool "serch"; did you mean "search"?"#
    );
    let far = results[1].error().expect("weather is served by nobody");
    assert_eq!(far.kind, ErrorKind::UnknownTool);
    assert!(!far.message.contains("did you mean"), "{}", far.message);
    assert!(results[2].error().is_none(), "{:?}", results[2]);
    Ok(())
}

#[tokio::test]
async fn a_job_is_answered_by_its_deadline_even_when_no_worker_gets_to_it() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // One slot, so the second and third tasks never start before the deadline.
    cluster.builtin_worker(1).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("sleep", json!({"ms": 3000})); 3])
        .deadline(Duration::from_millis(500));
    let (results, elapsed) = timed(&client, job).await?;
    assert_all_missed_a_500ms_deadline(&results, elapsed, 3);
    Ok(())
}

#[tokio::test]
async fn an_empty_job_gets_an_empty_answer() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client().await?;
    assert!(client.fanout(vec![]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_job_over_the_task_limit_is_refused_with_a_clear_error() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|o| o.limits.max_tasks = 10).await?;
    cluster.builtin_worker(4).await?;
    let client = cluster.client().await?;
    let err = client
        .fanout(vec![Task::new("echo", json!({})); 11])
        .await
        .unwrap_err();
    match err {
        ClientError::Invalid(message) => {
            assert_eq!(
                message,
                "tasks: 11 tasks is over this cluster's limit of 10 per job"
            )
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    // The same client goes on with a job within the limit.
    let results = client
        .fanout(vec![Task::new("echo", json!({"ok": 1})); 10])
        .await?;
    assert_eq!(results.len(), 10);
    Ok(())
}

//! Hostile and oversized input: every bad message gets its documented error
//! (or is dropped with a log line when it names no one to answer), and the
//! coordinator and workers go on serving the next job.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{json, Value};
use toolfan::{ErrorKind, Job, Task};
use toolfan_e2e::{refusal, submit_raw, Cluster};
use toolfan_tools::builtin;
use toolfan_worker::{TaskContext, Worker, WorkerOptions};

/// A cluster whose coordinator takes jobs up to 30 kB with args up to 1 kB,
/// and a worker that publishes results up to 1 kB.
async fn small_limits() -> anyhow::Result<Cluster> {
    let cluster = Cluster::start_with(|o| {
        o.limits.max_job_bytes = 30_000;
        o.limits.max_args_bytes = 1_000;
    })
    .await?;
    let options = WorkerOptions {
        max_result_bytes: 1_000,
        ..WorkerOptions::default()
    };
    let builder = Worker::builder().options(options).tool(
        "big",
        |_ctx: TaskContext, args: Value| async move {
            Ok(json!(
                "x".repeat(args["bytes"].as_u64().unwrap_or(0) as usize)
            ))
        },
    );
    cluster
        .worker(builtin::add_builtin(builder, "echo").map_err(anyhow::Error::msg)?)
        .await?;
    Ok(cluster)
}

/// The next job is served in full: the system did not wedge.
async fn still_serving(cluster: &Cluster) -> anyhow::Result<()> {
    let results = cluster
        .client()
        .await?
        .fanout(vec![Task::new("echo", json!({"after": true}))])
        .await?;
    assert_eq!(results[0].value(), Some(&json!({"after": true})));
    Ok(())
}

#[tokio::test]
async fn oversized_jobs_args_and_results_get_their_documented_errors() -> anyhow::Result<()> {
    let cluster = small_limits().await?;
    let url = cluster.nats.url();

    let job = format!(
        r#"{{"tasks": [{{"tool": "echo", "args": {{"s": "{}"}}}}]}}"#,
        "x".repeat(40_000)
    );
    let (_, kind, message) = refusal(&submit_raw(&url, "huge-job", job.as_bytes()).await?);
    assert_eq!(kind, ErrorKind::Invalid);
    assert!(
        message.contains("over this cluster's limit of 30000 bytes per job"),
        "{message}"
    );

    let job = format!(
        r#"{{"tasks": [{{"tool": "echo", "args": {{"s": "{}"}}}}]}}"#,
        "x".repeat(2_000)
    );
    let (_, _, message) = refusal(&submit_raw(&url, "huge-args", job.as_bytes()).await?);
    assert!(
        message.starts_with("tasks[0].args: 2008 bytes is over this cluster's limit of 1000"),
        "{message}"
    );

    let results = cluster
        .client()
        .await?
        .fanout(vec![
            Task::new("big", json!({"bytes": 5_000})),
            Task::new("big", json!({"bytes": 10})),
        ])
        .await?;
    let error = results[0].error().expect("too large");
    assert_eq!(error.kind, ErrorKind::ResultTooLarge);
    assert!(
        error
            .message
            .contains("over this worker's limit of 1000 bytes"),
        "{}",
        error.message
    );
    assert_eq!(
        results[1].value(),
        Some(&json!("xxxxxxxxxx")),
        "a small result next to it is fine"
    );
    still_serving(&cluster).await
}

#[tokio::test]
async fn malformed_bodies_are_refused_without_harm() -> anyhow::Result<()> {
    let cluster = small_limits().await?;
    let url = cluster.nats.url();
    // 10,000 levels of nesting in a task's args.
    let deep = format!(
        r#"{{"tasks": [{{"tool": "echo", "args": {}{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("deep", deep.into_bytes(), "recursion limit exceeded"),
        ("not-utf8", vec![b'{', 0xff, 0xfe, b'}'], "malformed job"),
        ("empty", Vec::new(), "EOF while parsing"),
        ("array", b"[1, 2, 3]".to_vec(), "malformed job"),
        (
            "string",
            b"\"tasks\"".to_vec(),
            "invalid type: string \"tasks\", expected struct Job",
        ),
        (
            "no-tasks",
            b"{\"max_concurrency\": 3}".to_vec(),
            "missing field `tasks`",
        ),
        (
            "negative",
            br#"{"tasks": [], "deadline_ms": -5}"#.to_vec(),
            "invalid value: integer `-5`",
        ),
        (
            "zero-window",
            br#"{"tasks": [], "max_concurrency": 0}"#.to_vec(),
            "max_concurrency: must be at least 1",
        ),
        (
            "long-timeout",
            br#"{"tasks": [{"tool": "echo", "timeout_ms": 999999999999}]}"#.to_vec(),
            "tasks[0].timeout_ms: must be between 1 and",
        ),
        (
            "version",
            br#"{"v": 9, "tasks": []}"#.to_vec(),
            "unsupported protocol version 9",
        ),
    ];
    for (id, body, expected) in cases {
        let (_, kind, message) = refusal(&submit_raw(&url, id, &body).await?);
        assert_eq!(kind, ErrorKind::Invalid, "{id}");
        assert!(message.contains(expected), "{id}: {message}");
    }
    for (id, tool, expected) in [
        ("dot", "a.b".to_owned(), "invalid tool name \"a.b\""),
        ("star", "*".to_owned(), "invalid tool name \"*\""),
        ("gt", ">".to_owned(), "invalid tool name \">\""),
        ("long", "t".repeat(300), "longer than 64 characters"),
    ] {
        let body = json!({"tasks": [{"tool": tool}]}).to_string();
        let (_, _, message) = refusal(&submit_raw(&url, id, body.as_bytes()).await?);
        assert!(message.contains(expected), "{id}: {message}");
    }
    still_serving(&cluster).await
}

#[tokio::test]
async fn garbage_on_internal_subjects_is_dropped_and_work_goes_on() -> anyhow::Result<()> {
    let cluster = small_limits().await?;
    let nats = async_nats::connect(cluster.nats.url()).await?;
    let js = jetstream::new(nats.clone());
    // A task message no coordinator wrote, a heartbeat and a ping of nonsense.
    js.publish("toolfan.task.echo", "not a task".into())
        .await?
        .await?;
    nats.publish("toolfan.worker.heartbeat", "{\"id\": 5}".into())
        .await?;
    nats.publish("toolfan.abort.a.b", "".into()).await?;

    // A live job receives a forged, malformed result and a result for a task it does not have.
    let client = cluster.client().await?;
    let handle = client
        .submit(
            Job::new(vec![Task::new("echo", json!({"slow": 1})); 3])
                .deadline(Duration::from_secs(10)),
        )
        .await?;
    let subject = format!("toolfan.result.{}", handle.id());
    js.publish(subject.clone(), "{\"index\": \"zero\"}".into())
        .await?
        .await?;
    js.publish(
        subject,
        json!({"index": 99, "ok": true, "value": 1})
            .to_string()
            .into(),
    )
    .await?
    .await?;
    let results = handle.results().await?;
    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|r| r.value() == Some(&json!({"slow": 1}))),
        "{results:?}"
    );
    still_serving(&cluster).await
}

#[tokio::test]
async fn results_from_other_implementations_are_passed_on_or_answered_at_once() -> anyhow::Result<()>
{
    // A worker written from docs/protocol.md may name an error kind this
    // version does not know, leave out the optional fields, or send bytes
    // that cannot be read as a result. None of it is dropped, and none of
    // it waits for the deadline.
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let js = jetstream::new(async_nats::connect(cluster.nats.url()).await?);
    let client = cluster.client().await?;
    // A worker's result follows its task's dispatch: the forged ones are
    // sent once the coordinator has dispatched all three (before that the
    // job may not be live on it yet, and no real result could exist).
    let nats = async_nats::connect(cluster.nats.url()).await?;
    let mut dispatched = nats.subscribe("toolfan.task.sleep").await?;
    let started = std::time::Instant::now();
    let job = Job::new(vec![Task::new("sleep", json!({"ms": 8000})); 3])
        .deadline(Duration::from_secs(30));
    let handle = client.submit(job).await?;
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), dispatched.next())
            .await?
            .expect("the task subscription is open");
    }
    let subject = format!("toolfan.result.{}", handle.id());
    let foreign = [
        json!({"index": 0, "ok": false, "worker": "py-1",
               "error": {"kind": "http_error", "message": "502 from upstream"}}),
        json!({"index": 1, "ok": true, "value": "foreign"}),
        json!({"index": 2, "ok": "yes"}),
    ];
    for result in foreign {
        js.publish(subject.clone(), result.to_string().into())
            .await?
            .await?;
    }
    let results = handle.results().await?;
    let took = started.elapsed();
    let unknown = results[0].error().expect("an error");
    assert_eq!(unknown.kind, ErrorKind::Other("http_error".into()));
    assert_eq!(
        (unknown.message.as_str(), unknown.retryable),
        ("502 from upstream", false)
    );
    assert_eq!(results[1].value(), Some(&json!("foreign")));
    assert_eq!((results[1].attempts, results[1].duration_ms), (0, 0));
    let unreadable = results[2].error().expect("an error");
    assert_eq!(unreadable.kind, ErrorKind::Internal);
    assert!(
        unreadable.message.contains("could not be read"),
        "{}",
        unreadable.message
    );
    assert!(
        took < Duration::from_secs(6),
        "answered after {took:?}: the foreign results waited for the tools"
    );
    Ok(())
}

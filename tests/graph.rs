//! Jobs whose tasks use earlier results, against a real server, a
//! coordinator and workers: `$from` references receive the values they
//! name, `after` orders without data, a failed dependency fails only its
//! dependents, a cycle is refused naming the task, a three-step chain
//! takes three tool times and no round trips, and a coordinator that
//! takes a chain over mid-way rebuilds it from the stored results.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{ErrorKind, Job, JobStatus, Ref, Stages, Task, TaskResult};
use toolfan_e2e::{quick_takeover_coordinator, refusal, stored_results, submit_raw, Cluster};
use toolfan_worker::{ToolError, Worker};

/// How long each step tool takes.
const STEP_MS: u64 = 200;

/// A worker with `search` (a URL for its `q`) and `step` (its args back
/// as `got`), each taking `STEP_MS`, plus the built-in tools.
async fn start(cluster: &Cluster) -> anyhow::Result<()> {
    let nap = || tokio::time::sleep(Duration::from_millis(STEP_MS));
    let mut builder = Worker::builder()
        .concurrency(16)
        .tool("search", move |_, args: Value| async move {
            nap().await;
            let q = args["q"]
                .as_str()
                .ok_or_else(|| ToolError::invalid_args("no q"))?;
            Ok(json!({"url": format!("https://example.com/{q}"), "q": q}))
        })
        .tool("step", move |_, args: Value| async move {
            nap().await;
            Ok(json!({ "got": args }))
        });
    for name in toolfan_tools::builtin::BUILTIN_TOOLS {
        builder = toolfan_tools::builtin::add_builtin(builder, name).map_err(anyhow::Error::msg)?;
    }
    cluster.worker(builder).await
}

fn error_of(result: &TaskResult) -> (&ErrorKind, &str) {
    let error = result
        .error()
        .unwrap_or_else(|| panic!("{result:?} should have failed"));
    (&error.kind, error.message.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn references_receive_the_value_they_name() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    start(&cluster).await?;
    let client = cluster.client().await?;
    let results = client
        .fanout(vec![
            Task::new("search", json!({"q": "rust"})),
            Task::new("echo", json!({"url": {"$from": "0/url"}, "n": 1})),
            Task::new(
                "echo",
                json!({"all": Ref::to(0), "list": [Ref::to(1).at("/url")]}),
            ),
            Task::new("echo", json!({"missing": Ref::to(0).at("/nope")})),
        ])
        .await?;
    let url = "https://example.com/rust";
    assert_eq!(results[1].value(), Some(&json!({"url": url, "n": 1})));
    assert_eq!(
        results[2].value(),
        Some(&json!({"all": {"url": url, "q": "rust"}, "list": [url]}))
    );
    let (kind, message) = error_of(&results[3]);
    assert_eq!(kind, &ErrorKind::InvalidArgs);
    assert!(
        message.contains("/nope") && message.contains("task 0"),
        "{message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_orders_tasks_without_data() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    start(&cluster).await?;
    let client = cluster.client().await?;
    let span = |ms: u64| Task::new("span", json!({ "ms": ms }));
    let results = client
        .fanout(vec![span(300), span(10).after([0]), span(10)])
        .await?;
    let at = |r: &TaskResult, key: &str| r.value().and_then(|v| v[key].as_u64()).unwrap();
    assert!(
        at(&results[1], "started_us") >= at(&results[0], "ended_us"),
        "task 1 started before task 0 ended: {results:?}"
    );
    // Task 2 waits for nothing: it ran while task 0 did.
    assert!(at(&results[2], "started_us") < at(&results[0], "ended_us"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_dependency_fails_its_dependents_and_the_rest_still_runs() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    start(&cluster).await?;
    let client = cluster.client().await?;
    let outcome = client
        .submit(Job::new(vec![
            Task::new("fail", json!({"message": "search is down"})),
            Task::new("echo", json!({"x": Ref::to(0)})),
            Task::new("echo", json!({})).after([1]),
            Task::new("echo", json!({"independent": true})),
            Task::new("echo", json!({})).after([3]),
        ]))
        .await?
        .wait()
        .await?;
    let results = &outcome.results;
    let (kind, message) = error_of(&results[1]);
    assert_eq!(kind, &ErrorKind::DependencyFailed);
    assert!(message.contains("task 0"), "{message}");
    assert_eq!(results[1].attempts, 0, "it never ran");
    let (kind, message) = error_of(&results[2]);
    assert_eq!(kind, &ErrorKind::DependencyFailed);
    assert!(message.contains("task 1"), "{message}");
    assert!(results[3].is_ok() && results[4].is_ok(), "{results:?}");
    assert_eq!(outcome.summary.status, JobStatus::Completed);
    assert_eq!((outcome.summary.succeeded, outcome.summary.failed), (2, 3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cycle_is_refused_naming_the_task() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    start(&cluster).await?;
    // The client refuses it before sending.
    let client = cluster.client().await?;
    let cyclic = vec![
        Task::new("echo", json!({})),
        Task::new("echo", json!({"x": Ref::to(2)})),
        Task::new("echo", json!({})).after([1]),
    ];
    let refused = client.fanout(cyclic).await.unwrap_err().to_string();
    assert!(
        refused.contains("tasks[1].after") && refused.contains("1 → 2 → 1"),
        "{refused}"
    );
    // A caller in another language gets an `invalid` answer naming it.
    let body = br#"{"tasks": [{"tool": "echo"}, {"tool": "echo", "after": [1]}]}"#;
    let events = submit_raw(&cluster.nats.url(), "cycle-1", body).await?;
    let (status, kind, message) = refusal(&events);
    assert_eq!((status, kind), (JobStatus::Invalid, ErrorKind::Invalid));
    assert!(
        message.contains("tasks[1].after") && message.contains("itself"),
        "{message}"
    );
    let body = br#"{"tasks": [{"tool": "echo", "after": [5]}]}"#;
    let (_, _, message) = refusal(&submit_raw(&cluster.nats.url(), "range-1", body).await?);
    assert!(
        message.contains("tasks[0].after") && message.contains("task 5"),
        "{message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_step_chain_takes_three_tool_times_in_one_job() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    start(&cluster).await?;
    let client = cluster.client().await?;
    let searches = ["rust", "nats", "tokio"].map(|q| Task::new("search", json!({ "q": q })));
    let chain = Stages::new(searches.clone())
        .then(|found| {
            let urls: Vec<Ref> = found.map(|i| Ref::to(i).at("/url")).collect();
            vec![Task::new("step", json!({ "urls": urls }))]
        })
        .then(|merged| {
            vec![Task::new(
                "step",
                json!({ "summary": Ref::to(merged.start) }),
            )]
        });
    // Warm up (connections, consumers) so both timings below are steady.
    client.fanout(vec![Task::new("echo", json!({}))]).await?;

    let started = Instant::now();
    let results = client.submit(chain.job()).await?.results().await?;
    let graph = started.elapsed();
    let urls: Vec<String> = ["rust", "nats", "tokio"]
        .iter()
        .map(|q| format!("https://example.com/{q}"))
        .collect();
    let last = results[4].value().expect("the final step succeeded");
    assert_eq!(last, &json!({"got": {"summary": {"got": {"urls": urls}}}}));

    // The same work as three round trips from the caller.
    let started = Instant::now();
    let found = client.fanout(searches.to_vec()).await?;
    let urls: Vec<Value> = found
        .iter()
        .map(|r| r.value().unwrap()["url"].clone())
        .collect();
    let merged = client
        .fanout(vec![Task::new("step", json!({ "urls": urls }))])
        .await?;
    let summary = merged[0].value().unwrap().clone();
    client
        .fanout(vec![Task::new("step", json!({ "summary": summary }))])
        .await?;
    let round_trips = started.elapsed();
    eprintln!("3 x {STEP_MS} ms steps: one job {graph:?}, three round trips {round_trips:?}");
    assert!(graph >= Duration::from_millis(3 * STEP_MS), "{graph:?}");
    assert!(
        graph < Duration::from_millis(3 * STEP_MS + 400),
        "{graph:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_waiting_past_the_deadline_reads_deadline_exceeded() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    start(&cluster).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![
        Task::new("sleep", json!({"ms": 3000})),
        Task::new("echo", json!({"x": Ref::to(0)})),
    ])
    .deadline(Duration::from_millis(500));
    let started = Instant::now();
    let results = client.submit(job).await?.results().await?;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for result in &results {
        assert_eq!(error_of(result).0, &ErrorKind::DeadlineExceeded);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_taking_a_chain_over_rebuilds_it_from_the_stored_results(
) -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let mut first = quick_takeover_coordinator(&url)?;
    start(&cluster).await?;
    let client = cluster.client().await?;
    let job = Job::new(vec![
        Task::new("search", json!({"q": "rust"})),
        Task::new("sleep", json!({"ms": 1500})).after([0]),
        Task::new(
            "echo",
            json!({"url": Ref::to(0).at("/url"), "slept": Ref::to(1).at("/slept_ms")}),
        ),
    ])
    .deadline(Duration::from_secs(30));
    let mut handle = client.submit(job).await?;
    let id = handle.id().clone();
    // Task 0 has its result and task 1 runs: the first coordinator dies.
    match handle.next_event().await {
        Some(Ok(toolfan::JobEvent::Task(result))) => assert_eq!(result.index, 0),
        other => anyhow::bail!("unexpected event {other:?}"),
    }
    first.kill();
    let _second = quick_takeover_coordinator(&url)?;
    let results = handle.results().await?;
    let expected = json!({"url": "https://example.com/rust", "slept": 1500});
    assert_eq!(results[2].value(), Some(&expected));
    let runs = |index: u32, stored: &[TaskResult]| {
        stored
            .iter()
            .filter(|r| r.index == index && r.worker.is_some())
            .count()
    };
    let stored = stored_results(&url, &id).await?;
    assert_eq!(runs(0, &stored), 1, "the search ran once");
    assert_eq!(
        runs(1, &stored),
        1,
        "the sleep, in flight at the kill, ran once"
    );
    Ok(())
}

//! The real binaries as child processes: a coordinator and three workers
//! sharing one job, and bad input published with a plain NATS client.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use toolfan::{Client, ClientOptions, Job, Task};
use toolfan_e2e::{assert_all_missed_a_500ms_deadline, refusal, spawn, submit_raw, timed, Cluster};
use toolfan_protocol::{ErrorKind, JobStatus, ReplyEvent};

#[tokio::test]
async fn three_worker_processes_share_one_job() -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let _coordinator = spawn("toolfan-coordinator", &["--nats-url", &url])?;
    let ids: Vec<String> = (1..=3).map(|i| format!("proc-w{i}")).collect();
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
                    "--concurrency",
                    "8",
                    "--tools",
                    "sleep,echo",
                ],
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    cluster.wait_for_workers(&ids).await?;

    let client = Client::connect(ClientOptions::new(&url)).await?;
    let tasks = (0..30)
        .map(|i| Task::new("sleep", json!({"ms": 100 + i})))
        .collect();
    let results = client
        .submit(Job::new(tasks).max_concurrency(30))
        .await?
        .results()
        .await?;

    assert_eq!(results.len(), 30);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.index as usize, i);
        assert_eq!(
            result.value(),
            Some(&json!({"slept_ms": 100 + i})),
            "{result:?}"
        );
    }
    let workers: BTreeSet<&str> = results.iter().filter_map(|r| r.worker.as_deref()).collect();
    assert!(workers.len() >= 2, "only {workers:?} ran the job's tasks");
    assert!(
        workers.iter().all(|w| ids.iter().any(|id| id == w)),
        "{workers:?}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_jobs_get_an_error_reply_and_the_coordinator_goes_on() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let url = cluster.nats.url();

    let (status, kind, message) = refusal(&submit_raw(&url, "bad-1", b"{\"tasks\": [").await?);
    assert_eq!((status, kind), (JobStatus::Invalid, ErrorKind::Invalid));
    assert!(
        message.starts_with("malformed job: EOF while parsing"),
        "{message}"
    );

    let (_, kind, message) = refusal(&submit_raw(&url, "bad-2", b"{\"tasks\": 5}").await?);
    assert_eq!(kind, ErrorKind::Invalid);
    assert!(
        message.contains("invalid type: integer `5`, expected a sequence"),
        "{message}"
    );

    let (_, _, message) = refusal(&submit_raw(&url, "bad-3", b"").await?);
    assert!(
        message.starts_with("malformed job: EOF while parsing"),
        "{message}"
    );

    let (_, _, message) =
        refusal(&submit_raw(&url, "bad-4", br#"{"tasks": [{"tool": "a.b"}]}"#).await?);
    assert!(message.contains("invalid tool name \"a.b\""), "{message}");

    // A well-formed job from the same plain client is answered in full.
    let events = submit_raw(
        &url,
        "good-1",
        br#"{"tasks": [{"tool": "echo", "args": {"x": 1}}]}"#,
    )
    .await?;
    match events.as_slice() {
        [ReplyEvent::Result { result, .. }, ReplyEvent::Done { summary, .. }] => {
            assert_eq!(result.value(), Some(&json!({"x": 1})));
            assert_eq!(
                (summary.status, summary.total, summary.succeeded),
                (JobStatus::Completed, 1, 1)
            );
        }
        other => panic!("unexpected events {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_job_whose_only_worker_was_killed_is_answered_by_its_deadline() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster.nats.url();
    let mut worker = spawn(
        "toolfan-worker",
        &["--nats-url", &url, "--id", "doomed", "--tools", "sleep"],
    )?;
    cluster.wait_for_workers(&["doomed".to_owned()]).await?;
    // SIGKILL: no goodbye, so the registry still counts the worker as live
    // and the tasks are dispatched to a queue nobody pulls from.
    worker.kill();

    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("sleep", json!({"ms": 10})); 4])
        .deadline(Duration::from_millis(500));
    let (results, elapsed) = timed(&client, job).await?;
    assert_all_missed_a_500ms_deadline(&results, elapsed, 4);
    assert!(
        results.iter().all(|r| r.worker.is_none()),
        "the coordinator decided them"
    );
    Ok(())
}

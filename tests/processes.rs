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

/// Starts `toolfan-coordinator` on `nats_url` with `args`, logging JSON
/// lines at info, and the stream of its stderr lines.
fn coordinator_logging(
    nats_url: &str,
    args: &[&str],
) -> anyhow::Result<(toolfan_testkit::Process, std::sync::mpsc::Receiver<String>)> {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(toolfan_testkit::binary("toolfan-coordinator")?);
    cmd.args(["--nats-url", nats_url, "--log-format", "json"])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("TOOLFAN_METRICS_ADDR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut process = toolfan_testkit::Process::spawn("toolfan-coordinator", cmd)?;
    let stderr = process
        .take_stderr()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    Ok((process, seen))
}

/// The address of the metrics endpoint `lines` log, within 15 s.
fn metrics_addr_logged(lines: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines
            .recv_timeout(left)
            .map_err(|_| anyhow::anyhow!("no metrics address logged within 15 s"))?;
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["fields"]["message"].as_str() == Some("serving /metrics, /healthz and /readyz") {
            return Ok(entry["fields"]["addr"]
                .as_str()
                .unwrap_or_default()
                .to_owned());
        }
    }
}

/// GET /metrics on `addr` with a bare HTTP/1.0 request: its response.
fn get_metrics(addr: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn two_coordinators_on_one_host_share_the_default_metrics_port_range() -> anyhow::Result<()> {
    let nats = toolfan_testkit::NatsServer::start()?;
    let url = nats.url();
    let (mut first, first_lines) = coordinator_logging(&url, &[])?;
    let first_addr = metrics_addr_logged(&first_lines)?;
    let (mut second, second_lines) = coordinator_logging(&url, &[])?;
    let second_addr = metrics_addr_logged(&second_lines)?;
    assert_ne!(first_addr, second_addr);
    std::thread::sleep(Duration::from_millis(500));
    for (process, addr) in [(&mut first, &first_addr), (&mut second, &second_addr)] {
        assert!(
            process.try_status().is_none(),
            "the coordinator on {addr} exited"
        );
        let response = get_metrics(addr)?;
        assert!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
        assert!(
            response.contains("toolfan_"),
            "{addr} serves no toolfan metrics"
        );
    }
    // An address given explicitly stays strict: taken, it fails, naming it.
    let (mut third, third_lines) = coordinator_logging(&url, &["--metrics-addr", &second_addr])?;
    let status = third.wait()?;
    assert!(!status.success());
    let said: Vec<String> = third_lines.iter().collect();
    let expected = format!("cannot serve metrics on {second_addr}");
    assert!(said.iter().any(|l| l.contains(&expected)), "{said:#?}");
    Ok(())
}

//! Spans exported over OTLP/HTTP reach a real receiver
//! (`tests/otlp/receiver.py`, on the OpenTelemetry protocol package from
//! the test virtualenv) as one trace: the `toolfan submit` client's span,
//! the coordinator's job span under it, a dispatch span per task message
//! under that, and each worker's task span under its dispatch; with no
//! endpoint set, or with the `always_off` sampler, nothing is sent.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan_e2e::{python, terminate, test_file, Cluster};
use toolfan_testkit::Process;

/// The OpenTelemetry variables a child must not inherit from the test's
/// environment.
const OTEL_VARS: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_SDK_DISABLED",
];

/// A receiver on a free port, writing spans to `<dir>/spans.jsonl`.
async fn receiver(dir: &Path) -> anyhow::Result<(Process, String, PathBuf)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = dir.join("spans.jsonl");
    let mut cmd = Command::new(python()?);
    cmd.arg(test_file("otlp/receiver.py"))
        .arg(port.to_string())
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let process = Process::spawn("OTLP receiver", cmd)?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the receiver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((process, format!("http://127.0.0.1:{port}"), out))
}

/// Where and how the processes export: no endpoint sets no variable.
#[derive(Clone, Copy)]
struct Export<'a> {
    endpoint: Option<&'a str>,
    sampler: Option<&'a str>,
}

/// A built binary's command with `args`, exporting as `export` says (as
/// `service` when given).
fn command(
    name: &str,
    args: &[&str],
    export: Export<'_>,
    service: Option<&str>,
) -> anyhow::Result<Command> {
    let mut cmd = Command::new(toolfan_testkit::binary(name)?);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env("TOOLFAN_METRICS_ADDR", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for var in OTEL_VARS {
        cmd.env_remove(var);
    }
    if let Some(endpoint) = export.endpoint {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    if let Some(sampler) = export.sampler {
        cmd.env("OTEL_TRACES_SAMPLER", sampler);
    }
    if let Some(service) = service {
        cmd.env("OTEL_SERVICE_NAME", service);
    }
    Ok(cmd)
}

/// Runs a coordinator and two workers (4 slots each), submits 8 × sleep
/// 100 ms with `toolfan submit`, and stops them all with SIGTERM; returns
/// the workers that ran tasks.
async fn run_fleet(export: Export<'_>, dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let mut processes = vec![Process::spawn(
        "coordinator",
        command("toolfan-coordinator", &["--nats-url", &url], export, None)?,
    )?];
    let ids = ["otlp-w1", "otlp-w2"];
    for id in ids {
        let args = [
            "--nats-url",
            &url,
            "--id",
            id,
            "--concurrency",
            "4",
            "--tools",
            "sleep",
        ];
        let service = format!("toolfan-worker-{id}");
        let cmd = command("toolfan-worker", &args, export, Some(&service))?;
        processes.push(Process::spawn(id, cmd)?);
    }
    cluster.wait_for_workers(&ids.map(String::from)).await?;

    let tasks: Vec<Value> = (0..8)
        .map(|_| json!({"tool": "sleep", "args": {"ms": 100}}))
        .collect();
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        json!({"tasks": tasks, "max_concurrency": 8}).to_string(),
    )?;
    let job = job.display().to_string();
    let mut submit = tokio::process::Command::from(command(
        "toolfan",
        &["submit", &job, "--nats-url", &url, "--compact"],
        export,
        None,
    )?);
    submit.stdout(Stdio::piped()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(20), submit.output()).await??;
    anyhow::ensure!(output.status.success(), "toolfan submit failed: {output:?}");
    let results: Vec<Value> = serde_json::from_slice(&output.stdout)?;
    assert_eq!(results.len(), 8);
    let workers = results
        .iter()
        .map(|r| r["worker"].as_str().unwrap_or_default().to_owned())
        .collect();

    for process in &processes {
        terminate(process)?;
    }
    let started = Instant::now();
    for process in &mut processes {
        while process.try_status().is_none() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(15),
                "a process did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(workers)
}

/// The spans the receiver wrote.
fn spans(out: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(out)?;
    Ok(text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn field<'a>(span: &'a Value, key: &str) -> &'a str {
    span[key].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_client_coordinator_and_workers_export_one_trace() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let (_receiver, endpoint, out) = receiver(dir.path()).await?;
    let export = Export {
        endpoint: Some(&endpoint),
        sampler: None,
    };
    let workers = run_fleet(export, dir.path()).await?;
    assert_eq!(workers.len(), 2, "the tasks did not spread: {workers:?}");
    let spans = spans(&out)?;

    let services: BTreeSet<&str> = spans.iter().map(|s| field(s, "service")).collect();
    let expected = [
        "toolfan",
        "toolfan-coordinator",
        "toolfan-worker-otlp-w1",
        "toolfan-worker-otlp-w2",
    ];
    assert_eq!(services, expected.into_iter().collect(), "{spans:#?}");
    let traces: BTreeSet<&str> = spans.iter().map(|s| field(s, "trace_id")).collect();
    assert_eq!(traces.len(), 1, "{traces:?}");

    let by_id: HashMap<&str, &Value> = spans.iter().map(|s| (field(s, "span_id"), s)).collect();
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| field(s, "parent_span_id").is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert_eq!(
        (field(roots[0], "name"), field(roots[0], "service")),
        ("submit", "toolfan")
    );
    for span in &spans {
        let parent = field(span, "parent_span_id");
        assert!(
            parent.is_empty() || by_id.contains_key(parent),
            "dangling parent: {span}"
        );
    }
    let named = |name: &'static str| spans.iter().filter(move |s| field(s, "name") == name);
    let jobs: Vec<&Value> = named("job").collect();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(field(jobs[0], "service"), "toolfan-coordinator");
    assert_eq!(field(jobs[0], "parent_span_id"), field(roots[0], "span_id"));
    let dispatches: Vec<&Value> = named("dispatch").collect();
    assert!(dispatches.len() >= 8, "{dispatches:#?}");
    for dispatch in &dispatches {
        assert_eq!(field(dispatch, "service"), "toolfan-coordinator");
        assert_eq!(field(dispatch, "parent_span_id"), field(jobs[0], "span_id"));
    }
    let tasks: Vec<&Value> = named("task").collect();
    assert!(tasks.len() >= 8, "{tasks:#?}");
    for task in &tasks {
        let parent = by_id[field(task, "parent_span_id")];
        assert_eq!(field(parent, "name"), "dispatch", "{task}");
        assert_eq!(parent["attributes"]["index"], task["attributes"]["index"]);
        assert_eq!(task["attributes"]["tool"], "sleep", "{task}");
        assert!(task["attributes"]["attempt"].as_i64() >= Some(1), "{task}");
        assert!(task["attributes"]["limit_wait_ms"].is_i64(), "{task}");
        assert_eq!(task["attributes"]["cache"], "off", "{task}");
    }
    let task_services: BTreeSet<&str> = tasks.iter().map(|s| field(s, "service")).collect();
    assert_eq!(task_services.len(), 2, "{task_services:?}");
    eprintln!(
        "{} spans ({} tasks) in one trace, {:?}",
        spans.len(),
        tasks.len(),
        started.elapsed()
    );
    Ok(())
}

/// The receiver's file stays empty after a job run with `sampler` and,
/// when `with_endpoint`, the endpoint set.
async fn nothing_reaches_the_receiver(
    with_endpoint: bool,
    sampler: Option<&str>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_receiver, endpoint, out) = receiver(dir.path()).await?;
    let export = Export {
        endpoint: with_endpoint.then_some(endpoint.as_str()),
        sampler,
    };
    run_fleet(export, dir.path()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(std::fs::read_to_string(&out)?, "", "spans were sent");
    Ok(())
}

#[tokio::test]
async fn nothing_is_sent_without_an_endpoint() -> anyhow::Result<()> {
    nothing_reaches_the_receiver(false, None).await
}

#[tokio::test]
async fn nothing_is_sent_when_the_sampler_is_always_off() -> anyhow::Result<()> {
    nothing_reaches_the_receiver(true, Some("always_off")).await
}

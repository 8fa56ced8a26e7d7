//! Metrics, health and trace propagation, on the real binaries.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Job, Task, TraceParent};
use toolfan_e2e::metrics::{scrape, value};
use toolfan_e2e::{http_client, spawn, Cluster};
use toolfan_testkit::server::free_port;
use toolfan_testkit::{binary, Process};

/// A coordinator and a worker (id `worker`) with their metrics endpoints
/// on free ports, running against `cluster` until the processes drop.
struct Metered {
    coordinator_port: u16,
    worker_port: u16,
    _processes: [Process; 2],
}

async fn metered(cluster: &Cluster, worker: &str) -> anyhow::Result<Metered> {
    let url = cluster.nats.url();
    let (cport, wport) = (free_port()?, free_port()?);
    let caddr = format!("127.0.0.1:{cport}");
    let waddr = format!("127.0.0.1:{wport}");
    let coordinator = spawn(
        "toolfan-coordinator",
        &["--nats-url", &url, "--metrics-addr", &caddr],
    )?;
    let worker_process = spawn(
        "toolfan-worker",
        &["--nats-url", &url, "--id", worker, "--metrics-addr", &waddr],
    )?;
    cluster.wait_for_workers(&[worker.to_owned()]).await?;
    Ok(Metered {
        coordinator_port: cport,
        worker_port: wport,
        _processes: [coordinator, worker_process],
    })
}

#[tokio::test]
async fn metrics_count_a_job_of_known_shape_exactly() -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let services = metered(&cluster, "metered").await?;
    let (cport, wport) = (services.coordinator_port, services.worker_port);

    let mut tasks = vec![Task::new("echo", json!({})); 10];
    tasks.extend(vec![Task::new("fail", json!({})); 2]);
    tasks.push(Task::new("sleep", json!({"ms": 5000})).timeout(Duration::from_millis(100)));
    let client = cluster.client().await?;
    let results = client.submit(Job::new(tasks)).await?.results().await?;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);

    let worker = scrape(wport).await?;
    assert_eq!(
        value(&worker, r#"toolfan_tasks_total{tool="echo",outcome="ok"}"#),
        10.0
    );
    assert_eq!(
        value(
            &worker,
            r#"toolfan_tasks_total{tool="fail",outcome="tool_error"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &worker,
            r#"toolfan_tasks_total{tool="sleep",outcome="timeout"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&worker, r#"toolfan_task_attempts_total{tool="echo"}"#),
        10.0
    );
    assert_eq!(
        value(&worker, r#"toolfan_task_run_seconds_count{tool="fail"}"#),
        2.0
    );
    assert_eq!(value(&worker, "toolfan_worker_in_flight"), 0.0);

    let coordinator = scrape(cport).await?;
    assert_eq!(
        value(&coordinator, r#"toolfan_task_results_total{outcome="ok"}"#),
        10.0
    );
    assert_eq!(
        value(
            &coordinator,
            r#"toolfan_task_results_total{outcome="tool_error"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &coordinator,
            r#"toolfan_task_results_total{outcome="timeout"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &coordinator,
            r#"toolfan_jobs_submitted_total{policy="all"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &coordinator,
            r#"toolfan_jobs_completed_total{status="completed",policy="all",ended_by="all_done"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &coordinator,
            r#"toolfan_job_duration_seconds_count{policy="all"}"#
        ),
        1.0
    );
    assert_eq!(value(&coordinator, "toolfan_live_jobs"), 0.0);
    Ok(())
}

async fn status(url: &str) -> u16 {
    match http_client().get(url).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_for_status(url: &str, want: u16, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if status(url).await == want {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "{url} did not answer {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_follows_the_nats_connection() -> anyhow::Result<()> {
    let mut cluster = Cluster::without_coordinator()?;
    let services = metered(&cluster, "ready").await?;
    let (cport, wport) = (services.coordinator_port, services.worker_port);
    for port in [cport, wport] {
        let base = format!("http://127.0.0.1:{port}");
        wait_for_status(&format!("{base}/readyz"), 200, Duration::from_secs(5)).await?;
        assert_eq!(status(&format!("{base}/healthz")).await, 200);
    }
    cluster.nats.kill();
    for port in [cport, wport] {
        wait_for_status(
            &format!("http://127.0.0.1:{port}/readyz"),
            503,
            Duration::from_secs(5),
        )
        .await?;
        assert_eq!(
            status(&format!("http://127.0.0.1:{port}/healthz")).await,
            200,
            "alive, just not ready"
        );
    }
    cluster.nats.restart()?;
    for port in [cport, wport] {
        let took = wait_for_status(
            &format!("http://127.0.0.1:{port}/readyz"),
            200,
            Duration::from_secs(15),
        )
        .await?;
        eprintln!("port {port} ready again {took:?} after NATS came back");
    }
    Ok(())
}

#[tokio::test]
async fn the_callers_trace_id_reaches_the_workers_task_span() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster.nats.url();
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("worker.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(binary("toolfan-worker")?);
    cmd.args([
        "--nats-url",
        &url,
        "--id",
        "traced",
        "--metrics-addr",
        "off",
        "--log-format",
        "json",
    ])
    .env("RUST_LOG", "toolfan_worker=debug")
    .stdout(Stdio::null())
    .stderr(log);
    let _worker = Process::spawn("toolfan-worker", cmd)?;
    cluster.wait_for_workers(&["traced".to_owned()]).await?;

    let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
    let client = cluster.client().await?;
    let handle = client
        .submit_in_trace(Job::new(vec![Task::new("echo", json!({"x": 1}))]), parent)
        .await?;
    assert_eq!(handle.trace(), parent);
    handle.results().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = std::fs::read_to_string(&log_path)?;
    let finished: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "task finished")
        .collect();
    assert_eq!(finished.len(), 1, "{text}");
    let span = &finished[0]["span"];
    assert_eq!(span["name"], "task");
    assert_eq!(
        span["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{span}"
    );
    assert_eq!(span["tool"], "echo");
    Ok(())
}

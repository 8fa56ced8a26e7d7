//! A coordinator that stalls past its jobs' ack wait (a pause, a long GC,
//! a stop signal) gets its live jobs delivered again: it must recognise
//! them as its own, keep running them, and not take them over.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::metrics::{scrape, value};
use toolfan_e2e::{spawn, Cluster};
use toolfan_testkit::server::free_port;

fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {signal} failed");
    Ok(())
}

#[tokio::test]
async fn a_job_redelivered_to_the_coordinator_running_it_runs_on_not_taken_over(
) -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    cluster.builtin_worker(16).await?;
    let url = cluster.nats.url();
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let coordinator = spawn(
        "toolfan-coordinator",
        &[
            "--nats-url",
            &url,
            "--ack-wait-ms",
            "1000",
            "--metrics-addr",
            &addr,
        ],
    )?;
    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("sleep", json!({"ms": 300})); 20])
        .max_concurrency(2)
        .deadline(Duration::from_secs(60));
    let handle = client.submit(job).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Stopped for over twice the 1 s ack wait: JetStream delivers the job again.
    signal(coordinator.pid(), "-STOP")?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal(coordinator.pid(), "-CONT")?;

    let results = handle.results().await?;
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let metrics = scrape(port).await?;
    assert_eq!(value(&metrics, "toolfan_jobs_taken_over_total"), 0.0);
    assert!(
        value(&metrics, "toolfan_jobs_redelivered_live_total") >= 1.0,
        "the redelivery was not seen: the test did not test anything"
    );
    assert_eq!(
        value(
            &metrics,
            r#"toolfan_jobs_completed_total{ended_by="all_done",policy="all",status="completed"}"#
        ),
        1.0,
        "one answer"
    );
    Ok(())
}

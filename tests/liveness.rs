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

/// A coordinator started for the test with its metrics on a free port.
fn metered_coordinator(url: &str) -> anyhow::Result<(toolfan_testkit::Process, u16)> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "--nats-url",
        url,
        "--ack-wait-ms",
        "1000",
        "--metrics-addr",
        &addr,
    ];
    Ok((spawn("toolfan-coordinator", &args)?, port))
}

#[tokio::test]
async fn a_dead_coordinators_job_keeps_its_results_until_another_takes_it_over(
) -> anyhow::Result<()> {
    // Two coordinators that have run past their floors' lifetime (3 × 1 s
    // ack wait + 5 s = 8 s) purge the results stream every second below the
    // lowest floor they hear. When one dies mid-job, its last floor must
    // keep the job's results until the other has taken the job over and
    // replayed them: no finished task runs again.
    let cluster = Cluster::without_coordinator()?;
    cluster.builtin_worker(16).await?;
    let url = cluster.nats.url();
    let mut coordinators = [metered_coordinator(&url)?, metered_coordinator(&url)?];
    tokio::time::sleep(Duration::from_secs(9)).await;
    let client = cluster.client().await?;
    let job = Job::new(vec![Task::new("span", json!({"ms": 100})); 100])
        .max_concurrency(5)
        .deadline(Duration::from_secs(60));
    let mut handle = client.submit(job).await?;
    let job_id = handle.id().clone();
    let mut before_kill = Vec::new();
    while before_kill.len() < 30 {
        match handle.next_event().await {
            Some(Ok(toolfan::JobEvent::Task(event))) => before_kill.push(event.index),
            other => anyhow::bail!("unexpected event {other:?}"),
        }
    }
    let mut owner = None;
    for (i, (_, port)) in coordinators.iter().enumerate() {
        if value(&scrape(*port).await?, "toolfan_live_jobs") == 1.0 {
            owner = Some(i);
        }
    }
    let owner = owner.ok_or_else(|| anyhow::anyhow!("no coordinator runs the job"))?;
    coordinators[owner].0.kill();

    let results = handle.results().await?;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let survivor = coordinators[1 - owner].1;
    let metrics = scrape(survivor).await?;
    assert_eq!(value(&metrics, "toolfan_jobs_taken_over_total"), 1.0);
    let mut executions = std::collections::BTreeMap::<u32, usize>::new();
    for r in toolfan_e2e::stored_results(&url, &job_id).await? {
        if r.worker.is_some() {
            *executions.entry(r.index).or_default() += 1;
        }
    }
    for index in before_kill {
        assert_eq!(
            executions.get(&index),
            Some(&1),
            "task {index} finished before the kill and ran again (or its result was purged)"
        );
    }
    Ok(())
}

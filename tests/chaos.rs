//! Chaos: a 2,000-task job while a worker is SIGKILLed and restarted every
//! second and the coordinator is SIGKILLed once. Every task must end with
//! exactly one result, in order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::{spawn, stored_results, Cluster};
use toolfan_testkit::Process;

const TASKS: usize = 2000;

fn worker(url: &str, id: &str) -> anyhow::Result<Process> {
    spawn(
        "toolfan-worker",
        &[
            "--nats-url",
            url,
            "--id",
            id,
            "--tools",
            "span",
            "--concurrency",
            "16",
            "--ack-wait-ms",
            "1000",
        ],
    )
}

fn coordinator(url: &str) -> anyhow::Result<Process> {
    spawn(
        "toolfan-coordinator",
        &["--nats-url", url, "--ack-wait-ms", "1000"],
    )
}

#[tokio::test]
async fn every_task_gets_exactly_one_result_through_kills() -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let mut first_coordinator = coordinator(&url)?;
    let ids: Vec<String> = (1..=3).map(|i| format!("chaos-w{i}")).collect();
    let mut workers: Vec<Process> = ids
        .iter()
        .map(|id| worker(&url, id))
        .collect::<anyhow::Result<_>>()?;
    cluster.wait_for_workers(&ids).await?;

    let client = cluster.client().await?;
    let tasks = (0..TASKS)
        .map(|i| Task::new("span", json!({"ms": 5 + (i * 7919) % 46})))
        .collect();
    let handle = client
        .submit(
            Job::new(tasks)
                .max_concurrency(48)
                .deadline(Duration::from_secs(120)),
        )
        .await?;
    let job = handle.id().clone();
    let run = tokio::spawn(handle.results());

    let started = Instant::now();
    let mut kills = 0;
    let mut second_coordinator = None;
    let mut round = 0;
    while !run.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if run.is_finished() {
            break;
        }
        round += 1;
        let victim = round % workers.len();
        workers[victim].kill();
        workers[victim] = worker(&url, &ids[victim])?;
        kills += 1;
        if round == 2 {
            second_coordinator = Some(coordinator(&url)?);
            first_coordinator.kill();
            kills += 1;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(100),
            "the job did not finish"
        );
    }
    let results = run.await??;
    let elapsed = started.elapsed();
    drop(second_coordinator);

    assert_eq!(results.len(), TASKS);
    let mut lost = 0;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.index as usize, i, "results out of order");
        if !r.is_ok() {
            lost += 1;
            eprintln!("task {i} failed: {r:?}");
        }
    }
    let mut executions: BTreeMap<u32, usize> = BTreeMap::new();
    for r in stored_results(&url, &job).await? {
        if r.worker.is_some() {
            *executions.entry(r.index).or_default() += 1;
        }
    }
    let reruns: usize = executions.values().map(|n| n.saturating_sub(1)).sum();
    println!("chaos: tasks {TASKS}, kills {kills} (workers and one coordinator), re-executions {reruns}, lost {lost}, in {elapsed:?}");
    assert_eq!(lost, 0, "tasks without a good result");
    assert_eq!(executions.len(), TASKS, "every task ran at least once");
    Ok(())
}

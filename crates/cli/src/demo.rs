//! The demo fan-out of `toolfan dev`: 50 slow calls, one failure and one
//! timeout, with a live progress line, a results table and the speed-up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use toolfan::{Client, Job, Task, TaskResult};

fn demo_job() -> Job {
    let mut tasks = vec![Task::new("sleep", json!({"ms": 100})); 50];
    tasks.push(Task::new(
        "fail",
        json!({"message": "this call fails on purpose"}),
    ));
    tasks.push(Task::new("sleep", json!({"ms": 2000})).timeout(Duration::from_millis(500)));
    Job::new(tasks)
        .max_concurrency(64)
        .deadline(Duration::from_secs(10))
}

pub(crate) async fn run(client: &Client) -> anyhow::Result<()> {
    let job = demo_job();
    let tools: Vec<String> = job.tasks.iter().map(|t| t.tool.to_string()).collect();
    println!(
        "Demo: {} tool calls (50 × sleep 100 ms, 1 that fails, 1 that times out at 500 ms)",
        tools.len()
    );
    let started = Instant::now();
    let mut handle = client.submit(job).await?;
    let bar = ProgressBar::new(handle.total() as u64);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} tasks  {elapsed_precise}  {msg}")
            .expect("a valid progress template"),
    );
    let mut failed = 0;
    let mut events = handle.events();
    while let Some(event) = events.next().await {
        let event = event?;
        failed += usize::from(!event.result.is_ok());
        bar.set_message(format!("{failed} failed"));
        bar.set_position(event.finished as u64);
    }
    drop(events);
    let results = handle.wait().await?.results;
    let wall = started.elapsed();
    bar.finish_and_clear();
    print_table(&tools, &results);
    let sequential: u64 = results.iter().map(|r| r.duration_ms).sum();
    println!(
        "\n{} calls answered in {} ms, in order. One after another they would take {} ms: {:.1}× faster.",
        results.len(),
        wall.as_millis(),
        sequential,
        sequential as f64 / wall.as_millis().max(1) as f64
    );
    Ok(())
}

/// One row per (tool, outcome), then each failure on its own line.
fn print_table(tools: &[String], results: &[TaskResult]) {
    #[derive(Default)]
    struct Row {
        count: usize,
        min_ms: u64,
        max_ms: u64,
        workers: std::collections::BTreeSet<String>,
    }
    let mut rows: BTreeMap<(String, &str), Row> = BTreeMap::new();
    for r in results {
        let outcome = r.error().map_or("ok", |e| e.kind.as_str());
        let row = rows
            .entry((tools[r.index as usize].clone(), outcome))
            .or_insert_with(|| Row {
                min_ms: u64::MAX,
                ..Row::default()
            });
        row.count += 1;
        row.min_ms = row.min_ms.min(r.duration_ms);
        row.max_ms = row.max_ms.max(r.duration_ms);
        row.workers.extend(r.worker.clone());
    }
    println!(
        "\n  {:<8} {:<18} {:>5}  {:>13}  workers",
        "tool", "outcome", "tasks", "run ms"
    );
    for ((tool, outcome), row) in &rows {
        let workers: Vec<&str> = row.workers.iter().map(String::as_str).collect();
        println!(
            "  {:<8} {:<18} {:>5}  {:>13}  {}",
            tool,
            outcome,
            row.count,
            format!("{}–{}", row.min_ms, row.max_ms),
            workers.join(", ")
        );
    }
    for r in results {
        if let Some(e) = r.error() {
            println!("  #{:<3} {}: {}", r.index, tools[r.index as usize], e);
        }
    }
}

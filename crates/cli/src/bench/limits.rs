//! `toolfan bench limits`: the observed fleet-wide rate against a configured limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Job, Task, TaskResult};
use toolfan_limits::{LimitSpec, LimitStore};
use toolfan_testkit::stats::max_in_window;

use super::common::Figures;
use crate::local::{LocalCluster, LocalOptions};

pub(crate) async fn run(
    workers: u32,
    rate: u64,
    burst: u64,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let options = LocalOptions {
        nats_url: None,
        redis_url: None,
        workers,
        concurrency: 64,
    };
    let cluster = LocalCluster::start(&options, |b| b.limit_keys("span", ["bench"])).await?;
    let store = LimitStore::connect(&cluster.redis_url, "toolfan").await?;
    let spec = LimitSpec::per_second(rate, burst);
    store.set("bench", &spec).await?;
    tokio::time::sleep(Duration::from_millis(800)).await; // every worker has read it

    let calls = rate * seconds + burst;
    let job = Job::new(vec![Task::new("span", json!({"ms": 0})); calls as usize])
        .max_concurrency(1000)
        .deadline(Duration::from_secs(seconds * 3 + 30));
    let started = Instant::now();
    let results = cluster.client.submit(job).await?.results().await?;
    let elapsed = started.elapsed();
    cluster.stop().await;

    let starts = starts_us(&results)?;
    let run = Run {
        workers,
        rate,
        burst,
        calls,
        elapsed,
    };
    Ok(report(&run, &starts))
}

/// What one run of the scenario was.
struct Run {
    workers: u32,
    rate: u64,
    burst: u64,
    calls: u64,
    elapsed: Duration,
}

/// The figures of `run`, from the sorted start times of its calls.
fn report(run: &Run, starts: &[u64]) -> Figures {
    let Run {
        workers,
        rate,
        burst,
        calls,
        elapsed,
    } = *run;
    let per_second = per_second(starts);
    let most = max_in_window(starts, 1_000_000);
    // The burst passes at once; the rest arrive at the steady rate.
    let steady_s = (starts[starts.len() - 1] - starts[0]) as f64 / 1e6;
    let sustained = (calls - burst) as f64 / steady_s;
    let figures = json!({
        "scenario": "limits",
        "workers": workers,
        "limit_per_s": rate,
        "burst": burst,
        "calls": calls,
        "elapsed_s": elapsed.as_secs_f64(),
        "sustained_per_s": sustained,
        "sustained_ratio": sustained / rate as f64,
        "max_in_any_1s": most,
        "bound_rate_plus_burst": rate + burst,
        "per_second": per_second,
    });
    let mut table = format!(
        "limits: {workers} workers share one limit of {rate}/s, burst {burst}; {calls} calls\n\n  second  starts\n"
    );
    for (second, count) in &per_second {
        table += &format!("  {second:>6}  {count:>6}\n");
    }
    table += &format!(
        "\n  configured limit          {rate:>8}/s\n  sustained (after burst)   {sustained:>8.1}/s  ({:.1} % of the limit)\n  max starts in any 1 s     {most:>8}    (bound: limit + burst = {})\n  wall time                 {:>8.2} s",
        100.0 * sustained / rate as f64,
        rate + burst,
        elapsed.as_secs_f64()
    );
    Figures {
        table,
        json: figures,
    }
}

fn starts_us(results: &[TaskResult]) -> anyhow::Result<Vec<u64>> {
    let mut starts = Vec::with_capacity(results.len());
    for r in results {
        match r.value().and_then(|v| v["started_us"].as_u64()) {
            Some(start) => starts.push(start),
            None => anyhow::bail!("task {} did not run: {:?}", r.index, r.error()),
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Starts counted per whole second since the first start.
fn per_second(starts: &[u64]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for s in starts {
        *counts.entry((s - starts[0]) / 1_000_000).or_default() += 1;
    }
    counts
}

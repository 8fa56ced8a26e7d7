//! `toolfan bench`: measured scenarios on a local cluster, printed as a
//! table or JSON. Each scenario compares figures taken in the same run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;
use toolfan::{Job, Task, TaskResult};
use toolfan_testkit::stats::max_in_window;
use toolfan_worker::limits::{LimitSpec, LimitStore, Rate};

use crate::local::{LocalCluster, LocalOptions};

/// Options of `toolfan bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print the figures as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Observed fleet-wide rate against a configured limit.
    Limits {
        /// Workers sharing the limit.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
        workers: u32,
        /// The limit, calls per second.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rate: u64,
        /// The limit's burst.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        burst: u64,
        /// How long to run at the limit.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=600))]
        seconds: u64,
    },
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Limits {
            workers,
            rate,
            burst,
            seconds,
        } => limits(workers, rate, burst, seconds, args.json).await,
    }
}

async fn limits(
    workers: u32,
    rate: u64,
    burst: u64,
    seconds: u64,
    as_json: bool,
) -> anyhow::Result<()> {
    let options = LocalOptions {
        nats_url: None,
        redis_url: None,
        workers,
        concurrency: 64,
    };
    let cluster = LocalCluster::start(&options, |b| b.limit_keys("span", ["bench"])).await?;
    let store = LimitStore::connect(&cluster.redis_url, "toolfan").await?;
    let spec = LimitSpec {
        rate: Some(Rate {
            count: rate,
            period_ms: 1000,
        }),
        burst,
        concurrency: None,
    };
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
    let per_second = per_second(&starts);
    let most = max_in_window(&starts, 1_000_000);
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
    if as_json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    println!(
        "limits: {workers} workers share one limit of {rate}/s, burst {burst}; {calls} calls\n"
    );
    println!("  second  starts");
    for (second, count) in &per_second {
        println!("  {second:>6}  {count:>6}");
    }
    println!();
    println!("  configured limit          {rate:>8}/s");
    println!(
        "  sustained (after burst)   {sustained:>8.1}/s  ({:.1} % of the limit)",
        100.0 * sustained / rate as f64
    );
    println!(
        "  max starts in any 1 s     {most:>8}    (bound: limit + burst = {})",
        rate + burst
    );
    println!(
        "  wall time                 {:>8.2} s",
        elapsed.as_secs_f64()
    );
    Ok(())
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

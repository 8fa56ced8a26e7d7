//! `toolfan bench`: measured scenarios on a local cluster (servers,
//! coordinator and workers started here), printed as a table or as JSON.
//! Each scenario prints figures and ratios taken in the same run.
//!
//! - `fanout`   — 50 × sleep 100 ms jobs on 1 and on 4 workers: makespan vs ideal.
//! - `overhead` — one-task echo jobs one after another: end-to-end latency.
//! - `throughput` — 100,000 echo tasks in jobs of 100, next to a bare
//!   JetStream publish → pull → reply loop of the same size and concurrency.
//! - `limits`   — observed fleet-wide rate against a configured limit.
//! - `scale`    — 500 × sleep 50 ms with 1, 2 and 4 workers of 10 slots.
//! - `cache`    — a batch tool against a plain one in front of a one-at-a-time
//!   backend; a 500 ms call cold, from the cache, and prefetched.
//! - `fairness` — one caller's 5,000-task job saturating the fleet, another's
//!   small jobs arriving: their latency against an idle fleet, fair and FIFO.
//! - `load`     — wide windows, many jobs at once, and a soak at a fixed rate
//!   (RSS and store size over time); see `load/mod.rs`.
//!
//! This module only dispatches; what the scenarios share (`Figures`,
//! percentiles) is in `common`.

mod cache;
mod common;
mod fairness;
mod latency;
mod limits;
mod load;
mod throughput;

use clap::{Args, Subcommand};

/// Options of `toolfan bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print the figures as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Run the local cluster's coordinator first come first served, without
    /// fair shares between callers (to compare).
    #[arg(long, global = true)]
    no_fair: bool,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// 50 × sleep 100 ms per job, on 1 worker of 64 slots and then on 4: makespan p50/p99.
    Fanout {
        /// Jobs measured per configuration.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(5..=10_000))]
        jobs: u32,
    },
    /// One-task echo jobs one after another: end-to-end latency p50/p99.
    Overhead {
        /// Jobs measured.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
        jobs: u32,
    },
    /// Echo tasks in jobs of 100 with many jobs in flight, next to a bare JetStream loop.
    Throughput {
        /// Tasks in all.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
        tasks: u32,
        /// Jobs in flight at once.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        jobs_in_flight: u32,
    },
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
    /// 500 × sleep 50 ms with 1, 2 and 4 workers of 10 slots: tasks/s per worker count.
    Scale,
    /// Batching against a one-at-a-time backend; a slow call cold, cached and prefetched.
    Cache,
    /// Caller A's wide job saturates the fleet; caller B's small jobs arrive 100 ms later.
    Fairness(fairness::Sizes),
    /// Load and liveness: a wide window, many jobs at once, or a soak at a fixed rate.
    Load(load::LoadArgs),
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    crate::local::share_fairly(!args.no_fair);
    // A scenario may measure to the end and still fail (jobs lost): its
    // figures are printed first.
    let (figures, failure) = match args.scenario {
        Scenario::Fanout { jobs } => (latency::fanout(jobs).await?, None),
        Scenario::Overhead { jobs } => (latency::overhead(jobs).await?, None),
        Scenario::Throughput {
            tasks,
            jobs_in_flight,
        } => (throughput::run(tasks, jobs_in_flight).await?, None),
        Scenario::Limits {
            workers,
            rate,
            burst,
            seconds,
        } => (limits::run(workers, rate, burst, seconds).await?, None),
        Scenario::Scale => (latency::scale().await?, None),
        Scenario::Cache => (cache::run().await?, None),
        Scenario::Fairness(sizes) => (fairness::run(sizes).await?, None),
        Scenario::Load(load) => load::run(load).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures.json)?);
    } else {
        println!("{}", figures.table);
    }
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

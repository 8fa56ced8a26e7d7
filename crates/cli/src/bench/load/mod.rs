//! `toolfan bench load`: load and liveness (DESIGN.md, "Load and liveness").
//!
//! - `--shape wide`      — 1 job × 10,000 echo tasks, window 10,000: tasks/s.
//! - `--shape many-wide` — 256 jobs × 100 echo tasks, window 100, all at once.
//! - `--shape small`     — 10,000 jobs × 5 echo tasks all at once: tasks/s and
//!   how many were answered (jobs past `max_live_jobs` wait in JetStream).
//! - `--shape soak`      — a fixed offered rate for minutes against the real
//!   `toolfan-coordinator` and `toolfan-worker` binaries, sampling every
//!   process's RSS and the store's size; growth after warm-up, tasks
//!   answered / late / lost.
//!
//! The first three run on an in-process cluster (2 workers × 256 slots), each
//! next to the bare JetStream loop of `throughput.rs` with as many messages
//! in flight. Every wait has a timeout (`--timeout`): a job not answered in
//! time is named and the command exits non-zero instead of hanging.
//!
//! # Layout
//! - `jobs`: a batch of jobs submitted at once, waited for within a bound.
//! - `shapes`: `wide`, `many-wide`, `small`.
//! - `soak`, `offer`, `fleet`, `soak_report`: the soak, its offered load,
//!   its processes, its figures.
//! - `probe`: RSS from /proc, stream sizes, a metrics scrape, growth.

mod fleet;
mod jobs;
mod offer;
mod probe;
mod shapes;
mod soak;
mod soak_report;

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Figures;

/// Options of `toolfan bench load`.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// What load to offer.
    #[arg(long, value_enum, default_value_t = Shape::Wide)]
    shape: Shape,
    /// Seconds any one wait may take (a whole batch of jobs, the drain at
    /// the end of a soak) before the run is declared stalled.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    timeout: u64,
    /// The in-process coordinator's `max_live_jobs` (wide, many-wide,
    /// small); the rest wait in JetStream.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_live_jobs: u64,
    #[command(flatten)]
    soak: soak::SoakArgs,
}

/// The load shapes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// 1 job × 10,000 echo tasks, window 10,000.
    Wide,
    /// 256 jobs × 100 echo tasks, window 100, submitted at once.
    ManyWide,
    /// 10,000 jobs × 5 echo tasks, submitted at once.
    Small,
    /// A fixed offered rate for minutes; RSS and store size sampled.
    Soak,
}

/// Runs the chosen shape: its figures, and why the run failed if it did
/// (jobs lost, jobs taken over) after measuring to the end.
pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<(Figures, Option<String>)> {
    let timeout = Duration::from_secs(args.timeout);
    match args.shape {
        Shape::Soak => soak::run(&args.soak, timeout).await,
        shape => shapes::run(shape, timeout, args.max_live_jobs as usize).await,
    }
}

/// The failure to report for `taken_over` jobs, if any.
pub(super) fn takeover_failure(taken_over: f64) -> Option<String> {
    (taken_over > 0.0).then(|| {
        format!("the coordinator took over {taken_over} job(s) it was still running (toolfan_jobs_taken_over_total)")
    })
}

/// p50 and p99 of `samples` (nearest rank), 0 when there are none.
pub(super) fn percentiles(samples: &[f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    (
        super::percentile(samples, 50.0),
        super::percentile(samples, 99.0),
    )
}

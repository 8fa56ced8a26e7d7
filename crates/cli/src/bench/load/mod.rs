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
//! - `args`: the options (`LoadArgs`, `Shape`, `SoakArgs`).
//! - `jobs`: a batch of jobs submitted at once, waited for within a bound.
//! - `shapes`: `wide`, `many-wide`, `small`.
//! - `soak`, `offer`, `fleet`, `sample`, `soak_report`: the soak, its
//!   offered load, its processes, one look at them, its figures.
//! - `probe`: RSS from /proc, stream sizes, a metrics scrape, growth.

mod args;
mod fleet;
mod jobs;
mod offer;
mod probe;
mod sample;
mod shapes;
mod soak;
mod soak_report;

use std::time::Duration;

use crate::bench::common::Figures;
use args::Shape;

pub(crate) use args::LoadArgs;

/// Runs the chosen shape: its figures, and why the run failed if it did
/// (jobs lost, jobs taken over) after measuring to the end.
pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<(Figures, Option<String>)> {
    let timeout = Duration::from_secs(args.timeout);
    match args.shape {
        Shape::Soak => soak::run(&args.soak, timeout).await,
        shape => shapes::run(shape, timeout, args.max_live_jobs as usize).await,
    }
}

//! The options of `toolfan bench load`: which shape, its bounds, and the
//! soak's own settings.

use clap::{Args, ValueEnum};

/// Options of `toolfan bench load`.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// What load to offer.
    #[arg(long, value_enum, default_value_t = Shape::Wide)]
    pub(super) shape: Shape,
    /// Seconds any one wait may take (a whole batch of jobs, the drain at
    /// the end of a soak) before the run is declared stalled.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub(super) timeout: u64,
    /// The in-process coordinator's `max_live_jobs` (wide, many-wide,
    /// small); the rest wait in JetStream.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(super) max_live_jobs: u64,
    #[command(flatten)]
    pub(super) soak: SoakArgs,
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

/// Options of the soak (ignored by the other shapes).
#[derive(Args, Debug)]
pub(crate) struct SoakArgs {
    /// (soak) Offered load, tasks per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(super) rate: u32,
    /// (soak) Echo tasks per job (and the job's window).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(super) job_size: u32,
    /// (soak) How long to offer the load, in minutes; fractions allowed.
    #[arg(long, default_value_t = 10.0)]
    pub(super) minutes: f64,
    /// (soak) Seconds between samples.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) sample_every: u64,
    /// (soak) Seconds of warm-up: growth counts from the first sample after
    /// it (at most half the run). The default is past the streams' 120 s
    /// duplicate window, whose message ids nats-server holds in memory.
    #[arg(long, default_value_t = 150)]
    pub(super) warmup: u64,
    /// (soak) Each job's deadline, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) deadline: u64,
    /// (soak) Most jobs outstanding at once; a tick past it is shed, not offered.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(super) max_outstanding: u32,
    /// (soak) Worker processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub(super) workers: u32,
    /// (soak) Slots per worker.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(super) concurrency: u32,
}

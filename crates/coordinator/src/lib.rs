//! toolfan coordinator: takes jobs from JetStream, dispatches their tasks to
//! the worker fleet in a window, gathers the results (first per task wins),
//! enforces each job's deadline and answers the caller.
//!
//! It keeps nothing that a crash could lose: jobs stay in the jobs stream
//! until answered, task outcomes live in the results stream, and the
//! deadline counts from the moment JetStream stored the job. Run several
//! for availability; they share one durable consumer.
//!
//! # Layout
//! Each module below uses only modules listed after it (this file only
//! declares and re-exports).
//! - `run`: [`run()`], the pull loop over the jobs stream and the drain.
//! - `start`: bringing up what every job shares (connection, followers,
//!   publisher, retention) and stopping it again.
//! - `job`: one job message to its ack: refused, a redelivery of a live job, or run.
//! - `live`: a live job's loop, from dispatch to summary.
//! - `dispatch`: tasks out to the workers, verdicts to the results stream, aborts.
//! - `shared`: what every job of a coordinator shares.
//! - `fair`: fair shares of the fleet between callers and their jobs
//!   (how many of a tool's tasks a job may have out), told between
//!   coordinators on `toolfan.coordinator.fair`.
//! - `net`: the safety net: a task past its time budget with no result is
//!   looked up in the tasks stream, and dispatched again if it was lost.
//! - `publisher`: every JetStream publish of the coordinator, bounded and
//!   shared fairly between jobs.
//! - `routes`: results (one consumer for all jobs), cancels, keepalives and
//!   redeliveries routed to their live job.
//! - `retention`: which results jobs still need; the rest purged below a
//!   fleet-wide floor.
//! - `board`: live jobs' progress and recently finished jobs, told on
//!   `toolfan.coordinator.jobs`.
//! - `intake`: reading and validating a job message.
//! - `graph`: which tasks wait for which, and the values references read.
//! - `window`: which task is dispatched next (ready ones, per tool group,
//!   within the share).
//! - `gather`: which tasks have their result.
//! - `policy`: when a join policy ends a job early.
//! - `reply`: events to the caller.
//! - `ack`: acks of job messages.
//! - `options`: [`CoordinatorOptions`] and their check.
//! - `error`: [`CoordinatorError`], and why a job is handed back.
//! - [`registry`]: the live view of workers and the tools they serve.
//! - `suggest`: the served tool closest to an unknown one ("did you mean").
//! - [`metrics`]: what the coordinator counts (docs/metrics.md).

mod ack;
mod board;
mod dispatch;
mod error;
mod fair;
mod gather;
mod graph;
mod intake;
mod job;
mod live;
pub mod metrics;
mod net;
mod options;
mod policy;
mod publisher;
pub mod registry;
mod reply;
mod retention;
mod routes;
mod run;
mod shared;
mod start;
mod suggest;
mod window;

pub use error::CoordinatorError;
pub use fair::FairOptions;
pub use metrics::CoordinatorMetrics;
pub use options::CoordinatorOptions;
pub use registry::Registry;
pub use run::run;

//! toolfan client: fan tool calls out over a NATS worker fleet and get the
//! results back in the order asked, by the job's deadline.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use toolfan::{Client, ClientOptions, Task};
//!
//! # async fn run() -> Result<(), toolfan::ClientError> {
//! let client = Client::connect(ClientOptions::new("nats://127.0.0.1:4222")).await?;
//! let results = client
//!     .fanout(vec![
//!         Task::new("echo", json!({"hello": "world"})),
//!         Task::new("sleep", json!({"ms": 100})).timeout(Duration::from_secs(1)),
//!     ])
//!     .await?;
//! for result in &results {
//!     match &result.outcome {
//!         Ok(value) => println!("#{} ok: {value}", result.index),
//!         Err(error) => println!("#{} failed: {error}", result.index),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`client`] — [`Client`], [`ClientOptions`], submitting a job.
//! - [`handle`] — [`JobHandle`], gathering one job's events into ordered results.
//! - [`fleet`] — [`Client::workers`], the live workers.
//! - [`jobs`] — [`Client::jobs`], the coordinators' live and recent jobs.
//! - [`llm`] — OpenAI and Anthropic tool calls in, tool messages out.
//! - [`person`] — [`Client::pending`], [`Client::resolve`], [`Client::reject`]: tasks waiting for a person.
//! - [`prefetch`] — [`Client::prefetch`], speculative calls the confirmed ones take over.
//! - `prefetched` — the calls prefetched lately, which later calls claim.
//! - [`stages`] — [`Stages`], a job of dependent steps (`after`, [`Ref`]) written in order.
//! - `tower` (feature `tower`) — `ToolRouter`, the fleet as a tower `Service` for tool calls.
//! - [`error`] — [`ClientError`].
//! - `testing` (cargo feature `testing`) — `LocalFleet`, a whole fleet in
//!   a test process, with fake tools and recorders.

mod ask;
pub mod client;
pub mod error;
pub mod fleet;
pub mod handle;
pub mod jobs;
pub mod llm;
pub mod person;
pub mod prefetch;
mod prefetched;
pub mod stages;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;

pub use client::{Client, ClientOptions};
pub use error::ClientError;
pub use handle::{Canceller, JobEvent, JobHandle, JobOutcome, TaskEvent};
pub use person::PendingTask;
pub use stages::Stages;
pub use toolfan_protocol::{
    CacheUse, CoordinatorJobs, EndedBy, ErrorKind, FinishedJob, Job, JobId, JobStatus, JobSummary,
    LiveJobInfo, Policy, Ref, Task, TaskError, TaskResult, TraceParent, WaitingTask, WorkerInfo,
};

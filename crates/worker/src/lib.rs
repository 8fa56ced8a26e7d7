//! toolfan worker: serves tools to the fleet.
//!
//! A worker pulls tasks for the tools it serves from their shared JetStream
//! consumers, runs each under its timeout (a panic or error touches only
//! that task), publishes the result to the job's results subject, then acks.
//! It announces itself every second so coordinators know which tools are
//! served.
//!
//! ```no_run
//! use serde_json::{json, Value};
//! use toolfan_worker::{TaskContext, ToolError, Worker};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! /// Adds two integers.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Add { a: i64, b: i64 }
//!
//! let worker = Worker::builder()
//!     .nats_url("nats://127.0.0.1:4222")
//!     .concurrency(32)
//!     .tool("upper", |_ctx: TaskContext, args: Value| async move {
//!         let text = args["text"].as_str().ok_or_else(|| ToolError::invalid_args("text must be a string"))?;
//!         Ok(json!(text.to_uppercase()))
//!     })
//!     .describe("upper", "Upper-cases a text.")
//!     .parameters("upper", json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}))
//!     .typed_tool("add", |_ctx: TaskContext, args: Add| async move { Ok::<_, ToolError>(args.a + args.b) })
//!     .build()?;
//! worker.run(CancellationToken::new()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`tool`] — the [`Tool`] trait, [`TaskContext`] and [`ToolError`].
//! - [`builder`] — [`Worker::builder`] and [`WorkerOptions`].
//! - [`run`] — the pull loops, one per tool, sharing one concurrency budget.
//! - [`execute`] — running one task message to its result.
//! - `publish` — the result out, sent again while JetStream does not store it, then the ack.
//! - [`announce`] — heartbeats and answers to pings.
//! - [`batch`] — batch tools: one handler call for many tasks.
//! - [`builtin`] — the tools of the `toolfan-worker` binary.
//! - [`command`] — tools that run a program per call.
//! - [`http`] — tools that make an HTTP request per call.
//! - [`config`] — the worker binary's tools file.
//! - [`describe`] — tool descriptions and argument schemas for callers.
//! - [`cache`] — the fleet-wide result cache and single flight in Redis.
//! - [`limits`] — fleet-wide rate limits and concurrency caps in Redis.
//! - [`metrics`] — what the worker counts (docs/metrics.md).

mod abort;
mod admission;
pub mod announce;
pub mod batch;
pub mod builder;
pub mod builtin;
pub mod cache;
pub mod command;
pub mod config;
pub mod describe;
pub mod execute;
pub mod http;
pub mod limits;
pub mod metrics;
mod publish;
mod redis_conn;
pub mod run;
pub mod tool;

pub use batch::{BatchOptions, BatchOutcome};
pub use builder::{WorkerBuilder, WorkerOptions};
pub use cache::CacheOptions;
pub use run::Worker;
pub use tool::{TaskContext, Tool, ToolError, ToolRuntime};

/// Why a worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is unusable.
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Transport(#[from] toolfan_transport::TransportError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] toolfan_telemetry::http::ServeError),
}

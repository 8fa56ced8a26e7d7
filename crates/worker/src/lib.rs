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
//! Tools that need no Rust (HTTP, command, a tools file) and the
//! `toolfan-worker` binary are in `toolfan-tools`; fleet-wide limits are in
//! `toolfan-limits`.
//!
//! # Layout
//! - `tool` — the [`Tool`] trait, [`TaskContext`] and [`ToolError`].
//! - `builder`, `options` — [`Worker::builder`] and [`WorkerOptions`].
//! - `worker` — [`Worker::run`]: connect, one pull loop per tool sharing
//!   one budget of slots (`slots`), then drain.
//! - `pipeline` — the steps one task goes through, each in a file of its
//!   own: prefetch gate, cache, admission under limits, invoke under its
//!   timeout, retry decision, report.
//! - `runtime` — what every task of a worker shares.
//! - `announce` — heartbeats and answers to pings.
//! - `abort` — jobs whose tasks must stop.
//! - `batch` — batch tools: one handler call for many tasks.
//! - `describe` — tool descriptions and argument schemas for callers.
//! - `cache` — the fleet-wide result cache and single flight in Redis.
//! - `keep` — renewing a lease every third of its TTL.
//! - `turns` — tasks under the same limits asking Redis in turn.
//! - `metrics` — what the worker counts (docs/metrics.md).
//! - `error` — [`WorkerError`] and [`ConfigError`].

mod abort;
mod announce;
mod batch;
mod builder;
mod cache;
mod describe;
mod error;
mod keep;
mod metrics;
mod options;
mod pipeline;
mod runtime;
mod slots;
mod tool;
mod turns;
mod worker;

pub use batch::{BatchOptions, BatchOutcome};
pub use builder::WorkerBuilder;
pub use cache::{CacheError, CacheOptions};
pub use describe::{any_object_schema, check_parameters, schema_of, SchemaError};
pub use error::{ConfigError, WorkerError};
pub use options::WorkerOptions;
pub use tool::{TaskContext, Tool, ToolError, ToolFuture, ToolRuntime};
pub use toolfan_limits::{LimitSpec, LimiterOptions};
pub use worker::Worker;

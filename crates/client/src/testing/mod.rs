//! A test harness for agent authors (cargo feature `testing`): a real
//! toolfan fleet inside the test process, fake tools with injected latency
//! and failures, and recorders to assert on.
//!
//! [`LocalFleet`] starts `nats-server -js` (and, if asked, `redis-server`),
//! both found on `PATH`, on free loopback ports, then a coordinator and one
//! worker as tasks of the test's runtime, and waits until the worker has
//! announced itself, so the first job does not race the fleet. Everything
//! stops when the fleet is dropped.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use toolfan::testing::{FakeTool, LocalFleet};
//! use toolfan::{Job, Task};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = LocalFleet::builder()
//!     .tool("search", FakeTool::new().latency(Duration::from_millis(200)))
//!     .concurrency(16)
//!     .start()
//!     .await?;
//! let tasks = vec![
//!     Task::new("search", json!({"q": "rust"})),
//!     Task::new("search", json!({"q": "nats"})),
//! ];
//! let results = fleet.client().submit(Job::new(tasks)).await?.results().await?;
//! assert_eq!(results[1].value(), Some(&json!({"q": "nats"})));
//!
//! let search = fleet.recorder("search").expect("the fleet serves search");
//! assert_eq!(search.calls(), 2);
//! assert_eq!(search.peak_concurrency(), 2); // the two searches ran in parallel
//! # Ok(())
//! # }
//! ```
//!
//! `crates/client/tests/testing.rs` has more, run against real servers.
//!
//! # Layout
//! - [`fleet`] — [`LocalFleet`] and its [`LocalFleetBuilder`].
//! - [`fake`] — [`FakeTool`]: latency, failures and answers for tests.
//! - [`recorder`] — [`Recorder`]: calls, their arguments, the peak at once.
//! - [`error`] — [`TestingError`].

pub mod error;
pub mod fake;
pub mod fleet;
pub mod recorder;

pub use error::TestingError;
pub use fake::FakeTool;
pub use fleet::{LocalFleet, LocalFleetBuilder};
pub use recorder::Recorder;
pub use toolfan_worker::{TaskContext, Tool, ToolError, WorkerBuilder};

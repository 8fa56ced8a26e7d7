//! Wire types of toolfan, defined once and shared by the client, the
//! coordinator and the workers.
//!
//! Everything that crosses NATS is JSON with `"v": 1`. This crate has no
//! NATS or Redis dependency (and of tokio only its clock): it is serde
//! types, subject names, deadlines and validation, so a reader can see the whole protocol in one place.
//!
//! # Layout
//! - [`ids`] — validated names that end up inside NATS subjects (job ids,
//!   caller ids, tool names).
//! - [`task`] — a tool call as the caller asks for it ([`Task`]).
//! - [`graph`] — tasks that use earlier results: `after`, `$from`
//!   references ([`Ref`]) and the checks of a job's graph.
//! - [`job`] — a job of tasks with its window, deadline and policy
//!   ([`Job`]), and the limits a coordinator enforces ([`JobLimits`]).
//! - [`jobs`] — what coordinators tell about their live and recent jobs.
//! - [`result`] — the outcome of one task ([`TaskResult`], [`TaskError`]).
//! - [`message`] — the envelopes on the wire: dispatched tasks, reply
//!   events, worker heartbeats.
//! - [`person`] — a task waiting for a person, and its resolution.
//! - [`subjects`] — subject, stream and consumer names under a prefix.
//! - [`trace`] — W3C `traceparent` carried in NATS headers.
//! - [`deadline`] — [`Deadline`], the one type a deadline is computed,
//!   checked and bounded with.
//! - [`dedup`] — every `Nats-Msg-Id`, and so the rules that make sending
//!   again safe.
//! - [`error`] — [`ValidationError`], the one error type of this crate.

pub mod deadline;
pub mod dedup;
pub mod error;
pub mod fair;
pub mod graph;
pub mod ids;
pub mod job;
pub mod jobs;
pub mod message;
pub mod person;
pub mod result;
pub mod subjects;
pub mod task;
pub mod trace;

pub use deadline::{now_unix_ms, Deadline};
pub use dedup::{
    job_msg_id, result_msg_id, task_msg_id, verdict_msg_id, waiting_msg_id, MSG_ID_HEADER,
};
pub use error::ValidationError;
pub use fair::{FairEntry, FairReport, MAX_FAIR_ENTRIES};
pub use graph::{Ref, Unresolved};
pub use ids::{CallerId, JobId, ToolName};
pub use job::{Job, JobLimits, Policy, DEFAULT_DEADLINE_MS, MAX_CACHE_TTL_MS};
pub use jobs::{CoordinatorJobs, FinishedJob, JobsRequest, LiveJobInfo, WaitingTask, RECENT_JOBS};
pub use message::{
    decode, encode, encode_task, result_event_bytes, CoordinatorFloor, EndedBy, JobStatus,
    JobSummary, ReplyEvent, TaskMessage, ToolDescription, WorkerInfo, WorkerTools,
};
pub use person::{Resolution, ResolveAnswer, Waiting, WaitingRecord};
pub use result::{CacheUse, ErrorKind, ResultHead, TaskError, TaskResult};
pub use subjects::Subjects;
pub use task::{Task, DEFAULT_CACHE_TTL_MS};
pub use trace::{TraceParent, TRACEPARENT_HEADER};

/// The protocol version every message carries as `"v"`.
pub const PROTOCOL_VERSION: u32 = 1;

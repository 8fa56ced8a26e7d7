//! One attempt at a task, as the pipeline's steps see it: the task
//! message (its args taken out for the tool), the attempt number, its
//! deadline and its job's cancel token; and the results an attempt ends in.

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{CacheUse, Deadline, ErrorKind, TaskError, TaskMessage, TaskResult};

use crate::cache::CacheKey;

/// One attempt at a task.
pub(crate) struct Attempt {
    /// The task (its args are in `args` until the tool takes them).
    pub(crate) task: TaskMessage,
    pub(crate) args: Value,
    /// JetStream's delivery count: 1 for the first attempt.
    pub(crate) number: u32,
    /// Cancelled when the task's job is ended.
    pub(crate) cancel: CancellationToken,
    /// When the task was queued, by JetStream's clock.
    pub(crate) queued_since: Option<time::OffsetDateTime>,
    /// The call's keys in the cache, if it is cached and there is one.
    pub(crate) cache_key: Option<CacheKey>,
    /// The job's deadline, read from the task message when it arrived.
    pub(crate) deadline: Deadline,
    /// This worker's id, for the result.
    pub(crate) worker: String,
}

impl Attempt {
    /// The attempt ends without the tool having run, with `error`.
    pub(crate) fn decided(&self, error: TaskError) -> TaskResult {
        TaskResult {
            worker: Some(self.worker.clone()),
            cache: None,
            attempts: self.number,
            ..TaskResult::decided(self.task.index, error)
        }
    }

    /// The attempt ends with `outcome` (from the cache, if `cache` says so).
    pub(crate) fn answered(
        &self,
        outcome: Result<Value, TaskError>,
        cache: Option<CacheUse>,
    ) -> TaskResult {
        TaskResult {
            index: self.task.index,
            outcome,
            attempts: self.number,
            duration_ms: 0,
            worker: Some(self.worker.clone()),
            cache,
        }
    }
}

/// A `cancelled` error saying when.
pub(crate) fn cancelled(message: &str) -> TaskError {
    TaskError::new(ErrorKind::Cancelled, message)
}

/// A prefetched call cancelled at its TTL, nobody having joined it.
pub(crate) fn unclaimed() -> TaskError {
    cancelled("prefetched, and nobody claimed it in time")
}

/// Seconds from `then` to now, never negative (clocks may disagree).
pub(crate) fn seconds_since(then: time::OffsetDateTime) -> f64 {
    (time::OffsetDateTime::now_utc() - then)
        .as_seconds_f64()
        .max(0.0)
}

//! The outcome of one task.

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod kind;

pub use kind::ErrorKind;

/// A task's error: its kind, a message for people, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A description for people.
    pub message: String,
    /// Whether another attempt may succeed.
    #[serde(default)]
    pub retryable: bool,
    /// How long the failed service asked to be left alone (an HTTP
    /// `Retry-After`); a retry waits at least this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl TaskError {
    /// A non-retryable error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for TaskError {}

/// The result of task `index` of a job.
///
/// On the wire: `{"index":3,"ok":true,"value":{..},"attempts":1,"duration_ms":104,"worker":"w-7f3a"}`
/// or `{"index":3,"ok":false,"error":{"kind":"timeout","message":"..","retryable":true},..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireResult", into = "WireResult")]
pub struct TaskResult {
    /// The task's position in the job.
    pub index: u32,
    /// The tool's value, or what went wrong.
    pub outcome: Result<Value, TaskError>,
    /// How many times the tool was started (0 when it never ran).
    pub attempts: u32,
    /// How long the last attempt ran.
    pub duration_ms: u64,
    /// The worker that produced the result; `None` when the coordinator decided it.
    pub worker: Option<String>,
    /// Set when the outcome came from the result cache instead of a run of
    /// this task: a stored outcome, or that of an equal call it joined.
    pub cache: Option<CacheUse>,
}

/// How a cached call got its outcome without running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheUse {
    /// A stored outcome.
    Hit,
    /// The outcome of an equal call that was running when this one came.
    Joined,
}

impl TaskResult {
    /// A result the coordinator decides without running the tool.
    pub fn decided(index: u32, error: TaskError) -> Self {
        Self {
            index,
            outcome: Err(error),
            attempts: 0,
            duration_ms: 0,
            worker: None,
            cache: None,
        }
    }

    /// Whether the task succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The value of a successful task.
    pub fn value(&self) -> Option<&Value> {
        self.outcome.as_ref().ok()
    }

    /// The error of a failed task.
    pub fn error(&self) -> Option<&TaskError> {
        self.outcome.as_ref().err()
    }
}

#[derive(Serialize, Deserialize)]
struct WireResult {
    index: u32,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<TaskError>,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache: Option<CacheUse>,
}

/// A result on the wire whose `ok` and `error` contradict each other.
#[derive(Debug, thiserror::Error)]
enum Contradiction {
    #[error("a result with ok=true has no error")]
    ErrorOnSuccess,
    #[error("a result with ok=false needs an error")]
    NoErrorOnFailure,
}

impl TryFrom<WireResult> for TaskResult {
    type Error = Contradiction;
    fn try_from(w: WireResult) -> Result<Self, Contradiction> {
        let outcome = match (w.ok, w.error) {
            (true, None) => Ok(w.value.unwrap_or(Value::Null)),
            (false, Some(error)) => Err(error),
            (true, Some(_)) => return Err(Contradiction::ErrorOnSuccess),
            (false, None) => return Err(Contradiction::NoErrorOnFailure),
        };
        Ok(Self {
            index: w.index,
            outcome,
            attempts: w.attempts,
            duration_ms: w.duration_ms,
            worker: w.worker,
            cache: w.cache,
        })
    }
}

impl From<TaskResult> for WireResult {
    fn from(r: TaskResult) -> Self {
        let (ok, value, error) = match r.outcome {
            Ok(value) => (true, Some(value), None),
            Err(error) => (false, None, Some(error)),
        };
        Self {
            index: r.index,
            ok,
            value,
            error,
            attempts: r.attempts,
            duration_ms: r.duration_ms,
            worker: r.worker,
            cache: r.cache,
        }
    }
}

/// The parts of a result a coordinator needs to judge it — its index,
/// outcome and origin — read without building its value, so results can be
/// counted and forwarded as the bytes they arrived as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultHead {
    /// The task's position in the job.
    pub index: u32,
    /// `None` for success, else the error kind.
    pub error: Option<ErrorKind>,
    /// Whether a worker produced it (else the coordinator decided it).
    pub from_worker: bool,
}

impl ResultHead {
    /// Reads the head of a result; refuses what [`TaskResult`] would refuse.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::ValidationError> {
        #[derive(Deserialize)]
        struct ErrorHead {
            kind: ErrorKind,
        }
        #[derive(Deserialize)]
        struct Head {
            index: u32,
            ok: bool,
            #[serde(default)]
            error: Option<ErrorHead>,
            #[serde(default)]
            worker: Option<serde::de::IgnoredAny>,
        }
        let head: Head = crate::decode("task result", bytes)?;
        match (head.ok, head.error) {
            (true, None) => Ok(Self {
                index: head.index,
                error: None,
                from_worker: head.worker.is_some(),
            }),
            (false, Some(error)) => Ok(Self {
                index: head.index,
                error: Some(error.kind),
                from_worker: head.worker.is_some(),
            }),
            _ => Err(crate::ValidationError::Malformed {
                what: "task result",
                reason: "ok and error disagree".into(),
            }),
        }
    }

    /// Whether the task succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

#[cfg(test)]
mod tests;

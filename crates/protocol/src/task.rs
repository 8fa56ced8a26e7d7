//! A tool call as the caller asks for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ToolName;

/// One tool call of a job.
///
/// ```
/// use std::time::Duration;
/// use toolfan_protocol::TaskSpec;
///
/// let task = TaskSpec::new("search", serde_json::json!({"q": "rust"}))
///     .timeout(Duration::from_secs(5))
///     .retries(2);
/// assert_eq!(task.timeout_ms, Some(5000));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Which tool runs it.
    pub tool: ToolName,
    /// The tool's arguments; `{}` when absent.
    #[serde(default = "empty_object")]
    pub args: Value,
    /// How long one attempt may run; absent means "until the job deadline".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How many more attempts a retryable failure gets.
    #[serde(default)]
    pub retries: u32,
    /// An extra rate-limit key this call is under (e.g. `tenant:acme`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
    /// How many units of its limits the call takes (e.g. estimated tokens).
    #[serde(default = "one")]
    pub cost: u32,
    /// A key under which equal calls may share one execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn one() -> u32 {
    1
}

impl TaskSpec {
    /// A call of `tool` with `args`. The tool name is checked when the job
    /// is validated (the client does that before submitting).
    pub fn new(tool: impl Into<String>, args: Value) -> Self {
        Self {
            tool: ToolName::unchecked(tool.into()),
            args,
            timeout_ms: None,
            retries: 0,
            rate_key: None,
            cost: 1,
            idempotency_key: None,
        }
    }

    /// Limits one attempt to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Allows `retries` more attempts after a retryable failure.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Puts the call under the extra rate-limit key `key`.
    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    /// Sets how many units of its limits the call takes.
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// The per-attempt timeout, if one was set.
    pub fn timeout_duration(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

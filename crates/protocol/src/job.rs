//! A job: the tasks of one fan-out with its window, deadline and join policy,
//! and the limits a coordinator holds jobs to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{JobId, Task, ValidationError, PROTOCOL_VERSION};

mod validate;

/// Default number of a job's tasks in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Default job deadline, counted from the moment JetStream stored the job.
pub const DEFAULT_DEADLINE_MS: u64 = 30_000;

/// When a job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Every task runs; failures are isolated (the default).
    #[default]
    All,
    /// The first failure ends the job.
    FailFast,
    /// The first success ends the job.
    FirstOk,
    /// The first `k` successes end the job.
    Quorum(u32),
}

/// A job as submitted on `toolfan.job.<caller>`.
///
/// Only `tasks` is required; `{"tasks": []}` is a valid job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Protocol version, 1.
    #[serde(default = "version")]
    pub v: u32,
    /// The job id; when absent the message's `Nats-Msg-Id` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<JobId>,
    /// The tool calls, answered in this order.
    pub tasks: Vec<Task>,
    /// At most this many of the job's tasks are in flight at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// The whole job is answered within this many milliseconds of submission.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// When the job ends.
    #[serde(default)]
    pub policy: Policy,
    /// If set, the caller sends keepalives on `toolfan.alive.<caller>.<job>`
    /// and the job is cancelled when none arrives for this many
    /// milliseconds (the caller died or dropped the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_grace_ms: Option<u64>,
}

fn version() -> u32 {
    PROTOCOL_VERSION
}
fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}
fn default_deadline_ms() -> u64 {
    DEFAULT_DEADLINE_MS
}

impl Job {
    /// A job of `tasks` with the default window, deadline and policy.
    pub fn new(tasks: Vec<Task>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id: None,
            tasks,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            deadline_ms: DEFAULT_DEADLINE_MS,
            policy: Policy::All,
            client_grace_ms: None,
        }
    }

    /// Keeps at most `n` tasks of the job in flight at once.
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.max_concurrency = n;
        self
    }

    /// Answers the job within `deadline` of its submission.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the join policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the job id (otherwise the client generates one).
    pub fn id(mut self, id: JobId) -> Self {
        self.id = Some(id);
        self
    }

    /// The job deadline as a duration.
    pub fn deadline_duration(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// Parses a job body, naming the field and position of any error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ValidationError> {
        let job: Job = serde_json::from_slice(bytes).map_err(|e| ValidationError::Malformed {
            what: "job",
            reason: e.to_string(),
        })?;
        Ok(job)
    }

    /// Parses and validates a job body against `limits`: the one way a
    /// coordinator reads a job.
    pub fn parse(bytes: &[u8], limits: &JobLimits) -> Result<Self, ValidationError> {
        if bytes.len() > limits.max_job_bytes {
            return Err(ValidationError::field(
                "job",
                format!(
                    "{} bytes is over this cluster's limit of {} bytes per job",
                    bytes.len(),
                    limits.max_job_bytes
                ),
            ));
        }
        let job = Self::from_json(bytes)?;
        job.validate(limits)?;
        Ok(job)
    }
}

/// Longest a result may be cached or a prefetch wait to be claimed.
pub const MAX_CACHE_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// Bounds a coordinator holds every job to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLimits {
    /// Most tasks in one job.
    pub max_tasks: usize,
    /// Longest job deadline, in milliseconds.
    pub max_deadline_ms: u64,
    /// Most retries of one task.
    pub max_retries: u32,
    /// Largest job body, in bytes.
    pub max_job_bytes: usize,
    /// Largest args of one task, in bytes of JSON.
    pub max_args_bytes: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            max_tasks: 10_000,
            max_deadline_ms: 24 * 3600 * 1000,
            max_retries: 100,
            max_job_bytes: 1024 * 1024,
            max_args_bytes: 256 * 1024,
        }
    }
}

#[cfg(test)]
mod tests;

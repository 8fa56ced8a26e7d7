//! A job: the tasks of one fan-out with its window, deadline and join policy,
//! and the limits a coordinator holds jobs to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{JobId, Task, ToolName, ValidationError, PROTOCOL_VERSION};

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

    /// Checks the job against `limits`, naming the first field out of range.
    pub fn validate(&self, limits: &JobLimits) -> Result<(), ValidationError> {
        if self.v != PROTOCOL_VERSION {
            return Err(ValidationError::Version(self.v));
        }
        if self.tasks.len() > limits.max_tasks {
            return Err(ValidationError::field(
                "tasks",
                format!(
                    "{} tasks is over this cluster's limit of {} per job",
                    self.tasks.len(),
                    limits.max_tasks
                ),
            ));
        }
        if self.max_concurrency == 0 {
            return Err(ValidationError::field(
                "max_concurrency",
                "must be at least 1",
            ));
        }
        if self.deadline_ms == 0 || self.deadline_ms > limits.max_deadline_ms {
            return Err(ValidationError::field(
                "deadline_ms",
                format!("must be between 1 and {}", limits.max_deadline_ms),
            ));
        }
        if self
            .client_grace_ms
            .is_some_and(|g| !(100..=limits.max_deadline_ms).contains(&g))
        {
            return Err(ValidationError::field(
                "client_grace_ms",
                format!("must be between 100 and {}", limits.max_deadline_ms),
            ));
        }
        if let Policy::Quorum(k) = self.policy {
            if k == 0 || k as usize > self.tasks.len().max(1) {
                return Err(ValidationError::field(
                    "policy.quorum",
                    format!(
                        "must be between 1 and the number of tasks ({})",
                        self.tasks.len()
                    ),
                ));
            }
        }
        for (i, task) in self.tasks.iter().enumerate() {
            validate_task(i, task, limits)?;
        }
        Ok(())
    }
}

fn validate_task(i: usize, task: &Task, limits: &JobLimits) -> Result<(), ValidationError> {
    if let Err(e) = ToolName::new(task.tool.as_str()) {
        return Err(ValidationError::field(
            format!("tasks[{i}].tool"),
            e.to_string(),
        ));
    }
    if let Some(timeout) = task.timeout_ms {
        if timeout == 0 || timeout > limits.max_deadline_ms {
            return Err(ValidationError::field(
                format!("tasks[{i}].timeout_ms"),
                format!("must be between 1 and {}", limits.max_deadline_ms),
            ));
        }
    }
    // Measured only when the limit could be passed: a job body within the
    // limit cannot hold larger args.
    if limits.max_args_bytes < limits.max_job_bytes {
        let bytes = serde_json::to_vec(&task.args)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if bytes > limits.max_args_bytes {
            return Err(ValidationError::field(
                format!("tasks[{i}].args"),
                format!(
                    "{bytes} bytes is over this cluster's limit of {} bytes per task",
                    limits.max_args_bytes
                ),
            ));
        }
    }
    if task.retries > limits.max_retries {
        return Err(ValidationError::field(
            format!("tasks[{i}].retries"),
            format!("must be at most {}", limits.max_retries),
        ));
    }
    if let Some(key) = &task.rate_key {
        if key.is_empty() || key.len() > 256 {
            return Err(ValidationError::field(
                format!("tasks[{i}].rate_key"),
                "must be 1 to 256 bytes",
            ));
        }
    }
    if let Some(key) = &task.idempotency_key {
        if key.is_empty() || key.len() > 256 {
            return Err(ValidationError::field(
                format!("tasks[{i}].idempotency_key"),
                "must be 1 to 256 bytes",
            ));
        }
    }
    let cache_only = [
        ("cache_ttl_ms", task.cache_ttl_ms.is_some()),
        ("cache_failures", task.cache_failures),
        ("prefetch_ttl_ms", task.prefetch_ttl_ms.is_some()),
    ];
    for (field, set) in cache_only {
        if set && !task.is_cached() {
            return Err(ValidationError::field(
                format!("tasks[{i}].{field}"),
                "applies to cached calls only: set `cache: true` or an `idempotency_key`",
            ));
        }
    }
    for (field, ms) in [
        ("cache_ttl_ms", task.cache_ttl_ms),
        ("prefetch_ttl_ms", task.prefetch_ttl_ms),
    ] {
        if ms.is_some_and(|ms| ms == 0 || ms > MAX_CACHE_TTL_MS) {
            return Err(ValidationError::field(
                format!("tasks[{i}].{field}"),
                format!("must be between 1 and {MAX_CACHE_TTL_MS} (30 days)"),
            ));
        }
    }
    Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn tasks_alone_is_a_job_with_defaults() {
        let job = Job::from_json(br#"{"tasks": [{"tool": "echo"}]}"#).unwrap();
        assert_eq!(job.max_concurrency, 16);
        assert_eq!(job.deadline_ms, 30_000);
        assert_eq!(job.policy, Policy::All);
        assert_eq!(job.tasks[0].args, serde_json::json!({}));
        assert_eq!(job.tasks[0].cost, 1);
        job.validate(&JobLimits::default()).unwrap();
    }

    #[test]
    fn policies_parse_in_their_documented_forms() {
        for (text, policy) in [
            (r#""all""#, Policy::All),
            (r#""fail_fast""#, Policy::FailFast),
            (r#""first_ok""#, Policy::FirstOk),
            (r#"{"quorum": 2}"#, Policy::Quorum(2)),
        ] {
            assert_eq!(serde_json::from_str::<Policy>(text).unwrap(), policy);
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = Job::from_json(br#"{"tasks": [{"tool": "a.b"}]}"#).unwrap_err();
        assert!(err.to_string().contains("tool name \"a.b\""), "{err}");
        let err = Job::from_json(br#"{"tasks": [], "deadline": 5}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `deadline`"),
            "{err}"
        );
        let err = Job::from_json(b"not json").unwrap_err();
        assert!(err.to_string().starts_with("malformed job"), "{err}");

        let limits = JobLimits {
            max_tasks: 2,
            ..JobLimits::default()
        };
        let three = Job::new(vec![Task::new("echo", serde_json::json!({})); 3]);
        let err = three.validate(&limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tasks: 3 tasks is over this cluster's limit of 2 per job"
        );
        let err = Job::new(vec![])
            .max_concurrency(0)
            .validate(&limits)
            .unwrap_err();
        assert!(err.to_string().starts_with("max_concurrency"), "{err}");
        let big = Job::new(vec![Task::new(
            "echo",
            serde_json::json!({"s": "x".repeat(100)}),
        )]);
        let small_args = JobLimits {
            max_args_bytes: 50,
            ..JobLimits::default()
        };
        let err = big.validate(&small_args).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tasks[0].args: 108 bytes is over this cluster's limit of 50 bytes per task"
        );
        let bad_tool = Job::new(vec![Task::new(">", serde_json::json!({}))]);
        let err = bad_tool.validate(&limits).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("tasks[0].tool: invalid tool name \">\""),
            "{err}"
        );
        let zero_timeout = Job::new(vec![
            Task::new("echo", serde_json::json!({})).timeout(Duration::ZERO)
        ]);
        let err = zero_timeout.validate(&limits).unwrap_err();
        assert!(err.to_string().starts_with("tasks[0].timeout_ms"), "{err}");
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing() {
        let limits = JobLimits {
            max_job_bytes: 10,
            ..JobLimits::default()
        };
        let err = Job::parse(br#"{"tasks": []}"#, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "job: 13 bytes is over this cluster's limit of 10 bytes per job"
        );
    }

    #[test]
    fn other_protocol_versions_are_refused() {
        let job = Job::from_json(br#"{"v": 2, "tasks": []}"#).unwrap();
        assert_eq!(
            job.validate(&JobLimits::default()).unwrap_err(),
            ValidationError::Version(2)
        );
    }
}

//! A job checked against a coordinator's [`JobLimits`]: each rule names
//! the first field out of range, the job's own and then each task's.

use super::{Job, JobLimits, Policy, MAX_CACHE_TTL_MS};
use crate::{Task, ToolName, ValidationError, PROTOCOL_VERSION};

impl Job {
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
        crate::graph::check_graph(&self.tasks)
    }
}

/// Task `i`'s fields, in the order they are documented.
fn validate_task(i: usize, task: &Task, limits: &JobLimits) -> Result<(), ValidationError> {
    let field =
        |name: &str, reason: String| ValidationError::field(format!("tasks[{i}].{name}"), reason);
    check_run(task, limits)
        .and_then(|()| check_keys(task))
        .and_then(|()| check_cache(task))
        .map_err(|(name, reason)| field(name, reason))
}

/// A field of a task and what is wrong with it.
type Refusal = (&'static str, String);

/// How the task runs: its tool, timeout, args size and retries.
fn check_run(task: &Task, limits: &JobLimits) -> Result<(), Refusal> {
    if let Err(e) = ToolName::new(task.tool.as_str()) {
        return Err(("tool", e.to_string()));
    }
    if let Some(timeout) = task.timeout_ms {
        if timeout == 0 || timeout > limits.max_deadline_ms {
            let reason = format!("must be between 1 and {}", limits.max_deadline_ms);
            return Err(("timeout_ms", reason));
        }
    }
    // Measured only when the limit could be passed: a job body within the
    // limit cannot hold larger args.
    if limits.max_args_bytes < limits.max_job_bytes {
        let bytes = serde_json::to_vec(&task.args)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if bytes > limits.max_args_bytes {
            let reason = format!(
                "{bytes} bytes is over this cluster's limit of {} bytes per task",
                limits.max_args_bytes
            );
            return Err(("args", reason));
        }
    }
    if task.retries > limits.max_retries {
        return Err(("retries", format!("must be at most {}", limits.max_retries)));
    }
    Ok(())
}

/// The rate and idempotency keys: 1 to 256 bytes when set.
fn check_keys(task: &Task) -> Result<(), Refusal> {
    for (name, key) in [
        ("rate_key", &task.rate_key),
        ("idempotency_key", &task.idempotency_key),
    ] {
        if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
            return Err((name, "must be 1 to 256 bytes".into()));
        }
    }
    Ok(())
}

/// The cache settings: only on cached calls, and TTLs within bounds.
fn check_cache(task: &Task) -> Result<(), Refusal> {
    let cache_only = [
        ("cache_ttl_ms", task.cache_ttl_ms.is_some()),
        ("cache_failures", task.cache_failures),
        ("prefetch_ttl_ms", task.prefetch_ttl_ms.is_some()),
    ];
    for (name, set) in cache_only {
        if set && !task.is_cached() {
            let reason = "applies to cached calls only: set `cache: true` or an `idempotency_key`";
            return Err((name, reason.into()));
        }
    }
    for (name, ms) in [
        ("cache_ttl_ms", task.cache_ttl_ms),
        ("prefetch_ttl_ms", task.prefetch_ttl_ms),
    ] {
        if ms.is_some_and(|ms| ms == 0 || ms > MAX_CACHE_TTL_MS) {
            let reason = format!("must be between 1 and {MAX_CACHE_TTL_MS} (30 days)");
            return Err((name, reason));
        }
    }
    Ok(())
}

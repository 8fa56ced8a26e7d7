//! Subject, stream and consumer names, all under one configurable prefix.

use crate::{CallerId, JobId, ToolName, ValidationError};

/// The default subject prefix.
pub const DEFAULT_PREFIX: &str = "toolfan";

/// Names of everything toolfan puts on NATS, under a prefix (default `toolfan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
    stream_prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX).expect("the default prefix is valid")
    }
}

impl Subjects {
    /// Names under `prefix`, one subject token of letters, digits, `_` or `-`.
    pub fn new(prefix: &str) -> Result<Self, ValidationError> {
        // The same rules as a tool name: a single token that cannot escape.
        ToolName::new(prefix).map_err(|_| ValidationError::Name {
            what: "subject prefix",
            value: prefix.chars().take(80).collect(),
            reason: "must be one token of ASCII letters, digits, '_' and '-'",
        })?;
        Ok(Self {
            prefix: prefix.to_owned(),
            stream_prefix: prefix.to_ascii_uppercase().replace('-', "_"),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `toolfan.job.<caller>`: where `caller` submits jobs.
    pub fn job(&self, caller: &CallerId) -> String {
        format!("{}.job.{caller}", self.prefix)
    }

    /// `toolfan.job.>`: every submitted job.
    pub fn jobs_wildcard(&self) -> String {
        format!("{}.job.>", self.prefix)
    }

    /// The caller named by a job subject, if the subject is one.
    pub fn caller_of_job_subject(&self, subject: &str) -> Result<CallerId, ValidationError> {
        let token = subject
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(".job."))
            .unwrap_or(subject);
        CallerId::new(token)
    }

    /// `toolfan.task.<tool>`: the queue of `tool`.
    pub fn task(&self, tool: &ToolName) -> String {
        format!("{}.task.{tool}", self.prefix)
    }

    /// `toolfan.task.>`: every tool's queue.
    pub fn tasks_wildcard(&self) -> String {
        format!("{}.task.>", self.prefix)
    }

    /// `toolfan.result.<job>`: the outcomes of `job`'s tasks.
    pub fn result(&self, job: &JobId) -> String {
        format!("{}.result.{job}", self.prefix)
    }

    /// `toolfan.result.>`: every outcome.
    pub fn results_wildcard(&self) -> String {
        format!("{}.result.>", self.prefix)
    }

    /// `toolfan.reply.<caller>.<job>`: events to the caller of `job`.
    pub fn reply(&self, caller: &CallerId, job: &JobId) -> String {
        format!("{}.reply.{caller}.{job}", self.prefix)
    }

    /// `toolfan.resolve.<caller>.<job>`: the caller (or an operator)
    /// resolves or rejects a task of its job that waits for a person.
    pub fn resolve(&self, caller: &CallerId, job: &JobId) -> String {
        format!("{}.resolve.{caller}.{job}", self.prefix)
    }

    /// `toolfan.cancel.<caller>.<job>`: the caller cancels its job.
    pub fn cancel(&self, caller: &CallerId, job: &JobId) -> String {
        format!("{}.cancel.{caller}.{job}", self.prefix)
    }

    /// `toolfan.alive.<caller>.<job>`: the caller's keepalives for its job.
    pub fn alive(&self, caller: &CallerId, job: &JobId) -> String {
        format!("{}.alive.{caller}.{job}", self.prefix)
    }

    /// `toolfan.abort.<job>`: workers stop the job's running tasks and skip its queued ones.
    pub fn abort(&self, job: &JobId) -> String {
        format!("{}.abort.{job}", self.prefix)
    }

    /// `toolfan.abort.*`: every abort.
    pub fn aborts_wildcard(&self) -> String {
        format!("{}.abort.*", self.prefix)
    }

    /// The job named by an abort subject.
    pub fn job_of_abort_subject(&self, subject: &str) -> Result<JobId, ValidationError> {
        let token = subject
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(".abort."))
            .unwrap_or(subject);
        JobId::new(token)
    }

    /// `toolfan.coordinator.floor`: each coordinator's results floor
    /// ([`crate::CoordinatorFloor`]).
    pub fn coordinator_floor(&self) -> String {
        format!("{}.coordinator.floor", self.prefix)
    }

    /// `toolfan.coordinator.fair`: each coordinator's use of the fleet per
    /// tool and caller, from which every coordinator works out fair shares.
    pub fn coordinator_fair(&self) -> String {
        format!("{}.coordinator.fair", self.prefix)
    }

    /// `toolfan.coordinator.jobs`: a request here makes every coordinator
    /// answer with its live and recent jobs ([`crate::CoordinatorJobs`]).
    pub fn coordinator_jobs(&self) -> String {
        format!("{}.coordinator.jobs", self.prefix)
    }

    /// `toolfan.worker.heartbeat`: worker announcements.
    pub fn heartbeat(&self) -> String {
        format!("{}.worker.heartbeat", self.prefix)
    }

    /// `toolfan.worker.ping`: asks every worker to announce itself now.
    pub fn ping(&self) -> String {
        format!("{}.worker.ping", self.prefix)
    }

    /// `toolfan.worker.tools`: a request here makes every worker answer
    /// with its tools' descriptions ([`crate::WorkerTools`]).
    pub fn tools(&self) -> String {
        format!("{}.worker.tools", self.prefix)
    }

    /// `toolfan.flight.<id>`: a cached call's flight `id` ended (its
    /// waiters read the outcome from Redis).
    pub fn flight(&self, id: &str) -> String {
        format!("{}.flight.{id}", self.prefix)
    }

    /// `TOOLFAN_JOBS`: the work-queue stream of submitted jobs.
    pub fn jobs_stream(&self) -> String {
        format!("{}_JOBS", self.stream_prefix)
    }

    /// `TOOLFAN_TASKS`: the work-queue stream of dispatched tasks.
    pub fn tasks_stream(&self) -> String {
        format!("{}_TASKS", self.stream_prefix)
    }

    /// `TOOLFAN_RESULTS`: the stream of task outcomes.
    pub fn results_stream(&self) -> String {
        format!("{}_RESULTS", self.stream_prefix)
    }

    /// `coordinators`: the durable consumer all coordinators share.
    pub fn coordinators_consumer(&self) -> &'static str {
        "coordinators"
    }

    /// `tool_<tool>`: the durable consumer every worker serving `tool` shares.
    pub fn tool_consumer(&self, tool: &ToolName) -> String {
        format!("tool_{tool}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let s = Subjects::default();
        let caller = CallerId::new("acme").unwrap();
        let job = JobId::new("01J").unwrap();
        assert_eq!(s.job(&caller), "toolfan.job.acme");
        assert_eq!(s.reply(&caller, &job), "toolfan.reply.acme.01J");
        assert_eq!(s.caller_of_job_subject("toolfan.job.acme").unwrap(), caller);
        assert!(s.caller_of_job_subject("toolfan.job.a.b").is_err());
        assert_eq!(s.jobs_stream(), "TOOLFAN_JOBS");
        assert_eq!(
            Subjects::new("my-app").unwrap().tasks_stream(),
            "MY_APP_TASKS"
        );
        assert!(Subjects::new("a.b").is_err());
    }
}

//! What coordinators tell about their jobs on `toolfan.coordinator.jobs`:
//! a request there (with a reply subject; an empty body, or a
//! [`JobsRequest`]) makes every coordinator answer with one [`CoordinatorJobs`].

use serde::{Deserialize, Serialize};

use crate::{CallerId, EndedBy, JobId, JobStatus, ToolName};

/// How many finished jobs a coordinator remembers for the listing.
pub const RECENT_JOBS: usize = 200;

/// How many distinct tool names a listed job carries (the first ones, in task order).
pub const LISTED_TOOLS: usize = 8;

/// A job's tools are told task by task only for jobs of at most this many tasks.
pub const MAX_TASK_TOOLS: usize = 10_000;

/// A request on `toolfan.coordinator.jobs` that names a job: the answer
/// then also tells that job's tool of each task, if it is live there. An
/// empty body asks for the listing alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsRequest {
    /// Protocol version, 1.
    pub v: u32,
    /// The job asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
}

/// One coordinator's answer on `toolfan.coordinator.jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorJobs {
    /// Protocol version, 1.
    pub v: u32,
    /// The coordinator's id (new at each start).
    pub coordinator: String,
    /// Its live jobs, oldest first: all of them, or as many as fit in one
    /// NATS message (see `live_total`; a job asked about is kept).
    pub live: Vec<LiveJobInfo>,
    /// How many jobs are live on it, listed or not.
    #[serde(default)]
    pub live_total: u32,
    /// The jobs it finished most recently (at most [`RECENT_JOBS`]), newest first.
    pub recent: Vec<FinishedJob>,
}

/// A job running on a coordinator, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveJobInfo {
    /// The job.
    pub job: JobId,
    /// Who submitted it.
    pub caller: CallerId,
    /// Its number of tasks.
    pub total: u32,
    /// Tasks with their result so far (`succeeded + failed`).
    pub done: u32,
    /// Tasks that succeeded so far.
    pub succeeded: u32,
    /// Tasks that failed so far (any error kind).
    pub failed: u32,
    /// When JetStream stored the job, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Its deadline, ms since the Unix epoch.
    pub deadline_unix_ms: u64,
    /// The distinct tools its tasks call (at most [`LISTED_TOOLS`]).
    #[serde(default)]
    pub tools: Vec<ToolName>,
    /// Each task's tool, by index: only in an answer to a [`JobsRequest`]
    /// naming this job, and only for a job of at most [`MAX_TASK_TOOLS`] tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_tools: Vec<ToolName>,
    /// Its tasks waiting for a person, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<WaitingTask>,
}

/// A task of a live job that waits for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingTask {
    /// The task's position in its job.
    pub index: u32,
    /// What it waits for.
    #[serde(flatten)]
    pub waiting: crate::Waiting,
}

/// A job a coordinator finished and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedJob {
    /// The job.
    pub job: JobId,
    /// Who submitted it.
    pub caller: CallerId,
    /// Its number of tasks.
    pub total: u32,
    /// Tasks that succeeded.
    pub succeeded: u32,
    /// Tasks that failed (any error kind).
    pub failed: u32,
    /// How it ended.
    pub status: JobStatus,
    /// What ended it.
    pub ended_by: EndedBy,
    /// Why, in words, when something other than the last task ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds from submission to its end.
    pub duration_ms: u64,
    /// When it ended, ms since the Unix epoch.
    pub ended_unix_ms: u64,
    /// The distinct tools its tasks called (at most [`LISTED_TOOLS`]).
    #[serde(default)]
    pub tools: Vec<ToolName>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    #[test]
    fn a_listing_round_trips() {
        let listing = CoordinatorJobs {
            v: 1,
            coordinator: "c1".into(),
            live_total: 1,
            live: vec![LiveJobInfo {
                job: JobId::new("j1").unwrap(),
                caller: CallerId::new("acme").unwrap(),
                total: 20,
                done: 3,
                succeeded: 2,
                failed: 1,
                started_unix_ms: 1,
                deadline_unix_ms: 2,
                tools: vec![ToolName::new("sleep").unwrap()],
                task_tools: vec![],
                waiting: vec![WaitingTask {
                    index: 4,
                    waiting: crate::Waiting {
                        tool: ToolName::new("approve").unwrap(),
                        prompt: "ok?".into(),
                        since_unix_ms: 3,
                    },
                }],
            }],
            recent: vec![FinishedJob {
                job: JobId::new("j0").unwrap(),
                caller: CallerId::new("acme").unwrap(),
                total: 1,
                succeeded: 1,
                failed: 0,
                status: JobStatus::Completed,
                ended_by: EndedBy::AllDone,
                reason: None,
                duration_ms: 5,
                ended_unix_ms: 6,
                tools: vec![],
            }],
        };
        let back: CoordinatorJobs = decode("jobs", &encode(&listing)).unwrap();
        assert_eq!(back, listing);
    }
}

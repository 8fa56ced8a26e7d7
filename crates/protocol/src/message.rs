//! Envelopes on the wire: a dispatched task, the events a caller receives,
//! and worker heartbeats.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CallerId, JobId, Policy, Task, TaskError, TaskResult, ToolName, ValidationError};

/// Decodes a JSON message, naming `what` in the error.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ValidationError> {
    serde_json::from_slice(bytes).map_err(|e| ValidationError::Malformed {
        what,
        reason: e.to_string(),
    })
}

/// Encodes a message as JSON. Our types always serialize, so this cannot fail.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("toolfan protocol types always serialize to JSON")
}

/// A task dispatched by a coordinator on `toolfan.task.<tool>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// Protocol version, 1.
    pub v: u32,
    /// The job the task belongs to; its result goes to `toolfan.result.<job>`.
    pub job: JobId,
    /// The task's position in the job.
    pub index: u32,
    /// Who submitted the job.
    pub caller: CallerId,
    /// The call itself.
    pub task: Task,
    /// The job deadline, milliseconds since the Unix epoch; no attempt runs past it.
    pub deadline_unix_ms: u64,
    /// Which dispatch of the task this is: 1, or more when the
    /// coordinator's safety net sent it again because the first one was
    /// lost. Absent means 1. Results of each dispatch have their own
    /// `Nats-Msg-Id` ([`result_msg_id`](crate::result_msg_id)).
    #[serde(default = "first_dispatch", skip_serializing_if = "is_first_dispatch")]
    pub dispatch: u32,
}

fn first_dispatch() -> u32 {
    1
}

fn is_first_dispatch(dispatch: &u32) -> bool {
    *dispatch == 1
}

/// Encodes a task message from borrowed parts, without copying the task.
pub fn encode_task(
    job: &JobId,
    index: u32,
    caller: &CallerId,
    task: &Task,
    deadline_unix_ms: u64,
    dispatch: u32,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        v: u32,
        job: &'a JobId,
        index: u32,
        caller: &'a CallerId,
        task: &'a Task,
        deadline_unix_ms: u64,
        #[serde(skip_serializing_if = "is_first_dispatch")]
        dispatch: u32,
    }
    encode(&Borrowed {
        v: crate::PROTOCOL_VERSION,
        job,
        index,
        caller,
        task,
        deadline_unix_ms,
        dispatch,
    })
}

/// A `result` reply event around a result's bytes as they arrived, which
/// must be one JSON object (a [`TaskResult`] the caller decodes).
pub fn result_event_bytes(result_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(result_json.len() + 32);
    out.extend_from_slice(br#"{"type":"result","v":1,"result":"#);
    out.extend_from_slice(result_json);
    out.push(b'}');
    out
}

impl TaskMessage {
    /// The `Nats-Msg-Id` of this dispatch; see [`task_msg_id`](crate::task_msg_id).
    pub fn msg_id(&self) -> String {
        crate::dedup::task_msg_id(&self.job, self.index, self.dispatch)
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Every task has its result (some may read `cancelled` or
    /// `deadline_exceeded` when a policy or the deadline ended the job).
    Completed,
    /// The caller cancelled the job, or went away; unfinished tasks read `cancelled`.
    Cancelled,
    /// The job was refused; `error` says why and no task ran.
    Invalid,
}

impl JobStatus {
    /// The status's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Invalid => "invalid",
        }
    }
}

/// What ended a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// Every task finished.
    #[default]
    AllDone,
    /// The join policy was decided (`fail_fast`, `first_ok`, `quorum`).
    Policy,
    /// The job deadline passed.
    Deadline,
    /// The caller cancelled it.
    Cancel,
    /// The caller's keepalives stopped for longer than its grace.
    CallerGone,
    /// It was refused.
    Refused,
}

impl EndedBy {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllDone => "all_done",
            Self::Policy => "policy",
            Self::Deadline => "deadline",
            Self::Cancel => "cancel",
            Self::CallerGone => "caller_gone",
            Self::Refused => "refused",
        }
    }
}

/// The last event of a job on its reply subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job.
    pub job: JobId,
    /// How it ended.
    pub status: JobStatus,
    /// The job's policy.
    #[serde(default)]
    pub policy: Policy,
    /// Number of tasks.
    pub total: u32,
    /// Tasks that succeeded.
    pub succeeded: u32,
    /// Tasks that failed (any error kind).
    pub failed: u32,
    /// Milliseconds from submission to the end of the job.
    pub duration_ms: u64,
    /// What ended it.
    #[serde(default)]
    pub ended_by: EndedBy,
    /// Why, in words, when something other than the last task ended it
    /// (e.g. `first_ok: task 0 succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why an invalid job was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
}

/// An event on `toolfan.reply.<caller>.<job>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyEvent {
    /// One task finished; sent once per task, in completion order.
    Result {
        /// Protocol version, 1.
        v: u32,
        /// The task's result.
        result: TaskResult,
    },
    /// A task waits for a person (`toolfan resolve` answers it).
    Waiting {
        /// Protocol version, 1.
        v: u32,
        /// The task and what it waits for.
        #[serde(flatten)]
        task: crate::WaitingTask,
    },
    /// The job ended; sent last.
    Done {
        /// Protocol version, 1.
        v: u32,
        /// How it ended.
        #[serde(flatten)]
        summary: JobSummary,
    },
}

/// What a coordinator tells the others on `toolfan.coordinator.floor`
/// every second: the lowest results-stream sequence its jobs still need.
/// Coordinators purge the results stream below the lowest floor heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorFloor {
    /// Protocol version.
    pub v: u32,
    /// The coordinator's id (new at each start).
    pub coordinator: String,
    /// Results below this sequence no job of this coordinator needs.
    pub floor: u64,
}

/// What a worker announces on `toolfan.worker.heartbeat` every second and in
/// answer to `toolfan.worker.ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Protocol version, 1.
    pub v: u32,
    /// The worker's id, unique in the fleet.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// The tools it serves.
    pub tools: Vec<ToolName>,
    /// How many tasks it runs at once.
    pub concurrency: u32,
    /// How many it is running now.
    pub in_flight: u32,
    /// True in the last heartbeat of a worker that is shutting down.
    #[serde(default)]
    pub leaving: bool,
}

/// What a tool does and the JSON Schema of its arguments, as a worker
/// describes it to callers (who hand it to an LLM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDescription {
    /// The tool's name.
    pub name: ToolName,
    /// What the tool does, for the model; may be empty.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the tool's arguments (an object schema).
    pub parameters: Value,
}

/// A worker's answer on `toolfan.worker.tools`: every tool it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerTools {
    /// Protocol version, 1.
    pub v: u32,
    /// The worker's id.
    pub worker: String,
    /// Its tools, by name.
    pub tools: Vec<ToolDescription>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn borrowed_encodings_match_the_owned_types() {
        let task = TaskMessage {
            v: 1,
            job: JobId::new("j").unwrap(),
            index: 3,
            caller: CallerId::new("c").unwrap(),
            task: Task::new("echo", serde_json::json!({"a": 1})),
            deadline_unix_ms: 99,
            dispatch: 1,
        };
        let borrowed = encode_task(&task.job, 3, &task.caller, &task.task, 99, 1);
        assert!(!String::from_utf8_lossy(&borrowed).contains("dispatch"));
        assert_eq!(decode::<TaskMessage>("task", &borrowed).unwrap(), task);
        let again = TaskMessage {
            dispatch: 2,
            ..task
        };
        let borrowed = encode_task(&again.job, 3, &again.caller, &again.task, 99, 2);
        assert_eq!(decode::<TaskMessage>("task", &borrowed).unwrap(), again);

        let result = TaskResult::decided(4, TaskError::new(ErrorKind::Timeout, "t"));
        let event = result_event_bytes(&encode(&result));
        let expected = ReplyEvent::Result { v: 1, result };
        assert_eq!(decode::<ReplyEvent>("event", &event).unwrap(), expected);
    }

    #[test]
    fn done_event_is_flat_and_tagged() {
        let event = ReplyEvent::Done {
            v: 1,
            summary: JobSummary {
                job: JobId::new("j1").unwrap(),
                status: JobStatus::Invalid,
                policy: Policy::All,
                total: 0,
                succeeded: 0,
                failed: 0,
                duration_ms: 3,
                ended_by: EndedBy::Refused,
                reason: None,
                error: Some(TaskError::new(ErrorKind::Invalid, "bad")),
            },
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "done");
        assert_eq!(value["status"], "invalid");
        assert_eq!(value["error"]["kind"], "invalid");
        assert_eq!(serde_json::from_value::<ReplyEvent>(value).unwrap(), event);
    }
}

//! A person in the loop: a task a tool handed to a person waits, durably,
//! until the job's caller (or an operator) resolves it with a value or
//! rejects it with a reason.
//!
//! - The worker stores a [`WaitingRecord`] on the job's results subject
//!   (it is not a result: readers of results skip it, having no `ok`)
//!   and acks the task, freeing its slot.
//! - The coordinator owning the job marks the task waiting, tells the
//!   caller with a `waiting` reply event, and lists it on
//!   `toolfan.coordinator.jobs`.
//! - A [`Resolution`] requested on `toolfan.resolve.<caller>.<job>` is
//!   stored by that coordinator as the task's result before it answers
//!   with a [`ResolveAnswer`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ToolName, PROTOCOL_VERSION};

/// What a waiting task waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The tool that handed the task over.
    pub tool: ToolName,
    /// What the person is asked.
    pub prompt: String,
    /// When the task began to wait (Unix ms).
    pub since_unix_ms: u64,
}

/// The worker's record that task `index` waits for a person, stored on
/// `toolfan.result.<job>` with `Nats-Msg-Id` `<job>.<index>.waiting`:
/// `{"v":1,"index":3,"waiting":{"tool":"approve","prompt":"…","since_unix_ms":…},"worker":"w-1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRecord {
    /// Protocol version, 1.
    pub v: u32,
    /// The task's position in its job.
    pub index: u32,
    /// What it waits for.
    pub waiting: Waiting,
    /// The worker that handed it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl WaitingRecord {
    /// Task `index`, handed over by `tool` with `prompt`, from now.
    pub fn new(index: u32, tool: ToolName, prompt: String, worker: Option<String>) -> Self {
        let waiting = Waiting {
            tool,
            prompt,
            since_unix_ms: crate::now_unix_ms(),
        };
        Self {
            v: PROTOCOL_VERSION,
            index,
            waiting,
            worker,
        }
    }
}

/// A person's answer for a waiting task, requested on
/// `toolfan.resolve.<caller>.<job>`: `{"v":1,"index":3,"value":…}` or
/// `{"v":1,"index":3,"reject":"reason"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// Protocol version, 1.
    #[serde(default = "version")]
    pub v: u32,
    /// The waiting task.
    pub index: u32,
    /// The task's value, when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Why it was rejected (the task then fails `rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<String>,
}

fn version() -> u32 {
    PROTOCOL_VERSION
}

/// The owning coordinator's answer to a [`Resolution`]:
/// `{"v":1,"ok":true}` once the outcome is stored, or
/// `{"v":1,"ok":false,"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveAnswer {
    /// Protocol version, 1.
    pub v: u32,
    /// Whether the outcome is stored as the task's result.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ResolveAnswer {
    /// Stored.
    pub fn stored() -> Self {
        Self {
            v: PROTOCOL_VERSION,
            ok: true,
            error: None,
        }
    }

    /// Refused, saying why.
    pub fn refused(error: impl Into<String>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            ok: false,
            error: Some(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResultHead, TaskResult};

    #[test]
    fn a_waiting_record_is_no_result_to_any_reader() {
        let tool = ToolName::new("approve").unwrap();
        let record = WaitingRecord::new(3, tool, "ok?".into(), Some("w-1".into()));
        let bytes = serde_json::to_vec(&record).unwrap();
        assert!(ResultHead::decode(&bytes).is_err());
        assert!(serde_json::from_slice::<TaskResult>(&bytes).is_err());
        assert_eq!(
            serde_json::from_slice::<WaitingRecord>(&bytes).unwrap(),
            record
        );
        let result =
            TaskResult::decided(3, crate::TaskError::new(crate::ErrorKind::Rejected, "no"));
        assert!(serde_json::from_slice::<WaitingRecord>(&crate::encode(&result)).is_err());
    }

    #[test]
    fn resolutions_read_in_both_forms() {
        let r: Resolution = serde_json::from_str(r#"{"index": 2, "value": {"ok": 1}}"#).unwrap();
        assert_eq!(
            (r.index, r.value, r.reject),
            (2, Some(serde_json::json!({"ok": 1})), None)
        );
        let r: Resolution = serde_json::from_str(r#"{"index": 2, "reject": "no"}"#).unwrap();
        assert_eq!(r.reject.as_deref(), Some("no"));
        assert!(serde_json::from_str::<Resolution>(r#"{"index": 2, "valu": 1}"#).is_err());
    }
}

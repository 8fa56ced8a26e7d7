//! The outcome of one task.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What went wrong with a task. An open set: a kind this version does not
/// know (from a newer or a foreign worker) is kept, by name, as
/// [`ErrorKind::Other`] and passed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ErrorKind {
    /// The job itself was refused (bad JSON, out-of-range field).
    Invalid,
    /// The task ran past its own `timeout_ms`.
    Timeout,
    /// The job deadline passed before the task finished.
    DeadlineExceeded,
    /// The tool returned an error or panicked.
    ToolError,
    /// No live worker serves the tool.
    UnknownTool,
    /// The tool refused its arguments.
    InvalidArgs,
    /// A rate limit could not admit the task in time.
    RateLimited,
    /// The job was cancelled before the task finished.
    Cancelled,
    /// The result was larger than allowed.
    ResultTooLarge,
    /// toolfan itself failed.
    Internal,
    /// A kind this version does not know, as it was named.
    Other(String),
}

/// The kinds this version knows, by their wire names.
const KNOWN: [(&str, ErrorKind); 10] = [
    ("invalid", ErrorKind::Invalid),
    ("timeout", ErrorKind::Timeout),
    ("deadline_exceeded", ErrorKind::DeadlineExceeded),
    ("tool_error", ErrorKind::ToolError),
    ("unknown_tool", ErrorKind::UnknownTool),
    ("invalid_args", ErrorKind::InvalidArgs),
    ("rate_limited", ErrorKind::RateLimited),
    ("cancelled", ErrorKind::Cancelled),
    ("result_too_large", ErrorKind::ResultTooLarge),
    ("internal", ErrorKind::Internal),
];

impl From<String> for ErrorKind {
    fn from(name: String) -> Self {
        KNOWN
            .iter()
            .find(|(known, _)| *known == name)
            .map_or(Self::Other(name), |(_, kind)| kind.clone())
    }
}

impl From<ErrorKind> for String {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Other(name) => name,
            known => known.as_str().to_owned(),
        }
    }
}

impl ErrorKind {
    /// A bounded label for metrics: the kind's name, or `other` for a kind
    /// this version does not know (their names are not bounded).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Other(_) => "other",
            known => known.known_name(),
        }
    }

    /// The kind's name on the wire (`"deadline_exceeded"`, or an unknown
    /// kind's own name).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(name) => name,
            known => known.known_name(),
        }
    }

    fn known_name(&self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Timeout => "timeout",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::ToolError => "tool_error",
            Self::UnknownTool => "unknown_tool",
            Self::InvalidArgs => "invalid_args",
            Self::RateLimited => "rate_limited",
            Self::Cancelled => "cancelled",
            Self::ResultTooLarge => "result_too_large",
            Self::Internal => "internal",
            Self::Other(_) => "other",
        }
    }
}

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

impl TryFrom<WireResult> for TaskResult {
    type Error = String;
    fn try_from(w: WireResult) -> Result<Self, String> {
        let outcome = match (w.ok, w.error) {
            (true, None) => Ok(w.value.unwrap_or(Value::Null)),
            (false, Some(error)) => Err(error),
            (true, Some(_)) => return Err("a result with ok=true has no error".into()),
            (false, None) => return Err("a result with ok=false needs an error".into()),
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

#[cfg(test)]
mod tests {

    #[test]
    fn error_kinds_are_an_open_set_kept_by_name() {
        let json = r#"{"index":0,"ok":false,"error":{"kind":"http_error","message":"502"}}"#;
        let result: TaskResult = crate::decode("result", json.as_bytes()).unwrap();
        let error = result.error().unwrap();
        assert_eq!(error.kind, ErrorKind::Other("http_error".into()));
        assert_eq!(
            (error.kind.as_str(), error.kind.label()),
            ("http_error", "other")
        );
        assert!(String::from_utf8(crate::encode(&result))
            .unwrap()
            .contains(r#""kind":"http_error""#));
        let head = ResultHead::decode(json.as_bytes()).unwrap();
        assert_eq!(head.error, Some(ErrorKind::Other("http_error".into())));
        for (name, kind) in KNOWN {
            assert_eq!(ErrorKind::from(name.to_owned()), kind);
            assert_eq!((kind.as_str(), kind.label()), (name, name));
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn results_use_the_documented_flat_shape() {
        let ok = TaskResult {
            index: 3,
            outcome: Ok(json!({"x": 1})),
            attempts: 1,
            duration_ms: 104,
            worker: Some("w-7f3a".into()),
            cache: None,
        };
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"index":3,"ok":true,"value":{"x":1},"attempts":1,"duration_ms":104,"worker":"w-7f3a"})
        );
        let failed = TaskResult::decided(2, TaskError::new(ErrorKind::DeadlineExceeded, "late"));
        let text = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            text,
            r#"{"index":2,"ok":false,"error":{"kind":"deadline_exceeded","message":"late","retryable":false},"attempts":0,"duration_ms":0}"#
        );
        assert_eq!(serde_json::from_str::<TaskResult>(&text).unwrap(), failed);
        let joined = TaskResult {
            cache: Some(CacheUse::Joined),
            ..ok
        };
        let text = serde_json::to_string(&joined).unwrap();
        assert!(text.ends_with(r#","cache":"joined"}"#), "{text}");
        assert_eq!(serde_json::from_str::<TaskResult>(&text).unwrap(), joined);
    }

    #[test]
    fn a_head_reads_what_a_full_decode_would() {
        let ok = serde_json::to_vec(&TaskResult {
            index: 7,
            outcome: Ok(json!({"big": [1, 2, 3]})),
            attempts: 1,
            duration_ms: 3,
            worker: Some("w".into()),
            cache: Some(CacheUse::Hit),
        })
        .unwrap();
        assert_eq!(
            ResultHead::decode(&ok).unwrap(),
            ResultHead {
                index: 7,
                error: None,
                from_worker: true
            }
        );
        let verdict = serde_json::to_vec(&TaskResult::decided(
            2,
            TaskError::new(ErrorKind::Cancelled, "x"),
        ))
        .unwrap();
        let head = ResultHead::decode(&verdict).unwrap();
        assert_eq!(
            (head.error, head.from_worker),
            (Some(ErrorKind::Cancelled), false)
        );
        assert!(ResultHead::decode(br#"{"index": 1, "ok": false}"#).is_err());
        assert!(ResultHead::decode(b"nope").is_err());
    }

    #[test]
    fn contradictory_results_are_refused() {
        let err =
            serde_json::from_value::<TaskResult>(json!({"index": 0, "ok": false})).unwrap_err();
        assert!(err.to_string().contains("needs an error"), "{err}");
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

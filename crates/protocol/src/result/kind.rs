//! [`ErrorKind`]: what went wrong with a task, an open set kept by name.

use serde::{Deserialize, Serialize};

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
    /// A task this one waits for (`after`, `$from`) failed or was cancelled.
    DependencyFailed,
    /// A person rejected the task it waited for (`toolfan resolve --reject`).
    Rejected,
    /// A kind this version does not know, as it was named.
    Other(String),
}

/// The kinds this version knows, by their wire names.
pub(super) const KNOWN: [(&str, ErrorKind); 12] = [
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
    ("dependency_failed", ErrorKind::DependencyFailed),
    ("rejected", ErrorKind::Rejected),
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
            Self::DependencyFailed => "dependency_failed",
            Self::Rejected => "rejected",
            Self::Other(_) => "other",
        }
    }
}

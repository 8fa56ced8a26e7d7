//! The error every validation in this crate returns.

use thiserror::Error;

/// Why a job, task or name was refused. The message names the offending
/// field so a caller can fix its input without reading the source.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// The bytes were not JSON of the expected shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded ("job", "task message", ...).
        what: &'static str,
        /// serde's description, which names the field and position.
        reason: String,
    },
    /// A name that becomes part of a NATS subject has a bad character or length.
    #[error("invalid {what} {value:?}: {reason}")]
    Name {
        /// Which kind of name ("tool name", "caller id", "job id").
        what: &'static str,
        /// The offending value, cut to 80 characters.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field is outside its allowed range.
    #[error("{field}: {reason}")]
    Field {
        /// The field's path, e.g. `tasks[3].timeout_ms`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The message has a protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks v1)")]
    Version(u32),
}

impl ValidationError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

//! Names that become tokens of NATS subjects, validated so that no input can
//! escape its subject (no `.`, `*`, `>` or white space) or its length.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Longest name accepted for a tool, caller or job id.
pub const MAX_NAME_LEN: usize = 64;

fn check_token(what: &'static str, value: &str) -> Result<(), ValidationError> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > MAX_NAME_LEN {
        Some("longer than 64 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("only ASCII letters, digits, '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(ValidationError::Name {
            what,
            value: value.chars().take(80).collect(),
            reason,
        }),
    }
}

macro_rules! subject_token {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as a
            #[doc = $what]
            /// .
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_token($what, &value)?;
                Ok(Self(value))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

subject_token!(
    /// A tool's name, the last token of `toolfan.task.<tool>`.
    ToolName,
    "tool name"
);
subject_token!(
    /// The caller's identity, a token of `toolfan.job.<caller>` and of its reply subjects.
    CallerId,
    "caller id"
);
subject_token!(
    /// A job's id (a ULID unless the caller chose one); also its `Nats-Msg-Id`.
    JobId,
    "job id"
);

impl ToolName {
    /// Wraps `value` without checking it; [`crate::Job::validate`]
    /// checks it before anything uses it in a subject.
    pub(crate) fn unchecked(value: String) -> Self {
        Self(value)
    }
}

impl JobId {
    /// A fresh, time-ordered unique id.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_escape_a_subject_are_rejected() {
        for bad in ["a.b", "*", ">", "a b", "", &"x".repeat(65), "é"] {
            let err = ToolName::new(bad).unwrap_err();
            assert!(err.to_string().contains("tool name"), "{err}");
        }
        assert_eq!(
            ToolName::new("web-search_2").unwrap().as_str(),
            "web-search_2"
        );
    }

    #[test]
    fn generated_job_ids_are_valid_and_distinct() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert_ne!(a, b);
        assert_eq!(JobId::new(a.to_string()).unwrap(), a);
    }

    #[test]
    fn deserializing_validates() {
        let err = serde_json::from_str::<ToolName>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("only ASCII letters"), "{err}");
    }
}

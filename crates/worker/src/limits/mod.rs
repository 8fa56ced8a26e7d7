//! Fleet-wide rate limits and concurrency caps, kept in Redis.
//!
//! - [`spec`] — what a limit is ([`LimitSpec`]) and its text forms.
//! - [`gcra`] — the GCRA arithmetic that `lua/acquire.lua` runs in Redis.
//! - [`store`] — limit definitions in a Redis hash ([`LimitStore`]).
//! - [`limiter`] — taking every limit of a task in one atomic script call,
//!   leases, and the definitions each worker keeps current ([`Limiter`]).

pub mod gcra;
pub mod limiter;
pub mod spec;
pub mod store;

pub use limiter::{Decision, Lease, Limiter, LimiterOptions};
pub use spec::{check_key, LimitSpec, Rate};
pub use store::LimitStore;

/// A limit could not be defined or checked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// A limit definition or key is malformed.
    #[error("{0}")]
    Spec(String),
    /// Redis could not be reached or refused a command.
    #[error("Redis ({context}): {reason}")]
    Redis {
        /// What was being done.
        context: String,
        /// The error.
        reason: String,
    },
}

impl LimitError {
    pub(crate) fn redis(context: impl Into<String>, e: redis::RedisError) -> Self {
        Self::Redis {
            context: context.into(),
            reason: e.to_string(),
        }
    }
}

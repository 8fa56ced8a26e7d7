//! toolfan-limits: fleet-wide rate limits and concurrency caps, kept in
//! Redis and shared by every worker (and `toolfan limits`).
//!
//! # Layout
//! - [`spec`] — what a limit is ([`LimitSpec`]) and its text forms.
//! - [`gcra`] — the GCRA arithmetic that `lua/acquire.lua` runs in Redis.
//! - [`adapt`] — effective rates cut after a backend's "too many" and
//!   recovering on the clock, and real costs charged after the call, as
//!   `lua/acquire.lua` and `lua/after.lua` run them.
//! - [`store`] — limit definitions in a Redis hash ([`LimitStore`]).
//! - [`limiter`] — taking every limit of a task in one atomic script call,
//!   leases, the definitions each worker keeps current ([`Limiter`]), and
//!   what a call learned, told after it ([`Learned`]).
//! - [`connection`] — a Redis connection made on first use ([`LazyRedis`]),
//!   which the worker's result cache shares.

pub mod adapt;
pub mod connection;
pub mod gcra;
pub mod limiter;
pub mod spec;
pub mod store;

pub use adapt::{Adaptation, Adapted};
pub use connection::LazyRedis;
pub use limiter::{Decision, Learned, Lease, Limiter, LimiterOptions, Settled, GLOBAL_KEY};
pub use spec::{check_key, LimitSpec, Rate};
pub use store::{LimitStore, Usage};

/// A limit could not be defined or checked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// A limit definition or key is malformed.
    #[error("{0}")]
    Spec(String),
    /// Redis could not be reached or refused a command.
    #[error("Redis ({context}): {source}")]
    Redis {
        /// What was being done.
        context: String,
        /// Redis' error.
        #[source]
        source: std::sync::Arc<redis::RedisError>,
    },
    /// A definition in Redis is not a limit's JSON.
    #[error("not a limit definition: {0}")]
    Stored(#[source] std::sync::Arc<serde_json::Error>),
    /// Redis answered, but not as a script of this version does.
    #[error("Redis ({context}): unexpected reply {reply}")]
    Reply {
        /// What was being done.
        context: &'static str,
        /// The reply.
        reply: String,
    },
}

impl LimitError {
    pub(crate) fn redis(context: impl Into<String>, e: redis::RedisError) -> Self {
        Self::Redis {
            context: context.into(),
            source: std::sync::Arc::new(e),
        }
    }
}

//! toolfan's NATS JetStream topology, shared by the client, the coordinator
//! and the workers so that every process declares the same streams and
//! consumers.
//!
//! # Layout
//! - [`auth`] — credentials and TLS for NATS, never printed.
//! - [`mod@connect`] — connecting to NATS with a clear error.
//! - [`topology`] — the three streams (jobs, tasks, results) and the durable
//!   consumers on them, created idempotently by whichever process starts first.
//! - `follower` — reading a stream in order, recovering within seconds
//!   from a lost server ([`Follower`]).
//! - [`publish`] — storing a message under its deduplication id.
//! - [`pull`] — pulling from a shared consumer no faster than there are free slots.
//! - [`span_context`] — a span's parent from a `traceparent`, and its own
//!   context as the `traceparent` of what it sends.
//! - `results` — the results stream: every job's outcomes from one consumer,
//!   one job's replayed, what no job needs purged (methods of [`Topology`]).
//! - `tasks` — whether a dispatched task is still in the tasks stream.

pub mod auth;
pub mod connect;
mod follower;
pub mod publish;
pub mod pull;
mod results;
pub mod span_context;
mod tasks;
pub mod topology;

pub use auth::NatsAuth;
pub use connect::{connect, connect_observed, OnReconnect};
pub use follower::{Follower, FOLLOW_HEARTBEAT};
pub use publish::{store, stored_message};
pub use pull::{pull_with_slots, Slots};
pub use span_context::{adopt_parent, traceparent_of};
pub use tasks::ConsumerPosition;
pub use topology::{ConsumerStats, StreamStats, Topology, TopologyOptions};

/// The error underneath a [`TransportError`]: async-nats's own, or a
/// description where there is none (a refused credentials setting).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A NATS or JetStream operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// A JetStream request failed.
    #[error("{what}: {source}")]
    JetStream {
        /// What was being done ("creating stream TOOLFAN_JOBS").
        what: String,
        /// The server's or client's error.
        #[source]
        source: BoxError,
    },
}

impl TransportError {
    /// A JetStream error while doing `what`, caused by `source`.
    pub fn jetstream(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::JetStream {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Connecting to `url` failed because of `source`.
    pub fn connect(url: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Connect {
            url: url.into(),
            source: source.into(),
        }
    }
}

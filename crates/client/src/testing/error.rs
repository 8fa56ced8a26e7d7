//! [`TestingError`]: why a [`LocalFleet`](super::LocalFleet) did not come up.

use std::time::Duration;

use crate::ClientError;

/// Why a [`LocalFleet`](super::LocalFleet) could not be started; each
/// names the part that did not come up.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// `nats-server` or `redis-server` could not be started (e.g. it is not
    /// on `PATH`).
    #[error("cannot start the fleet's {what}: {source}")]
    Server {
        /// Which server.
        what: &'static str,
        /// Why.
        #[source]
        source: toolfan_testkit::TestkitError,
    },
    /// The worker's configuration was refused, or it stopped with an error
    /// before it was ready.
    #[error("the fleet's worker did not come up: {0}")]
    Worker(#[source] toolfan_worker::WorkerError),
    /// The coordinator stopped with an error before the fleet was ready.
    #[error("the fleet's coordinator did not come up: {0}")]
    Coordinator(#[source] toolfan_coordinator::CoordinatorError),
    /// The worker or the coordinator ended (or panicked) before the fleet
    /// was ready, without an error of its own.
    #[error("the fleet's {what} ended before the fleet was ready: {detail}")]
    Ended {
        /// `worker` or `coordinator`.
        what: &'static str,
        /// How it ended.
        detail: String,
    },
    /// The fleet's client could not connect to its nats-server.
    #[error("the fleet's client could not connect: {0}")]
    Client(#[source] ClientError),
    /// The worker was not heard announcing itself in time.
    #[error("the fleet's worker was not ready within {waited:?}: {source}")]
    NotReady {
        /// How long the fleet waited.
        waited: Duration,
        /// What the wait ended with.
        #[source]
        source: ClientError,
    },
    /// A tool name was given twice.
    #[error("tool {0:?} was added to the fleet twice")]
    DuplicateTool(String),
}

//! The coordinator's errors: why it could not start ([`CoordinatorError`]),
//! and why a live job was handed back ([`HandBack`]).
//!
//! Each error that has an underlying one keeps it as its `source`; its
//! message reads as the underlying message with its context.

use toolfan_transport::TransportError;

/// Why a coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A subscription the coordinator needs could not be made.
    #[error("{what}: {source}")]
    Subscribe {
        /// What the subscription is for ("subscribing to worker heartbeats").
        what: &'static str,
        /// The client's error.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The configuration is unusable.
    #[error("invalid coordinator configuration: {0}")]
    Config(String),
    /// The coordinator's metrics could not be registered in the given
    /// registry (they are there already, say).
    #[error("invalid coordinator configuration: registering metrics: {0}")]
    RegisterMetrics(#[source] prometheus::Error),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] toolfan_telemetry::http::ServeError),
}

impl CoordinatorError {
    /// A failed subscription, for `what`.
    pub(crate) fn subscribe(what: &'static str) -> impl FnOnce(async_nats::SubscribeError) -> Self {
        move |source| Self::Subscribe { what, source }
    }
}

/// Why a live job stopped before its answer: it is handed back (nak'ed),
/// and this or another coordinator takes it again and recovers what was
/// already done from the results stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandBack {
    /// A taken-over job's stored results could not be replayed.
    #[error("{0}")]
    Replay(#[source] TransportError),
    /// The job's route closed: nothing more can reach it.
    #[error("the job's route closed")]
    RouteClosed,
    /// This coordinator is shutting down and its drain timeout passed.
    #[error("this coordinator is shutting down")]
    ShuttingDown,
}

//! What can go wrong for a caller.

use std::time::Duration;

use toolfan_protocol::JobId;
use toolfan_transport::BoxError;

/// Why a job could not be submitted or answered. Task failures are not
/// errors here: they are results with `ok: false`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Transport(#[from] toolfan_transport::TransportError),
    /// The job was refused, by the client before sending or by the coordinator.
    #[error("job refused: {0}")]
    Invalid(String),
    /// JetStream did not accept the job.
    #[error("job {job} was not accepted by JetStream: {source}")]
    Submit {
        /// The job.
        job: JobId,
        /// Why: the NATS or JetStream error.
        #[source]
        source: BoxError,
    },
    /// No coordinator answered by the deadline plus the grace period.
    #[error("no answer for job {job} within {waited:?} (its deadline plus grace); is a toolfan-coordinator running?")]
    NoAnswer {
        /// The job, still queued or running; its results may still arrive in the results stream.
        job: JobId,
        /// How long the client waited.
        waited: Duration,
    },
    /// Workers waited for did not announce themselves in time.
    #[error("workers {missing:?} did not announce themselves within {waited:?}")]
    WorkersMissing {
        /// The ids not heard from.
        missing: Vec<String>,
        /// How long the client waited.
        waited: Duration,
    },
    /// A task waiting for a person could not be resolved or rejected.
    #[error("task {index} of job {job} was not resolved: {why}")]
    Resolve {
        /// The job.
        job: JobId,
        /// The task.
        index: u32,
        /// Why, as the coordinator or the client says.
        why: String,
    },
    /// The connection to NATS ended while waiting.
    #[error("the NATS connection closed while waiting for job {0}")]
    Disconnected(JobId),
}

impl ClientError {
    /// NATS failed while doing `what`.
    pub(crate) fn transport(what: &str, source: impl Into<BoxError>) -> Self {
        Self::Transport(toolfan_transport::TransportError::jetstream(what, source))
    }

    /// JetStream did not take job `job` because of `source`.
    pub(crate) fn submit(job: &JobId, source: impl Into<BoxError>) -> Self {
        Self::Submit {
            job: job.clone(),
            source: source.into(),
        }
    }
}

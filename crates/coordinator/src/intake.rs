//! Reading a job message: who sent it, its id, and its validated body.

use async_nats::jetstream::Message;
use toolfan_protocol::{
    CallerId, Deadline, Job, JobId, JobLimits, Subjects, TraceParent, ValidationError,
    MSG_ID_HEADER, TRACEPARENT_HEADER,
};

/// A job ready to run.
#[derive(Debug)]
pub(crate) struct AcceptedJob {
    pub(crate) id: JobId,
    pub(crate) caller: CallerId,
    pub(crate) spec: Job,
    /// When JetStream stored the job; the deadline counts from here, so a
    /// coordinator that takes the job over computes the same deadline.
    pub(crate) submitted_unix_ms: u64,
    /// The caller's trace context (a new trace if it sent none).
    pub(crate) trace: TraceParent,
}

impl AcceptedJob {
    /// The job's deadline: its budget counted from when it was stored.
    pub(crate) fn deadline(&self) -> Deadline {
        Deadline::after(self.submitted_unix_ms, self.spec.deadline_ms)
    }
}

/// What a job message turned out to be.
#[derive(Debug)]
pub(crate) enum Intake {
    /// Valid: run it.
    Accepted(AcceptedJob),
    /// Refused: answer the caller with the error.
    Invalid {
        caller: CallerId,
        id: JobId,
        error: ValidationError,
    },
    /// No reply subject can be derived (no valid caller or id): log and drop.
    Unanswerable(Unanswerable),
}

/// Why a job message names no reply subject.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unanswerable {
    /// Its subject names no valid caller.
    #[error("subject {subject}: {source}")]
    Subject {
        subject: String,
        #[source]
        source: ValidationError,
    },
    /// Its `Nats-Msg-Id` header is no valid job id.
    #[error("{MSG_ID_HEADER}: {0}")]
    MsgId(#[source] ValidationError),
    /// Neither its header nor its body names the job.
    #[error("neither a {MSG_ID_HEADER} header nor a valid body names the job")]
    NoId,
}

/// Reads a job message: its caller from the subject, its id from the
/// header (or the body), its body validated against `limits`.
pub(crate) fn intake(subjects: &Subjects, limits: &JobLimits, message: &Message) -> Intake {
    let caller = match subjects.caller_of_job_subject(&message.subject) {
        Ok(caller) => caller,
        Err(source) => {
            let subject = message.subject.to_string();
            return Intake::Unanswerable(Unanswerable::Subject { subject, source });
        }
    };
    let parsed = Job::parse(&message.payload, limits);
    let body_id = parsed.as_ref().ok().and_then(|spec| spec.id.clone());
    let id = match job_id(message, body_id) {
        Ok(id) => id,
        Err(why) => return Intake::Unanswerable(why),
    };
    let submitted_unix_ms = message
        .info()
        .map(|info| (info.published.unix_timestamp_nanos() / 1_000_000) as u64)
        .unwrap_or_else(|_| toolfan_protocol::now_unix_ms());
    let invalid = |error| Intake::Invalid {
        caller: caller.clone(),
        id: id.clone(),
        error,
    };
    let spec = match parsed {
        Ok(spec) => spec,
        Err(error) => return invalid(error),
    };
    if spec.id.as_ref().is_some_and(|body_id| *body_id != id) {
        return invalid(ValidationError::Field {
            field: "id".into(),
            reason: format!("differs from the {MSG_ID_HEADER} header {id:?}"),
        });
    }
    Intake::Accepted(AcceptedJob {
        id,
        caller,
        spec,
        submitted_unix_ms,
        trace: trace(message),
    })
}

/// The job's id: the `Nats-Msg-Id` header's, or else the body's.
fn job_id(message: &Message, body_id: Option<JobId>) -> Result<JobId, Unanswerable> {
    let header_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(MSG_ID_HEADER))
        .map(|v| JobId::new(v.as_str()));
    match (header_id, body_id) {
        (Some(Ok(id)), _) => Ok(id),
        (Some(Err(e)), _) => Err(Unanswerable::MsgId(e)),
        (None, Some(id)) => Ok(id),
        (None, None) => Err(Unanswerable::NoId),
    }
}

/// The caller's trace context, or a new trace if it sent none.
fn trace(message: &Message) -> TraceParent {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(TRACEPARENT_HEADER))
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or_else(TraceParent::generate)
}

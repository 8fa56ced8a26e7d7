//! Events to the caller on `toolfan.reply.<caller>.<job>` (core NATS).

use toolfan_protocol::{
    encode, result_event_bytes, CallerId, EndedBy, ErrorKind, JobId, JobStatus, JobSummary, Policy,
    ReplyEvent, Subjects, TaskError, ValidationError, WaitingTask, PROTOCOL_VERSION,
};

/// Where a job's events go.
pub(crate) struct ReplyTo<'a> {
    pub(crate) client: &'a async_nats::Client,
    pub(crate) subject: String,
}

impl<'a> ReplyTo<'a> {
    pub(crate) fn new(
        client: &'a async_nats::Client,
        subjects: &Subjects,
        caller: &CallerId,
        job: &JobId,
    ) -> Self {
        Self {
            client,
            subject: subjects.reply(caller, job),
        }
    }

    async fn send(&self, event: &ReplyEvent) {
        self.publish(encode(event)).await;
    }

    async fn publish(&self, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .publish(self.subject.clone(), payload.into())
            .await
        {
            // The results stream still has it; the client reads it from there.
            tracing::warn!(subject = %self.subject, error = %e, "reply event not sent");
        }
    }

    /// One task's result, forwarded as the bytes it arrived as (a valid result).
    pub(crate) async fn result_bytes(&self, result_json: &[u8]) {
        self.publish(result_event_bytes(result_json)).await;
    }

    /// A task waits for a person.
    pub(crate) async fn waiting(&self, task: WaitingTask) {
        self.send(&ReplyEvent::Waiting {
            v: PROTOCOL_VERSION,
            task,
        })
        .await;
    }

    /// The job's end.
    pub(crate) async fn done(&self, summary: JobSummary) {
        self.send(&ReplyEvent::Done {
            v: PROTOCOL_VERSION,
            summary,
        })
        .await;
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "flushing the reply failed");
        }
    }

    /// The job was refused.
    pub(crate) async fn invalid(&self, job: JobId, error: &ValidationError) {
        self.done(JobSummary {
            job,
            status: JobStatus::Invalid,
            policy: Policy::All,
            total: 0,
            succeeded: 0,
            failed: 0,
            duration_ms: 0,
            ended_by: EndedBy::Refused,
            reason: None,
            error: Some(TaskError::new(ErrorKind::Invalid, error.to_string())),
        })
        .await;
    }
}

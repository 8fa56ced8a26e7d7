//! Receiving a task message: its body decoded, its attempt number
//! (JetStream's delivery count), when it was queued and its trace context.

use async_nats::jetstream::{self, AckKind};
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{decode, Deadline, TaskMessage, TraceParent, TRACEPARENT_HEADER};

use crate::pipeline::attempt::Attempt;
use crate::runtime::{Shared, ToolEntry};

/// A decoded task message.
pub(crate) struct Received {
    pub(crate) task: TaskMessage,
    attempt: u32,
    trace: Option<TraceParent>,
    queued_since: Option<time::OffsetDateTime>,
}

impl Received {
    /// Decodes `message`; one that is not a task message (not from a
    /// coordinator, so there is no job to answer) is dropped loudly.
    pub(crate) async fn decode(message: &jetstream::Message) -> Option<Self> {
        let info = message.info().ok();
        let attempt = info
            .as_ref()
            .map(|info| u32::try_from(info.delivered).unwrap_or(1))
            .unwrap_or(1);
        let task: TaskMessage = match decode("task message", &message.payload) {
            Ok(task) => task,
            Err(e) => {
                tracing::error!(subject = %message.subject, error = %e, "dropping an undecodable task message");
                let _ = message.ack_with(AckKind::Term).await;
                return None;
            }
        };
        let trace = message
            .headers
            .as_ref()
            .and_then(|h| h.get(TRACEPARENT_HEADER))
            .and_then(|v| v.as_str().parse::<TraceParent>().ok());
        Some(Self {
            task,
            attempt,
            trace,
            queued_since: info.map(|info| info.published),
        })
    }

    /// The task's span, in its caller's trace.
    /// A child of the span in the message's `traceparent` (the job span
    /// of the coordinator that dispatched it) when spans are exported;
    /// `limit_wait_ms` and `cache` are recorded by the steps.
    pub(crate) fn span(&self, entry: &ToolEntry) -> tracing::Span {
        let span = tracing::info_span!(
            "task",
            job = %self.task.job,
            // As i64: OpenTelemetry has no unsigned integers.
            index = i64::from(self.task.index),
            tool = %entry.name,
            attempt = i64::from(self.attempt),
            trace_id = self.trace.map(|t| t.trace_id_hex()).unwrap_or_default(),
            limit_wait_ms = tracing::field::Empty,
            cache = tracing::field::Empty,
        );
        if let Some(parent) = self.trace {
            toolfan_transport::adopt_parent(&span, parent);
        }
        span
    }

    /// The attempt the pipeline runs; `cancel` fires when its job is ended.
    /// The cache key hashes the args, so it is taken before they move
    /// into the tool.
    pub(crate) fn into_attempt(self, shared: &Shared, cancel: CancellationToken) -> Attempt {
        let Self {
            mut task,
            attempt,
            queued_since,
            ..
        } = self;
        let cache_key = shared.cache.as_ref().and_then(|cache| cache.key(&task));
        let args = std::mem::take(&mut task.task.args);
        Attempt {
            deadline: Deadline::from_unix_ms(task.deadline_unix_ms),
            task,
            args,
            number: attempt,
            cancel,
            queued_since,
            cache_key,
            worker: shared.options.id.clone(),
        }
    }
}

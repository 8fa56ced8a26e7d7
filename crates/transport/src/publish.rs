//! Storing a message in JetStream under its deduplication id: the one way
//! jobs, tasks, results and verdicts are published, so sending one again
//! is always safe (the ids are in `toolfan_protocol::dedup`).

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::subject::ToSubject;
use bytes::Bytes;
use toolfan_protocol::{TraceParent, TRACEPARENT_HEADER};

/// A message JetStream stores once per `msg_id` within its duplicate
/// window, carrying `trace` as its `traceparent` when there is one.
pub fn stored_message(payload: Bytes, msg_id: &str, trace: Option<TraceParent>) -> PublishMessage {
    let message = PublishMessage::build().payload(payload).message_id(msg_id);
    match trace {
        Some(trace) => message.header(TRACEPARENT_HEADER, trace.to_string().as_str()),
        None => message,
    }
}

/// Publishes `message` and waits for JetStream's acknowledgement that it
/// is stored (or was a duplicate of a stored one).
pub async fn store(
    js: &async_nats::jetstream::Context,
    subject: impl ToSubject,
    message: PublishMessage,
) -> Result<PublishAck, PublishError> {
    js.send_publish(subject, message).await?.await
}

/// Whether a failed publish may succeed if sent again: JetStream did not
/// answer in time, or had no stream leader (a cluster electing one after
/// losing a node answers late or not at all for a few seconds).
pub fn transient(kind: PublishErrorKind) -> bool {
    matches!(
        kind,
        PublishErrorKind::TimedOut
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::BrokenPipe
    )
}

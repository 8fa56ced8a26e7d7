//! Acks of job messages: progress, hand-backs and refusals ([`ack`]), and
//! the confirmed ack of an answered job ([`final_ack`]).

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};

/// How many times an answered job's ack is sent before giving up.
const FINAL_ACK_TRIES: u32 = 4;

/// Acks a job message with `kind`; a failure is only logged (JetStream
/// delivers the job again).
pub(crate) async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(error = %e, "job ack failed; the job may be delivered again");
    }
}

/// Acks an answered job and waits for JetStream to confirm it, trying a
/// few times: an ack lost with a NATS node would have the job delivered
/// again and answered twice.
pub(crate) async fn final_ack(message: &jetstream::Message) {
    for attempt in 1..=FINAL_ACK_TRIES {
        match message.double_ack().await {
            Ok(()) => return,
            Err(e) if attempt == FINAL_ACK_TRIES => {
                tracing::warn!(error = %e, "job ack not confirmed; the job may be delivered again")
            }
            Err(e) => {
                tracing::debug!(error = %e, attempt, "job ack not confirmed; acking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

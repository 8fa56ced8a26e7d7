//! Reporting a task's result: published durably to the results stream, then
//! the task acked.
//!
//! A publish that fails (a stream leader lost mid-election, a timeout) is
//! sent again, the same bytes under the same `Nats-Msg-Id` (so a copy
//! that was stored after all is deduplicated), while progress acks keep
//! the task from being delivered to another worker; the tool is not run
//! again for it. Only when that keeps failing for [`RESULT_PATIENCE`] (or
//! up to the job deadline) is the task handed back for another attempt.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::time::Instant;
use toolfan_protocol::{
    encode, result_msg_id, waiting_msg_id, Deadline, ErrorKind, TaskError, TaskMessage, TaskResult,
    WaitingRecord,
};
use toolfan_transport::{store, stored_message};

use crate::pipeline::progress::with_progress;
use crate::runtime::Shared;

/// How long a result's publish is retried before the task is handed back.
const RESULT_PATIENCE: Duration = Duration::from_secs(20);
/// The first wait between two tries; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Publishes `result` durably, then acks the task `message`. If the
/// publish keeps failing the task is handed back (nak) so another attempt
/// can answer it.
pub(crate) async fn publish_and_ack(
    shared: &Shared,
    task: &TaskMessage,
    result: TaskResult,
    message: jetstream::Message,
    ack_wait: Duration,
) {
    let msg_id = result_msg_id(&task.job, task.index, task.dispatch, result.attempts);
    let payload: bytes::Bytes = bounded_payload(shared, result).into();
    store_then_ack(shared, task, payload, msg_id, message, ack_wait).await
}

/// Stores that the task waits for a person who is asked `prompt`, then
/// acks it: the worker's slot is free at once, and the record, not this
/// worker's memory, is what the task's coordinator knows it by.
pub(crate) async fn hand_to_person(
    shared: &Shared,
    task: &TaskMessage,
    prompt: String,
    worker: String,
    message: jetstream::Message,
    ack_wait: Duration,
) {
    tracing::info!(job = %task.job, index = task.index, "the task waits for a person");
    let tool = task.task.tool.clone();
    let record = WaitingRecord::new(task.index, tool, prompt, Some(worker));
    let msg_id = waiting_msg_id(&task.job, task.index);
    store_then_ack(
        shared,
        task,
        encode(&record).into(),
        msg_id,
        message,
        ack_wait,
    )
    .await
}

/// Stores `payload` under `msg_id` on the job's results subject, sending
/// it again while it fails, then acks the task `message`.
async fn store_then_ack(
    shared: &Shared,
    task: &TaskMessage,
    payload: bytes::Bytes,
    msg_id: String,
    message: jetstream::Message,
    ack_wait: Duration,
) {
    let subject = shared.topology.subjects.result(&task.job);
    let to_deadline = Deadline::from_unix_ms(task.deadline_unix_ms).remaining();
    let give_up = Instant::now() + RESULT_PATIENCE.min(to_deadline.max(FIRST_WAIT));
    let mut wait = FIRST_WAIT;
    let tries = async {
        loop {
            let message = stored_message(payload.clone(), &msg_id, None);
            let stored = store(&shared.topology.js, subject.clone(), message).await;
            match stored {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() + wait >= give_up => return Err(e),
                Err(e) => {
                    tracing::info!(job = %task.job, index = task.index, error = %e, "publishing the result failed; sending it again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_WAIT);
                }
            }
        }
    };
    let stored = with_progress(&message, ack_wait / 3, &shared.abandon, tries).await;
    match stored {
        Some(Ok(())) => {
            if let Err(e) = message.ack().await {
                tracing::warn!(job = %task.job, index = task.index, error = %e, "ack failed; the task may run again");
            }
        }
        Some(Err(e)) => {
            tracing::warn!(job = %task.job, index = task.index, error = %e, "publishing the result kept failing; handing the task back");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                .await;
        }
        None => {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }
}

/// The result's bytes; one over the worker's size limit is replaced by a
/// `result_too_large` error.
fn bounded_payload(shared: &Shared, result: TaskResult) -> Vec<u8> {
    let payload = encode(&result);
    let limit = shared.options.max_result_bytes;
    if payload.len() <= limit {
        return payload;
    }
    let error = TaskError::new(
        ErrorKind::ResultTooLarge,
        format!(
            "the result is {} bytes, over this worker's limit of {limit} bytes",
            payload.len()
        ),
    );
    encode(&TaskResult {
        outcome: Err(error),
        ..result
    })
}

//! The tasks stream, looked at: whether a dispatched task's message is
//! still stored (queued, or held by a worker that has not acked it).

use async_nats::jetstream::stream::RawMessageErrorKind;

use crate::{Topology, TransportError};

impl Topology {
    /// Whether the task message stored at `sequence` is still in the tasks
    /// stream. The stream is a work queue: a worker's ack removes the
    /// message, and a worker acks only once the task's result is stored.
    /// So a message gone before its result came was lost (or its job was
    /// aborted); one still there is queued or being worked on.
    pub async fn task_stored(&self, sequence: u64) -> Result<bool, TransportError> {
        let what = || format!("looking up task message {sequence}");
        let stream = self
            .js
            .get_stream_no_info(self.subjects.tasks_stream())
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        match stream.get_raw_message(sequence).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(TransportError::jetstream(what(), e)),
        }
    }
}

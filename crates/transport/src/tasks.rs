//! The tasks stream, looked at: whether a dispatched task's message is
//! still stored (queued, or held by a worker that has not acked it).

use async_nats::jetstream::stream::RawMessageErrorKind;

use toolfan_protocol::ToolName;

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

/// Where a tool's shared consumer stands, in stream sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerPosition {
    /// Every message at or below it is acked.
    pub ack_floor: u64,
    /// The last message it delivered.
    pub delivered: u64,
    /// Delivered messages awaiting their ack (held, or to be redelivered).
    pub ack_pending: usize,
}

impl ConsumerPosition {
    /// Whether the consumer has passed the still-stored message at
    /// `sequence` and will not deliver it again: in a work queue an acked
    /// message is deleted, so one at or below the ack floor, or delivered
    /// while nothing awaits an ack, has been skipped (a server's consumer
    /// state lost with a node).
    pub fn orphaned(&self, sequence: u64) -> bool {
        sequence <= self.ack_floor || (self.ack_pending == 0 && sequence <= self.delivered)
    }
}

impl Topology {
    /// The position of the consumer every worker serving `tool` shares.
    pub async fn tool_consumer_position(
        &self,
        tool: &ToolName,
    ) -> Result<ConsumerPosition, TransportError> {
        let name = self.subjects.tool_consumer(tool);
        let what = || format!("reading consumer {name}");
        let stream = self
            .js
            .get_stream_no_info(self.subjects.tasks_stream())
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        Ok(ConsumerPosition {
            ack_floor: info.ack_floor.stream_sequence,
            delivered: info.delivered.stream_sequence,
            ack_pending: info.num_ack_pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ConsumerPosition;

    #[test]
    fn a_stored_message_the_consumer_passed_is_orphaned() {
        let position = ConsumerPosition {
            ack_floor: 10,
            delivered: 20,
            ack_pending: 3,
        };
        assert!(position.orphaned(10), "at the ack floor yet stored");
        assert!(!position.orphaned(15), "delivered, maybe held: alive");
        assert!(!position.orphaned(25), "not delivered yet: queued");
        let idle = ConsumerPosition {
            ack_pending: 0,
            ..position
        };
        assert!(
            idle.orphaned(15),
            "delivered, nothing pending, still stored"
        );
        assert!(!idle.orphaned(21));
    }
}

//! A live job reading its results straight from the results stream: the
//! replay of a job taken over, and the last look before a job whose
//! results stopped coming is answered from memory.

use std::time::Duration;

use futures::StreamExt;
use toolfan_protocol::{encode, EndedBy, ErrorKind, TaskError, TaskResult};
use toolfan_transport::TransportError;

use super::state::JobState;
use crate::error::HandBack;
use crate::publisher::Lane;

/// How long to wait for each stored result while replaying a taken-over job.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the last look before answering from memory may take.
const LAST_LOOK: Duration = Duration::from_secs(2);

impl JobState<'_> {
    /// Takes every result the stream holds for the job, in stream order,
    /// waiting up to `each` for each; returns the sequence of the first.
    /// Results routed live later are skipped up to the last one read.
    async fn read_stored(
        &mut self,
        lane: &Lane,
        each: Duration,
    ) -> Result<Option<u64>, TransportError> {
        let topology = &self.shared.topology;
        let (mut results, stored) = topology.job_results(&self.job.id).await?;
        let mut first = None;
        for _ in 0..stored {
            match tokio::time::timeout(each, results.next()).await {
                Ok(Some(Ok(msg))) => {
                    let sequence = msg.info().map_or(0, |info| info.stream_sequence);
                    first = first.or(Some(sequence));
                    self.replayed_upto = self.replayed_upto.max(sequence);
                    self.on_result(lane, &msg.payload).await;
                }
                _ => break,
            }
        }
        Ok(first)
    }

    /// Reads what the results stream already holds for the job, in stream
    /// order, before anything is dispatched.
    pub(super) async fn replay(&mut self, lane: &Lane) -> Result<(), HandBack> {
        let first = self
            .read_stored(lane, REPLAY_TIMEOUT)
            .await
            .map_err(HandBack::Replay)?;
        // Its results start at the first one stored, or after what the
        // replay saw when none was.
        self.hold.lower_to(first.unwrap_or(self.replayed_upto + 1));
        let recovered = self.gather.filled();
        let (job, total) = (&self.job.id, self.job.spec.tasks.len());
        tracing::info!(%job, recovered, total, "took over a job; recovered results already stored");
        self.shared.metrics.jobs_taken_over.inc();
        if let Some(reason) = self.judge_pending.take() {
            self.end(lane, EndedBy::Policy, reason).await;
        }
        Ok(())
    }

    /// The job's own verdicts did not come back through the results stream
    /// in time (NATS is unreachable, it refuses them, or the results stopped
    /// reaching this coordinator): takes what the stream holds, if it can
    /// be read, and answers the rest from memory.
    pub(super) async fn answer_from_memory(&mut self, lane: &Lane) {
        self.give_up = None;
        lane.drop_tasks();
        let last_look = tokio::time::timeout(LAST_LOOK, self.read_stored(lane, LAST_LOOK)).await;
        let unread: Option<&dyn std::fmt::Display> = match &last_look {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(timed_out) => Some(timed_out),
        };
        if let Some(e) = unread {
            tracing::debug!(job = %self.job.id, error = %e, "the job's stored results cannot be read");
        }
        let missing: Vec<u32> = self.gather.missing().collect();
        if missing.is_empty() {
            return;
        }
        tracing::error!(job = %self.job.id, missing = missing.len(), "results stream unreachable; answering from memory");
        let reason = self
            .ending
            .as_ref()
            .map_or("the job ended", |(_, reason)| reason.as_str())
            .to_owned();
        let kind = match self.ending {
            Some((EndedBy::Deadline, _)) | None => ErrorKind::DeadlineExceeded,
            Some(_) => ErrorKind::Cancelled,
        };
        for index in missing {
            let error = TaskError::new(kind.clone(), format!("{reason} before the task finished"));
            self.on_result(lane, &encode(&TaskResult::decided(index, error)))
                .await;
        }
    }
}

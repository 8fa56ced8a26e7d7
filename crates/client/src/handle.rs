//! Following one submitted job: its events in completion order, and its
//! results in input order.

use std::time::Duration;

use async_nats::Subscriber;
use futures::StreamExt;
use tokio::time::Instant;
use toolfan_protocol::{decode, JobId, JobStatus, JobSummary, ReplyEvent, TaskResult};
use toolfan_transport::Topology;

use crate::ClientError;

/// How long to wait for each stored result when reading the results stream.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A task finished (each task once, in completion order).
    Task(TaskResult),
    /// The job ended.
    Done(JobSummary),
}

/// A submitted job.
#[derive(Debug)]
pub struct JobHandle {
    id: JobId,
    events: Subscriber,
    wait_until: Instant,
    waited: Duration,
    slots: Vec<Option<TaskResult>>,
    received: usize,
    summary: Option<JobSummary>,
    topology: Topology,
}

impl JobHandle {
    pub(crate) fn new(
        id: JobId,
        total: usize,
        events: Subscriber,
        wait: Duration,
        topology: Topology,
    ) -> Self {
        Self {
            id,
            events,
            wait_until: Instant::now() + wait,
            waited: wait,
            slots: vec![None; total],
            received: 0,
            summary: None,
            topology,
        }
    }

    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// Number of tasks in the job.
    pub fn total(&self) -> usize {
        self.slots.len()
    }

    /// Number of tasks finished so far.
    pub fn finished(&self) -> usize {
        self.received
    }

    /// The next event, or `None` after [`JobEvent::Done`]. A task's result
    /// is reported once even if the coordinator sent it twice.
    pub async fn next_event(&mut self) -> Option<Result<JobEvent, ClientError>> {
        if self.summary.is_some() {
            return None;
        }
        loop {
            let message = tokio::select! {
                message = self.events.next() => message,
                _ = tokio::time::sleep_until(self.wait_until) => {
                    return Some(self.answer_from_stream().await);
                }
            };
            let Some(message) = message else {
                return Some(Err(ClientError::Disconnected(self.id.clone())));
            };
            match decode::<ReplyEvent>("reply event", &message.payload) {
                Ok(ReplyEvent::Result { result, .. }) => {
                    if self.record(&result) {
                        return Some(Ok(JobEvent::Task(result)));
                    }
                }
                Ok(ReplyEvent::Done { summary, .. }) => return Some(self.finish(summary).await),
                Err(e) => {
                    tracing::warn!(job = %self.id, error = %e, "ignoring an undecodable reply event")
                }
            }
        }
    }

    /// Waits for the job to end and returns one result per task, in input order.
    pub async fn results(mut self) -> Result<Vec<TaskResult>, ClientError> {
        while let Some(event) = self.next_event().await {
            event?;
        }
        Ok(self.slots.into_iter().flatten().collect())
    }

    fn record(&mut self, result: &TaskResult) -> bool {
        match self.slots.get_mut(result.index as usize) {
            Some(slot @ None) => {
                *slot = Some(result.clone());
                self.received += 1;
                true
            }
            _ => false,
        }
    }

    async fn finish(&mut self, summary: JobSummary) -> Result<JobEvent, ClientError> {
        if summary.status == JobStatus::Invalid {
            let why = summary
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "no reason given".into());
            return Err(ClientError::Invalid(why));
        }
        if self.received < self.slots.len() && !self.recover().await? {
            return Err(ClientError::NoAnswer {
                job: self.id.clone(),
                waited: self.waited,
            });
        }
        self.summary = Some(summary.clone());
        Ok(JobEvent::Done(summary))
    }

    /// No `done` came by the deadline plus grace. The coordinator's answer
    /// may still be complete in the results stream (it publishes a verdict
    /// for every task by the deadline) while its events were lost, say to a
    /// NATS restart; if so, that is the answer.
    async fn answer_from_stream(&mut self) -> Result<JobEvent, ClientError> {
        if self.received == self.slots.len() || self.recover().await? {
            let results = self.slots.iter().flatten();
            let succeeded = results.clone().filter(|r| r.is_ok()).count() as u32;
            let total = self.slots.len() as u32;
            let summary = JobSummary {
                job: self.id.clone(),
                status: JobStatus::Completed,
                policy: Default::default(),
                total,
                succeeded,
                failed: total - succeeded,
                duration_ms: self.waited.as_millis() as u64,
                error: None,
            };
            self.summary = Some(summary.clone());
            return Ok(JobEvent::Done(summary));
        }
        Err(ClientError::NoAnswer {
            job: self.id.clone(),
            waited: self.waited,
        })
    }

    /// Core NATS may drop an event; the results stream has every outcome,
    /// and its first per task is the one the coordinator counted. Reads what
    /// is stored and says whether every task now has its result.
    async fn recover(&mut self) -> Result<bool, ClientError> {
        tracing::debug!(job = %self.id, missing = self.slots.len() - self.received, "reading missed results from the stream");
        let (mut stream, stored) = self.topology.job_results(&self.id).await?;
        let mut firsts = vec![false; self.slots.len()];
        for _ in 0..stored {
            let next = tokio::time::timeout(RECOVER_TIMEOUT, stream.next()).await;
            let Ok(Some(Ok(message))) = next else {
                break;
            };
            let Ok(result) = decode::<TaskResult>("task result", &message.payload) else {
                continue;
            };
            let i = result.index as usize;
            if i < firsts.len() && !firsts[i] {
                firsts[i] = true;
                self.record(&result);
            }
        }
        Ok(self.received == self.slots.len())
    }
}

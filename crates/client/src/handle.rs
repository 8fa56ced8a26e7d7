//! Following one submitted job: its events in completion order, and its
//! results in input order.

use std::time::Duration;

use async_nats::Subscriber;
use futures::StreamExt;
use tokio::time::Instant;
use toolfan_protocol::{decode, JobId, JobStatus, JobSummary, ReplyEvent, TaskResult};
use toolfan_transport::Topology;

use crate::ClientError;

/// How long to read the results stream for results whose events were lost.
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
                    return Some(Err(ClientError::NoAnswer { job: self.id.clone(), waited: self.waited }));
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
        if self.received < self.slots.len() {
            self.recover().await?;
        }
        self.summary = Some(summary.clone());
        Ok(JobEvent::Done(summary))
    }

    /// Core NATS may drop an event under load; the results stream has every
    /// outcome, and its first per task is the one the coordinator counted.
    async fn recover(&mut self) -> Result<(), ClientError> {
        tracing::debug!(job = %self.id, missing = self.slots.len() - self.received, "reading missed results from the stream");
        let mut stream = self.topology.job_results(&self.id).await?;
        let mut firsts = vec![false; self.slots.len()];
        let give_up = Instant::now() + RECOVER_TIMEOUT;
        while self.received < self.slots.len() {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = tokio::time::sleep_until(give_up) => None,
            };
            let Some(Ok(message)) = next else {
                return Err(ClientError::Disconnected(self.id.clone()));
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
        Ok(())
    }
}

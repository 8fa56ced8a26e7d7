//! Following one submitted job: its events in completion order, and its
//! results in input order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subscriber;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use toolfan_protocol::{decode, JobId, JobStatus, JobSummary, ReplyEvent, TaskResult, TraceParent};
use toolfan_transport::Topology;

use crate::ClientError;

/// How long to wait for each stored result when reading the results stream.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client keeps trying to read missed results from the stream.
const RECOVER_PATIENCE: Duration = Duration::from_secs(30);
/// How long a client reads the stream again while it finds results missing.
const RECOVER_INCOMPLETE: Duration = Duration::from_secs(3);

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A task finished (each task once, in completion order).
    Task(TaskEvent),
    /// A task waits for a person ([`Client::resolve`](crate::Client::resolve) answers it).
    Waiting(toolfan_protocol::WaitingTask),
    /// The job ended.
    Done(JobSummary),
}

/// One task finished: its result, and how far the job has come.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// The task's position in the job.
    pub index: u32,
    /// Its result.
    pub result: TaskResult,
    /// Tasks finished so far, this one included.
    pub finished: usize,
    /// Tasks in the job.
    pub total: usize,
}

/// A finished job: one result per task in input order, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// One result per task, in input order.
    pub results: Vec<TaskResult>,
    /// How the job ended (policy, cancel, deadline) and its counts.
    pub summary: JobSummary,
}

/// Where a job's control messages go.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub(crate) nats: async_nats::Client,
    pub(crate) cancel_subject: String,
    /// Set once the caller cancels: the handle sends the cancel again every
    /// [`CANCEL_RESEND`] until the job ends, because a cancel is a core NATS
    /// message and one sent before a coordinator took the job is lost.
    pub(crate) cancelled: Arc<AtomicBool>,
}

/// How often a cancelled job's handle sends the cancel again while it waits.
const CANCEL_RESEND: Duration = Duration::from_millis(250);

/// What the client knows of a job it has just submitted.
pub(crate) struct Submitted {
    pub(crate) id: JobId,
    pub(crate) total: usize,
    pub(crate) events: Subscriber,
    /// How long to wait for the answer (deadline plus grace).
    pub(crate) wait: Duration,
    pub(crate) topology: Topology,
    pub(crate) control: Control,
    pub(crate) keepalive: Option<AbortOnDropHandle<()>>,
    pub(crate) trace: TraceParent,
}

/// A submitted job. Dropping it stops the keepalives, so a job submitted
/// with a caller grace is cancelled once the grace passes.
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
    control: Control,
    _keepalive: Option<AbortOnDropHandle<()>>,
    trace: TraceParent,
    /// Ticks while the handle waits; a cancelled job's cancel goes out again on each.
    resend: tokio::time::Interval,
}

impl JobHandle {
    pub(crate) fn new(submitted: Submitted) -> Self {
        let start = Instant::now() + CANCEL_RESEND;
        let mut resend = tokio::time::interval_at(start, CANCEL_RESEND);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            resend,
            id: submitted.id,
            events: submitted.events,
            wait_until: Instant::now() + submitted.wait,
            waited: submitted.wait,
            slots: vec![None; submitted.total],
            received: 0,
            summary: None,
            topology: submitted.topology,
            control: submitted.control,
            _keepalive: submitted.keepalive,
            trace: submitted.trace,
        }
    }

    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The trace the job runs in (its `traceparent`).
    pub fn trace(&self) -> TraceParent {
        self.trace
    }

    /// Number of tasks in the job.
    pub fn total(&self) -> usize {
        self.slots.len()
    }

    /// Number of tasks finished so far.
    pub fn finished(&self) -> usize {
        self.received
    }

    /// Cancels the job: its queued tasks never start, its running ones are
    /// aborted on their workers, and their results read `cancelled`. The
    /// handle still delivers the remaining events and the `done` summary.
    /// Cancelling twice, or a finished job, does nothing.
    pub async fn cancel(&self) -> Result<(), ClientError> {
        self.canceller().cancel().await
    }

    /// A cancel handle that can be moved elsewhere (another task, a signal handler).
    pub fn canceller(&self) -> Canceller {
        Canceller {
            job: self.id.clone(),
            control: self.control.clone(),
        }
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
                _ = self.resend.tick() => {
                    if self.control.cancelled.load(Ordering::Relaxed) {
                        let _ = self.control.send_cancel().await;
                    }
                    continue;
                }
            };
            let Some(message) = message else {
                return Some(Err(ClientError::Disconnected(self.id.clone())));
            };
            match decode::<ReplyEvent>("reply event", &message.payload) {
                Ok(ReplyEvent::Result { result, .. }) => {
                    if self.record(&result) {
                        return Some(Ok(JobEvent::Task(TaskEvent {
                            index: result.index,
                            result,
                            finished: self.received,
                            total: self.slots.len(),
                        })));
                    }
                }
                Ok(ReplyEvent::Waiting { task, .. }) => return Some(Ok(JobEvent::Waiting(task))),
                Ok(ReplyEvent::Done { summary, .. }) => return Some(self.finish(summary).await),
                Err(e) => {
                    tracing::warn!(job = %self.id, error = %e, "ignoring an undecodable reply event")
                }
            }
        }
    }

    /// The tasks as they finish, in completion order, each exactly once;
    /// the stream ends when the job does.
    pub fn events(&mut self) -> BoxStream<'_, Result<TaskEvent, ClientError>> {
        futures::stream::unfold(self, |handle| async move {
            loop {
                match handle.next_event().await? {
                    Ok(JobEvent::Task(event)) => return Some((Ok(event), handle)),
                    Ok(JobEvent::Done(_) | JobEvent::Waiting(_)) => continue,
                    Err(e) => return Some((Err(e), handle)),
                }
            }
        })
        .boxed()
    }

    /// Waits for the job to end and returns one result per task, in input order.
    pub async fn results(self) -> Result<Vec<TaskResult>, ClientError> {
        Ok(self.wait().await?.results)
    }

    /// Waits for the job to end and returns its results and summary.
    pub async fn wait(mut self) -> Result<JobOutcome, ClientError> {
        while let Some(event) = self.next_event().await {
            event?;
        }
        let summary = self.summary.take().expect("the job ended with a summary");
        Ok(JobOutcome {
            results: self.slots.into_iter().flatten().collect(),
            summary,
        })
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
        if self.received < self.slots.len() && !self.recover_patiently().await? {
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
        if self.received == self.slots.len() || self.recover_patiently().await? {
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
                ended_by: Default::default(),
                reason: Some(
                    "answered from the results stream: the coordinator's events were lost".into(),
                ),
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

    /// [`Self::recover`], tried again while the stream cannot be read (a
    /// NATS node lost: the cluster elects new leaders within 4-9 s) for
    /// [`RECOVER_PATIENCE`], and while it reads incomplete (a read broken
    /// off) for [`RECOVER_INCOMPLETE`].
    async fn recover_patiently(&mut self) -> Result<bool, ClientError> {
        let started = tokio::time::Instant::now();
        loop {
            match self.recover().await {
                Ok(true) => return Ok(true),
                Ok(false) if started.elapsed() >= RECOVER_INCOMPLETE => return Ok(false),
                outcome if started.elapsed() >= RECOVER_PATIENCE => return outcome,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(job = %self.id, error = %e, "results stream not readable yet")
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
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

/// Cancels a job from anywhere; see [`JobHandle::cancel`].
#[derive(Debug, Clone)]
pub struct Canceller {
    job: JobId,
    control: Control,
}

impl Canceller {
    /// Cancels the job. While the job's handle waits for the end it sends
    /// the cancel again every 250 ms, so a cancel sent before any
    /// coordinator has taken the job still lands.
    pub async fn cancel(&self) -> Result<(), ClientError> {
        self.control.cancelled.store(true, Ordering::Relaxed);
        self.control
            .send_cancel()
            .await
            .map_err(|e| ClientError::submit(&self.job, e))
    }
}

/// Why a cancel did not go out.
#[derive(Debug, thiserror::Error)]
enum CancelNotSent {
    #[error("cancel not sent: {0}")]
    Publish(#[source] async_nats::PublishError),
    #[error("cancel not sent: {0}")]
    Flush(#[source] async_nats::client::FlushError),
}

impl Control {
    async fn send_cancel(&self) -> Result<(), CancelNotSent> {
        self.nats
            .publish(self.cancel_subject.clone(), "".into())
            .await
            .map_err(CancelNotSent::Publish)?;
        self.nats.flush().await.map_err(CancelNotSent::Flush)
    }
}

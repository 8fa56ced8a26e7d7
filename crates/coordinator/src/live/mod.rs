//! A live job: dispatch its tasks in a window, take its results (first per
//! task wins), end it early when its policy, its deadline, its caller's
//! cancel or its caller's silence says so, and sum it up.
//!
//! The loop never waits on a publish: dispatches and verdicts are queued
//! in the job's lane of the shared publisher, and results, cancels,
//! keepalives and redeliveries arrive in its inbox. Its timers (progress
//! acks, deadline, caller check) therefore fire on time however busy the
//! fleet, the publisher or other jobs are.

mod stored;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use toolfan_protocol::{
    Deadline, EndedBy, ErrorKind, JobStatus, JobSummary, ResultHead, TaskError,
};

use crate::dispatch::{abort, decide, dispatch, JobMessages};
use crate::gather::{Accepted, Gather};
use crate::intake::AcceptedJob;
use crate::job::ack;
use crate::net::{Looked, Net};
use crate::policy::Judge;
use crate::publisher::{Lane, Verdict};
use crate::reply::ReplyTo;
use crate::retention::Hold;
use crate::routes::Inbound;
use crate::window::Window;
use crate::Shared;

/// How often a failed dispatch is tried again.
const REDISPATCH_EVERY: Duration = Duration::from_millis(250);
/// How long to wait for each stored result while replaying a taken-over job.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a check that JetStream answers may take.
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A job running on this coordinator.
pub(crate) struct LiveJob<'a> {
    shared: &'a Shared,
    job: &'a AcceptedJob,
    /// The latest delivery of the job message (acks go to it).
    message: jetstream::Message,
    inbox: mpsc::Receiver<Inbound>,
    lane: Lane,
    state: JobState<'a>,
}

impl<'a> LiveJob<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        job: &'a Arc<AcceptedJob>,
        message: jetstream::Message,
        inbox: mpsc::Receiver<Inbound>,
        hold: &'a Hold,
    ) -> Self {
        let total = job.spec.tasks.len();
        let deadline = job.deadline();
        let subjects = &shared.topology.subjects;
        let state = JobState {
            shared,
            job,
            gather: Gather::new(total),
            window: Window::new(total as u32, job.spec.max_concurrency),
            judge: Judge::new(job.spec.policy),
            judge_pending: None,
            reply: ReplyTo::new(&shared.client, subjects, &job.caller, &job.id),
            ending: None,
            give_up: None,
            deadline,
            replayed_upto: 0,
            last_alive: Instant::now(),
            hold,
            net: Net::new(total),
            looking: None,
            verdicts_failed: Vec::new(),
        };
        let messages = JobMessages {
            job: job.clone(),
            subjects: subjects.clone(),
            deadline_unix_ms: deadline.unix_ms(),
        };
        Self {
            shared,
            job,
            message,
            inbox,
            lane: shared.publisher.lane(Arc::new(messages)),
            state,
        }
    }

    /// The delivery of the job message to ack once the job ends.
    pub(crate) fn into_message(self) -> jetstream::Message {
        self.message
    }

    /// Drives the job until every task has its result; a job `taken_over`
    /// replays what is already stored first.
    pub(crate) async fn run(&mut self, taken_over: bool) -> Result<JobSummary, String> {
        let Self {
            shared,
            job,
            message,
            inbox,
            lane,
            state,
        } = self;
        // Finished tasks are not sent again; tasks that were in flight are
        // deduplicated by their `Nats-Msg-Id`.
        if taken_over {
            state.replay(lane).await?;
        }
        state.dispatch(lane).await;
        let grace = job.spec.client_grace_ms.map(Duration::from_millis);
        let mut caller_check =
            tokio::time::interval(grace.map_or(Duration::from_secs(3600), |g| g / 4));
        let mut progress = tokio::time::interval(shared.job_ack_wait / 3);
        let mut redispatch = tokio::time::interval(REDISPATCH_EVERY);
        let mut net_round = tokio::time::interval(watch::ROUND_EVERY);
        while !state.gather.complete() {
            if let Some(reason) = state.judge_pending.take() {
                state.end(lane, EndedBy::Policy, reason).await;
            }
            let ending = state.ending.is_some();
            tokio::select! {
                inbound = inbox.recv() => match inbound {
                    Some(inbound) => state.on_inbound(lane, message, inbound).await,
                    None => return Err("the job's route closed".into()),
                },
                _ = lane.reported() => state.on_reports(lane),
                _ = net_round.tick(), if !ending && state.looking.is_none() => state.look(),
                looked = watch::join_some(&mut state.looking) => {
                    // Results already in the inbox first: the round only
                    // counts on what reached the job before it ended.
                    while let Ok(inbound) = inbox.try_recv() {
                        state.on_inbound(lane, message, inbound).await;
                    }
                    state.on_looked(lane, looked)
                }
                _ = tokio::time::sleep_until(state.deadline.instant()), if !ending => {
                    let reason = format!("the job deadline of {} ms passed", job.spec.deadline_ms);
                    state.end(lane, EndedBy::Deadline, reason).await;
                }
                _ = caller_check.tick(), if !ending => {
                    if let Some(grace) = grace {
                        state.check_caller(lane, grace).await;
                    }
                }
                _ = sleep_until_some(state.give_up) => state.answer_from_memory(lane).await,
                _ = progress.tick() => ack(message, AckKind::Progress).await,
                _ = redispatch.tick(), if (!ending && state.window.waiting())
                    || !state.verdicts_failed.is_empty() => {
                    state.resend_verdicts(lane);
                    state.dispatch(lane).await;
                }
            }
        }
        Ok(state.summary())
    }
}

/// Sleeps until `at`, or forever when there is no such time.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a live job knows.
struct JobState<'a> {
    shared: &'a Shared,
    job: &'a AcceptedJob,
    gather: Gather,
    window: Window,
    judge: Judge,
    /// A policy decision waiting to be acted on.
    judge_pending: Option<String>,
    reply: ReplyTo<'a>,
    /// Set once something other than the last task ends the job.
    ending: Option<(EndedBy, String)>,
    /// When to stop waiting for the job's own verdicts to come back through
    /// the stream (NATS may be down) and answer from memory.
    give_up: Option<Instant>,
    deadline: Deadline,
    /// Results up to this stream sequence came from the replay; the live
    /// route's copies of them are skipped.
    replayed_upto: u64,
    last_alive: Instant,
    /// The job's claim on its stored results.
    hold: &'a Hold,
    /// The safety net's watches over the job's dispatched tasks.
    net: Net,
    /// The net's round of lookups in flight, if any.
    looking: Option<tokio::task::JoinHandle<Looked>>,
    /// Verdicts whose publish failed, to be sent again.
    verdicts_failed: Vec<(u32, Arc<Verdict>)>,
}

impl JobState<'_> {
    async fn dispatch(&mut self, lane: &Lane) {
        if self.ending.is_none() {
            dispatch(self.shared, self.job, lane, &mut self.window, &self.net).await;
        }
    }

    async fn on_inbound(
        &mut self,
        lane: &Lane,
        message: &mut jetstream::Message,
        inbound: Inbound,
    ) {
        match inbound {
            // (A sequence of 0 means its metadata could not be read: never skip it.)
            Inbound::Result { sequence, payload }
                if sequence == 0 || sequence > self.replayed_upto =>
            {
                self.on_result(lane, &payload).await;
                self.dispatch(lane).await;
            }
            Inbound::Result { .. } => {}
            Inbound::Cancel if self.ending.is_none() => {
                let reason = "cancelled by the caller".to_owned();
                self.end(lane, EndedBy::Cancel, reason).await;
            }
            Inbound::Cancel => {}
            Inbound::Alive => self.last_alive = Instant::now(),
            Inbound::Redelivered(again) => {
                *message = *again;
                ack(message, AckKind::Progress).await;
            }
        }
    }

    async fn check_caller(&mut self, lane: &Lane, grace: Duration) {
        if self.last_alive.elapsed() <= grace {
            return;
        }
        // Keepalives also stop reaching a coordinator cut off from the
        // cluster: the caller is only taken for gone if JetStream answers.
        let reachable = tokio::time::timeout(
            REACHABLE_TIMEOUT,
            self.shared.topology.results_last_sequence(),
        )
        .await
        .is_ok_and(|answer| answer.is_ok());
        if !reachable {
            tracing::info!(job = %self.job.id, "no keepalive, but NATS is not answering either; waiting");
            return;
        }
        let reason = format!("no keepalive from the caller for {} ms", grace.as_millis());
        self.end(lane, EndedBy::CallerGone, reason).await;
    }

    /// Takes one message off the results stream: the first result of a
    /// task frees its window place, goes to the caller (as the bytes it
    /// came as) and may decide the policy.
    async fn on_result(&mut self, lane: &Lane, payload: &[u8]) {
        let job = &self.job.id;
        let head = match ResultHead::decode(payload) {
            Ok(head) => head,
            Err(e) => return self.unreadable(lane, payload, e),
        };
        let metrics = &self.shared.metrics;
        match self.gather.accept(head.index, head.is_ok()) {
            Accepted::First => {
                count(metrics, &head);
                self.window.finished(head.index);
                if self.ending.is_none() {
                    self.judge_pending = self.judge.decide(head.index, head.is_ok());
                }
                self.reply.result_bytes(payload).await;
            }
            Accepted::Duplicate => {
                metrics.duplicate_results.inc();
                tracing::debug!(%job, index = head.index, "dropping a duplicate result")
            }
            Accepted::OutOfRange => {
                tracing::warn!(%job, index = head.index, "dropping a result for no task of the job")
            }
        }
    }

    /// A result that cannot be read (a foreign worker's, say): if it names
    /// a task still without a result, that task is answered `internal` at
    /// once, through the stream like any verdict, rather than left to the
    /// deadline. One that names no task is only logged.
    fn unreadable(
        &mut self,
        lane: &Lane,
        payload: &[u8],
        error: toolfan_protocol::ValidationError,
    ) {
        let job = &self.job.id;
        let index = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v.get("index")?.as_u64())
            .and_then(|i| u32::try_from(i).ok())
            .filter(|&i| self.gather.is_open(i));
        let Some(index) = index else {
            tracing::warn!(%job, %error, "dropping an unreadable result that names no open task");
            return;
        };
        tracing::warn!(%job, index, %error, "answering a task whose result cannot be read");
        let message = format!("the task's result could not be read: {error}");
        decide(
            lane,
            &[index],
            "unreadable",
            TaskError::new(ErrorKind::Internal, message),
        );
    }

    /// Ends the job before its last task: nothing more is dispatched, every
    /// task without a result gets the coordinator's verdict (first result
    /// still wins), and workers abort the job's running tasks.
    async fn end(&mut self, lane: &Lane, by: EndedBy, reason: String) {
        if self.ending.is_some() {
            return;
        }
        self.window.close();
        lane.drop_tasks();
        let missing: Vec<u32> = self.gather.missing().collect();
        tracing::info!(job = %self.job.id, ?by, %reason, missing = missing.len(), "job ending");
        let (kind, tag) = match by {
            EndedBy::Deadline => (ErrorKind::DeadlineExceeded, "deadline"),
            _ => (ErrorKind::Cancelled, "cancel"),
        };
        let verdict = TaskError::new(kind, format!("{reason} before the task finished"));
        decide(lane, &missing, tag, verdict);
        abort(self.shared, self.job).await;
        self.give_up = Some(Instant::now() + self.shared.options.deadline_grace);
        self.ending = Some((by, reason));
    }

    /// How the job ended. Workers bound by the same deadline may answer
    /// `deadline_exceeded` for the last tasks a moment before the
    /// coordinator's own timer fires: the deadline ended that job all the same.
    fn summary(&mut self) -> JobSummary {
        let spec = &self.job.spec;
        let (ended_by, reason) = self.ending.take().unwrap_or_else(|| {
            if self.deadline.passed() {
                let reason = format!("the job deadline of {} ms passed", spec.deadline_ms);
                (EndedBy::Deadline, reason)
            } else {
                (EndedBy::AllDone, String::new())
            }
        });
        let status = match ended_by {
            EndedBy::Cancel | EndedBy::CallerGone => JobStatus::Cancelled,
            _ => JobStatus::Completed,
        };
        JobSummary {
            job: self.job.id.clone(),
            status,
            policy: spec.policy,
            total: spec.tasks.len() as u32,
            succeeded: self.gather.succeeded(),
            failed: self.gather.failed(),
            duration_ms: toolfan_protocol::now_unix_ms().saturating_sub(self.job.submitted_unix_ms),
            ended_by,
            reason: (!reason.is_empty()).then_some(reason),
            error: None,
        }
    }
}

fn count(metrics: &crate::metrics::CoordinatorMetrics, head: &ResultHead) {
    let outcome = head.error.as_ref().map_or("ok", ErrorKind::label);
    metrics.task_results.with_label_values(&[outcome]).inc();
    if !head.from_worker {
        match head.error {
            Some(ErrorKind::DeadlineExceeded) => metrics.deadline_misses.inc(),
            Some(ErrorKind::Cancelled) => metrics.tasks_cancelled.inc(),
            _ => {}
        }
    }
}

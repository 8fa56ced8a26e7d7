//! A live job: dispatch its tasks in a window, take its results (first per
//! task wins), end it early when its policy, its deadline, its caller's
//! cancel or its caller's silence says so, and sum it up.
//!
//! The loop never waits on a publish: dispatches and verdicts are queued
//! in the job's lane of the shared publisher, and results, cancels,
//! keepalives and redeliveries arrive in its inbox. Its timers (progress
//! acks, deadline, caller check) therefore fire on time however busy the
//! fleet, the publisher or other jobs are.
//!
//! This file holds the loop ([`LiveJob::run`]); `state` what the job
//! knows and how it takes each thing that reaches it, `stored` its reads
//! of the results stream, `watch` its side of the safety net, `person`
//! its tasks waiting for a person.

mod person;
mod state;
mod stored;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};
use toolfan_protocol::{EndedBy, JobSummary, TraceParent};

use crate::ack::ack;
use crate::board::Progress;
use crate::dispatch::JobMessages;
use crate::error::HandBack;
use crate::intake::AcceptedJob;
use crate::publisher::Lane;
use crate::retention::Hold;
use crate::routes::Inbound;
use crate::shared::Shared;
use state::JobState;

/// How often a failed dispatch is tried again.
const REDISPATCH_EVERY: Duration = Duration::from_millis(250);

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
        tasks_parent: Option<TraceParent>,
        progress: &'a Progress,
    ) -> Self {
        let state = JobState::new(shared, job, hold, progress);
        let messages = JobMessages {
            job: job.clone(),
            subjects: shared.topology.subjects.clone(),
            deadline_unix_ms: state.deadline.unix_ms(),
            tasks_parent,
            resolved: state.graph.resolved(),
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
    pub(crate) async fn run(&mut self, taken_over: bool) -> Result<JobSummary, HandBack> {
        // Finished tasks are not sent again; tasks that were in flight are
        // deduplicated by their `Nats-Msg-Id`.
        if taken_over {
            self.state.replay(&self.lane).await?;
        }
        self.state.dispatch(&self.lane).await;
        let mut timers = Timers::new(self.shared, self.job);
        while !self.state.gather.complete() {
            if let Some(reason) = self.state.judge_pending.take() {
                self.state.end(&self.lane, EndedBy::Policy, reason).await;
            }
            self.step(&mut timers).await?;
        }
        Ok(self.state.summary())
    }

    /// Waits for the next thing the job must do, and does it.
    async fn step(&mut self, timers: &mut Timers) -> Result<(), HandBack> {
        let Self {
            job,
            message,
            inbox,
            lane,
            state,
            ..
        } = self;
        let ending = state.ending.is_some();
        tokio::select! {
            inbound = inbox.recv() => match inbound {
                Some(inbound) => state.on_inbound(lane, message, inbound).await,
                None => return Err(HandBack::RouteClosed),
            },
            _ = lane.reported() => state.on_reports(lane),
            _ = timers.net_round.tick(), if !ending && state.looking.is_none() => state.look(),
            looked = watch::join_some(&mut state.looking) => {
                // Results already in the inbox first: the round only
                // counts on what reached the job before it ended.
                while let Ok(inbound) = inbox.try_recv() {
                    state.on_inbound(lane, message, inbound).await;
                }
                state.on_looked(lane, looked)
            }
            _ = tokio::time::sleep_until(state.deadline.instant()), if !ending => {
                let reason = state::deadline_passed(job);
                state.end(lane, EndedBy::Deadline, reason).await;
            }
            _ = timers.caller_check.tick(), if !ending => {
                if let Some(grace) = timers.grace {
                    state.check_caller(lane, grace).await;
                }
            }
            _ = sleep_until_some(state.give_up) => state.answer_from_memory(lane).await,
            _ = timers.progress.tick() => ack(message, AckKind::Progress).await,
            _ = state.share.changed(), if !ending && state.share.held_any() => {
                state.dispatch(lane).await;
            }
            _ = timers.redispatch.tick(), if (!ending && state.window.waiting())
                || !state.verdicts_failed.is_empty() => {
                state.resend_verdicts(lane);
                state.dispatch(lane).await;
            }
        }
        Ok(())
    }
}

/// A live job's periodic duties.
struct Timers {
    /// How long the caller may stay silent, if the job says.
    grace: Option<Duration>,
    /// Checks the caller's keepalives every quarter of the grace.
    caller_check: Interval,
    /// Progress acks of the job message, every third of its ack wait.
    progress: Interval,
    /// Failed dispatches and verdicts sent again.
    redispatch: Interval,
    /// The safety net's rounds.
    net_round: Interval,
}

impl Timers {
    fn new(shared: &Shared, job: &AcceptedJob) -> Self {
        let grace = job.spec.client_grace_ms.map(Duration::from_millis);
        Self {
            grace,
            caller_check: tokio::time::interval(grace.map_or(Duration::from_secs(3600), |g| g / 4)),
            progress: tokio::time::interval(shared.job_ack_wait / 3),
            redispatch: tokio::time::interval(REDISPATCH_EVERY),
            net_round: tokio::time::interval(watch::ROUND_EVERY),
        }
    }
}

/// Sleeps until `at`, or forever when there is no such time.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

//! One job's life: follow its results, dispatch its tasks in a window,
//! forward each first result to the caller, end it early when its policy,
//! its deadline, its caller's cancel or its caller's silence says so, and
//! answer with a summary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::time::Instant;
use toolfan_protocol::{
    encode, EndedBy, ErrorKind, JobId, JobStatus, JobSummary, ResultHead, TaskError, TaskResult,
};

use crate::dispatch::{abort, decide, dispatch};
use tracing::Instrument;

use crate::gather::{Accepted, Gather};
use crate::intake::{intake, AcceptedJob, Intake};
use crate::metrics::{policy_label, CoordinatorMetrics};
use crate::policy::Judge;
use crate::reply::ReplyTo;
use crate::window::Window;
use crate::Shared;

/// How often a failed dispatch is tried again.
const REDISPATCH_EVERY: Duration = Duration::from_millis(250);
/// How long to wait for each stored result while replaying a taken-over job.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Handles one message from the jobs stream, to its ack.
pub(crate) async fn handle(shared: &Shared, message: jetstream::Message) {
    let job = match intake(&shared.topology.subjects, &shared.options.limits, &message) {
        Intake::Accepted(job) => job,
        Intake::Invalid { caller, id, error } => {
            tracing::info!(job = %id, caller = %caller, %error, "job refused");
            shared.metrics.jobs_refused.inc();
            ReplyTo::new(&shared.client, &shared.topology.subjects, &caller, &id)
                .invalid(id.clone(), &error)
                .await;
            ack(&message, AckKind::Ack).await;
            return;
        }
        Intake::Unanswerable(why) => {
            tracing::error!(subject = %message.subject, %why, "dropping a job message that names no reply subject");
            ack(&message, AckKind::Term).await;
            return;
        }
    };
    let span = tracing::info_span!("job", job = %job.id, caller = %job.caller, trace_id = %job.trace.trace_id_hex());
    let policy = policy_label(job.spec.policy);
    let metrics = &shared.metrics;
    metrics.jobs_submitted.with_label_values(&[policy]).inc();
    metrics.live_jobs.inc();
    let outcome = tokio::select! {
        outcome = run(shared, &job, &message).instrument(span.clone()) => outcome,
        _ = shared.abandon.cancelled() => Err("this coordinator is shutting down".into()),
    };
    metrics.live_jobs.dec();
    let _entered = span.enter();
    match outcome {
        Ok(summary) => {
            tracing::info!(total = summary.total, succeeded = summary.succeeded, failed = summary.failed, duration_ms = summary.duration_ms, ended_by = ?summary.ended_by, "job done");
            let labels = [summary.status.as_str(), policy, summary.ended_by.as_str()];
            metrics.jobs_completed.with_label_values(&labels).inc();
            metrics
                .job_duration
                .with_label_values(&[policy])
                .observe(summary.duration_ms as f64 / 1000.0);
            ReplyTo::new(
                &shared.client,
                &shared.topology.subjects,
                &job.caller,
                &job.id,
            )
            .done(summary)
            .await;
            ack(&message, AckKind::Ack).await;
        }
        Err(why) => {
            // Hand the job back; this or another coordinator takes it again
            // and recovers what was already done from the results stream.
            tracing::warn!(job = %job.id, %why, "job handed back");
            let delay = (!shared.abandon.is_cancelled()).then_some(Duration::from_secs(1));
            ack(&message, AckKind::Nak(delay)).await;
        }
    }
}

async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(error = %e, "job ack failed; the job may be delivered again");
    }
}

/// Drives `job` until every task has its result.
async fn run(
    shared: &Shared,
    job: &AcceptedJob,
    message: &jetstream::Message,
) -> Result<JobSummary, String> {
    let subjects = &shared.topology.subjects;
    let total = job.spec.tasks.len() as u32;
    let mut window = Window::new(total, job.spec.max_concurrency);
    let deadline_unix_ms = job.submitted_unix_ms.saturating_add(job.spec.deadline_ms);
    // A job on its first delivery has nothing stored yet: its first window
    // goes out while the results follower is set up (it replays from the
    // start of the stream, so no result is missed). A job delivered again
    // is replayed first, so finished tasks are not sent again.
    let first_delivery = message.info().is_ok_and(|info| info.delivered == 1);
    let follow = if first_delivery {
        let (follow, ()) = tokio::join!(
            shared.topology.job_results(&job.id),
            dispatch(shared, job, deadline_unix_ms, &mut window)
        );
        follow
    } else {
        shared.topology.job_results(&job.id).await
    };
    let (mut results, stored) = follow.map_err(|e| e.to_string())?;
    let subscribe_failed = |e: async_nats::SubscribeError| e.to_string();
    let mut cancels = shared
        .client
        .subscribe(subjects.cancel(&job.caller, &job.id))
        .await
        .map_err(subscribe_failed)?;
    let grace = job.spec.client_grace_ms.map(Duration::from_millis);
    let mut alive = match grace {
        Some(_) => Some(
            shared
                .client
                .subscribe(subjects.alive(&job.caller, &job.id))
                .await
                .map_err(subscribe_failed)?,
        ),
        None => None,
    };
    let mut last_alive = Instant::now();
    let mut caller_check =
        tokio::time::interval(grace.map_or(Duration::from_secs(3600), |g| g / 4));

    let mut state = JobState {
        gather: Gather::new(total as usize),
        window,
        judge: Judge::new(job.spec.policy),
        judge_pending: None,
        reply: ReplyTo::new(&shared.client, subjects, &job.caller, &job.id),
        metrics: &shared.metrics,
        ending: None,
        give_up: None,
    };
    let deadline =
        Instant::now() + Duration::from_millis(deadline_unix_ms.saturating_sub(now_unix_ms()));
    let mut progress = tokio::time::interval(shared.job_ack_wait / 3);
    let mut redispatch = tokio::time::interval(REDISPATCH_EVERY);

    // A job taken over from a coordinator that died: what is already in the
    // results stream counts first, so only tasks still without a result
    // are dispatched again (and those that were in flight are deduplicated
    // by their `Nats-Msg-Id`).
    if stored > 0 {
        for _ in 0..stored {
            match tokio::time::timeout(REPLAY_TIMEOUT, results.next()).await {
                Ok(Some(Ok(msg))) => state.on_result(&job.id, &msg.payload).await,
                _ => break,
            }
        }
        tracing::info!(job = %job.id, recovered = state.gather.filled(), total, "took over a job; recovered results already stored");
        shared.metrics.jobs_taken_over.inc();
    }

    if !first_delivery {
        dispatch(shared, job, deadline_unix_ms, &mut state.window).await;
    }
    while !state.gather.complete() {
        if let Some(reason) = state.judge_pending.take() {
            state.end(shared, job, EndedBy::Policy, reason).await;
        }
        let ending = state.ending.is_some();
        tokio::select! {
            next = results.next() => match next {
                Some(Ok(msg)) => {
                    state.on_result(&job.id, &msg.payload).await;
                    if state.ending.is_none() {
                        dispatch(shared, job, deadline_unix_ms, &mut state.window).await;
                    }
                }
                Some(Err(e)) => tracing::debug!(job = %job.id, error = %e, "results consumer hiccup; it resumes on its own"),
                None => return Err("the results consumer ended".into()),
            },
            _ = tokio::time::sleep_until(deadline), if !ending => {
                let reason = format!("the job deadline of {} ms passed", job.spec.deadline_ms);
                state.end(shared, job, EndedBy::Deadline, reason).await;
            }
            Some(_) = cancels.next(), if !ending => {
                state.end(shared, job, EndedBy::Cancel, "cancelled by the caller".into()).await;
            }
            Some(_) = async { match alive.as_mut() { Some(a) => a.next().await, None => None } } => {
                last_alive = Instant::now();
            }
            _ = caller_check.tick(), if grace.is_some() && !ending => {
                let grace = grace.expect("checked by the guard");
                if last_alive.elapsed() > grace {
                    let reason = format!("no keepalive from the caller for {} ms", grace.as_millis());
                    state.end(shared, job, EndedBy::CallerGone, reason).await;
                }
            }
            _ = sleep_until_some(state.give_up) => state.answer_from_memory(&job.id).await,
            _ = progress.tick() => ack(message, AckKind::Progress).await,
            _ = redispatch.tick(), if !ending && state.window.waiting() => {
                dispatch(shared, job, deadline_unix_ms, &mut state.window).await;
            }
        }
    }
    // Workers bound by the same deadline may answer `deadline_exceeded`
    // for the last tasks a moment before the coordinator's own timer fires:
    // the deadline ended that job all the same.
    let (ended_by, reason) = state.ending.unwrap_or_else(|| {
        if Instant::now() >= deadline {
            let reason = format!("the job deadline of {} ms passed", job.spec.deadline_ms);
            (EndedBy::Deadline, reason)
        } else {
            (EndedBy::AllDone, String::new())
        }
    });
    let status = match ended_by {
        EndedBy::Cancel | EndedBy::CallerGone => JobStatus::Cancelled,
        _ => JobStatus::Completed,
    };
    Ok(JobSummary {
        job: job.id.clone(),
        status,
        policy: job.spec.policy,
        total,
        succeeded: state.gather.succeeded(),
        failed: state.gather.failed(),
        duration_ms: now_unix_ms().saturating_sub(job.submitted_unix_ms),
        ended_by,
        reason: (!reason.is_empty()).then_some(reason),
        error: None,
    })
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
    gather: Gather,
    window: Window,
    judge: Judge,
    /// A policy decision waiting to be acted on.
    judge_pending: Option<String>,
    reply: ReplyTo<'a>,
    metrics: &'a CoordinatorMetrics,
    /// Set once something other than the last task ends the job.
    ending: Option<(EndedBy, String)>,
    /// When to stop waiting for the job's own verdicts to come back through
    /// the stream (NATS may be down) and answer from memory.
    give_up: Option<Instant>,
}

impl JobState<'_> {
    /// Takes one message off the results stream: the first result of a
    /// task frees its window place, goes to the caller (as the bytes it
    /// came as) and may decide the policy.
    async fn on_result(&mut self, job: &JobId, payload: &[u8]) {
        let head = match ResultHead::decode(payload) {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(%job, error = %e, "dropping an undecodable result");
                return;
            }
        };
        match self.gather.accept(head.index, head.is_ok()) {
            Accepted::First => {
                self.count(&head);
                self.window.finished(head.index);
                if self.ending.is_none() {
                    self.judge_pending = self.judge.decide(head.index, head.is_ok());
                }
                self.reply.result_bytes(payload).await;
            }
            Accepted::Duplicate => {
                self.metrics.duplicate_results.inc();
                tracing::debug!(%job, index = head.index, "dropping a duplicate result")
            }
            Accepted::OutOfRange => {
                tracing::warn!(%job, index = head.index, "dropping a result for no task of the job")
            }
        }
    }

    fn count(&self, head: &ResultHead) {
        let outcome = head.error.map_or("ok", |kind| kind.as_str());
        self.metrics
            .task_results
            .with_label_values(&[outcome])
            .inc();
        if !head.from_worker {
            match head.error {
                Some(ErrorKind::DeadlineExceeded) => self.metrics.deadline_misses.inc(),
                Some(ErrorKind::Cancelled) => self.metrics.tasks_cancelled.inc(),
                _ => {}
            }
        }
    }

    /// Ends the job before its last task: nothing more is dispatched, every
    /// task without a result gets the coordinator's verdict (first result
    /// still wins), and workers abort the job's running tasks.
    async fn end(&mut self, shared: &Shared, job: &AcceptedJob, by: EndedBy, reason: String) {
        if self.ending.is_some() {
            return;
        }
        self.window.close();
        let missing: Vec<u32> = self.gather.missing().collect();
        tracing::info!(job = %job.id, ?by, %reason, missing = missing.len(), "job ending");
        let (kind, tag) = match by {
            EndedBy::Deadline => (ErrorKind::DeadlineExceeded, "deadline"),
            _ => (ErrorKind::Cancelled, "cancel"),
        };
        let verdict = TaskError::new(kind, format!("{reason} before the task finished"));
        decide(shared, job, &missing, tag, &verdict).await;
        abort(shared, job).await;
        self.give_up = Some(Instant::now() + shared.options.deadline_grace);
        self.ending = Some((by, reason));
    }

    /// The job's own verdicts did not come back through the results stream
    /// in time (NATS is unreachable): answer the rest from memory.
    async fn answer_from_memory(&mut self, job: &JobId) {
        self.give_up = None;
        let missing: Vec<u32> = self.gather.missing().collect();
        tracing::error!(%job, missing = missing.len(), "results stream unreachable; answering from memory");
        let reason = self
            .ending
            .as_ref()
            .map_or("the job ended", |(_, reason)| reason.as_str())
            .to_owned();
        for index in missing {
            let error = TaskError::new(
                ErrorKind::DeadlineExceeded,
                format!("{reason} before the task finished"),
            );
            self.on_result(job, &encode(&TaskResult::decided(index, error)))
                .await;
        }
    }
}

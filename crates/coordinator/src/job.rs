//! One job's life: follow its results, dispatch its tasks in a window,
//! enforce its deadline, forward each first result to the caller, and end
//! with a summary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::time::Instant;
use toolfan_protocol::{
    decode, encode, ErrorKind, JobId, JobStatus, JobSummary, TaskError, TaskMessage, TaskResult,
    PROTOCOL_VERSION,
};

use crate::gather::{Accepted, Gather};
use crate::intake::{intake, AcceptedJob, Intake};
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
    tracing::debug!(job = %job.id, caller = %job.caller, tasks = job.spec.tasks.len(), "job accepted");
    let outcome = tokio::select! {
        outcome = run(shared, &job, &message) => outcome,
        _ = shared.abandon.cancelled() => Err("this coordinator is shutting down".into()),
    };
    match outcome {
        Ok(summary) => {
            tracing::info!(job = %job.id, total = summary.total, succeeded = summary.succeeded, failed = summary.failed, duration_ms = summary.duration_ms, "job done");
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
    let (mut results, stored) = shared
        .topology
        .job_results(&job.id)
        .await
        .map_err(|e| e.to_string())?;
    let reply = ReplyTo::new(
        &shared.client,
        &shared.topology.subjects,
        &job.caller,
        &job.id,
    );
    let total = job.spec.tasks.len() as u32;
    let mut state = JobState {
        gather: Gather::new(total as usize),
        window: Window::new(total, job.spec.max_concurrency),
        reply,
    };
    let deadline_unix_ms = job.submitted_unix_ms.saturating_add(job.spec.deadline_ms);
    let deadline =
        Instant::now() + Duration::from_millis(deadline_unix_ms.saturating_sub(now_unix_ms()));
    // After the deadline the coordinator's own `deadline_exceeded` results
    // must come back through the stream; if NATS is down they cannot, and
    // the job ends on what it has by this time.
    let give_up = deadline + shared.options.deadline_grace;
    let mut deadline_passed = false;
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
    }

    dispatch(shared, job, deadline_unix_ms, &mut state.window).await;
    while !state.gather.complete() {
        tokio::select! {
            next = results.next() => match next {
                Some(Ok(msg)) => {
                    state.on_result(&job.id, &msg.payload).await;
                    if !deadline_passed {
                        dispatch(shared, job, deadline_unix_ms, &mut state.window).await;
                    }
                }
                Some(Err(e)) => tracing::debug!(job = %job.id, error = %e, "results consumer hiccup; it resumes on its own"),
                None => return Err("the results consumer ended".into()),
            },
            _ = tokio::time::sleep_until(deadline), if !deadline_passed => {
                deadline_passed = true;
                state.window.close();
                let missing: Vec<u32> = state.gather.missing().collect();
                tracing::info!(job = %job.id, missing = missing.len(), "job deadline passed");
                let error = TaskError::new(ErrorKind::DeadlineExceeded, format!("the job deadline of {} ms passed before the task finished", job.spec.deadline_ms));
                decide(shared, job, &missing, "deadline", &error).await;
            }
            _ = tokio::time::sleep_until(give_up), if deadline_passed => {
                let missing: Vec<u32> = state.gather.missing().collect();
                tracing::error!(job = %job.id, missing = missing.len(), "results stream unreachable after the deadline; answering from memory");
                for index in missing {
                    let result = TaskResult::decided(index, TaskError::new(ErrorKind::DeadlineExceeded, "the job deadline passed before the task finished"));
                    state.gather.accept(&result);
                    state.reply.result(result).await;
                }
            }
            _ = progress.tick() => ack(message, AckKind::Progress).await,
            _ = redispatch.tick(), if !deadline_passed && state.window.waiting() => {
                dispatch(shared, job, deadline_unix_ms, &mut state.window).await;
            }
        }
    }
    Ok(JobSummary {
        job: job.id.clone(),
        status: JobStatus::Completed,
        policy: job.spec.policy,
        total,
        succeeded: state.gather.succeeded(),
        failed: state.gather.failed(),
        duration_ms: now_unix_ms().saturating_sub(job.submitted_unix_ms),
        error: None,
    })
}

/// What a live job knows.
struct JobState<'a> {
    gather: Gather,
    window: Window,
    reply: ReplyTo<'a>,
}

impl JobState<'_> {
    /// Takes one message off the results stream: the first result of a
    /// task frees its window place and goes to the caller.
    async fn on_result(&mut self, job: &JobId, payload: &[u8]) {
        match decode::<TaskResult>("task result", payload) {
            Ok(result) => match self.gather.accept(&result) {
                Accepted::First => {
                    self.window.finished(result.index);
                    self.reply.result(result).await;
                }
                Accepted::Duplicate => {
                    tracing::debug!(%job, index = result.index, "dropping a duplicate result")
                }
                Accepted::OutOfRange => {
                    tracing::warn!(%job, index = result.index, "dropping a result for no task of the job")
                }
            },
            Err(e) => tracing::warn!(%job, error = %e, "dropping an undecodable result"),
        }
    }
}

/// Sends every task the window has room for; tasks whose tool no live worker
/// serves get an `unknown_tool` result instead. Publishes are pipelined.
async fn dispatch(shared: &Shared, job: &AcceptedJob, deadline_unix_ms: u64, window: &mut Window) {
    let subjects = &shared.topology.subjects;
    let mut pending = Vec::new();
    let mut unknown = Vec::new();
    while let Some(index) = window.take() {
        let spec = &job.spec.tasks[index as usize];
        if !shared.registry.serves(&spec.tool) {
            unknown.push(index);
            continue;
        }
        let task = TaskMessage {
            v: PROTOCOL_VERSION,
            job: job.id.clone(),
            index,
            caller: job.caller.clone(),
            task: spec.clone(),
            deadline_unix_ms,
        };
        let publish = jetstream::message::PublishMessage::build()
            .payload(encode(&task).into())
            .message_id(task.msg_id());
        match shared
            .topology
            .js
            .send_publish(subjects.task(&spec.tool), publish)
            .await
        {
            Ok(ack) => pending.push((index, std::future::IntoFuture::into_future(ack))),
            Err(e) => {
                tracing::warn!(job = %job.id, index, error = %e, "dispatch failed; will retry");
                window.retry(index);
            }
        }
    }
    let (indices, acks): (Vec<u32>, Vec<_>) = pending.into_iter().unzip();
    for (index, ack) in indices
        .into_iter()
        .zip(futures::future::join_all(acks).await)
    {
        if let Err(e) = ack {
            tracing::warn!(job = %job.id, index, error = %e, "dispatch not acknowledged; will retry");
            window.retry(index);
        }
    }
    let mut confirmed = std::collections::HashMap::new();
    for index in unknown {
        let tool = &job.spec.tasks[index as usize].tool;
        let served = match confirmed.get(tool) {
            Some(&served) => served,
            None => {
                let served = shared
                    .registry
                    .confirm_serves(&shared.client, subjects, tool)
                    .await;
                confirmed.insert(tool, served);
                served
            }
        };
        if served {
            // The view was stale: a worker answered the ping. Send it next round.
            window.retry(index);
            continue;
        }
        let error = TaskError::new(
            ErrorKind::UnknownTool,
            format!("no live worker serves the tool {:?}", tool.as_str()),
        );
        decide(shared, job, &[index], "unknown", &error).await;
    }
}

/// Publishes the coordinator's own verdict for `indices` to the results
/// stream, where it competes with worker results: the first one wins.
async fn decide(shared: &Shared, job: &AcceptedJob, indices: &[u32], tag: &str, error: &TaskError) {
    let subject = shared.topology.subjects.result(&job.id);
    let mut acks = Vec::new();
    for &index in indices {
        let result = TaskResult::decided(index, error.clone());
        let publish = jetstream::message::PublishMessage::build()
            .payload(encode(&result).into())
            .message_id(format!("{}.{index}.{tag}", job.id));
        match shared
            .topology
            .js
            .send_publish(subject.clone(), publish)
            .await
        {
            Ok(ack) => acks.push(std::future::IntoFuture::into_future(ack)),
            Err(e) => {
                tracing::warn!(job = %job.id, index, error = %e, "could not publish a decided result")
            }
        }
    }
    for ack in futures::future::join_all(acks).await {
        if let Err(e) = ack {
            tracing::warn!(job = %job.id, error = %e, "a decided result was not acknowledged");
        }
    }
}

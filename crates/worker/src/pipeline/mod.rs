//! The task pipeline: what one task message goes through on a worker, each
//! step in a file of its own, composed in [`steps`]:
//!
//! 1. `receive` — decode the message, read its attempt number and trace.
//! 2. `prefetch` — the gate for speculative calls.
//! 3. `cached` — the result cache and single flight.
//! 4. `admit` — fleet-wide limits, waited for under the deadline; after
//!    the call, what it learned about them told to the fleet.
//! 5. `invoke` — the tool, under its timeout, with panics caught.
//! 6. `retry` — whether a failure earns another attempt.
//! 7. `report` — the result published durably, then the message acked.
//!
//! `attempt` holds what the steps share; `progress` keeps the message's
//! ack deadline from lapsing meanwhile.

mod admit;
mod attempt;
mod cached;
mod invoke;
mod prefetch;
mod progress;
mod receive;
mod report;
mod retry;

use async_nats::jetstream::{self, AckKind};
use toolfan_protocol::{ErrorKind, TaskError, TaskResult};
use tracing::Instrument;

use crate::cache::Flight;
use crate::runtime::{Shared, ToolEntry};
use crate::slots::TaskPermits;
use attempt::Attempt;
use cached::CacheStep;
use prefetch::Gate;
use receive::Received;
use retry::Backoff;

/// Runs the task in `message` and publishes its result. `permits` are the
/// task's slots on this worker, held until the result is out.
pub(crate) async fn run_task(
    shared: &Shared,
    entry: &ToolEntry,
    message: jetstream::Message,
    permits: TaskPermits,
) {
    let Some(received) = Received::decode(&message).await else {
        return;
    };
    let span = received.span(entry);
    handle(shared, entry, message, received, permits)
        .instrument(span)
        .await;
}

/// One attempt, from the job's abort registration to the ack.
async fn handle(
    shared: &Shared,
    entry: &ToolEntry,
    message: jetstream::Message,
    received: Received,
    mut permits: TaskPermits,
) {
    let Some(job_abort) = shared.aborts.register(&received.task.job) else {
        // Its job was cancelled or ended: the coordinator has answered for it.
        tracing::debug!("skipping a task of an aborted job");
        let _ = message.ack().await;
        return;
    };
    let mut attempt = received.into_attempt(shared, job_abort.token().clone());
    let work = steps(shared, entry, &mut attempt, &mut permits);
    let every = entry.ack_wait / 3;
    let Some((result, flight)) =
        progress::with_progress(&message, every, &shared.abandon, work).await
    else {
        // The worker is going away and the task did not finish in time.
        tracing::info!("handing an unfinished task back");
        let _ = message.ack_with(AckKind::Nak(None)).await;
        return;
    };
    if let Some(prompt) = for_person(&result) {
        cached::finish(shared, flight, &result, true).await;
        let worker = attempt.worker.clone();
        let ack_wait = entry.ack_wait;
        report::hand_to_person(shared, &attempt.task, prompt, worker, message, ack_wait).await;
        return;
    }
    let backoff = Backoff {
        base: shared.options.retry_base,
        cap: shared.options.retry_cap,
    };
    let retries = attempt.task.task.retries;
    let retry = backoff.delay(&result, retries, &attempt.deadline, rand::random::<f64>());
    cached::finish(shared, flight, &result, retry.is_some()).await;
    if let Some(delay) = retry {
        return retry::hand_back(shared, entry, &message, delay).await;
    }
    count(shared, entry, &result, job_abort.token().is_cancelled());
    report::publish_and_ack(shared, &attempt.task, result, message, entry.ack_wait).await;
    drop(permits);
}

/// The steps of one attempt, in order, up to its result.
async fn steps(
    shared: &Shared,
    entry: &ToolEntry,
    attempt: &mut Attempt,
    permits: &mut TaskPermits,
) -> (TaskResult, Option<Flight>) {
    if attempt.deadline.passed() {
        let why = "the job deadline passed before the task started";
        let error = TaskError::new(ErrorKind::DeadlineExceeded, why);
        return (attempt.decided(error), None);
    }
    let prefetch = match prefetch::gate(shared, entry, attempt, permits).await {
        Gate::Pass(prefetch) => prefetch,
        Gate::Stop(error) => return (attempt.answered(Err(error), None), None),
    };
    let key = attempt.cache_key.take();
    let flight = match cached::through_cache(shared, entry, attempt, key, permits).await {
        CacheStep::Answer(outcome, used) => return (attempt.answered(outcome, used), None),
        CacheStep::Run(flight) => flight,
    };
    let _renewal = cached::renew(shared, &flight).await;
    let waiting = std::time::Instant::now();
    let admitted = admit::admit(shared, entry, attempt, permits).await;
    let waited_ms = waiting.elapsed().as_millis() as i64;
    tracing::Span::current().record("limit_wait_ms", waited_ms);
    let held = match admitted {
        Ok(held) => held,
        Err(error) => return (attempt.decided(error), flight),
    };
    let (result, learned) =
        invoke::invoke(shared, entry, attempt, prefetch.as_ref(), &flight).await;
    admit::settle(shared, held, learned).await;
    (result, flight)
}

/// The prompt of a tool that handed its task to a person
/// ([`ToolError::for_person`](crate::ToolError::for_person)).
fn for_person(result: &TaskResult) -> Option<String> {
    let error = result.error()?;
    (error.kind.as_str() == crate::tool::FOR_PERSON).then(|| error.message.clone())
}

/// Counts the task's outcome (`toolfan_worker_tasks_total`), and whether
/// its job was ended while it ran.
fn count(shared: &Shared, entry: &ToolEntry, result: &TaskResult, aborted: bool) {
    let tool = entry.name.as_str();
    let outcome = result.error().map_or("ok", |e| e.kind.label());
    tracing::debug!(outcome, duration_ms = result.duration_ms, "task finished");
    shared
        .metrics
        .tasks
        .with_label_values(&[tool, outcome])
        .inc();
    if aborted {
        shared.metrics.aborted.with_label_values(&[tool]).inc();
    }
}

//! One job message, from intake to its ack: refuse it, recognise it as a
//! redelivery of a job live here, or run it (`live`) and answer it or
//! hand it back.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use toolfan_protocol::JobSummary;
use tracing::Instrument;

use crate::ack::{ack, final_ack};
use crate::error::HandBack;
use crate::intake::{intake, AcceptedJob, Intake};
use crate::live::LiveJob;
use crate::metrics::policy_label;
use crate::reply::ReplyTo;
use crate::retention::Hold;
use crate::routes::{Inbound, Registration};
use crate::shared::Shared;

/// Handles one message from the jobs stream, to its ack.
pub(crate) async fn handle(shared: &Shared, message: jetstream::Message) {
    let Some(job) = accept(shared, &message).await else {
        return;
    };
    // Room for every task's result twice over before the router waits.
    let capacity = 2 * job.spec.tasks.len() + 64;
    let Some((registration, inbox)) = shared.routes.register(&job.id, &job.caller, capacity) else {
        // Its ack wait lapsed while this coordinator runs it (a pause, a
        // reconnect): the same job, not a takeover. It acks this delivery.
        tracing::info!(job = %job.id, "job delivered again while it runs here; it runs on");
        shared.metrics.jobs_redelivered_live.inc();
        let redelivered = Inbound::Redelivered(Box::new(message));
        shared.routes.deliver(&job.id, None, redelivered).await;
        return;
    };
    run(shared, Arc::new(job), message, registration, inbox).await;
}

/// The job in `message`, if it is valid; a refused one is answered and
/// acked, one naming no reply subject dropped.
async fn accept(shared: &Shared, message: &jetstream::Message) -> Option<AcceptedJob> {
    match intake(&shared.topology.subjects, &shared.options.limits, message) {
        Intake::Accepted(job) => Some(job),
        Intake::Invalid { caller, id, error } => {
            tracing::info!(job = %id, caller = %caller, %error, "job refused");
            shared.metrics.jobs_refused.inc();
            ReplyTo::new(&shared.client, &shared.topology.subjects, &caller, &id)
                .invalid(id.clone(), &error)
                .await;
            ack(message, AckKind::Ack).await;
            None
        }
        Intake::Unanswerable(why) => {
            tracing::error!(subject = %message.subject, %why, "dropping a job message that names no reply subject");
            ack(message, AckKind::Term).await;
            None
        }
    }
}

/// Runs a registered job live until it is answered, handed back, or this
/// coordinator abandons it.
async fn run(
    shared: &Shared,
    job: Arc<AcceptedJob>,
    message: jetstream::Message,
    registration: Registration,
    inbox: mpsc::Receiver<Inbound>,
) {
    let span = tracing::info_span!("job", job = %job.id, caller = %job.caller, trace_id = %job.trace.trace_id_hex());
    // A child of the caller's span; the parent of the workers' task spans.
    toolfan_transport::adopt_parent(&span, job.trace);
    let tasks_parent = toolfan_transport::traceparent_of(&span);
    let policy = policy_label(job.spec.policy);
    let metrics = &shared.metrics;
    metrics.jobs_submitted.with_label_values(&[policy]).inc();
    metrics.live_jobs.inc();
    // Delivered before (its first owner died or handed it back), or of
    // unknown delivery count: replay what is stored, and hold it all.
    let taken_over = !message.info().is_ok_and(|info| info.delivered == 1);
    let hold = shared.retention.hold(taken_over);
    let on_board = shared.board.enter(&job);
    let mut live = LiveJob::new(
        shared,
        &job,
        message,
        inbox,
        &hold,
        tasks_parent,
        &on_board.progress,
    );
    let outcome = tokio::select! {
        outcome = live.run(taken_over).instrument(span.clone()) => outcome,
        _ = shared.abandon.cancelled() => Err(HandBack::ShuttingDown),
    };
    let message = live.into_message();
    metrics.live_jobs.dec();
    let _entered = span.enter();
    match outcome {
        Ok(summary) => {
            shared.board.finished(&job, &summary);
            drop(on_board);
            answer(shared, &job, summary, policy, &message).await;
            drop(registration);
            hold.release_at(keep_until(shared, &job));
        }
        Err(why) => {
            // Hand the job back; this or another coordinator takes it again
            // and recovers what was already done from the results stream.
            tracing::warn!(job = %job.id, %why, "job handed back");
            drop(registration);
            hand_back(shared, hold, &message).await;
        }
    }
}

/// Counts a finished job, sends its `done` event and acks it.
async fn answer(
    shared: &Shared,
    job: &AcceptedJob,
    summary: JobSummary,
    policy: &'static str,
    message: &jetstream::Message,
) {
    tracing::info!(total = summary.total, succeeded = summary.succeeded, failed = summary.failed, duration_ms = summary.duration_ms, ended_by = ?summary.ended_by, "job done");
    let metrics = &shared.metrics;
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
    final_ack(message).await;
}

/// Releases a job handed back and naks it (at once when this coordinator
/// is shutting down, else after a second).
async fn hand_back(shared: &Shared, hold: Hold, message: &jetstream::Message) {
    // Its next owner holds its results once it takes the job.
    hold.release_at(Instant::now() + shared.floor_ttl());
    let delay = (!shared.abandon.is_cancelled()).then_some(Duration::from_secs(1));
    ack(message, AckKind::Nak(delay)).await;
}

/// Until when an answered job's results stay: past its deadline (a client
/// that lost the `done` event reads the stream at its deadline plus its
/// answer grace), and in any case `results_keep` after now.
fn keep_until(shared: &Shared, job: &AcceptedJob) -> Instant {
    job.deadline().plus(shared.options.results_keep)
}

//! One `tools/call` as a toolfan job of one task.
//!
//! - The call waits for one of `--max-calls` slots (or its cancellation,
//!   or the deadline), then submits `Job::new([Task::new(name, args)])`
//!   with what is left of `--deadline-ms` (counted from the call's
//!   arrival) and `--timeout-ms` / `--retries` when given.
//!   The fleet's limits and result cache apply as configured on it.
//! - Progress, when the request carries a `progressToken`: `0/1` with
//!   `queued as job <id>` once JetStream accepted the job, `1/1` with
//!   `done` or `failed` when its result came (the result names the
//!   kind). toolfan tells the caller nothing between the two, so nothing
//!   is made up.
//! - The client's `notifications/cancelled`, or the server stopping,
//!   cancels the job (its queued task never starts, a running one is
//!   aborted on its worker).
//!   The cancelled call answers at once; the job's end is awaited in the
//!   background, keeping its slot until the fleet confirms it.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::Value;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientError, Job, JobOutcome, Task};

use super::args::CallSettings;
use super::convert;
use super::watcher::ToolList;

/// The longest a progress notification may wait to be sent.
const PROGRESS_SEND: Duration = Duration::from_millis(500);

/// The shortest deadline a job is given (a call that waited almost its
/// whole deadline for a slot still gets this long to run).
const MIN_DEADLINE: Duration = Duration::from_millis(100);

/// What every session's calls share: the client, the tool list, the slots.
pub(crate) struct Fleet {
    /// The fleet's client.
    pub(crate) client: Client,
    /// The tool list as last read.
    pub(crate) tools: watch::Receiver<ToolList>,
    /// Call slots (`--max-calls`).
    pub(crate) calls: Arc<Semaphore>,
    /// How each call runs as a job.
    pub(crate) settings: CallSettings,
    /// Cancelled when the server stops: every call in flight is cancelled.
    pub(crate) stop: CancellationToken,
}

/// Runs `request` as a job and answers with its result; every failure is
/// an `isError` result naming the toolfan error kind.
pub(crate) async fn call(
    fleet: &Fleet,
    request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
) -> CallToolResult {
    let name = request.name.to_string();
    let deadline = fleet.settings.deadline;
    let arrived = tokio::time::Instant::now();
    let permit = match slot(fleet, &context).await {
        Ok(permit) => permit,
        Err(refused) => return refused,
    };
    let args = request
        .arguments
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Default::default()));
    // The call's deadline counts from its arrival, the wait for a slot included.
    let left = deadline.saturating_sub(arrived.elapsed()).max(MIN_DEADLINE);
    let handle = match fleet
        .client
        .submit(job(&fleet.settings, &name, args, left))
        .await
    {
        Ok(handle) => handle,
        Err(e) => return convert::error_text(submit_error(&e)),
    };
    let progress = Progress::of(&context);
    progress
        .report(0.0, format!("queued as job {}", handle.id()))
        .await;
    let canceller = handle.canceller();
    let mut waiting = Box::pin(handle.wait());
    let outcome = tokio::select! {
        outcome = &mut waiting => outcome,
        _ = cancelled_or_stopped(fleet, &context) => {
            if let Err(e) = canceller.cancel().await {
                tracing::warn!(error = %e, "cannot cancel a cancelled call's job");
            }
            tokio::spawn(async move {
                let _ = waiting.await;
                drop(permit);
            });
            return cancelled();
        }
    };
    let result = answer(&name, outcome);
    let done = match result.is_error {
        Some(true) => "failed",
        _ => "done",
    };
    progress.report(1.0, done.to_owned()).await;
    result
}

/// One of the `--max-calls` slots, waited for until the call is
/// cancelled or its deadline passes.
async fn slot(
    fleet: &Fleet,
    context: &RequestContext<RoleServer>,
) -> Result<OwnedSemaphorePermit, CallToolResult> {
    let deadline = fleet.settings.deadline;
    tokio::select! {
        permit = fleet.calls.clone().acquire_owned() => permit.map_err(|_| {
            convert::error_text("internal: the server is shutting down".into())
        }),
        _ = cancelled_or_stopped(fleet, context) => Err(cancelled()),
        _ = tokio::time::sleep(deadline) => Err(convert::error_text(format!(
            "deadline_exceeded: no call slot came free within {} ms (--max-calls {})",
            deadline.as_millis(),
            fleet.settings.max_calls
        ))),
    }
}

fn job(settings: &CallSettings, name: &str, args: Value, deadline: Duration) -> Job {
    let mut task = Task::new(name, args);
    if let Some(timeout) = settings.timeout {
        task = task.timeout(timeout);
    }
    if let Some(retries) = settings.retries {
        task = task.retries(retries);
    }
    Job::new(vec![task]).deadline(deadline)
}

fn answer(name: &str, outcome: Result<JobOutcome, ClientError>) -> CallToolResult {
    match outcome {
        Ok(outcome) => match outcome.results.first() {
            Some(result) => convert::call_result(name, result),
            None => convert::error_text("internal: the job ended without a result".into()),
        },
        Err(e) => convert::error_text(format!("internal: {e}")),
    }
}

fn submit_error(e: &ClientError) -> String {
    match e {
        ClientError::Invalid(why) => format!("invalid: {why}"),
        other => format!("internal: {other}"),
    }
}

/// Until the client cancels the call or the server stops.
async fn cancelled_or_stopped(fleet: &Fleet, context: &RequestContext<RoleServer>) {
    tokio::select! {
        _ = context.ct.cancelled() => {}
        _ = fleet.stop.cancelled() => {}
    }
}

fn cancelled() -> CallToolResult {
    convert::error_text("cancelled: the client cancelled the call".into())
}

/// Progress notifications for one request, when it asked for them.
struct Progress {
    token: Option<rmcp::model::ProgressToken>,
    peer: rmcp::service::Peer<RoleServer>,
}

impl Progress {
    fn of(context: &RequestContext<RoleServer>) -> Self {
        Self {
            token: context.meta.get_progress_token(),
            peer: context.peer.clone(),
        }
    }

    async fn report(&self, progress: f64, message: String) {
        let Some(token) = &self.token else { return };
        let param = ProgressNotificationParam::new(token.clone(), progress)
            .with_total(1.0)
            .with_message(message);
        // A client that does not read must not hold the call (and its
        // cancellation) up: a notification not sent in time is skipped.
        match tokio::time::timeout(PROGRESS_SEND, self.peer.notify_progress(param)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot send a progress notification"),
            Err(_) => tracing::debug!("a progress notification was not taken in time; skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_is_a_job_of_one_task_with_the_flags_settings() {
        let settings = CallSettings {
            deadline: Duration::from_secs(60),
            timeout: Some(Duration::from_millis(1500)),
            retries: Some(2),
            max_calls: 4,
        };
        let job = job(
            &settings,
            "sleep",
            json!({"ms": 5}),
            Duration::from_millis(900),
        );
        let wire = serde_json::to_value(&job).expect("serialises");
        assert_eq!(wire["deadline_ms"], 900);
        assert_eq!(wire["tasks"].as_array().map(Vec::len), Some(1));
        let task = &wire["tasks"][0];
        assert_eq!(task["tool"], "sleep");
        assert_eq!(task["args"], json!({"ms": 5}));
        assert_eq!(task["timeout_ms"], 1500);
        assert_eq!(task["retries"], 2);
    }

    #[test]
    fn failures_outside_the_job_name_a_kind() {
        let refused = ClientError::Invalid("tasks[0].tool: bad".into());
        assert_eq!(submit_error(&refused), "invalid: tasks[0].tool: bad");
        let text = |r: CallToolResult| {
            serde_json::to_value(r).expect("json")["content"][0]["text"].clone()
        };
        assert_eq!(
            text(cancelled()),
            "cancelled: the client cancelled the call"
        );
        let empty: Result<JobOutcome, ClientError> = Err(ClientError::Invalid("x".into()));
        assert_eq!(answer("t", empty).is_error, Some(true));
    }
}

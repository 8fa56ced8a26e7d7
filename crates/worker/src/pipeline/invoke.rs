//! Invoking the tool: on its own tokio task (so a panic touches only this
//! task), under its timeout bounded by the job deadline, cancelled when
//! the job is ended (after a short grace for cleanup), counted while it runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::PoisonError;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use toolfan_limits::Learned;
use toolfan_protocol::{Deadline, ErrorKind, TaskError, TaskResult};

use crate::cache::Flight;
use crate::metrics::WorkerMetrics;
use crate::pipeline::attempt::{cancelled, seconds_since, Attempt};
use crate::pipeline::prefetch::{self, Prefetch};
use crate::runtime::{Shared, ToolEntry};
use crate::tool::{TaskContext, Tool};

/// How long a cancelled tool may take to clean up (through
/// `ctx.cancelled()`) before its future is dropped.
const CANCEL_GRACE: Duration = Duration::from_millis(100);

/// How long the tool may run: its own timeout, or what is left before the
/// deadline if that is shorter (`true`: the deadline bounds it).
pub(crate) fn budget(timeout: Option<Duration>, deadline: &Deadline) -> (Duration, bool) {
    let by_deadline = deadline.remaining();
    match timeout {
        Some(timeout) if timeout < by_deadline => (timeout, false),
        _ => (by_deadline, true),
    }
}

/// Runs the tool once for `attempt` and says how it went, and what it
/// learned about its limits (a backend's "too many", real costs).
pub(crate) async fn invoke(
    shared: &Shared,
    entry: &ToolEntry,
    attempt: &mut Attempt,
    prefetch: Option<&Prefetch>,
    flight: &Option<Flight>,
) -> (TaskResult, Learned) {
    let (budget, deadline_bound) = budget(attempt.task.task.timeout_duration(), &attempt.deadline);
    let ctx = TaskContext {
        job: attempt.task.job.clone(),
        index: attempt.task.index,
        attempt: attempt.number,
        worker: attempt.worker.clone(),
        cancel: attempt.cancel.child_token(),
        learned: Default::default(),
    };
    let learned = ctx.learned.clone();
    let tool = entry.name.as_str();
    let metrics = &shared.metrics;
    let _running = Running::new(&shared.in_flight, metrics, tool);
    metrics.attempts.with_label_values(&[tool]).inc();
    if let Some(queued) = attempt.queued_since {
        let waited = seconds_since(queued);
        metrics
            .queue_wait_seconds
            .with_label_values(&[tool])
            .observe(waited);
    }
    let started = Instant::now();
    let run_cancel = ctx.cancel.clone();
    let args = std::mem::take(&mut attempt.args);
    let run = run_with_timeout(entry.tool.as_ref(), ctx, args, budget, deadline_bound);
    let outcome = match (prefetch, flight, &shared.cache) {
        (Some(prefetch), Some(flight), Some(cache)) => {
            let cached = (cache.as_ref(), flight);
            prefetch::unless_unclaimed(shared, entry, prefetch, cached, run_cancel, run).await
        }
        _ => run.await,
    };
    let ran = started.elapsed();
    metrics
        .run_seconds
        .with_label_values(&[tool])
        .observe(ran.as_secs_f64());
    let result = TaskResult {
        duration_ms: ran.as_millis() as u64,
        ..attempt.answered(outcome, None)
    };
    let learned = std::mem::take(&mut *learned.lock().unwrap_or_else(PoisonError::into_inner));
    (result, learned)
}

/// Runs the tool on its own tokio task so a panic is caught, and a timeout,
/// a cancel (after a short grace for cleanup) or dropping this future aborts
/// it: the tool's future is dropped.
async fn run_with_timeout(
    tool: &dyn Tool,
    ctx: TaskContext,
    args: Value,
    budget: Duration,
    deadline_bound: bool,
) -> Result<Value, TaskError> {
    let cancel = ctx.cancel.clone();
    let learned = ctx.learned.clone();
    let mut handle = AbortOnDropHandle::new(tokio::spawn(tool.call(ctx, args)));
    let run = tokio::time::timeout(budget, &mut handle);
    let finished = tokio::select! {
        finished = run => finished,
        _ = cancel.cancelled() => {
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut handle).await;
            handle.abort();
            return Err(cancelled("the job was ended while the task ran"));
        }
    };
    match finished {
        Ok(Ok(outcome)) => outcome.map_err(|e| {
            if e.is_rate_limited() {
                let mut learned = learned.lock().unwrap_or_else(PoisonError::into_inner);
                learned.too_many = true;
                learned.retry_after = e.retry_after();
            }
            TaskError::from(e)
        }),
        Ok(Err(join)) if join.is_panic() => Err(TaskError::new(
            ErrorKind::ToolError,
            format!("the tool panicked: {}", panic_message(join.into_panic())),
        )),
        Ok(Err(join)) => Err(TaskError::new(ErrorKind::Internal, join.to_string())),
        Err(_) => {
            handle.abort();
            Err(out_of_time(budget, deadline_bound))
        }
    }
}

/// The error of a tool that ran its whole `budget`.
fn out_of_time(budget: Duration, deadline_bound: bool) -> TaskError {
    let ms = budget.as_millis();
    if deadline_bound {
        let message = format!("the job deadline passed after {ms} ms of running");
        TaskError::new(ErrorKind::DeadlineExceeded, message)
    } else {
        TaskError {
            kind: ErrorKind::Timeout,
            message: format!("the tool ran past its timeout of {ms} ms"),
            retryable: true,
            retry_after_ms: None,
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".into()
    }
}

/// Counts a running tool in the worker's in-flight figures while it lives.
struct Running<'a> {
    count: &'a AtomicU32,
    metrics: &'a WorkerMetrics,
    tool: &'a str,
}

impl<'a> Running<'a> {
    fn new(count: &'a AtomicU32, metrics: &'a WorkerMetrics, tool: &'a str) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        metrics.in_flight.inc();
        metrics.in_flight_by_tool.with_label_values(&[tool]).inc();
        Self {
            count,
            metrics,
            tool,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.metrics.in_flight.dec();
        self.metrics
            .in_flight_by_tool
            .with_label_values(&[self.tool])
            .dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TaskContext {
        TaskContext {
            job: toolfan_protocol::JobId::new("j").unwrap(),
            index: 0,
            attempt: 1,
            worker: "w".into(),
            cancel: Default::default(),
            learned: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_a_longer_timeout() {
        let deadline = Deadline::within(Duration::from_secs(5));
        assert_eq!(
            budget(Some(Duration::from_secs(2)), &deadline),
            (Duration::from_secs(2), false)
        );
        assert_eq!(
            budget(Some(Duration::from_secs(9)), &deadline),
            (Duration::from_secs(5), true)
        );
        assert_eq!(budget(None, &deadline), (Duration::from_secs(5), true));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            budget(Some(Duration::from_secs(2)), &deadline),
            (Duration::from_secs(1), true)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tool_past_its_budget_is_told_which_bound_it_hit() {
        let sleepy = |_ctx: TaskContext, _args: Value| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Value::Null)
        };
        let budget = Duration::from_millis(300);
        let timed_out = run_with_timeout(&sleepy, context(), Value::Null, budget, false).await;
        let error = timed_out.unwrap_err();
        assert_eq!((error.kind, error.retryable), (ErrorKind::Timeout, true));
        let late = run_with_timeout(&sleepy, context(), Value::Null, budget, true).await;
        assert_eq!(late.unwrap_err().kind, ErrorKind::DeadlineExceeded);
    }

    #[tokio::test]
    async fn a_rate_limited_error_and_charges_are_learned_for_the_fleet() {
        let tool = |ctx: TaskContext, _args: Value| async move {
            ctx.charge("tokens", 60)?;
            ctx.charge("tokens", 40)?;
            assert!(ctx.charge("not a key", 1).is_err());
            Err::<Value, _>(
                crate::ToolError::rate_limited("HTTP 429").with_retry_after(Duration::from_secs(2)),
            )
        };
        let ctx = context();
        let learned = ctx.learned.clone();
        let budget = Duration::from_secs(5);
        let error = run_with_timeout(&tool, ctx, Value::Null, budget, false)
            .await
            .unwrap_err();
        // The caller sees a retryable tool_error, as for any 429.
        assert_eq!((error.kind, error.retryable), (ErrorKind::ToolError, true));
        assert_eq!(error.retry_after_ms, Some(2000));
        let learned = learned.lock().unwrap().clone();
        assert!(learned.too_many);
        assert_eq!(learned.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(learned.charges.get("tokens"), Some(&100));
    }
}

//! Running one task message: decode, check the deadline, take limits, run
//! the tool under its timeout, publish the result, then ack.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, AckKind};
use serde_json::Value;
use toolfan_protocol::{decode, CacheUse, ErrorKind, TaskError, TaskMessage, TaskResult};

use crate::admission::{self, Renewal};
use crate::cache::{CacheKey, Claim, Flight, Waited};
use crate::metrics::WorkerMetrics;
use crate::run::{Shared, TaskPermits, ToolEntry};
use crate::{TaskContext, Tool, WorkerOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use toolfan_protocol::{TraceParent, TRACEPARENT_HEADER};
use tracing::Instrument;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the task in `message` and publishes its result. `permits` are the
/// task's slots on this worker, held until the result is out.
pub(crate) async fn run_task(
    shared: &Shared,
    entry: &ToolEntry,
    message: jetstream::Message,
    permits: TaskPermits,
) {
    let attempt = message
        .info()
        .map(|info| u32::try_from(info.delivered).unwrap_or(1))
        .unwrap_or(1);
    let task: TaskMessage = match decode("task message", &message.payload) {
        Ok(task) => task,
        Err(e) => {
            // Not from a coordinator: there is no job to answer, so drop it loudly.
            tracing::error!(subject = %message.subject, error = %e, "dropping an undecodable task message");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let trace = message
        .headers
        .as_ref()
        .and_then(|h| h.get(TRACEPARENT_HEADER))
        .and_then(|v| v.as_str().parse::<TraceParent>().ok());
    let span = tracing::info_span!(
        "task",
        job = %task.job,
        index = task.index,
        tool = %entry.name,
        attempt,
        trace_id = trace.map(|t| t.trace_id_hex()).unwrap_or_default(),
    );
    let queued_since = message.info().ok().map(|info| info.published);
    handle_task(shared, entry, message, task, attempt, permits, queued_since)
        .instrument(span)
        .await;
}

async fn handle_task(
    shared: &Shared,
    entry: &ToolEntry,
    message: jetstream::Message,
    mut task: TaskMessage,
    attempt: u32,
    mut permits: TaskPermits,
    queued_since: Option<time::OffsetDateTime>,
) {
    let Some(job_abort) = shared.aborts.register(&task.job) else {
        // Its job was cancelled or ended: the coordinator has answered for it.
        tracing::debug!("skipping a task of an aborted job");
        let _ = message.ack().await;
        return;
    };
    // Keep the task's ack deadline from lapsing while it waits or runs:
    // only a dead worker's tasks are delivered again.
    // The cache key hashes the args, so it is taken before they move into
    // the tool; nothing after needs them.
    let cache_key = shared.cache.as_ref().and_then(|cache| cache.key(&task));
    let args = std::mem::take(&mut task.task.args);
    let work = execute(
        shared,
        entry,
        Attempt {
            task: &task,
            args,
            number: attempt,
            cancel: job_abort.token(),
            queued_since,
            cache_key,
        },
        &mut permits,
    );
    let Some((result, flight)) =
        with_progress(&message, entry.ack_wait / 3, &shared.abandon, work).await
    else {
        // The worker is going away and the task did not finish in time.
        tracing::info!("handing an unfinished task back");
        let _ = message.ack_with(AckKind::Nak(None)).await;
        return;
    };
    let tool = entry.name.as_str();
    let retry = retry_delay(&shared.options, &task, &result);
    if let (Some(flight), Some(cache)) = (flight, &shared.cache) {
        // Calls that joined this one get its outcome, unless it is to be
        // retried or was cut short by this job (they claim again).
        let shared_outcome = match result.error() {
            _ if retry.is_some() => None,
            Some(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::DeadlineExceeded) => None,
            _ => Some(&result.outcome),
        };
        if let Err(e) = cache.finish(flight, shared_outcome).await {
            tracing::warn!(error = %e, "the call's outcome was not stored in the cache");
        }
    }
    if let Some(delay) = retry {
        tracing::debug!(?delay, "retrying after a retryable failure");
        shared.metrics.retries.with_label_values(&[tool]).inc();
        if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
            tracing::warn!(error = %e, "retry nak failed; the task comes back after its ack wait");
        }
        return;
    }
    let outcome = result.error().map_or("ok", |e| e.kind.label());
    tracing::debug!(outcome, duration_ms = result.duration_ms, "task finished");
    shared
        .metrics
        .tasks
        .with_label_values(&[tool, outcome])
        .inc();
    if job_abort.token().is_cancelled() {
        shared.metrics.aborted.with_label_values(&[tool]).inc();
    }
    crate::publish::publish_and_ack(shared, &task, result, message, entry.ack_wait).await;
    drop(permits);
}

/// The delay before another attempt, if `result` earns one: a retryable
/// failure with retries left (the attempt number is JetStream's delivery
/// count) and time for the delay before the job deadline. Exponential
/// backoff with full jitter, so retries of many tasks spread out.
pub(crate) fn retry_delay(
    options: &WorkerOptions,
    task: &TaskMessage,
    result: &TaskResult,
) -> Option<Duration> {
    let error = result.error()?;
    let retryable = error.retryable
        && !matches!(
            error.kind,
            ErrorKind::InvalidArgs
                | ErrorKind::UnknownTool
                | ErrorKind::DeadlineExceeded
                | ErrorKind::RateLimited
        );
    if !retryable || result.attempts == 0 || result.attempts > task.task.retries {
        return None;
    }
    let exponent = (result.attempts - 1).min(30);
    let ceiling = options
        .retry_base
        .saturating_mul(1u32 << exponent)
        .min(options.retry_cap);
    let backoff = ceiling.mul_f64(rand::random::<f64>());
    let asked = Duration::from_millis(error.retry_after_ms.unwrap_or(0));
    let delay = backoff.max(asked);
    let starts_at = now_unix_ms() + delay.as_millis() as u64 + RETRY_MARGIN_MS;
    (starts_at < task.deadline_unix_ms).then_some(delay)
}

/// A retry must be able to start at least this long before the deadline.
const RETRY_MARGIN_MS: u64 = 10;

/// Runs `work` while telling JetStream every `every` that the message is
/// still being worked on; `None` if `abandon` fires first (the work is dropped).
pub(crate) async fn with_progress<T>(
    message: &jetstream::Message,
    every: Duration,
    abandon: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    // The first signal is due after `every`. (Not `interval(every)` and
    // its immediate first tick: the timer rounds up to the next
    // millisecond, and awaiting it delayed every task by up to 1 ms.)
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = abandon.cancelled() => return None,
            _ = ticker.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "progress ack not sent");
                }
            }
        }
    }
}

/// One attempt at a task, as [`execute`] runs it.
struct Attempt<'a> {
    task: &'a TaskMessage,
    args: Value,
    number: u32,
    cancel: &'a CancellationToken,
    queued_since: Option<time::OffsetDateTime>,
    /// The call's keys in the cache, if it is cached and there is one.
    cache_key: Option<CacheKey>,
}

async fn execute(
    shared: &Shared,
    entry: &ToolEntry,
    attempt: Attempt<'_>,
    permits: &mut TaskPermits,
) -> (TaskResult, Option<Flight>) {
    let Attempt {
        task,
        args,
        number: attempt,
        cancel,
        queued_since,
        cache_key,
    } = attempt;
    let worker = Some(shared.options.id.clone());
    let left_ms = task.deadline_unix_ms.saturating_sub(now_unix_ms());
    let decided = |error: TaskError| TaskResult {
        worker: worker.clone(),
        cache: None,
        attempts: attempt,
        ..TaskResult::decided(task.index, error)
    };
    if left_ms == 0 {
        return (
            decided(TaskError::new(
                ErrorKind::DeadlineExceeded,
                "the job deadline passed before the task started",
            )),
            None,
        );
    }
    let deadline = Instant::now() + Duration::from_millis(left_ms);
    let answered = |outcome: Result<Value, TaskError>, cache: Option<CacheUse>| TaskResult {
        index: task.index,
        outcome,
        attempts: attempt,
        duration_ms: 0,
        worker: worker.clone(),
        cache,
    };

    // Prefetched calls run in a share of the slots, and only while someone may still claim them.
    let claim_by = task.task.prefetch_ttl_ms.map(|ttl| {
        let since = queued_since.map(seconds_since).unwrap_or(0.0);
        Instant::now() + Duration::from_millis(ttl).saturating_sub(Duration::from_secs_f64(since))
    });
    let mut _prefetch_slot = None;
    if let Some(claim_by) = claim_by {
        if shared.cache.is_none() {
            prefetch_metric(shared, entry, "skipped");
            return (
                answered(
                    Err(cancelled(
                        "prefetched, but this worker has no cache to keep the result in",
                    )),
                    None,
                ),
                None,
            );
        }
        permits.give_back_run_slot();
        tokio::select! {
            slot = shared.prefetch_slots.clone().acquire_owned() => _prefetch_slot = slot.ok(),
            _ = tokio::time::sleep_until(claim_by.into()) => {
                prefetch_metric(shared, entry, "unclaimed");
                return (answered(Err(unclaimed()), None), None);
            }
            _ = cancel.cancelled() => return (answered(Err(cancelled("the job was ended while the task waited")), None), None),
        }
        permits.retake_run_slot(&shared.slots).await;
    }

    // The result cache: a stored outcome, a running call's, or the lead.
    let flight =
        match through_cache(shared, entry, task, cache_key, permits, cancel, deadline).await {
            CacheStep::Answer(outcome, used) => return (answered(outcome, used), None),
            CacheStep::Run(flight) => flight,
        };
    let _renewal = match (&flight, &shared.cache) {
        (Some(flight), Some(cache)) => cache.renew(flight).await.ok(),
        _ => None,
    };

    // Limits: every rate token and lease the task needs, or a wait.
    let mut lease = None;
    if let Some(limiter) = &shared.limiter {
        let limits = limiter.applicable(&entry.limit_keys, task.task.rate_key.as_deref());
        if !limits.is_empty() {
            let ask = admission::Ask {
                tool_keys: &entry.limit_keys,
                rate_key: task.task.rate_key.as_deref(),
                cost: u64::from(task.task.cost),
                member: format!("{}:{}.{}", shared.options.id, task.msg_id(), attempt),
            };
            let admitted = tokio::select! {
                admitted = admission::admit(shared, limiter, &limits, &ask, permits, deadline.into()) => admitted,
                _ = cancel.cancelled() => Err(cancelled("the job was ended while the task waited for its limits")),
            };
            match admitted {
                Ok(Some(held)) => {
                    lease = Some((held.clone(), Renewal::start(limiter.clone(), held)))
                }
                Ok(None) => {}
                Err(error) => return (decided(error), flight),
            }
        }
    }

    let by_deadline = deadline.saturating_duration_since(Instant::now());
    let (budget, deadline_bound) = match task.task.timeout_duration() {
        Some(timeout) if timeout < by_deadline => (timeout, false),
        _ => (by_deadline, true),
    };
    let ctx = TaskContext {
        job: task.job.clone(),
        index: task.index,
        attempt,
        worker: shared.options.id.clone(),
        cancel: cancel.child_token(),
    };
    let tool = entry.name.as_str();
    let metrics = &shared.metrics;
    let _running = Running::new(&shared.in_flight, metrics, tool);
    metrics.attempts.with_label_values(&[tool]).inc();
    if let Some(queued) = queued_since {
        metrics
            .queue_wait_seconds
            .with_label_values(&[tool])
            .observe(seconds_since(queued));
    }
    let started = Instant::now();
    let run_cancel = ctx.cancel.clone();
    let run = run_with_timeout(entry.tool.as_ref(), ctx, args, budget, deadline_bound);
    let outcome = match (claim_by, &flight, &shared.cache) {
        (Some(claim_by), Some(flight), Some(cache)) => {
            // Cancel the speculative call at its TTL unless a call has joined it.
            let watchdog = async {
                tokio::time::sleep_until(claim_by.into()).await;
                if !cache.joined(flight).await.unwrap_or(true) {
                    run_cancel.cancel();
                    return true;
                }
                std::future::pending().await
            };
            tokio::pin!(run, watchdog);
            let mut fired = false;
            loop {
                tokio::select! {
                    outcome = &mut run => break match outcome {
                        Err(e) if fired && e.kind == ErrorKind::Cancelled => {
                            prefetch_metric(shared, entry, "unclaimed");
                            Err(unclaimed())
                        }
                        other => {
                            prefetch_metric(shared, entry, "ran");
                            other
                        }
                    },
                    cancelled_it = &mut watchdog, if !fired => fired = cancelled_it,
                }
            }
        }
        _ => run.await,
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    metrics
        .run_seconds
        .with_label_values(&[tool])
        .observe(started.elapsed().as_secs_f64());
    if let (Some((held, renewal)), Some(limiter)) = (lease, &shared.limiter) {
        drop(renewal);
        limiter.release(&held).await;
    }
    let result = TaskResult {
        index: task.index,
        outcome,
        attempts: attempt,
        duration_ms,
        worker,
        cache: None,
    };
    (result, flight)
}

fn prefetch_metric(shared: &Shared, entry: &ToolEntry, outcome: &str) {
    shared
        .metrics
        .prefetch
        .with_label_values(&[entry.name.as_str(), outcome])
        .inc();
}

/// What the cache says to do with a call.
enum CacheStep {
    /// Answer with this outcome without running the tool (from the cache, if said).
    Answer(Result<Value, TaskError>, Option<CacheUse>),
    /// Run the tool, leading this flight if there is one.
    Run(Option<Flight>),
}

/// Claims a cached call: a stored outcome or a running call's is the
/// answer; otherwise this call leads. A call waiting for another gives its
/// run slot back meanwhile. Without a cache (or with Redis down) the call
/// runs uncached: nothing is lost, only the sharing.
async fn through_cache(
    shared: &Shared,
    entry: &ToolEntry,
    task: &TaskMessage,
    key: Option<CacheKey>,
    permits: &mut TaskPermits,
    cancel: &CancellationToken,
    deadline: Instant,
) -> CacheStep {
    let prefetched = task.task.prefetch_ttl_ms.is_some();
    if !task.task.is_cached() {
        return CacheStep::Run(None);
    }
    let tool = entry.name.as_str();
    let count = |outcome: &str| {
        shared
            .metrics
            .cache
            .with_label_values(&[tool, outcome])
            .inc()
    };
    let (Some(cache), Some(key)) = (&shared.cache, key) else {
        count("unavailable");
        return CacheStep::Run(None);
    };
    loop {
        let running = match cache.claim(&key).await {
            Ok(Claim::Hit(outcome)) => {
                count("hit");
                if prefetched {
                    prefetch_metric(shared, entry, "skipped");
                }
                return CacheStep::Answer(outcome, Some(CacheUse::Hit));
            }
            Ok(Claim::Leader(flight)) => {
                count("miss");
                return CacheStep::Run(Some(flight));
            }
            Ok(Claim::Running(id)) => id,
            Err(e) => {
                tracing::warn!(error = %e, "running a cached call uncached");
                count("unavailable");
                return CacheStep::Run(None);
            }
        };
        if prefetched {
            prefetch_metric(shared, entry, "skipped");
            return CacheStep::Answer(
                Err(cancelled("prefetched, and already running elsewhere")),
                None,
            );
        }
        permits.give_back_run_slot();
        let waited = tokio::select! {
            waited = cache.wait(&key, &running) => waited,
            _ = cancel.cancelled() => return CacheStep::Answer(Err(cancelled("the job was ended while the task waited for the same call")), None),
            _ = tokio::time::sleep_until(deadline.into()) => return CacheStep::Answer(Err(TaskError::new(
                ErrorKind::DeadlineExceeded,
                "the job deadline passed while the task waited for the same call",
            )), None),
        };
        let unavailable = match waited {
            Ok(Waited::Outcome(outcome)) => {
                count("joined");
                return CacheStep::Answer(outcome, Some(CacheUse::Joined));
            }
            // It ended without an outcome: claim again.
            Ok(Waited::Vacant) => false,
            Err(e) => {
                tracing::warn!(error = %e, "running a cached call uncached");
                count("unavailable");
                true
            }
        };
        permits.retake_run_slot(&shared.slots).await;
        if unavailable {
            return CacheStep::Run(None);
        }
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

fn cancelled(message: &str) -> TaskError {
    TaskError::new(ErrorKind::Cancelled, message)
}

/// A prefetched call cancelled at its TTL, nobody having joined it.
fn unclaimed() -> TaskError {
    cancelled("prefetched, and nobody claimed it in time")
}

/// Seconds from `then` to now, never negative (clocks may disagree).
fn seconds_since(then: time::OffsetDateTime) -> f64 {
    (time::OffsetDateTime::now_utc() - then)
        .as_seconds_f64()
        .max(0.0)
}

/// How long a cancelled tool may take to clean up (through
/// `ctx.cancelled()`) before its future is dropped.
const CANCEL_GRACE: Duration = Duration::from_millis(100);

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
        Ok(Ok(outcome)) => outcome.map_err(TaskError::from),
        Ok(Err(join)) if join.is_panic() => Err(TaskError::new(
            ErrorKind::ToolError,
            format!("the tool panicked: {}", panic_message(join.into_panic())),
        )),
        Ok(Err(join)) => Err(TaskError::new(ErrorKind::Internal, join.to_string())),
        Err(_) => {
            handle.abort();
            Err(if deadline_bound {
                TaskError::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "the job deadline passed after {} ms of running",
                        budget.as_millis()
                    ),
                )
            } else {
                TaskError {
                    kind: ErrorKind::Timeout,
                    message: format!("the tool ran past its timeout of {} ms", budget.as_millis()),
                    retryable: true,
                    retry_after_ms: None,
                }
            })
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

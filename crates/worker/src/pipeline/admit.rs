//! Admission: waiting for a task's fleet-wide limits before it runs.
//!
//! A limited task gives its run slot back while it waits, so the worker's
//! slots go to tasks that can run; it keeps only its held slot, which
//! bounds how many tasks a worker takes in. Tasks under the same set of
//! limits take turns (`crate::turns`). A wait that would end after the job
//! deadline ends the task as `rate_limited` at once.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use toolfan_limits::{Decision, Learned, Lease, LimitError, LimitSpec, Limiter};
use toolfan_protocol::{Deadline, ErrorKind, TaskError};

use crate::pipeline::attempt::{cancelled, Attempt};
use crate::runtime::{Shared, ToolEntry};
use crate::slots::TaskPermits;

/// How long a fail-closed task waits before asking an unreachable Redis again.
const REDIS_RETRY: Duration = Duration::from_millis(500);

/// The limits a running task took: the rates (for what it learns, told
/// after it) and the leases, renewed until released.
pub(crate) struct Held {
    /// The limits it was admitted under, `cost` units of each.
    limits: Vec<(String, LimitSpec)>,
    cost: u64,
    lease: Option<(Lease, AbortOnDropHandle<()>)>,
}

/// Takes every limit the task is under (its tool's keys, `global`, its
/// own `rate_key`), waiting as long as its deadline allows or until its
/// job is ended. `None`: no limit applies.
pub(crate) async fn admit(
    shared: &Shared,
    entry: &ToolEntry,
    attempt: &Attempt,
    permits: &mut TaskPermits,
) -> Result<Option<Held>, TaskError> {
    let Some(limiter) = &shared.limiter else {
        return Ok(None);
    };
    let rate_key = attempt.task.task.rate_key.as_deref();
    let limits = limiter.applicable(&entry.limit_keys, rate_key);
    if limits.is_empty() {
        return Ok(None);
    }
    let ask = Ask {
        tool_keys: &entry.limit_keys,
        rate_key,
        cost: u64::from(attempt.task.task.cost),
        member: format!(
            "{}:{}.{}",
            shared.options.id,
            attempt.task.msg_id(),
            attempt.number
        ),
    };
    let taken = tokio::select! {
        taken = wait_for_limits(shared, limiter, &limits, &ask, permits, attempt.deadline) => taken?,
        _ = attempt.cancel.cancelled() => return Err(cancelled("the job was ended while the task waited for its limits")),
    };
    let lease = taken.lease.map(|lease| {
        let (limiter, held) = (limiter.clone(), lease.clone());
        let ttl = limiter.lease_ttl();
        let renewal = crate::keep::every_third_of(ttl, "a lease", move || {
            let (limiter, held) = (limiter.clone(), held.clone());
            async move { limiter.renew(&held).await }
        });
        (lease, renewal)
    });
    Ok(Some(Held {
        limits: taken.limits,
        cost: ask.cost,
        lease,
    }))
}

/// Once the task ran: tells the fleet what it learned about its limits (a
/// backend's "too many", real costs; nothing to tell, no Redis call), then
/// gives its leases back.
pub(crate) async fn settle(shared: &Shared, held: Option<Held>, learned: Learned) {
    let Some(limiter) = &shared.limiter else {
        return;
    };
    let (limits, cost, lease) = match held {
        Some(held) => (held.limits, held.cost, held.lease),
        None => (Vec::new(), 0, None),
    };
    if !learned.is_empty() {
        tell(shared, limiter, &limits, cost, &learned).await;
    }
    if let Some((lease, renewal)) = lease {
        drop(renewal);
        limiter.release(&lease).await;
    }
}

/// Tells the fleet what a call learned, and counts what it changed.
async fn tell(
    shared: &Shared,
    limiter: &Limiter,
    limits: &[(String, LimitSpec)],
    cost: u64,
    learned: &Learned,
) {
    let metrics = &shared.metrics;
    match limiter.after(limits, cost, learned).await {
        Ok(settled) => {
            for key in &settled.cut {
                tracing::info!(%key, "the backend said too many: the fleet's rate on the key is cut");
                metrics
                    .limit_backoffs
                    .with_label_values(&[key.as_str()])
                    .inc();
            }
            for (key, delta) in &settled.charged {
                let direction = if *delta > 0 { "debit" } else { "credit" };
                metrics
                    .limit_charged_units
                    .with_label_values(&[key.as_str(), direction])
                    .inc_by(delta.unsigned_abs());
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not tell the fleet what a call learned about its limits")
        }
    }
}

fn rate_limited(message: String) -> TaskError {
    TaskError {
        kind: ErrorKind::RateLimited,
        message,
        retryable: true,
        retry_after_ms: None,
    }
}

/// What a task asks of the limiter.
struct Ask<'a> {
    /// Its tool's limit keys.
    tool_keys: &'a [String],
    /// Its own rate key.
    rate_key: Option<&'a str>,
    /// Units it takes.
    cost: u64,
    /// Its lease name.
    member: String,
}

/// The limits a task took (empty: it runs unlimited) and its leases.
struct Taken {
    limits: Vec<(String, LimitSpec)>,
    lease: Option<Lease>,
}

/// What to do after one answer of the limiter.
enum Next {
    Done(Result<Option<Lease>, TaskError>),
    WaitFor(Duration),
}

/// Takes `limits` (as first seen) for a call, waiting as long as the
/// deadline allows. The definitions are read again on every try, so a limit
/// changed while tasks wait applies to them at once.
async fn wait_for_limits(
    shared: &Shared,
    limiter: &Limiter,
    limits: &[(String, LimitSpec)],
    ask: &Ask<'_>,
    permits: &mut TaskPermits,
    deadline: Deadline,
) -> Result<Taken, TaskError> {
    let turn = shared.turns.for_limits(limits);
    permits.give_back_run_slot();
    let started = Instant::now();
    let _turn = tokio::time::timeout_at(deadline.instant(), turn.lock())
        .await
        .map_err(|_| {
            rate_limited(format!(
                "waited {} ms behind other calls under the same limits; the job deadline passed",
                started.elapsed().as_millis()
            ))
        })?;
    let mut waiting = Waiting {
        shared,
        started,
        deadline,
        redis_down: false,
        held_by: None,
    };
    loop {
        permits.retake_run_slot(&shared.slots).await;
        let limits = limiter.applicable(ask.tool_keys, ask.rate_key);
        if limits.is_empty() {
            let lease = None;
            return Ok(Taken { limits, lease });
        }
        let answer = limiter.acquire(&limits, ask.cost, &ask.member).await;
        let wait = match waiting.next(answer, limiter.fails_open()) {
            Next::Done(done) => return done.map(|lease| Taken { limits, lease }),
            Next::WaitFor(wait) => wait,
        };
        permits.give_back_run_slot();
        tokio::time::sleep(wait).await;
    }
}

/// One task's wait for its limits, across tries.
struct Waiting<'a> {
    shared: &'a Shared,
    started: Instant,
    deadline: Deadline,
    redis_down: bool,
    /// The key that made it wait last.
    held_by: Option<String>,
}

impl Waiting<'_> {
    fn next(&mut self, answer: Result<Decision, LimitError>, fails_open: bool) -> Next {
        match answer {
            Ok(Decision::Admitted(lease)) => {
                if self.redis_down {
                    tracing::info!("Redis answers again; limited tasks resume");
                }
                self.observe();
                Next::Done(Ok(lease))
            }
            Ok(Decision::Never(why)) => {
                Next::Done(Err(TaskError::new(ErrorKind::RateLimited, why)))
            }
            Ok(Decision::Wait { after, key, cap }) => self.wait(after, key, cap),
            Err(e) => self.unreachable(e, fails_open),
        }
    }

    /// Told to wait `after` for `key` (`cap`: a concurrency cap, not a rate).
    fn wait(&mut self, after: Duration, key: String, cap: bool) -> Next {
        let metrics = &self.shared.metrics;
        metrics.limit_waits.with_label_values(&[key.as_str()]).inc();
        if cap {
            metrics
                .lease_denials
                .with_label_values(&[key.as_str()])
                .inc();
        }
        self.held_by = Some(key.clone());
        if !self.deadline.allows(after) {
            self.observe();
            return Next::Done(Err(rate_limited(format!(
                "limit {key:?} would admit the call only in {} ms, after the job deadline",
                after.as_millis()
            ))));
        }
        // A little jitter so workers polling the same limit spread out.
        Next::WaitFor(after + after.mul_f64(rand::random::<f64>() * 0.1))
    }

    /// Redis did not answer: run unlimited (fail open) or wait for it.
    fn unreachable(&mut self, e: LimitError, fails_open: bool) -> Next {
        let metrics = &self.shared.metrics;
        if fails_open {
            metrics
                .limits_unavailable
                .with_label_values(&["fail_open"])
                .inc();
            tracing::warn!(error = %e, "Redis unreachable: running a limited task unlimited (fail open)");
            return Next::Done(Ok(None));
        }
        metrics
            .limits_unavailable
            .with_label_values(&["fail_closed"])
            .inc();
        if !self.redis_down {
            tracing::warn!(error = %e, "Redis unreachable: limited tasks wait for it (fail closed)");
            self.redis_down = true;
        }
        if !self.deadline.allows(REDIS_RETRY) {
            return Next::Done(Err(rate_limited(format!(
                "Redis, which keeps the limits, was unreachable until the job deadline: {e}"
            ))));
        }
        Next::WaitFor(REDIS_RETRY)
    }

    /// Records how long the task waited, under the key that held it.
    fn observe(&self) {
        if let Some(key) = &self.held_by {
            self.shared
                .metrics
                .limit_wait_seconds
                .with_label_values(&[key.as_str()])
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

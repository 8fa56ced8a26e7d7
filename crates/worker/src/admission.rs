//! Waiting for a task's limits before it runs.
//!
//! A limited task gives its run slot back while it waits, so the worker's
//! slots go to tasks that can run; it keeps only its held slot, which
//! bounds how many tasks a worker takes in. Tasks under the same set of
//! limits take turns (FIFO) to ask Redis, so a worker sends one request per
//! limit set at a time instead of a stampede. A wait that would end after
//! the job deadline ends the task as `rate_limited` at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use toolfan_protocol::{ErrorKind, TaskError};

use crate::limits::{Decision, Lease, LimitSpec, Limiter};
use crate::run::{Shared, TaskPermits};

/// How long a fail-closed task waits before asking an unreachable Redis again.
const REDIS_RETRY: Duration = Duration::from_millis(500);
/// Drop idle turn locks once there are this many.
const TURNS_KEPT: usize = 1024;

/// One FIFO turn per set of limit keys.
#[derive(Default)]
pub(crate) struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    fn for_limits(&self, limits: &[(String, LimitSpec)]) -> Arc<tokio::sync::Mutex<()>> {
        let name = limits
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let mut turns = self.0.lock().expect("turns lock");
        if turns.len() > TURNS_KEPT {
            turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        turns.entry(name).or_default().clone()
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
pub(crate) struct Ask<'a> {
    /// Its tool's limit keys.
    pub(crate) tool_keys: &'a [String],
    /// Its own rate key.
    pub(crate) rate_key: Option<&'a str>,
    /// Units it takes.
    pub(crate) cost: u64,
    /// Its lease name.
    pub(crate) member: String,
}

/// Takes `limits` (as first seen) for a call, waiting as long as the
/// deadline allows. The definitions are read again on every try, so a limit
/// changed while tasks wait applies to them at once. Returns the task's
/// leases, if any cap applies.
pub(crate) async fn admit(
    shared: &Shared,
    limiter: &Limiter,
    limits: &[(String, LimitSpec)],
    ask: &Ask<'_>,
    permits: &mut TaskPermits,
    deadline: Instant,
) -> Result<Option<Lease>, TaskError> {
    let turn = shared.turns.for_limits(limits);
    permits.give_back_run_slot();
    let started = Instant::now();
    let _turn = tokio::time::timeout_at(deadline, turn.lock())
        .await
        .map_err(|_| {
            rate_limited(format!(
                "waited {} ms behind other calls under the same limits; the job deadline passed",
                started.elapsed().as_millis()
            ))
        })?;
    let mut redis_down = false;
    let mut held_by = None;
    let metrics = &shared.metrics;
    let observe = |held_by: &Option<String>| {
        if let Some(key) = held_by {
            metrics
                .limit_wait_seconds
                .with_label_values(&[key.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
    };
    loop {
        permits.retake_run_slot(&shared.slots).await;
        let limits = limiter.applicable(ask.tool_keys, ask.rate_key);
        if limits.is_empty() {
            return Ok(None);
        }
        let wait = match limiter.acquire(&limits, ask.cost, &ask.member).await {
            Ok(Decision::Admitted(lease)) => {
                if redis_down {
                    tracing::info!("Redis answers again; limited tasks resume");
                }
                observe(&held_by);
                return Ok(lease);
            }
            Ok(Decision::Never(why)) => {
                return Err(TaskError::new(ErrorKind::RateLimited, why));
            }
            Ok(Decision::Wait { after, key, cap }) => {
                metrics.limit_waits.with_label_values(&[key.as_str()]).inc();
                if cap {
                    metrics
                        .lease_denials
                        .with_label_values(&[key.as_str()])
                        .inc();
                }
                held_by = Some(key.clone());
                if Instant::now() + after > deadline {
                    observe(&held_by);
                    return Err(rate_limited(format!(
                        "limit {key:?} would admit the call only in {} ms, after the job deadline",
                        after.as_millis()
                    )));
                }
                // A little jitter so workers polling the same limit spread out.
                after + after.mul_f64(rand::random::<f64>() * 0.1)
            }
            Err(e) if limiter.fails_open() => {
                metrics
                    .limits_unavailable
                    .with_label_values(&["fail_open"])
                    .inc();
                tracing::warn!(error = %e, "Redis unreachable: running a limited task unlimited (fail open)");
                return Ok(None);
            }
            Err(e) => {
                metrics
                    .limits_unavailable
                    .with_label_values(&["fail_closed"])
                    .inc();
                if !redis_down {
                    tracing::warn!(error = %e, "Redis unreachable: limited tasks wait for it (fail closed)");
                    redis_down = true;
                }
                if Instant::now() + REDIS_RETRY > deadline {
                    return Err(rate_limited(format!(
                        "Redis, which keeps the limits, was unreachable until the job deadline: {e}"
                    )));
                }
                REDIS_RETRY
            }
        };
        permits.give_back_run_slot();
        tokio::time::sleep(wait).await;
    }
}

/// Renews `lease` every third of its TTL until dropped.
pub(crate) struct Renewal(tokio::task::JoinHandle<()>);

impl Renewal {
    pub(crate) fn start(limiter: Arc<Limiter>, lease: Lease) -> Self {
        Self(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(limiter.lease_ttl() / 3);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(e) = limiter.renew(&lease).await {
                    tracing::warn!(error = %e, "lease not renewed");
                }
            }
        }))
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

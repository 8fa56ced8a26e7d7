//! The prefetch gate: a speculative call (one the caller may still confirm)
//! runs in a share of the slots, only with a cache to keep its result in,
//! and only while someone may still claim it; at its TTL, unclaimed, it is
//! cancelled.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{ErrorKind, TaskError};

use crate::cache::{Cache, Flight};
use crate::pipeline::attempt::{cancelled, seconds_since, unclaimed, Attempt};
use crate::runtime::{Shared, ToolEntry};
use crate::slots::TaskPermits;

/// A prefetched call let through: its prefetch slot (held while it runs)
/// and when it must have been claimed by.
pub(crate) struct Prefetch {
    claim_by: Instant,
    _slot: Option<OwnedSemaphorePermit>,
}

/// What the gate says.
pub(crate) enum Gate {
    /// Go on (`Some` for a prefetched call).
    Pass(Option<Prefetch>),
    /// End the attempt with this error.
    Stop(TaskError),
}

/// Lets a confirmed call through at once; a prefetched one waits for a
/// prefetch slot (its run slot given back meanwhile) until its TTL.
pub(crate) async fn gate(
    shared: &Shared,
    entry: &ToolEntry,
    attempt: &Attempt,
    permits: &mut TaskPermits,
) -> Gate {
    let Some(ttl) = attempt.task.task.prefetch_ttl_ms else {
        return Gate::Pass(None);
    };
    let since = attempt.queued_since.map(seconds_since).unwrap_or(0.0);
    let left = Duration::from_millis(ttl).saturating_sub(Duration::from_secs_f64(since));
    let claim_by = Instant::now() + left;
    if shared.cache.is_none() {
        count(shared, entry, "skipped");
        let why = "prefetched, but this worker has no cache to keep the result in";
        return Gate::Stop(cancelled(why));
    }
    permits.give_back_run_slot();
    let slot = tokio::select! {
        slot = shared.slots.prefetch.clone().acquire_owned() => slot.ok(),
        _ = tokio::time::sleep_until(claim_by) => {
            count(shared, entry, "unclaimed");
            return Gate::Stop(unclaimed());
        }
        _ = attempt.cancel.cancelled() => return Gate::Stop(cancelled("the job was ended while the task waited")),
    };
    permits.retake_run_slot(&shared.slots).await;
    Gate::Pass(Some(Prefetch {
        claim_by,
        _slot: slot,
    }))
}

/// Runs a prefetched call, cancelling it (through `run_cancel`) at its TTL
/// unless a confirmed call has joined its flight by then.
pub(crate) async fn unless_unclaimed(
    shared: &Shared,
    entry: &ToolEntry,
    prefetch: &Prefetch,
    cached: (&Cache, &Flight),
    run_cancel: CancellationToken,
    run: impl std::future::Future<Output = Result<Value, TaskError>>,
) -> Result<Value, TaskError> {
    let (cache, flight) = cached;
    let watchdog = async {
        tokio::time::sleep_until(prefetch.claim_by).await;
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
                    count(shared, entry, "unclaimed");
                    Err(unclaimed())
                }
                other => {
                    count(shared, entry, "ran");
                    other
                }
            },
            cancelled_it = &mut watchdog, if !fired => fired = cancelled_it,
        }
    }
}

/// Counts a prefetched call's fate (`toolfan_worker_prefetch_total`).
pub(crate) fn count(shared: &Shared, entry: &ToolEntry, outcome: &str) {
    shared
        .metrics
        .prefetch
        .with_label_values(&[entry.name.as_str(), outcome])
        .inc();
}

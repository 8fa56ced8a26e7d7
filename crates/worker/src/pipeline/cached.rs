//! The result cache step: a stored outcome or a running equal call's is
//! the answer; otherwise this call leads its flight, and its outcome is
//! shared with the calls that joined. A call waiting for another gives its
//! run slot back meanwhile. Without a cache (or with Redis down) the call
//! runs uncached: nothing is lost, only the sharing.

use serde_json::Value;
use tokio_util::task::AbortOnDropHandle;
use toolfan_protocol::{CacheUse, ErrorKind, TaskError, TaskResult};

use crate::cache::{Cache, CacheKey, Claim, Flight, Waited};
use crate::pipeline::attempt::{cancelled, Attempt};
use crate::pipeline::prefetch;
use crate::runtime::{Shared, ToolEntry};
use crate::slots::TaskPermits;

/// What the cache says to do with a call.
pub(crate) enum CacheStep {
    /// Answer with this outcome without running the tool (from the cache, if said).
    Answer(Result<Value, TaskError>, Option<CacheUse>),
    /// Run the tool, leading this flight if there is one.
    Run(Option<Flight>),
}

/// Claims the call in the cache (see the module doc).
pub(crate) async fn through_cache(
    shared: &Shared,
    entry: &ToolEntry,
    attempt: &Attempt,
    key: Option<CacheKey>,
    permits: &mut TaskPermits,
) -> CacheStep {
    if !attempt.task.task.is_cached() {
        tracing::Span::current().record("cache", "off");
        return CacheStep::Run(None);
    }
    let (Some(cache), Some(key)) = (&shared.cache, key) else {
        count(shared, entry, "unavailable");
        return CacheStep::Run(None);
    };
    let prefetched = attempt.task.task.prefetch_ttl_ms.is_some();
    loop {
        let running = match cache.claim(&key).await {
            Ok(Claim::Hit(outcome)) => {
                count(shared, entry, "hit");
                if prefetched {
                    prefetch::count(shared, entry, "skipped");
                }
                return CacheStep::Answer(outcome, Some(CacheUse::Hit));
            }
            Ok(Claim::Leader(flight)) => {
                count(shared, entry, "miss");
                return CacheStep::Run(Some(flight));
            }
            Ok(Claim::Running(id)) => id,
            Err(e) => {
                tracing::warn!(error = %e, "running a cached call uncached");
                count(shared, entry, "unavailable");
                return CacheStep::Run(None);
            }
        };
        if prefetched {
            prefetch::count(shared, entry, "skipped");
            let why = "prefetched, and already running elsewhere";
            return CacheStep::Answer(Err(cancelled(why)), None);
        }
        permits.give_back_run_slot();
        let joined = join(shared, entry, cache, &key, &running, attempt).await;
        if let Some(CacheStep::Answer(outcome, used)) = joined {
            return CacheStep::Answer(outcome, used);
        }
        // It runs here after all (uncached), or claims again: with a slot.
        permits.retake_run_slot(&shared.slots).await;
        if let Some(step) = joined {
            return step;
        }
    }
}

/// Waits for the equal call `running` to end: its outcome, or `None` to
/// claim again (it ended without one). Redis failing runs the call uncached.
async fn join(
    shared: &Shared,
    entry: &ToolEntry,
    cache: &Cache,
    key: &CacheKey,
    running: &str,
    attempt: &Attempt,
) -> Option<CacheStep> {
    let waited = tokio::select! {
        waited = cache.wait(key, running) => waited,
        _ = attempt.cancel.cancelled() => return Some(CacheStep::Answer(Err(cancelled("the job was ended while the task waited for the same call")), None)),
        _ = tokio::time::sleep_until(attempt.deadline.instant()) => return Some(CacheStep::Answer(Err(TaskError::new(
            ErrorKind::DeadlineExceeded,
            "the job deadline passed while the task waited for the same call",
        )), None)),
    };
    match waited {
        Ok(Waited::Outcome(outcome)) => {
            count(shared, entry, "joined");
            Some(CacheStep::Answer(outcome, Some(CacheUse::Joined)))
        }
        Ok(Waited::Vacant) => None,
        Err(e) => {
            tracing::warn!(error = %e, "running a cached call uncached");
            count(shared, entry, "unavailable");
            Some(CacheStep::Run(None))
        }
    }
}

/// Keeps a leader's flight claimed while it runs.
pub(crate) async fn renew(
    shared: &Shared,
    flight: &Option<Flight>,
) -> Option<AbortOnDropHandle<()>> {
    match (flight, &shared.cache) {
        (Some(flight), Some(cache)) => cache.renew(flight).await.ok(),
        _ => None,
    }
}

/// Ends a leader's flight: the calls that joined it get its outcome,
/// unless it is to be retried or was cut short by this job (they claim
/// again then).
pub(crate) async fn finish(
    shared: &Shared,
    flight: Option<Flight>,
    result: &TaskResult,
    retrying: bool,
) {
    let (Some(flight), Some(cache)) = (flight, &shared.cache) else {
        return;
    };
    let shared_outcome = match result.error() {
        _ if retrying => None,
        Some(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::DeadlineExceeded) => None,
        _ => Some(&result.outcome),
    };
    if let Err(e) = cache.finish(flight, shared_outcome).await {
        tracing::warn!(error = %e, "the call's outcome was not stored in the cache");
    }
}

/// Counts a cache outcome (`toolfan_worker_cache_total`)
/// and notes it on the task's span.
fn count(shared: &Shared, entry: &ToolEntry, outcome: &str) {
    tracing::Span::current().record("cache", outcome);
    shared
        .metrics
        .cache
        .with_label_values(&[entry.name.as_str(), outcome])
        .inc();
}

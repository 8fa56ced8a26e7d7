//! Letting a finished job's results go: once its caller has been answered
//! and the client's recovery window has passed, the job's outcomes are
//! purged from the results stream, so the stream holds live jobs (and the
//! recently finished) rather than an hour of everything.
//!
//! The queue is bounded; a purge that does not fit is skipped and counted,
//! and the stream's age and byte bounds still hold its outcomes in check.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use prometheus::IntCounter;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::JobId;
use toolfan_transport::Topology;

/// Most purges waiting at once.
const MAX_WAITING: usize = 200_000;
/// Purge requests in flight at once.
const CONCURRENCY: usize = 16;

/// Answered jobs by when their results go, soonest first.
type DueJobs = BinaryHeap<Reverse<(Instant, JobId)>>;

/// Finished jobs whose results go at their time.
#[derive(Clone)]
pub(crate) struct Purger {
    due: Arc<Mutex<DueJobs>>,
    wake: Arc<Notify>,
    skipped: IntCounter,
}

impl Purger {
    /// Starts purging on `topology` until `stop`.
    pub(crate) fn start(topology: Topology, skipped: IntCounter, stop: CancellationToken) -> Self {
        let purger = Self {
            due: Arc::default(),
            wake: Arc::default(),
            skipped,
        };
        tokio::spawn(purger.clone().run(topology, stop));
        purger
    }

    /// Purges `job`'s results at `at`.
    pub(crate) fn schedule(&self, job: JobId, at: Instant) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        if due.len() >= MAX_WAITING {
            self.skipped.inc();
            return;
        }
        let sooner = due.peek().is_none_or(|Reverse((first, _))| at < *first);
        due.push(Reverse((at, job)));
        if sooner {
            self.wake.notify_one();
        }
    }

    /// The jobs due by `now`, and when the next one is.
    fn take_due(&self, now: Instant) -> (Vec<JobId>, Option<Instant>) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let mut jobs = Vec::new();
        while due.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            jobs.extend(due.pop().map(|Reverse((_, job))| job));
        }
        (jobs, due.peek().map(|Reverse((at, _))| *at))
    }

    async fn run(self, topology: Topology, stop: CancellationToken) {
        loop {
            let (jobs, next) = self.take_due(Instant::now());
            futures::stream::iter(jobs)
                .for_each_concurrent(CONCURRENCY, |job| {
                    let topology = &topology;
                    async move {
                        if let Err(e) = topology.purge_results(&job).await {
                            tracing::debug!(%job, error = %e, "results not purged; they expire with the stream's max age");
                        }
                    }
                })
                .await;
            let sleep = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purger() -> Purger {
        Purger {
            due: Arc::default(),
            wake: Arc::default(),
            skipped: IntCounter::new("skipped", "skipped").unwrap(),
        }
    }

    #[test]
    fn jobs_come_due_in_order_and_not_before_their_time() {
        let p = purger();
        let now = Instant::now();
        let job = |s: &str| JobId::new(s).unwrap();
        p.schedule(job("b"), now + Duration::from_secs(2));
        p.schedule(job("a"), now + Duration::from_secs(1));
        let (jobs, next) = p.take_due(now);
        assert!(jobs.is_empty());
        assert_eq!(next, Some(now + Duration::from_secs(1)));
        let (jobs, next) = p.take_due(now + Duration::from_millis(1500));
        assert_eq!(jobs, vec![job("a")]);
        assert_eq!(next, Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn a_full_queue_skips_and_counts() {
        let p = purger();
        let at = Instant::now();
        for i in 0..MAX_WAITING + 3 {
            p.schedule(JobId::new(format!("j{i}")).unwrap(), at);
        }
        assert_eq!(p.skipped.get(), 3);
    }
}

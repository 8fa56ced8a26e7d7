//! The soak's offered load: echo jobs at a fixed rate, open loop (a job is
//! submitted on its tick whether or not earlier ones are answered), with a
//! bound on jobs outstanding so a stalled cluster cannot eat this process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ErrorKind, Job, JobId, Task};

/// What happened to the offered tasks so far.
#[derive(Default)]
pub(super) struct Tally {
    /// Tasks submitted.
    pub(super) offered: AtomicU64,
    /// Tasks answered ok.
    pub(super) answered: AtomicU64,
    /// Tasks answered `deadline_exceeded`: they did not run by the deadline.
    pub(super) late: AtomicU64,
    /// Tasks answered with another error.
    pub(super) failed: AtomicU64,
    /// Tasks of jobs that got no answer (or could not be submitted).
    pub(super) lost: AtomicU64,
    /// Tasks not offered because too many jobs were outstanding.
    pub(super) shed: AtomicU64,
    /// Each answered job's time from submit to answer, ms.
    pub(super) latencies_ms: Mutex<Vec<f64>>,
    /// Jobs submitted and not yet answered, oldest first.
    outstanding: Mutex<BTreeMap<u64, (JobId, Instant)>>,
    next_job: AtomicU64,
}

impl Tally {
    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Tasks the cluster has answered, whatever the outcome.
    pub(super) fn settled(&self) -> u64 {
        Self::get(&self.answered) + Self::get(&self.late) + Self::get(&self.failed)
    }

    /// The oldest job not answered yet, how long ago it was submitted, and
    /// how many are outstanding.
    pub(super) fn oldest_outstanding(&self) -> Option<(JobId, Duration, usize)> {
        let outstanding = lock(&self.outstanding);
        let (id, at) = outstanding.values().next()?;
        Some((id.clone(), at.elapsed(), outstanding.len()))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How to offer.
#[derive(Clone, Copy)]
pub(super) struct Offer {
    pub(super) rate: u32,
    pub(super) job_size: u32,
    pub(super) deadline: Duration,
    pub(super) max_outstanding: u32,
}

/// Offers jobs until `until` or until `stop`; returns the jobs still
/// running (to drain).
pub(super) async fn offer(
    client: Client,
    offer: Offer,
    until: Instant,
    stop: CancellationToken,
    tally: Arc<Tally>,
) -> JoinSet<()> {
    let every = Duration::from_secs_f64(f64::from(offer.job_size) / f64::from(offer.rate));
    let mut ticks = tokio::time::interval(every);
    let outstanding = Arc::new(Semaphore::new(offer.max_outstanding as usize));
    let mut running = JoinSet::new();
    while Instant::now() < until {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => break,
        }
        while running.try_join_next().is_some() {}
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            Tally::add(&tally.shed, u64::from(offer.job_size));
            continue;
        };
        let (client, tally) = (client.clone(), tally.clone());
        running.spawn(async move {
            one_job(&client, offer, &tally).await;
            drop(permit);
        });
    }
    running
}

/// Submits one job of echo tasks and counts its outcome.
async fn one_job(client: &Client, offer: Offer, tally: &Tally) {
    let n = u64::from(offer.job_size);
    let tasks = (0..offer.job_size)
        .map(|i| Task::new("echo", json!({"i": i})))
        .collect();
    let id = JobId::generate();
    let job = Job::new(tasks)
        .max_concurrency(offer.job_size)
        .deadline(offer.deadline)
        .id(id.clone());
    Tally::add(&tally.offered, n);
    let started = Instant::now();
    let seq = tally.next_job.fetch_add(1, Ordering::Relaxed);
    lock(&tally.outstanding).insert(seq, (id, started));
    // The client gives up at the deadline plus its answer grace (5 s);
    // this bound is only a backstop.
    let bound = offer.deadline + Duration::from_secs(10);
    let answer =
        tokio::time::timeout(bound, async { client.submit(job).await?.results().await }).await;
    lock(&tally.outstanding).remove(&seq);
    let Ok(Ok(results)) = answer else {
        Tally::add(&tally.lost, n);
        return;
    };
    for result in &results {
        match result.error().map(|e| e.kind.clone()) {
            None => Tally::add(&tally.answered, 1),
            Some(ErrorKind::DeadlineExceeded) => Tally::add(&tally.late, 1),
            Some(_) => Tally::add(&tally.failed, 1),
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    lock(&tally.latencies_ms).push(ms);
}

/// Waits up to `bound` for the jobs still running; what is left is lost.
pub(super) async fn drain(mut running: JoinSet<()>, bound: Duration, tally: &Tally, job_size: u32) {
    let all = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(bound, all).await.is_err() {
        let left = running.len() as u64;
        eprintln!(
            "toolfan bench load: {left} job(s) still unanswered after the drain; counted lost"
        );
        Tally::add(&tally.lost, left * u64::from(job_size));
        running.abort_all();
    }
}

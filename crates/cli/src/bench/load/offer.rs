//! The soak's offered load: echo jobs at a fixed rate, open loop (a job is
//! submitted on its tick whether or not earlier ones are answered), with a
//! bound on jobs outstanding so a stalled cluster cannot eat this process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use toolfan::{Client, ErrorKind, Job, Task};

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
}

impl Tally {
    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How to offer.
#[derive(Clone, Copy)]
pub(super) struct Offer {
    pub(super) rate: u32,
    pub(super) job_size: u32,
    pub(super) deadline: Duration,
    pub(super) max_outstanding: u32,
}

/// Offers jobs until `until`; returns the jobs still running (to drain).
pub(super) async fn offer(
    client: Client,
    offer: Offer,
    until: Instant,
    tally: Arc<Tally>,
) -> JoinSet<()> {
    let every = Duration::from_secs_f64(f64::from(offer.job_size) / f64::from(offer.rate));
    let mut ticks = tokio::time::interval(every);
    let outstanding = Arc::new(Semaphore::new(offer.max_outstanding as usize));
    let mut running = JoinSet::new();
    while Instant::now() < until {
        ticks.tick().await;
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
    let job = Job::new(tasks)
        .max_concurrency(offer.job_size)
        .deadline(offer.deadline);
    Tally::add(&tally.offered, n);
    let started = Instant::now();
    // The client gives up at the deadline plus its answer grace (5 s);
    // this bound is only a backstop.
    let bound = offer.deadline + Duration::from_secs(10);
    let answer =
        tokio::time::timeout(bound, async { client.submit(job).await?.results().await }).await;
    let Ok(Ok(results)) = answer else {
        Tally::add(&tally.lost, n);
        return;
    };
    for result in &results {
        match result.error().map(|e| e.kind) {
            None => Tally::add(&tally.answered, 1),
            Some(ErrorKind::DeadlineExceeded) => Tally::add(&tally.late, 1),
            Some(_) => Tally::add(&tally.failed, 1),
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tally
        .latencies_ms
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(ms);
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

//! A batch of jobs submitted at once and waited for within a bound; a job
//! not answered in time is named.

use std::time::{Duration, Instant};

use toolfan::{Client, ErrorKind, Job, JobId, TaskResult};

/// What a batch of jobs came back with.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// From the first submit to the last answer.
    pub(super) elapsed: Duration,
    /// Jobs answered.
    pub(super) jobs: usize,
    /// Tasks answered ok.
    pub(super) ok: u64,
    /// Tasks answered `deadline_exceeded`.
    pub(super) late: u64,
    /// Tasks answered with any other error.
    pub(super) failed: u64,
    /// Each job's time from its submit to its answer, ms.
    pub(super) latencies_ms: Vec<f64>,
}

impl Batch {
    /// Every task answered, ok or not.
    pub(super) fn tasks(&self) -> u64 {
        self.ok + self.late + self.failed
    }

    fn count(&mut self, results: &[TaskResult]) {
        for result in results {
            match result.error().map(|e| e.kind.clone()) {
                None => self.ok += 1,
                Some(ErrorKind::DeadlineExceeded) => self.late += 1,
                Some(_) => self.failed += 1,
            }
        }
    }
}

/// Submits every job at once (each on its own tokio task) and waits for all
/// of them, `timeout` at most.
pub(super) async fn at_once(
    client: &Client,
    jobs: Vec<Job>,
    timeout: Duration,
) -> anyhow::Result<Batch> {
    let mut ids = Vec::with_capacity(jobs.len());
    let mut running = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (i, job) in jobs.into_iter().enumerate() {
        let id = JobId::generate();
        ids.push(id.clone());
        let client = client.clone();
        running.spawn(async move {
            let submitted = Instant::now();
            let results = client.submit(job.id(id)).await?.results().await;
            anyhow::Ok((i, submitted.elapsed(), results))
        });
    }
    let mut answered = vec![false; ids.len()];
    let mut batch = Batch::default();
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let joined = match tokio::time::timeout_at(until, running.join_next()).await {
            Ok(Some(joined)) => joined,
            Ok(None) => break,
            Err(_) => anyhow::bail!(stalled(&ids, &answered, timeout, &batch)),
        };
        let (i, took, results) = joined??;
        let results = results.map_err(|e| anyhow::anyhow!("job {} (#{i}): {e}", ids[i]))?;
        answered[i] = true;
        batch.jobs += 1;
        batch.count(&results);
        batch.latencies_ms.push(took.as_secs_f64() * 1000.0);
    }
    batch.elapsed = started.elapsed();
    Ok(batch)
}

/// Which jobs were not answered in time, naming the first few.
fn stalled(ids: &[JobId], answered: &[bool], timeout: Duration, batch: &Batch) -> String {
    let missing: Vec<usize> = (0..ids.len()).filter(|&i| !answered[i]).collect();
    let named: Vec<String> = missing
        .iter()
        .take(3)
        .map(|&i| format!("{} (#{i})", ids[i]))
        .collect();
    format!(
        "stalled: {} of {} job(s) not answered within {} s, e.g. job {}; {} job(s) and {} task(s) answered before that",
        missing.len(),
        ids.len(),
        timeout.as_secs(),
        named.join(", "),
        batch.jobs,
        batch.tasks()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_names_the_first_jobs_not_answered() {
        let ids: Vec<JobId> = (0..5).map(|_| JobId::generate()).collect();
        let answered = [true, false, true, false, false];
        let batch = Batch {
            jobs: 2,
            ok: 7,
            late: 1,
            ..Batch::default()
        };
        let text = stalled(&ids, &answered, Duration::from_secs(60), &batch);
        assert!(text.starts_with("stalled: 3 of 5 job(s) not answered within 60 s"));
        assert!(text.contains(&format!(
            "{} (#1), {} (#3), {} (#4)",
            ids[1], ids[3], ids[4]
        )));
        assert!(text.ends_with("2 job(s) and 8 task(s) answered before that"));
    }
}

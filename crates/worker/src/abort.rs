//! Aborting a job's tasks on this worker: a coordinator that ends a job
//! early (cancel, policy, deadline, caller gone) publishes
//! `toolfan.abort.<job>`; running tasks of that job are cancelled and its
//! queued tasks are skipped when they arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{JobId, Subjects};

/// How long an aborted job is remembered, to skip its tasks still queued.
const REMEMBER: Duration = Duration::from_secs(600);

/// The jobs with tasks on this worker, and the jobs aborted lately.
#[derive(Default)]
pub(crate) struct Aborts {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<JobId, (CancellationToken, usize)>,
    aborted: HashMap<JobId, Instant>,
}

/// A task's hold on its job's cancellation token.
pub(crate) struct AbortGuard {
    aborts: Arc<Aborts>,
    job: JobId,
    token: CancellationToken,
}

impl AbortGuard {
    /// Cancelled when the job is aborted.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let mut inner = self.aborts.inner.lock().expect("aborts lock");
        if let Some((_, count)) = inner.running.get_mut(&self.job) {
            *count -= 1;
            if *count == 0 {
                inner.running.remove(&self.job);
            }
        }
    }
}

impl Aborts {
    /// Registers a task of `job`; `None` if the job was aborted (skip the task).
    pub(crate) fn register(self: &Arc<Self>, job: &JobId) -> Option<AbortGuard> {
        let mut inner = self.inner.lock().expect("aborts lock");
        if inner.aborted.contains_key(job) {
            return None;
        }
        let (token, count) = inner
            .running
            .entry(job.clone())
            .or_insert_with(|| (CancellationToken::new(), 0));
        *count += 1;
        Some(AbortGuard {
            aborts: self.clone(),
            job: job.clone(),
            token: token.clone(),
        })
    }

    /// Aborts `job`: its running tasks are cancelled, its queued ones skipped.
    pub(crate) fn abort(&self, job: JobId) {
        let mut inner = self.inner.lock().expect("aborts lock");
        let now = Instant::now();
        inner
            .aborted
            .retain(|_, at| now.duration_since(*at) < REMEMBER);
        if let Some((token, _)) = inner.running.get(&job) {
            token.cancel();
        }
        inner.aborted.insert(job, now);
    }
}

/// Follows `toolfan.abort.*` into `aborts` until `shutdown`.
pub(crate) async fn follow(
    client: async_nats::Client,
    subjects: Subjects,
    aborts: Arc<Aborts>,
    shutdown: CancellationToken,
) {
    let mut messages = match client.subscribe(subjects.aborts_wildcard()).await {
        Ok(messages) => messages,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow aborts; cancelled jobs' tasks run to the end");
            return;
        }
    };
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => match subjects.job_of_abort_subject(&message.subject) {
                    Ok(job) => {
                        tracing::debug!(%job, "aborting the job's tasks");
                        aborts.abort(job);
                    }
                    Err(e) => tracing::warn!(subject = %message.subject, error = %e, "ignoring a bad abort"),
                },
                None => return,
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abort_cancels_running_tasks_and_refuses_later_ones() {
        let aborts = Arc::new(Aborts::default());
        let job = JobId::new("j1").unwrap();
        let other = JobId::new("j2").unwrap();
        let running = aborts.register(&job).unwrap();
        let unrelated = aborts.register(&other).unwrap();
        aborts.abort(job.clone());
        assert!(running.token().is_cancelled());
        assert!(!unrelated.token().is_cancelled());
        assert!(
            aborts.register(&job).is_none(),
            "a queued task of an aborted job is skipped"
        );
        drop(running);
        assert!(!aborts.inner.lock().unwrap().running.contains_key(&job));
    }
}

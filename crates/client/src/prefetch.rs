//! Speculative prefetch: start calls the model will probably confirm, and
//! let the confirmed ones take over the running call or its stored result.
//!
//! `client.prefetch(tasks)` submits the tasks as cached calls marked
//! `prefetch_ttl_ms` and returns once JetStream has stored the job. Workers
//! run them in a share of their slots (confirmed calls keep the rest). A
//! later job from this client with an equal call (same tool and args, or
//! the same idempotency key) is marked cached too, so it gets the stored
//! result, or joins the call while it runs. A prefetched call that nobody
//! has joined when its TTL passes is cancelled; one that finished is simply
//! kept for its cache TTL.

use std::time::{Duration, Instant};

use toolfan_protocol::{Job, JobId, Task, TraceParent, DEFAULT_DEADLINE_MS};

use crate::client::check;
use crate::{Client, ClientError};

/// How long a prefetched call waits to be claimed unless told otherwise.
pub const DEFAULT_PREFETCH_TTL: Duration = Duration::from_secs(30);

impl Client {
    /// Starts `tasks` speculatively and returns at once (once JetStream has
    /// the job); see the [module docs](crate::prefetch). Calls that are not
    /// cached are made cached (keyed by tool and args). Unclaimed calls are
    /// cancelled after [`DEFAULT_PREFETCH_TTL`].
    pub async fn prefetch(&self, tasks: Vec<Task>) -> Result<JobId, ClientError> {
        self.prefetch_for(tasks, DEFAULT_PREFETCH_TTL).await
    }

    /// [`prefetch`](Self::prefetch) with calls cancelled if nobody claims
    /// them within `ttl` of their dispatch.
    pub async fn prefetch_for(
        &self,
        tasks: Vec<Task>,
        ttl: Duration,
    ) -> Result<JobId, ClientError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let tasks: Vec<Task> = tasks
            .into_iter()
            .map(|mut task| {
                task.cache = task.cache || task.idempotency_key.is_none();
                task.prefetch_ttl_ms = Some(ttl_ms);
                task
            })
            .collect();
        // The job lives for the claim window plus the longest call; nobody
        // waits for its answer, and no keepalives are sent.
        let longest = tasks
            .iter()
            .map(|t| t.timeout_ms.unwrap_or(DEFAULT_DEADLINE_MS))
            .max()
            .unwrap_or(0);
        let mut job =
            Job::new(tasks).deadline(Duration::from_millis(ttl_ms.saturating_add(longest)));
        let id = JobId::generate();
        job.id = Some(id.clone());
        check(&job)?;
        self.prefetched.remember(&job.tasks, Instant::now() + ttl);
        // In the caller's trace when spans are exported.
        let trace = toolfan_transport::traceparent_of(&tracing::Span::current())
            .unwrap_or_else(TraceParent::generate);
        self.publish_job(&job, &id, trace).await?;
        Ok(id)
    }
}

//! Connecting and submitting jobs.

use async_nats::connection::State;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use std::time::Duration;

use toolfan_protocol::{
    encode, job_msg_id, CallerId, Job, JobId, JobLimits, Subjects, Task, TaskResult, TraceParent,
};
use toolfan_transport::publish::{self, store, stored_message};
use toolfan_transport::{NatsAuth, Topology, TopologyOptions};

use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::handle::{Control, Submitted};
use crate::prefetched::Prefetched;
use crate::{ClientError, JobHandle};

/// Where and as whom a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// NATS server URL; several, comma-separated, for a cluster.
    pub nats_url: String,
    /// NATS credentials and TLS. The connection's reply inboxes are
    /// `_INBOX_<caller>` unless set here, so permissions can keep each
    /// caller to its own.
    pub auth: NatsAuth,
    /// Create the streams at connect if they do not exist. A caller whose
    /// NATS permissions stop at its own subjects sets this to false (the
    /// coordinators create them).
    pub create_streams: bool,
    /// The caller's identity: jobs go to `toolfan.job.<caller>`, replies come
    /// on `toolfan.reply.<caller>.<job>`.
    pub caller: CallerId,
    /// Subject prefix (default `toolfan`).
    pub subjects: Subjects,
    /// How long past a job's deadline to wait for the coordinator's answer
    /// before giving up with [`ClientError::NoAnswer`].
    pub answer_grace: Duration,
    /// While a [`JobHandle`] lives it sends keepalives; if they stop (the
    /// handle was dropped, the process died) for this long, the coordinator
    /// cancels the job. `None` lets jobs run on without their caller.
    pub caller_grace: Option<Duration>,
}

impl ClientOptions {
    /// Connects to `nats_url` as caller `default`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self {
            nats_url: nats_url.into(),
            auth: NatsAuth::default(),
            create_streams: true,
            caller: CallerId::new("default").expect("a valid caller id"),
            subjects: Subjects::default(),
            answer_grace: Duration::from_secs(5),
            caller_grace: Some(Duration::from_secs(10)),
        }
    }

    /// Sets the caller id; fails if it is not a valid subject token.
    pub fn caller(mut self, caller: &str) -> Result<Self, ClientError> {
        self.caller = CallerId::new(caller).map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(self)
    }
}

/// A connection to a toolfan cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) nats: async_nats::Client,
    topology: Topology,
    pub(crate) options: ClientOptions,
    pub(crate) prefetched: std::sync::Arc<Prefetched>,
}

impl Client {
    /// Connects and (unless `create_streams` is off) makes sure the streams
    /// exist, so jobs submitted before any coordinator starts wait for one
    /// instead of being refused.
    pub async fn connect(options: ClientOptions) -> Result<Self, ClientError> {
        let mut auth = options.auth.clone();
        auth.inbox_prefix
            .get_or_insert_with(|| format!("_INBOX_{}", options.caller));
        let name = format!("toolfan-client {}", options.caller);
        let nats =
            toolfan_transport::connect_observed(&options.nats_url, &name, &auth, None).await?;
        let topology = Topology::new(
            nats.clone(),
            options.subjects.clone(),
            TopologyOptions::default(),
        );
        if options.create_streams {
            topology.ensure_streams().await?;
        }
        Ok(Self {
            nats,
            topology,
            options,
            prefetched: Default::default(),
        })
    }

    /// Sends what is buffered and closes the connection (for every clone
    /// of this client). Jobs already submitted run on; their handles stop
    /// hearing about them.
    pub async fn close(self) -> Result<(), ClientError> {
        self.nats
            .drain()
            .await
            .map_err(|e| ClientError::transport("closing the connection", e))
    }

    /// Runs `tasks` as one job with the default window and deadline and
    /// returns one result per task, in input order.
    /// It runs under a `fanout` span, the parent of the job's spans.
    pub async fn fanout(&self, tasks: Vec<Task>) -> Result<Vec<TaskResult>, ClientError> {
        let span = tracing::info_span!("fanout", tasks = tasks.len() as i64);
        async { self.submit(Job::new(tasks)).await?.results().await }
            .instrument(span)
            .await
    }

    /// Submits `job` and returns a handle to follow it. The job is durable
    /// once this returns: JetStream has stored it. It runs in the trace of
    /// the caller's current span when spans are exported over OTLP (its
    /// `submit` span is a child of it), else in a new trace.
    pub async fn submit(&self, job: Job) -> Result<JobHandle, ClientError> {
        self.submit_spanned(job, None).await
    }

    /// Submits `job` as part of the caller's trace: the coordinator's job
    /// span and every worker's task span carry `parent`'s trace id (and
    /// this client's `submit` span is a child of `parent`).
    pub async fn submit_in_trace(
        &self,
        job: Job,
        parent: TraceParent,
    ) -> Result<JobHandle, ClientError> {
        self.submit_spanned(job, Some(parent)).await
    }

    /// Submits `job` under a `submit` span whose context (when spans are
    /// exported) is the job's `traceparent`; else `parent` or a new trace.
    async fn submit_spanned(
        &self,
        job: Job,
        parent: Option<TraceParent>,
    ) -> Result<JobHandle, ClientError> {
        let span = tracing::info_span!(
            "submit",
            tasks = job.tasks.len() as i64,
            job = tracing::field::Empty
        );
        if let Some(parent) = parent {
            toolfan_transport::adopt_parent(&span, parent);
        }
        let trace = toolfan_transport::traceparent_of(&span)
            .or(parent)
            .unwrap_or_else(TraceParent::generate);
        self.submit_traced(job, trace).instrument(span).await
    }

    /// Submits `job` with `parent` as its `traceparent`.
    async fn submit_traced(
        &self,
        mut job: Job,
        parent: TraceParent,
    ) -> Result<JobHandle, ClientError> {
        // Calls this client prefetched share their results.
        self.prefetched.claim(&mut job.tasks);
        check(&job)?;
        let id = job.id.get_or_insert_with(JobId::generate).clone();
        tracing::Span::current().record("job", tracing::field::display(&id));
        if job.client_grace_ms.is_none() {
            job.client_grace_ms = self.options.caller_grace.map(|g| g.as_millis() as u64);
        }
        let subjects = &self.options.subjects;
        // Listen before sending so no event can be missed.
        let events = self
            .nats
            .subscribe(subjects.reply(&self.options.caller, &id))
            .await
            .map_err(|e| ClientError::submit(&id, e))?;
        let deadline = self.publish_job(&job, &id, parent).await?;
        let wait = deadline + self.options.answer_grace;
        let keepalive = job.client_grace_ms.map(|grace_ms| {
            let every = Duration::from_millis(grace_ms / 3).max(Duration::from_millis(30));
            AbortOnDropHandle::new(tokio::spawn(keep_alive(
                self.nats.clone(),
                subjects.alive(&self.options.caller, &id),
                every,
            )))
        });
        let control = Control {
            nats: self.nats.clone(),
            cancel_subject: subjects.cancel(&self.options.caller, &id),
            cancelled: Default::default(),
        };
        Ok(JobHandle::new(Submitted {
            total: job.tasks.len(),
            id,
            events,
            wait,
            topology: self.topology.clone(),
            control,
            keepalive,
            trace: parent,
        }))
    }
}

impl Client {
    /// Publishes `job` and waits until JetStream has stored it; returns how
    /// long the answer may take from now at most. A job sent again
    /// (JetStream did not answer) carries what is left of its deadline, so
    /// the caller's answer still comes within the deadline of the submit.
    pub(crate) async fn publish_job(
        &self,
        job: &Job,
        id: &JobId,
        parent: TraceParent,
    ) -> Result<Duration, ClientError> {
        let subject = self.options.subjects.job(&self.options.caller);
        let message = |job: &Job| stored_message(encode(job).into(), job_msg_id(id), Some(parent));
        // The job id is its `Nats-Msg-Id`: sending it again is safe.
        let patience = SUBMIT_PATIENCE.min(job.deadline_duration() / 2);
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        let mut sent = job.clone();
        loop {
            // Not while disconnected: a copy buffered until the reconnect
            // would be stored late, with the whole deadline.
            let stored = if self.nats.connection_state() != State::Connected {
                Err(PublishError::new(PublishErrorKind::BrokenPipe))
            } else {
                store(&self.topology.js, subject.clone(), message(&sent)).await
            };
            let e = match stored {
                // (A resend may have been dropped as a duplicate of an
                // earlier copy, stored later than sent, with the longer
                // deadline: the answer may take the whole of it from now.)
                Ok(_) => return Ok(job.deadline_duration()),
                Err(e) => e,
            };
            // A cluster electing a stream leader (a node just lost) answers
            // late or not at all for a few seconds: wait that out.
            if !publish::transient(e.kind()) || started.elapsed() + wait > patience {
                return Err(ClientError::submit(id, e));
            }
            tracing::debug!(job = %id, error = %e, "job not stored yet; sending it again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
            let spent = started.elapsed().as_millis() as u64;
            sent.deadline_ms = job.deadline_ms.saturating_sub(spent);
        }
    }
}

/// How long a submit keeps sending a job JetStream does not store for a
/// passing reason (at most half the job's deadline).
const SUBMIT_PATIENCE: Duration = Duration::from_secs(30);

/// The job's structural checks; the cluster's own size limits are the
/// coordinator's to apply.
pub(crate) fn check(job: &Job) -> Result<(), ClientError> {
    let structural = JobLimits {
        max_tasks: usize::MAX,
        max_job_bytes: usize::MAX,
        ..JobLimits::default()
    };
    job.validate(&structural)
        .map_err(|e| ClientError::Invalid(e.to_string()))
}

/// Tells the coordinator every `every` that the caller still wants the job.
async fn keep_alive(nats: async_nats::Client, subject: String, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        if let Err(e) = nats.publish(subject.clone(), "".into()).await {
            tracing::debug!(error = %e, "keepalive not sent");
        }
    }
}

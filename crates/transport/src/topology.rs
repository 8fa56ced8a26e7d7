//! The streams and consumers toolfan uses, declared in one place.
//!
//! | stream | subjects | retention |
//! |---|---|---|
//! | `TOOLFAN_JOBS` | `toolfan.job.>` | work queue |
//! | `TOOLFAN_TASKS` | `toolfan.task.>` | work queue |
//! | `TOOLFAN_RESULTS` | `toolfan.result.>` | limits, max age |
//!
//! Every process calls [`Topology::ensure_streams`] at start; creation is
//! idempotent, so the first one to start creates them.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use toolfan_protocol::{Subjects, ToolName};

use crate::TransportError;

/// Settings of the streams and consumers.
#[derive(Debug, Clone)]
pub struct TopologyOptions {
    /// How long JetStream remembers a `Nats-Msg-Id` on the jobs and tasks
    /// streams to drop a duplicate publish (a resubmitted job, a task
    /// dispatched again by a coordinator that took its job over).
    pub duplicate_window: Duration,
    /// The same for the results stream. Its ids are `<job>.<index>.<attempt>`
    /// (a new attempt has a new id anyway) or a coordinator's verdict, so a
    /// short window does; nats-server keeps every id of the window in
    /// memory, and the results stream takes as many as the tasks stream.
    pub results_duplicate_window: Duration,
    /// How long task outcomes are kept in the results stream at most
    /// (coordinators purge a job's outcomes sooner, once its caller is answered).
    pub results_max_age: Duration,
    /// Most bytes the results stream holds. Coordinators keep it to what
    /// live and recently answered jobs need; at the bound the oldest
    /// outcomes go.
    pub results_max_bytes: i64,
    /// Most bytes the jobs stream and the tasks stream each hold; at the
    /// bound new jobs (or dispatches) are refused with an error and retried.
    pub queue_max_bytes: i64,
    /// Most JetStream publishes this process keeps awaiting their acks;
    /// past it a publish waits for an ack (async-nats' own bound, made explicit).
    pub max_publishes_in_flight: usize,
    /// How long a delivered task or job may go without an ack or progress
    /// signal before JetStream delivers it again (how soon a dead worker's
    /// or coordinator's work moves on). Used when a consumer is created.
    pub ack_wait: Duration,
    /// Set the consumers' ack wait to `ack_wait` even where they exist
    /// already with another (an operator's explicit choice).
    pub enforce_ack_wait: bool,
    /// Fleet-wide cap of a tool's tasks delivered and not yet acked.
    pub tool_max_ack_pending: i64,
    /// Copies of each stream in a NATS cluster (1 on a single server, 3 on a
    /// three-node cluster to survive the loss of a node). Used when a stream
    /// is created.
    pub replicas: usize,
    /// How long a JetStream request or publish waits for its reply before
    /// it fails and is retried. A publish sent to a stream leader that
    /// just died is never answered: this is how long it costs.
    pub request_timeout: Duration,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        Self {
            duplicate_window: Duration::from_secs(120),
            results_duplicate_window: Duration::from_secs(30),
            results_max_age: Duration::from_secs(3600),
            results_max_bytes: 1 << 30,
            queue_max_bytes: 512 << 20,
            max_publishes_in_flight: 4096,
            ack_wait: Duration::from_secs(10),
            enforce_ack_wait: false,
            tool_max_ack_pending: 10_000,
            replicas: 1,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// How long a process keeps trying to create or find the streams while
/// JetStream does not answer.
const STREAMS_PATIENCE: Duration = Duration::from_secs(30);

/// Whether a failure to create a stream may pass on its own: a timeout,
/// no JetStream responder, or a cluster without a leader or quorum yet.
fn transient(kind: jetstream::context::CreateStreamErrorKind) -> bool {
    use async_nats::jetstream::{context::CreateStreamErrorKind as Kind, ErrorCode};
    match kind {
        Kind::TimedOut | Kind::JetStreamUnavailable => true,
        Kind::JetStream(e) => [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NO_PEERS,
        ]
        .contains(&e.error_code()),
        _ => false,
    }
}

/// A JetStream context with toolfan's names.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// Subject and stream names.
    pub subjects: Subjects,
    /// Stream and consumer settings.
    pub options: TopologyOptions,
}

impl Topology {
    /// Wraps `client` with toolfan's names under `subjects`.
    pub fn new(client: async_nats::Client, subjects: Subjects, options: TopologyOptions) -> Self {
        let js = jetstream::context::ContextBuilder::new()
            .max_ack_inflight(options.max_publishes_in_flight.max(1))
            .backpressure_on_inflight(true)
            .timeout(options.request_timeout)
            .build(client);
        Self {
            js,
            subjects,
            options,
        }
    }

    /// Creates the jobs, tasks and results streams where they do not exist.
    pub async fn ensure_streams(&self) -> Result<(), TransportError> {
        let s = &self.subjects;
        let work_queue = |name: String, subject: String| stream::Config {
            name,
            subjects: vec![subject],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            max_bytes: self.options.queue_max_bytes,
            discard: stream::DiscardPolicy::New,
            duplicate_window: self.options.duplicate_window,
            num_replicas: self.options.replicas,
            ..Default::default()
        };
        let results = stream::Config {
            name: s.results_stream(),
            subjects: vec![s.results_wildcard()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: self.options.results_max_age,
            max_bytes: self.options.results_max_bytes,
            // Coordinators purge what no job needs; at the byte bound the
            // oldest go (a long-lived job's first outcomes) rather than
            // every new result being refused and the fleet stalling.
            discard: stream::DiscardPolicy::Old,
            duplicate_window: self.options.results_duplicate_window,
            num_replicas: self.options.replicas,
            ..Default::default()
        };
        for config in [
            work_queue(s.jobs_stream(), s.jobs_wildcard()),
            work_queue(s.tasks_stream(), s.tasks_wildcard()),
            results,
        ] {
            self.ensure_stream(config).await?;
        }
        Ok(())
    }

    /// Creates one stream unless it exists. Two processes creating the same
    /// stream at once can make the server refuse the loser with "subjects
    /// overlap"; the stream then exists, which is all that was wanted.
    ///
    /// A stream made by an older version without a byte bound gets this
    /// process's bound (storage must stay bounded); any other setting an
    /// operator chose is left as it is.
    async fn ensure_stream(&self, config: stream::Config) -> Result<(), TransportError> {
        let name = config.name.clone();
        let started = std::time::Instant::now();
        let stream = loop {
            let e = match self.js.get_or_create_stream(config.clone()).await {
                Ok(stream) => break stream,
                Err(e) => e,
            };
            // A cluster electing leaders (a node just lost) answers late or
            // not at all for a few seconds: wait that out.
            if transient(e.kind()) && started.elapsed() < STREAMS_PATIENCE {
                tracing::warn!(stream = %name, error = %e, "JetStream not answering yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            match self.js.get_stream(&name).await {
                Ok(stream) => break stream,
                Err(_) => {
                    return Err(TransportError::jetstream(
                        format!("creating stream {name}"),
                        e,
                    ))
                }
            }
        };
        let current = stream.cached_info().config.clone();
        if current.max_bytes < 0 && config.max_bytes > 0 {
            let bounded = stream::Config {
                max_bytes: config.max_bytes,
                discard: config.discard,
                ..current
            };
            if let Err(e) = self.js.update_stream(bounded).await {
                tracing::warn!(stream = %name, error = %e, "could not bound the stream's size");
            }
        }
        Ok(())
    }

    /// The durable pull consumer all coordinators share on the jobs stream.
    pub async fn coordinators_consumer(
        &self,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, TransportError> {
        let name = self.subjects.coordinators_consumer();
        let config = consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.options.ack_wait,
            max_ack_pending: 100_000,
            ..Default::default()
        };
        self.pull_consumer(&self.subjects.jobs_stream(), name, config, false)
            .await
    }

    /// The durable pull consumer every worker serving `tool` shares. With
    /// `max_in_flight`, its `max_ack_pending` (the fleet-wide cap on the
    /// tool's tasks in flight) is set to that, updating an existing consumer.
    pub async fn tool_consumer(
        &self,
        tool: &ToolName,
        max_in_flight: Option<i64>,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, TransportError> {
        let name = self.subjects.tool_consumer(tool);
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: self.subjects.task(tool),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.options.ack_wait,
            max_ack_pending: max_in_flight.unwrap_or(self.options.tool_max_ack_pending),
            ..Default::default()
        };
        self.pull_consumer(
            &self.subjects.tasks_stream(),
            &name,
            config,
            max_in_flight.is_some(),
        )
        .await
    }

    /// Gets or creates a durable pull consumer. An existing one is updated
    /// where its ack wait (if enforced) or, with `enforce_max_ack_pending`,
    /// its `max_ack_pending` differs from `config`.
    async fn pull_consumer(
        &self,
        stream: &str,
        name: &str,
        config: consumer::pull::Config,
        enforce_max_ack_pending: bool,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, TransportError> {
        let what = || format!("creating consumer {name} on {stream}");
        let stream = self
            .js
            .get_stream_no_info(stream)
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        let mut consumer = stream
            .get_or_create_consumer(name, config.clone())
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        let current = &consumer.cached_info().config;
        let stale = (self.options.enforce_ack_wait && current.ack_wait != config.ack_wait)
            || (enforce_max_ack_pending && current.max_ack_pending != config.max_ack_pending);
        if stale {
            consumer = stream
                .create_consumer(config)
                .await
                .map_err(|e| TransportError::jetstream(format!("updating consumer {name}"), e))?;
        }
        Ok(consumer)
    }
}

/// Size of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Its name.
    pub name: String,
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Its byte bound (-1: none).
    pub max_bytes: i64,
    /// Consumers on it, durable and ephemeral (the coordinators' results
    /// followers are one each, whatever the number of live jobs).
    pub consumers: usize,
}

/// Depths of one durable consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// The stream it reads.
    pub stream: String,
    /// Its name (`coordinators`, `tool_<tool>`).
    pub name: String,
    /// Messages waiting to be delivered (queued jobs or tasks).
    pub pending: u64,
    /// Delivered and not yet acked (in flight).
    pub ack_pending: usize,
    /// Delivered more than once.
    pub redelivered: usize,
    /// Pull requests waiting (idle workers or coordinators).
    pub waiting: usize,
}

impl Topology {
    /// The size of each stream and the depths of every durable consumer on
    /// the jobs and tasks streams.
    pub async fn stats(&self) -> Result<(Vec<StreamStats>, Vec<ConsumerStats>), TransportError> {
        use futures::TryStreamExt;
        let s = &self.subjects;
        let mut streams = Vec::new();
        let mut consumers = Vec::new();
        for name in [s.jobs_stream(), s.tasks_stream(), s.results_stream()] {
            let what = || format!("reading stream {name}");
            // `get_stream` fetches the stream's info: no second request.
            let stream = self
                .js
                .get_stream(&name)
                .await
                .map_err(|e| TransportError::jetstream(what(), e))?;
            let info = stream.cached_info();
            streams.push(StreamStats {
                name: name.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                max_bytes: info.config.max_bytes,
                consumers: info.state.consumer_count,
            });
            if name == s.results_stream() {
                continue;
            }
            let infos: Vec<consumer::Info> = stream
                .consumers()
                .try_collect()
                .await
                .map_err(|e| TransportError::jetstream(what(), e))?;
            for info in infos
                .into_iter()
                .filter(|i| i.config.durable_name.is_some())
            {
                consumers.push(ConsumerStats {
                    stream: name.clone(),
                    name: info.name,
                    pending: info.num_pending,
                    ack_pending: info.num_ack_pending,
                    redelivered: info.num_redelivered,
                    waiting: info.num_waiting,
                });
            }
        }
        Ok((streams, consumers))
    }
}

//! [`LocalFleet`]: nats-server, redis-server (if asked for), a coordinator
//! and a worker serving fake tools, all in the test process.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use toolfan_coordinator::CoordinatorOptions;
use toolfan_testkit::{NatsServer, RedisServer};
use toolfan_worker::{
    CacheOptions, LimiterOptions, TaskContext, Tool, ToolError, Worker, WorkerBuilder,
};

use super::error::TestingError;
use super::recorder::Recorder;
use crate::{Client, ClientOptions};

/// The id of a fleet's worker.
const WORKER_ID: &str = "local-fleet-worker";

/// How long [`LocalFleetBuilder::start`] waits for the worker by default.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// What changes the worker's builder before it is built.
type ConfigureWorker = Box<dyn FnOnce(WorkerBuilder) -> WorkerBuilder + Send>;

/// A whole toolfan cluster inside the test process: a `nats-server -js`
/// (and a `redis-server` if [asked for](LocalFleetBuilder::redis)) on free
/// loopback ports, a coordinator, and one worker serving the tools given
/// to the [builder](LocalFleet::builder), each call recorded.
///
/// Everything stops when it is dropped: the coordinator and worker are
/// cancelled and the servers killed. [`stop`](Self::stop) also waits for
/// the coordinator and worker to finish.
pub struct LocalFleet {
    // Fields drop in order: the client before the servers.
    client: Client,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    recorders: BTreeMap<String, Recorder>,
    redis: Option<RedisServer>,
    nats: NatsServer,
}

impl std::fmt::Debug for LocalFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFleet")
            .field("nats_url", &self.nats.url())
            .field("redis_url", &self.redis_url())
            .field("tools", &self.recorders.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalFleet {
    /// A fleet serving one tool, `echo` (a [`FakeTool`](super::FakeTool)
    /// that returns its arguments), without Redis.
    pub async fn start() -> Result<Self, TestingError> {
        Self::builder()
            .tool("echo", super::FakeTool::new())
            .start()
            .await
    }

    /// Starts describing a fleet.
    pub fn builder() -> LocalFleetBuilder {
        LocalFleetBuilder::default()
    }

    /// A client connected to the fleet.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The recorder of tool `name`, if the fleet serves it.
    pub fn recorder(&self, name: &str) -> Option<Recorder> {
        self.recorders.get(name).cloned()
    }

    /// The nats-server's URL, for more clients or workers of your own.
    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// The redis-server's URL, if the fleet has one.
    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(RedisServer::url)
    }

    /// The id of the fleet's worker, as [`Client::workers`] lists it.
    pub fn worker_id(&self) -> &str {
        WORKER_ID
    }

    /// Stops the coordinator and worker, waiting up to 5 s for them, then
    /// the servers.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(tasks)).await;
    }
}

impl Drop for LocalFleet {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Describes a [`LocalFleet`]: its tools, its worker, whether it has Redis.
#[derive(Default)]
pub struct LocalFleetBuilder {
    tools: Vec<(String, Arc<dyn Tool>)>,
    concurrency: Option<u32>,
    redis: bool,
    ready_within: Option<Duration>,
    configure: Option<ConfigureWorker>,
}

impl std::fmt::Debug for LocalFleetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tools: Vec<&str> = self.tools.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("LocalFleetBuilder")
            .field("tools", &tools)
            .field("concurrency", &self.concurrency)
            .field("redis", &self.redis)
            .field("ready_within", &self.ready_within)
            .finish_non_exhaustive()
    }
}

impl LocalFleetBuilder {
    /// Serves `tool` (a [`FakeTool`](super::FakeTool), or any
    /// [`Tool`]) under `name`.
    pub fn tool(mut self, name: impl Into<String>, tool: impl Tool) -> Self {
        self.tools.push((name.into(), Arc::new(tool)));
        self
    }

    /// Serves the async closure `tool` under `name`, as
    /// [`WorkerBuilder::tool`] does; its calls are recorded too.
    pub fn tool_fn<F, Fut>(self, name: impl Into<String>, tool: F) -> Self
    where
        F: Fn(TaskContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        self.tool(name, tool)
    }

    /// Lets the worker run at most `n` tasks at once (default 64).
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// Also starts a `redis-server`, and gives the worker fleet-wide limits
    /// and the result cache in it.
    pub fn redis(mut self) -> Self {
        self.redis = true;
        self
    }

    /// Waits at most `within` for the worker to be ready (default 15 s).
    pub fn ready_within(mut self, within: Duration) -> Self {
        self.ready_within = Some(within);
        self
    }

    /// Changes the worker's builder before it is built: limit keys,
    /// descriptions, retry timings. Its URLs, id and tools are set already.
    pub fn configure_worker(
        mut self,
        configure: impl FnOnce(WorkerBuilder) -> WorkerBuilder + Send + 'static,
    ) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Starts the fleet and waits until its worker has announced itself.
    ///
    /// Starting the servers blocks the calling thread briefly (until they
    /// accept connections).
    pub async fn start(self) -> Result<LocalFleet, TestingError> {
        let (nats, redis) = servers(self.redis)?;
        let within = self.ready_within.unwrap_or(READY_WITHIN);
        let (worker, recorders) = self.worker(&nats.url(), redis.as_ref())?;
        let shutdown = CancellationToken::new();
        let nats_url = nats.url();
        let options = CoordinatorOptions {
            nats_url: nats_url.clone(),
            ..CoordinatorOptions::default()
        };
        let mut coordinator = tokio::spawn(toolfan_coordinator::run(options, shutdown.clone()));
        let mut worker = tokio::spawn(worker.run(shutdown.clone()));
        let client = tokio::select! {
            ready = ready(&nats_url, within) => ready,
            result = &mut worker => Err(ended("worker", result, TestingError::Worker)),
            result = &mut coordinator => {
                Err(ended("coordinator", result, TestingError::Coordinator))
            }
        };
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                shutdown.cancel();
                return Err(e);
            }
        };
        Ok(LocalFleet {
            client,
            tasks: vec![
                log_end("worker", worker),
                log_end("coordinator", coordinator),
            ],
            shutdown,
            recorders,
            redis,
            nats,
        })
    }

    /// The worker, built against `nats_url` (and `redis`), serving every
    /// tool wrapped in its recorder, and the recorders by tool.
    fn worker(
        self,
        nats_url: &str,
        redis: Option<&RedisServer>,
    ) -> Result<(Worker, BTreeMap<String, Recorder>), TestingError> {
        let mut builder = Worker::builder().nats_url(nats_url).id(WORKER_ID);
        if let Some(n) = self.concurrency {
            builder = builder.concurrency(n);
        }
        if let Some(redis) = redis {
            builder = builder
                .limits(LimiterOptions::new(redis.url()))
                .cache(CacheOptions::new(redis.url()));
        }
        let mut recorders = BTreeMap::new();
        for (name, tool) in self.tools {
            let recorder = Recorder::default();
            if recorders.insert(name.clone(), recorder.clone()).is_some() {
                return Err(TestingError::DuplicateTool(name));
            }
            builder = builder.boxed_tool(name, recorder.around(tool));
        }
        if let Some(configure) = self.configure {
            builder = configure(builder);
        }
        let worker = builder.build().map_err(TestingError::Worker)?;
        Ok((worker, recorders))
    }
}

/// nats-server, and redis-server if `redis`.
fn servers(redis: bool) -> Result<(NatsServer, Option<RedisServer>), TestingError> {
    let nats = NatsServer::start().map_err(|source| TestingError::Server {
        what: "nats-server",
        source,
    })?;
    let redis = match redis {
        true => Some(RedisServer::start().map_err(|source| TestingError::Server {
            what: "redis-server",
            source,
        })?),
        false => None,
    };
    Ok((nats, redis))
}

/// A client of the fleet at `nats_url`, once its worker has announced
/// itself (waiting at most `within`).
async fn ready(nats_url: &str, within: Duration) -> Result<Client, TestingError> {
    let client = Client::connect(ClientOptions::new(nats_url))
        .await
        .map_err(TestingError::Client)?;
    client
        .wait_for_workers(&[WORKER_ID.to_owned()], within)
        .await
        .map_err(|source| TestingError::NotReady {
            waited: within,
            source,
        })?;
    // The coordinator hears the worker's announcements as the client did;
    // give it a moment to take the one just heard in.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(client)
}

/// Why the `what` task ended before the fleet was ready: its own error
/// (made a [`TestingError`] by `error`), or how it ended without one.
fn ended<E>(
    what: &'static str,
    result: Result<Result<(), E>, tokio::task::JoinError>,
    error: fn(E) -> TestingError,
) -> TestingError {
    let detail = match result {
        Ok(Err(e)) => return error(e),
        Ok(Ok(())) => "it returned without an error".to_owned(),
        Err(e) => e.to_string(),
    };
    TestingError::Ended { what, detail }
}

/// Waits for `task` and logs an error it ends with.
fn log_end<E: std::fmt::Display + Send + 'static>(
    what: &'static str,
    task: JoinHandle<Result<(), E>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the local fleet's {what} stopped"),
            Err(e) => tracing::warn!(error = %e, "the local fleet's {what} ended"),
        }
    })
}

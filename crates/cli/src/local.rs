//! A whole cluster in this process, for `toolfan dev` and `toolfan bench`:
//! nats-server and redis-server (started here unless URLs are given), a
//! coordinator and workers serving the built-in tools.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions};
use toolfan_coordinator::CoordinatorOptions;
use toolfan_limits::LimiterOptions;
use toolfan_testkit::{NatsServer, RedisServer};
use toolfan_tools::builtin::{add_builtin, BUILTIN_TOOLS};
use toolfan_worker::{CacheOptions, Worker, WorkerBuilder};

/// A running local cluster; everything stops when it is dropped.
pub(crate) struct LocalCluster {
    // Fields drop in order: the client and services go before the servers.
    pub(crate) client: Client,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    pub(crate) nats_url: String,
    pub(crate) redis_url: String,
    _redis: Option<RedisServer>,
    nats_server: Option<NatsServer>,
}

/// What to start.
pub(crate) struct LocalOptions {
    pub(crate) nats_url: Option<String>,
    pub(crate) redis_url: Option<String>,
    pub(crate) workers: u32,
    pub(crate) concurrency: u32,
}

/// Whether local clusters share the fleet fairly (`toolfan bench --no-fair` says no).
static SHARE_FAIRLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Makes every local cluster started from now on share the fleet fairly, or not.
pub(crate) fn share_fairly(on: bool) {
    SHARE_FAIRLY.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl LocalCluster {
    /// Starts the cluster; `configure` adds to each worker's builder (e.g. limit keys).
    pub(crate) async fn start(
        options: &LocalOptions,
        configure: impl Fn(WorkerBuilder) -> WorkerBuilder,
    ) -> anyhow::Result<Self> {
        Self::start_with_coordinator(options, CoordinatorOptions::default(), configure).await
    }

    /// Like [`LocalCluster::start`], with the coordinator's options (its
    /// metrics registry, its live-job bound) taken from `coordinator`.
    pub(crate) async fn start_with_coordinator(
        options: &LocalOptions,
        coordinator: CoordinatorOptions,
        configure: impl Fn(WorkerBuilder) -> WorkerBuilder,
    ) -> anyhow::Result<Self> {
        let (nats, nats_url, redis, redis_url) = servers(options)?;
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut coordinator = CoordinatorOptions {
            nats_url: nats_url.clone(),
            redis_url: coordinator.redis_url.clone().or(Some(redis_url.clone())),
            ..coordinator
        };
        if !SHARE_FAIRLY.load(std::sync::atomic::Ordering::Relaxed) {
            coordinator.fair.enabled = false;
        }
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = toolfan_coordinator::run(coordinator, stop).await {
                eprintln!("toolfan: the coordinator stopped: {e}");
            }
        }));
        let ids = spawn_workers(
            options, &nats_url, &redis_url, &configure, &shutdown, &mut tasks,
        )?;
        let client = Client::connect(ClientOptions::new(&nats_url).caller("local")?).await?;
        let cluster = Self {
            nats_server: nats,
            _redis: redis,
            nats_url,
            redis_url,
            client,
            shutdown,
            tasks,
        };
        cluster
            .client
            .wait_for_workers(&ids, Duration::from_secs(15))
            .await?;
        Ok(cluster)
    }

    /// The process id of the nats-server started here (none if given a URL).
    pub(crate) fn nats_pid(&self) -> Option<u32> {
        self.nats_server.as_ref().and_then(NatsServer::pid)
    }

    /// Stops the coordinator and workers, waiting up to 5 s for them.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let stop = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), stop).await;
        // Close the demo client before the servers go, so it does not see
        // them vanish and warn about a lost connection.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.close()).await;
    }
}

/// The servers given by URL, or else started here: nats-server and its URL,
/// redis-server and its URL.
fn servers(
    options: &LocalOptions,
) -> anyhow::Result<(Option<NatsServer>, String, Option<RedisServer>, String)> {
    let (nats, nats_url) = match &options.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = NatsServer::start().context("cannot start nats-server")?;
            let url = server.url();
            (Some(server), url)
        }
    };
    let (redis, redis_url) = match &options.redis_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = RedisServer::start().context("cannot start redis-server")?;
            let url = server.url();
            (Some(server), url)
        }
    };
    Ok((nats, nats_url, redis, redis_url))
}

/// Builds `options.workers` workers serving the built-in tools (and what
/// `configure` adds), each running until `shutdown` as one of `tasks`;
/// returns their ids.
fn spawn_workers(
    options: &LocalOptions,
    nats_url: &str,
    redis_url: &str,
    configure: &impl Fn(WorkerBuilder) -> WorkerBuilder,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for i in 1..=options.workers {
        let mut builder = Worker::builder()
            .nats_url(nats_url)
            .id(format!("local-w{i}"))
            .concurrency(options.concurrency)
            .limits(LimiterOptions::new(redis_url))
            .cache(CacheOptions::new(redis_url));
        for name in BUILTIN_TOOLS {
            builder = add_builtin(builder, name)?;
        }
        let worker = configure(builder).build()?;
        ids.push(worker.id().to_owned());
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = worker.run(stop).await {
                eprintln!("toolfan: a worker stopped: {e}");
            }
        }));
    }
    Ok(ids)
}

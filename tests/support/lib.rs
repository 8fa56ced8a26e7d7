//! Shared set-up of the end-to-end tests: a real `nats-server -js`, a
//! coordinator, workers and a client, all against that server.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions};
use toolfan_coordinator::CoordinatorOptions;
use toolfan_protocol::{decode, Subjects, WorkerInfo};
use toolfan_testkit::NatsServer;
use toolfan_worker::{builtin, Worker, WorkerBuilder};

/// A NATS server with a coordinator running against it, stopped on drop.
pub struct Cluster {
    /// The server.
    pub nats: NatsServer,
    shutdown: CancellationToken,
}

impl Cluster {
    /// A server and a coordinator with default options.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// A server and a coordinator with options changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut CoordinatorOptions)) -> anyhow::Result<Self> {
        let cluster = Self::without_coordinator()?;
        let mut options = CoordinatorOptions {
            nats_url: cluster.nats.url(),
            ..CoordinatorOptions::default()
        };
        configure(&mut options);
        let shutdown = cluster.shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = toolfan_coordinator::run(options, shutdown).await {
                panic!("coordinator failed: {e}");
            }
        });
        Ok(cluster)
    }

    /// A server alone.
    pub fn without_coordinator() -> anyhow::Result<Self> {
        Ok(Self {
            nats: NatsServer::start()?,
            shutdown: CancellationToken::new(),
        })
    }

    /// A client of the cluster.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(ClientOptions::new(self.nats.url()).caller("tester")?).await?)
    }

    /// Runs the worker built by `builder` (pointed at this server) until the
    /// cluster drops, and waits until it has announced itself.
    pub async fn worker(&self, builder: WorkerBuilder) -> anyhow::Result<()> {
        let worker = builder.nats_url(self.nats.url()).build()?;
        let id = worker.id().to_owned();
        let beats = self.heartbeats().await?;
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move { worker.run(shutdown).await });
        wait_for_workers(beats, &[id]).await
    }

    /// A worker serving the built-in tools with `concurrency` slots.
    pub async fn builtin_worker(&self, concurrency: u32) -> anyhow::Result<()> {
        let mut builder = Worker::builder().concurrency(concurrency);
        for name in builtin::BUILTIN_TOOLS {
            builder = builtin::add_builtin(builder, name).map_err(anyhow::Error::msg)?;
        }
        self.worker(builder).await
    }

    /// A subscription to worker heartbeats, to wait for workers with.
    pub async fn heartbeats(&self) -> anyhow::Result<async_nats::Subscriber> {
        let nats = async_nats::connect(self.nats.url()).await?;
        Ok(nats.subscribe(Subjects::default().heartbeat()).await?)
    }
}

/// Waits until every worker in `ids` has sent a heartbeat (10 s at most),
/// then a little longer so the coordinator has surely heard it too.
pub async fn wait_for_workers(mut beats: async_nats::Subscriber, ids: &[String]) -> anyhow::Result<()> {
    let mut waiting: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let wait = async {
        while !waiting.is_empty() {
            let beat = beats.next().await.ok_or_else(|| anyhow::anyhow!("heartbeats ended"))?;
            let info: WorkerInfo = decode("heartbeat", &beat.payload)?;
            waiting.remove(info.id.as_str());
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| anyhow::anyhow!("workers did not announce themselves within 10 s"))??;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

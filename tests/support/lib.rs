//! Shared set-up of the end-to-end tests: a real `nats-server -js`, a
//! coordinator, workers and a client, all against that server.

pub mod fleet;
pub mod metrics;
mod python;
pub mod secured;

pub use python::{python, test_file};

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions, ErrorKind, Job, JobStatus, Task, TaskResult};
use toolfan_coordinator::CoordinatorOptions;
use toolfan_protocol::ReplyEvent;
pub use toolfan_testkit::stats::max_in_window;
use toolfan_testkit::NatsServer;
use toolfan_tools::builtin;
use toolfan_worker::{Worker, WorkerBuilder};

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
    pub async fn start_with(
        configure: impl FnOnce(&mut CoordinatorOptions),
    ) -> anyhow::Result<Self> {
        let cluster = Self::without_coordinator()?;
        cluster.start_coordinator(configure);
        Ok(cluster)
    }

    /// Runs a coordinator, its options changed by `configure`, until the cluster drops.
    pub fn start_coordinator(&self, configure: impl FnOnce(&mut CoordinatorOptions)) {
        let mut options = CoordinatorOptions {
            nats_url: self.nats.url(),
            ..CoordinatorOptions::default()
        };
        configure(&mut options);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = toolfan_coordinator::run(options, shutdown).await {
                panic!("coordinator failed: {e}");
            }
        });
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
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move { worker.run(shutdown).await });
        self.wait_for_workers(&[id]).await
    }

    /// A worker serving the built-in tools with `concurrency` slots.
    pub async fn builtin_worker(&self, concurrency: u32) -> anyhow::Result<()> {
        let mut builder = Worker::builder().concurrency(concurrency);
        for name in builtin::BUILTIN_TOOLS {
            builder = builtin::add_builtin(builder, name).map_err(anyhow::Error::msg)?;
        }
        self.worker(builder).await
    }

    /// Starts the `toolfan-worker` binary as `id` serving the tools file
    /// `toml` and waits until it has announced itself; the worker and the
    /// file's directory live as long as what is returned.
    pub async fn configured_worker(
        &self,
        id: &str,
        toml: &str,
    ) -> anyhow::Result<(toolfan_testkit::Process, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tools.toml");
        std::fs::write(&path, toml)?;
        let url = self.nats.url();
        let path = path.to_str().expect("a UTF-8 temporary path");
        let worker = spawn(
            "toolfan-worker",
            &["--nats-url", &url, "--id", id, "--config", path],
        )?;
        self.wait_for_workers(&[id.to_owned()]).await?;
        Ok((worker, dir))
    }

    /// Waits until every worker in `ids` announces itself (10 s at most),
    /// then a little longer so the coordinator has surely heard it too.
    pub async fn wait_for_workers(&self, ids: &[String]) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .wait_for_workers(ids, Duration::from_secs(10))
            .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Submits one one-task job per task, all at once (each its own caller
/// job, as many callers would), and returns their results in task order.
pub async fn one_task_jobs(client: &Client, tasks: Vec<Task>) -> anyhow::Result<Vec<TaskResult>> {
    let jobs = tasks.into_iter().map(|task| async move {
        let results = client.fanout(vec![task]).await?;
        anyhow::Ok(
            results
                .into_iter()
                .next()
                .expect("one result per one-task job"),
        )
    });
    futures::future::try_join_all(jobs).await
}

/// Submits `job`, waits for its results, and returns them with the time taken.
pub async fn timed(client: &Client, job: Job) -> anyhow::Result<(Vec<TaskResult>, Duration)> {
    let started = Instant::now();
    let results = client.submit(job).await?.results().await?;
    Ok((results, started.elapsed()))
}

/// Asserts that a job of `n` tasks with a 500 ms deadline was answered at
/// about its deadline, with every task `deadline_exceeded`.
pub fn assert_all_missed_a_500ms_deadline(results: &[TaskResult], elapsed: Duration, n: usize) {
    assert!(
        elapsed >= Duration::from_millis(450),
        "answered before the deadline: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered late: {elapsed:?}"
    );
    assert_eq!(results.len(), n);
    for result in results {
        assert_eq!(
            result.error().map(|e| e.kind.clone()),
            Some(ErrorKind::DeadlineExceeded),
            "{result:?}"
        );
    }
}

/// Starts a built `toolfan` binary (`toolfan-worker`, `toolfan-coordinator`,
/// `toolfan`) with `args`, logging warnings to the test's stderr. Its
/// metrics endpoint is off unless `args` ask for one (many run on one host).
pub fn spawn(name: &str, args: &[&str]) -> anyhow::Result<toolfan_testkit::Process> {
    let mut cmd = std::process::Command::new(toolfan_testkit::binary(name)?);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env("TOOLFAN_METRICS_ADDR", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    Ok(toolfan_testkit::Process::spawn(name, cmd)?)
}

/// Start times (µs) of `span` results, sorted.
pub fn span_starts(results: &[TaskResult]) -> Vec<u64> {
    let mut starts: Vec<u64> = results
        .iter()
        .map(|r| {
            r.value()
                .and_then(|v| v["started_us"].as_u64())
                .unwrap_or_else(|| panic!("not a span result: {r:?}"))
        })
        .collect();
    starts.sort_unstable();
    starts
}

/// Every outcome stored for `job` in the results stream, in stream order:
/// worker results (one per finished execution) and coordinator verdicts
/// (records of tasks waiting for a person left out).
pub async fn stored_results(
    nats_url: &str,
    job: &toolfan::JobId,
) -> anyhow::Result<Vec<TaskResult>> {
    use futures::StreamExt;
    let nats = async_nats::connect(nats_url).await?;
    let topology = toolfan_transport::Topology::new(nats, Default::default(), Default::default());
    let (mut stream, stored) = topology.job_results(job).await?;
    let mut out = Vec::new();
    for _ in 0..stored {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("results stream ended"))??;
        // A task's record that it waits for a person is not a result.
        if serde_json::from_slice::<toolfan_protocol::WaitingRecord>(&message.payload).is_ok() {
            continue;
        }
        out.push(toolfan_protocol::decode("task result", &message.payload)?);
    }
    Ok(out)
}

/// Runs the `toolfan` binary with `args` against `url` (15 s at most):
/// its exit status, stdout and stderr.
pub async fn toolfan_cli(url: &str, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let run = tokio::process::Command::new(toolfan_testkit::binary("toolfan")?)
        .args(args)
        .args(["--nats-url", url])
        .env("RUST_LOG", "warn")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), run).await??;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.success(), text(&out.stdout), text(&out.stderr)))
}

/// Starts the `toolfan-coordinator` binary against `url` with a 1 s ack
/// wait on the jobs consumer, so a job it held is taken over a second
/// after it is killed.
pub fn quick_takeover_coordinator(url: &str) -> anyhow::Result<toolfan_testkit::Process> {
    spawn(
        "toolfan-coordinator",
        &["--nats-url", url, "--ack-wait-ms", "1000"],
    )
}

/// Sends SIGTERM to `process` (through the `kill` command: no unsafe code).
pub fn terminate(process: &toolfan_testkit::Process) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    Ok(())
}

/// Publishes `body` as a job the way any NATS client could, and returns the
/// reply events until `done`. The caller is `raw`.
pub async fn submit_raw(url: &str, job_id: &str, body: &[u8]) -> anyhow::Result<Vec<ReplyEvent>> {
    let nats = async_nats::connect(url).await?;
    let mut replies = nats
        .subscribe(format!("toolfan.reply.raw.{job_id}"))
        .await?;
    let js = async_nats::jetstream::new(nats);
    let publish = async_nats::jetstream::message::PublishMessage::build()
        .payload(body.to_vec().into())
        .message_id(job_id);
    js.send_publish("toolfan.job.raw", publish).await?.await?;
    let mut events = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("reply subscription ended"))?;
        let event: ReplyEvent = toolfan_protocol::decode("reply", &msg.payload)?;
        let done = matches!(event, ReplyEvent::Done { .. });
        events.push(event);
        if done {
            return Ok(events);
        }
    }
}

/// The status, error kind and message of a refused job's single `done` event.
pub fn refusal(events: &[ReplyEvent]) -> (JobStatus, ErrorKind, String) {
    match events {
        [ReplyEvent::Done { summary, .. }] => {
            let error = summary.error.clone().expect("a refusal carries an error");
            (summary.status, error.kind, error.message)
        }
        other => panic!("expected a single done event, got {other:?}"),
    }
}

/// An HTTP client for tests. reqwest is built with rustls and no default
/// crypto provider (the worker's HTTP tools choose ring, which NATS uses
/// too), so the provider is installed first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

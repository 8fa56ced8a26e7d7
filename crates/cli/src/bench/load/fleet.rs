//! The soak's cluster as separate processes, so each has its own RSS:
//! nats-server and redis-server (testkit) and the real `toolfan-coordinator`
//! and `toolfan-worker` binaries found next to this one.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use toolfan::{Client, ClientOptions};
use toolfan_testkit::{NatsServer, Process, RedisServer};

/// A running soak cluster; every process is killed when it drops.
pub(super) struct Fleet {
    pub(super) client: Client,
    pub(super) nats_url: String,
    /// The coordinator's `/metrics` address.
    pub(super) metrics_addr: SocketAddr,
    coordinator: Process,
    workers: Vec<Process>,
    redis: RedisServer,
    nats: NatsServer,
}

impl Fleet {
    /// Starts the servers, one coordinator and `workers` workers of
    /// `concurrency` slots, and waits (15 s at most) until the workers are heard.
    pub(super) async fn start(workers: u32, concurrency: u32) -> anyhow::Result<Self> {
        let nats = NatsServer::start().context("cannot start nats-server")?;
        let redis = RedisServer::start().context("cannot start redis-server")?;
        let nats_url = nats.url();
        let port = toolfan_testkit::server::free_port()?;
        let metrics_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let addr = metrics_addr.to_string();
        let coordinator = spawn(
            "toolfan-coordinator",
            &["--nats-url", &nats_url, "--metrics-addr", &addr],
        )?;
        let (mut spawned, mut ids) = (Vec::new(), Vec::new());
        for i in 1..=workers {
            let id = format!("soak-w{i}");
            let slots = concurrency.to_string();
            spawned.push(spawn(
                "toolfan-worker",
                &[
                    "--nats-url",
                    &nats_url,
                    "--redis-url",
                    &redis.url(),
                    "--id",
                    &id,
                    "--concurrency",
                    &slots,
                    "--metrics-addr",
                    "off",
                ],
            )?);
            ids.push(id);
        }
        let client = Client::connect(ClientOptions::new(&nats_url).caller("soak")?).await?;
        client
            .wait_for_workers(&ids, Duration::from_secs(15))
            .await?;
        Ok(Self {
            client,
            nats_url,
            metrics_addr,
            coordinator,
            workers: spawned,
            redis,
            nats,
        })
    }

    /// Every process to sample: its name and pid.
    pub(super) fn processes(&self) -> Vec<(String, Option<u32>)> {
        let mut all = vec![("coordinator".to_owned(), Some(self.coordinator.pid()))];
        for (i, worker) in self.workers.iter().enumerate() {
            all.push((format!("worker {}", i + 1), Some(worker.pid())));
        }
        all.push(("nats-server".into(), self.nats.pid()));
        all.push(("redis-server".into(), self.redis.pid()));
        all
    }

    /// Names the first process that has exited, if one has.
    pub(super) fn exited(&mut self) -> Option<String> {
        if let Some(status) = self.coordinator.try_status() {
            return Some(format!("toolfan-coordinator exited: {status}"));
        }
        self.workers.iter_mut().enumerate().find_map(|(i, w)| {
            w.try_status()
                .map(|status| format!("toolfan-worker {} exited: {status}", i + 1))
        })
    }
}

/// Starts the toolfan binary `name` from next to this executable, its
/// warnings (or what `TOOLFAN_SOAK_LOG` asks for, a `RUST_LOG` filter)
/// going to this process's stderr.
fn spawn(name: &str, args: &[&str]) -> anyhow::Result<Process> {
    let path = toolfan_testkit::binary(name).with_context(|| {
        format!("the soak runs the real binaries: build them with `cargo build --release -p toolfan-cli -p toolfan-coordinator -p toolfan-tools` ({name})")
    })?;
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env(
            "RUST_LOG",
            std::env::var("TOOLFAN_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Ok(Process::spawn(name, cmd)?)
}

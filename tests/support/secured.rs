//! The shipped `deploy/nats-auth.conf` and its users, for tests that run
//! a server with it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions};
use toolfan_coordinator::CoordinatorOptions;
use toolfan_testkit::NatsServer;
use toolfan_transport::NatsAuth;
use toolfan_worker::Worker;

/// The shipped permissions, as a nats-server configuration.
pub const NATS_AUTH_CONFIG: &str = include_str!("../../deploy/nats-auth.conf");

/// The shipped password login of `user` (`change-me-<user>`).
pub fn login(user: &str) -> NatsAuth {
    NatsAuth {
        user: Some(user.into()),
        password: Some(format!("change-me-{user}")),
        ..NatsAuth::default()
    }
}

/// A client of caller `user`, logged in as `user`, that leaves the
/// streams to the coordinators (as its permissions require).
pub async fn caller(nats: &NatsServer, user: &str) -> anyhow::Result<Client> {
    let mut options = ClientOptions::new(nats.url()).caller(user)?;
    options.auth = login(user);
    options.create_streams = false;
    Ok(Client::connect(options).await?)
}

/// A server with the shipped permissions, a coordinator and a worker
/// `worker_id` serving the built-in `tools`, each logged in as its user;
/// returns once the worker has announced itself. Cancel the token to stop them.
pub async fn start(
    worker_id: &str,
    tools: &[&str],
) -> anyhow::Result<(NatsServer, CancellationToken)> {
    let nats = NatsServer::start_with_config(NATS_AUTH_CONFIG)?;
    let stop = CancellationToken::new();
    let coordinator = CoordinatorOptions {
        nats_url: nats.url(),
        nats_auth: login("coordinator"),
        ..CoordinatorOptions::default()
    };
    tokio::spawn(toolfan_coordinator::run(coordinator, stop.clone()));
    // The coordinator creates the streams; give it a moment before the worker looks.
    let admin = {
        let mut options = ClientOptions::new(nats.url());
        options.auth = NatsAuth {
            inbox_prefix: Some("_INBOX".into()),
            ..login("coordinator")
        };
        Client::connect(options).await?
    };
    let mut builder = Worker::builder().nats_url(nats.url()).id(worker_id);
    for tool in tools {
        builder = toolfan_tools::builtin::add_builtin(builder, tool).map_err(anyhow::Error::msg)?;
    }
    let worker = builder.build()?.with_nats_auth(login("worker"));
    tokio::spawn(worker.run(stop.clone()));
    // Callers cannot hear heartbeats: the coordinator's login waits for the worker.
    admin
        .wait_for_workers(&[worker_id.to_owned()], Duration::from_secs(10))
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok((nats, stop))
}

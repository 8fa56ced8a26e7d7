//! Connecting to NATS.

use std::sync::Arc;
use std::time::Duration;

use crate::{NatsAuth, TransportError};

/// How often a connection pings its server.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Called on each reconnect after a lost connection.
pub type OnReconnect = Arc<dyn Fn() + Send + Sync>;

/// Connects to the NATS server at `url` — or to a cluster, given as
/// comma-separated URLs — naming the connection `name` (it shows in the
/// server's connection list). The client reconnects on its own after a
/// disconnect, to any server of the cluster.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, TransportError> {
    connect_observed(url, name, &NatsAuth::default(), None).await
}

/// [`connect`] with credentials, calling `on_reconnect` after every
/// reconnect and logging disconnects, slow consumers and server errors
/// (permission violations among them).
pub async fn connect_observed(
    url: &str,
    name: &str,
    auth: &NatsAuth,
    on_reconnect: Option<OnReconnect>,
) -> Result<async_nats::Client, TransportError> {
    let servers: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let seen_first = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connection: Arc<str> = Arc::from(name);
    let options = auth.apply(async_nats::ConnectOptions::new()).await?;
    options
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        // A server cut off without closing the connection (a partition, a
        // host gone) is noticed after two unanswered pings: seconds, not
        // the two minutes the default interval gives.
        .ping_interval(PING_INTERVAL)
        // Task messages are small but results can be large; keep the default
        // subscription capacity generous so a burst does not drop messages.
        .subscription_capacity(65_536)
        .event_callback(move |event| {
            let on_reconnect = on_reconnect.clone();
            let seen_first = seen_first.clone();
            let connection = connection.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if seen_first.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            tracing::info!(%connection, "reconnected to NATS");
                            if let Some(on_reconnect) = on_reconnect {
                                on_reconnect();
                            }
                        }
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%connection, "disconnected from NATS; reconnecting")
                    }
                    async_nats::Event::SlowConsumer(sid) => {
                        tracing::warn!(sid, "a subscription fell behind and dropped messages")
                    }
                    async_nats::Event::ServerError(e) => {
                        tracing::warn!(error = %e, "NATS server error")
                    }
                    other => tracing::debug!(event = %other, "NATS connection event"),
                }
            }
        })
        .connect(servers)
        .await
        .map_err(|e| TransportError::connect(url, e))
}

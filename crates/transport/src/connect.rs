//! Connecting to NATS.

use std::time::Duration;

use crate::TransportError;

/// Connects to the NATS server at `url`, naming the connection `name` (it
/// shows in the server's connection list). The client reconnects on its own
/// after a disconnect.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, TransportError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        // Task messages are small but results can be large; keep the default
        // subscription capacity generous so a burst does not drop messages.
        .subscription_capacity(65_536)
        .connect(url)
        .await
        .map_err(|e| TransportError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

//! A Redis connection made on first use and shared after, so a worker
//! starts (and serves what needs no Redis) while Redis is down, and each
//! call fails within a second or two instead of hanging when it is.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazily connected, automatically reconnecting Redis connection.
pub struct LazyRedis {
    client: redis::Client,
    conn: tokio::sync::RwLock<Option<ConnectionManager>>,
}

impl LazyRedis {
    /// Checks `url`; connects on the first [`get`](Self::get).
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: tokio::sync::RwLock::new(None),
        })
    }

    /// The connection, made now if it was not yet.
    pub async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        if let Some(conn) = self.conn.read().await.as_ref() {
            return Ok(conn.clone());
        }
        let mut slot = self.conn.write().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

//! Limit definitions in Redis: one hash, `<prefix>:limits`, key → JSON spec.
//! `toolfan limits` writes it; every worker reads it every half second.

use std::collections::BTreeMap;

use redis::AsyncCommands;

use super::{check_key, LimitError, LimitSpec};

/// Reads and writes the fleet's limit definitions.
#[derive(Clone)]
pub struct LimitStore {
    conn: redis::aio::ConnectionManager,
    hash: String,
}

impl LimitStore {
    /// Connects to Redis at `url`; definitions live under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, LimitError> {
        let client = redis::Client::open(url).map_err(|e| LimitError::redis(url, e))?;
        let conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| LimitError::redis(url, e))?;
        Ok(Self::with_connection(conn, prefix))
    }

    /// Uses an open connection.
    pub fn with_connection(conn: redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            hash: format!("{prefix}:limits"),
        }
    }

    /// Defines (or replaces) the limits under `key`.
    pub async fn set(&self, key: &str, spec: &LimitSpec) -> Result<(), LimitError> {
        check_key(key)?;
        spec.validate()?;
        let json = serde_json::to_string(spec).expect("a limit spec serializes");
        let mut conn = self.conn.clone();
        let _: usize = conn
            .hset(&self.hash, key, json)
            .await
            .map_err(|e| LimitError::redis("HSET", e))?;
        Ok(())
    }

    /// Removes the limits under `key`; false if there were none.
    pub async fn delete(&self, key: &str) -> Result<bool, LimitError> {
        let mut conn = self.conn.clone();
        let removed: usize = conn
            .hdel(&self.hash, key)
            .await
            .map_err(|e| LimitError::redis("HDEL", e))?;
        Ok(removed > 0)
    }

    /// Every definition. A value that does not parse is reported, not hidden.
    pub async fn list(&self) -> Result<BTreeMap<String, Result<LimitSpec, String>>, LimitError> {
        let mut conn = self.conn.clone();
        let raw: std::collections::HashMap<String, String> = conn
            .hgetall(&self.hash)
            .await
            .map_err(|e| LimitError::redis("HGETALL", e))?;
        Ok(raw
            .into_iter()
            .map(|(key, json)| {
                let spec = serde_json::from_str::<LimitSpec>(&json)
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()));
                (key, spec)
            })
            .collect())
    }
}

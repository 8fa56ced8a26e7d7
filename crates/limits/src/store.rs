//! Limit definitions in Redis: one hash, `<prefix>:limits`, key → JSON spec.
//! `toolfan limits` writes it; every worker reads it every half second.
//!
//! Every write also sets `<prefix>:limits:written`. A store without that
//! marker was never written, or lost its data (Redis restarted without
//! persistence): workers that read definitions before then write them
//! back rather than lift every limit (see [`crate::Limiter`]).

mod usage;

use std::collections::BTreeMap;

use crate::{check_key, LimitError, LimitSpec};
pub use usage::Usage;

/// Reads and writes the fleet's limit definitions.
#[derive(Clone)]
pub struct LimitStore {
    conn: redis::aio::ConnectionManager,
    hash: String,
    marker: String,
}

/// What the store holds, read in one atomic step.
#[derive(Debug, Default)]
pub struct Stored {
    /// Every definition; a value that does not parse is reported, not hidden.
    pub specs: BTreeMap<String, Result<LimitSpec, LimitError>>,
    /// Whether the store was ever written (and has not lost its data since).
    pub written: bool,
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
            marker: format!("{prefix}:limits:written"),
        }
    }

    /// Defines (or replaces) the limits under `key`.
    pub async fn set(&self, key: &str, spec: &LimitSpec) -> Result<(), LimitError> {
        check_key(key)?;
        spec.validate()?;
        let json = serde_json::to_string(spec).expect("a limit spec serializes");
        let mut conn = self.conn.clone();
        let _: (usize, ()) = redis::pipe()
            .atomic()
            .hset(&self.hash, key, json)
            .set(&self.marker, 1)
            .query_async(&mut conn)
            .await
            .map_err(|e| LimitError::redis("HSET", e))?;
        Ok(())
    }

    /// Removes the limits under `key`; false if there were none.
    pub async fn delete(&self, key: &str) -> Result<bool, LimitError> {
        let mut conn = self.conn.clone();
        let (removed, ()): (usize, ()) = redis::pipe()
            .atomic()
            .hdel(&self.hash, key)
            .set(&self.marker, 1)
            .query_async(&mut conn)
            .await
            .map_err(|e| LimitError::redis("HDEL", e))?;
        Ok(removed > 0)
    }

    /// Every definition. A value that does not parse is reported, not hidden.
    pub async fn list(
        &self,
    ) -> Result<BTreeMap<String, Result<LimitSpec, LimitError>>, LimitError> {
        Ok(self.read().await?.specs)
    }

    /// Every definition and whether the store was ever written.
    pub async fn read(&self) -> Result<Stored, LimitError> {
        let mut conn = self.conn.clone();
        let (raw, marked): (std::collections::HashMap<String, String>, bool) = redis::pipe()
            .atomic()
            .hgetall(&self.hash)
            .exists(&self.marker)
            .query_async(&mut conn)
            .await
            .map_err(|e| LimitError::redis("HGETALL", e))?;
        // (A hash written before the marker existed counts as written.)
        let written = marked || !raw.is_empty();
        let specs = raw
            .into_iter()
            .map(|(key, json)| {
                let spec = serde_json::from_str::<LimitSpec>(&json)
                    .map_err(|e| LimitError::Stored(std::sync::Arc::new(e)))
                    .and_then(|s| s.validate().map(|()| s));
                (key, spec)
            })
            .collect();
        Ok(Stored { specs, written })
    }

    /// Writes `specs` back into a store that lost its data, leaving any
    /// definition written since alone.
    pub async fn restore(&self, specs: &BTreeMap<String, LimitSpec>) -> Result<(), LimitError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, spec) in specs {
            let json = serde_json::to_string(spec).expect("a limit spec serializes");
            pipe.hset_nx(&self.hash, key, json).ignore();
        }
        pipe.set(&self.marker, 1).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| LimitError::redis("restoring limit definitions", e))
    }
}

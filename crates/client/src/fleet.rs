//! Asking the fleet who is there.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use toolfan_protocol::{decode, WorkerInfo};

use crate::{Client, ClientError};

impl Client {
    /// The workers that announce themselves within `listen`: pings the
    /// fleet (every worker answers at once) and collects heartbeats.
    pub async fn workers(&self, listen: Duration) -> Result<Vec<WorkerInfo>, ClientError> {
        let subjects = &self.options.subjects;
        let failed = |e: &dyn std::fmt::Display| {
            ClientError::Transport(toolfan_transport::TransportError::jetstream(
                "listening for worker heartbeats",
                e,
            ))
        };
        let mut beats = self
            .nats
            .subscribe(subjects.heartbeat())
            .await
            .map_err(|e| failed(&e))?;
        self.nats
            .publish(subjects.ping(), "".into())
            .await
            .map_err(|e| failed(&e))?;
        let mut seen = BTreeMap::new();
        let collect = async {
            while let Some(beat) = beats.next().await {
                if let Ok(info) = decode::<WorkerInfo>("heartbeat", &beat.payload) {
                    if info.leaving {
                        seen.remove(&info.id);
                    } else {
                        seen.insert(info.id.clone(), info);
                    }
                }
            }
        };
        let _ = tokio::time::timeout(listen, collect).await;
        Ok(seen.into_values().collect())
    }

    /// Waits until every worker in `ids` has announced itself, or fails
    /// after `within` naming the ones still missing.
    pub async fn wait_for_workers(
        &self,
        ids: &[String],
        within: Duration,
    ) -> Result<(), ClientError> {
        let started = tokio::time::Instant::now();
        loop {
            let live = self.workers(Duration::from_millis(200)).await?;
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !live.iter().any(|w| &w.id == *id))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(ClientError::WorkersMissing {
                    missing,
                    waited: within,
                });
            }
        }
    }
}

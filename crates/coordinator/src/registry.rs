//! The live view of the worker fleet, built from heartbeats, so a task for a
//! tool nobody serves is answered `unknown_tool` at once instead of waiting
//! for its deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{decode, Subjects, ToolName, WorkerInfo};

/// Workers heard from recently.
#[derive(Debug, Default)]
pub struct Registry {
    workers: Mutex<HashMap<String, (WorkerInfo, Instant)>>,
    ttl: Duration,
}

impl Registry {
    /// A registry that forgets a worker silent for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            workers: Mutex::default(),
            ttl,
        }
    }

    /// Records a heartbeat; a `leaving` one removes the worker.
    pub fn heard(&self, info: WorkerInfo) {
        let mut workers = self.workers.lock().expect("registry lock");
        if info.leaving {
            workers.remove(&info.id);
        } else {
            workers.insert(info.id.clone(), (info, Instant::now()));
        }
    }

    /// Whether a live worker serves `tool`.
    pub fn serves(&self, tool: &ToolName) -> bool {
        let workers = self.workers.lock().expect("registry lock");
        workers
            .values()
            .any(|(info, seen)| seen.elapsed() < self.ttl && info.tools.contains(tool))
    }

    /// The live workers, as last announced.
    pub fn live(&self) -> Vec<WorkerInfo> {
        let workers = self.workers.lock().expect("registry lock");
        workers
            .values()
            .filter(|(_, seen)| seen.elapsed() < self.ttl)
            .map(|(info, _)| info.clone())
            .collect()
    }
}

/// Follows heartbeats into `registry` until `shutdown`. Pings the fleet
/// first and waits `warmup` for answers, so the view is whole before the
/// coordinator takes its first job.
pub(crate) async fn follow(
    client: &async_nats::Client,
    subjects: &Subjects,
    registry: Arc<Registry>,
    warmup: Duration,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
    let mut beats = client.subscribe(subjects.heartbeat()).await?;
    if let Err(e) = client.publish(subjects.ping(), "".into()).await {
        tracing::warn!(error = %e, "could not ping the workers");
    }
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                beat = beats.next() => match beat {
                    Some(beat) => match decode::<WorkerInfo>("heartbeat", &beat.payload) {
                        Ok(info) => registry.heard(info),
                        Err(e) => tracing::warn!(error = %e, "ignoring a bad heartbeat"),
                    },
                    None => return,
                },
                _ = shutdown.cancelled() => return,
            }
        }
    });
    tokio::time::sleep(warmup).await;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, tools: &[&str], leaving: bool) -> WorkerInfo {
        WorkerInfo {
            v: 1,
            id: id.into(),
            host: "h".into(),
            tools: tools.iter().map(|t| ToolName::new(*t).unwrap()).collect(),
            concurrency: 1,
            in_flight: 0,
            leaving,
        }
    }

    #[test]
    fn a_tool_is_served_while_a_live_worker_announces_it() {
        let registry = Registry::new(Duration::from_millis(50));
        let echo = ToolName::new("echo").unwrap();
        assert!(!registry.serves(&echo));
        registry.heard(info("w1", &["echo"], false));
        assert!(registry.serves(&echo));
        assert!(!registry.serves(&ToolName::new("sleep").unwrap()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!registry.serves(&echo), "a silent worker is forgotten");
        registry.heard(info("w1", &["echo"], false));
        registry.heard(info("w1", &["echo"], true));
        assert!(
            !registry.serves(&echo),
            "a leaving worker is forgotten at once"
        );
    }
}

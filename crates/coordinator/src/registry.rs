//! The live view of the worker fleet, built from heartbeats, so a task for a
//! tool nobody serves is answered `unknown_tool` at once instead of waiting
//! for its deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{decode, Subjects, ToolName, WorkerInfo};

/// How long to listen for answers after pinging the fleet.
const PING_WAIT: Duration = Duration::from_millis(250);

/// Workers heard from recently.
#[derive(Debug)]
pub struct Registry {
    workers: Mutex<HashMap<String, (WorkerInfo, Instant)>>,
    ttl: Duration,
    last_ping: Mutex<Option<Instant>>,
    /// Since when this coordinator has been hearing the fleet without a
    /// break (its start, or its last reconnect).
    listening_since: Mutex<Instant>,
    /// When each tool was last announced by a live worker.
    tools_seen: Mutex<HashMap<ToolName, Instant>>,
}

/// How long a tool some worker served stays known after the last one is
/// heard: its tasks wait in JetStream for a worker meanwhile (heartbeats
/// go missing for seconds while a NATS cluster re-forms its routes, and
/// a fleet being restarted is not a tool nobody serves).
pub const TOOL_REMEMBERED: Duration = Duration::from_secs(300);

impl Registry {
    /// A registry that forgets a worker silent for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            workers: Mutex::default(),
            ttl,
            last_ping: Mutex::new(None),
            listening_since: Mutex::new(Instant::now()),
            tools_seen: Mutex::default(),
        }
    }

    /// Whether this coordinator has listened long enough, without a break,
    /// for a worker's silence to mean it is gone: a full TTL. Before that
    /// (just started, just reconnected) "no worker serves the tool" is not
    /// to be believed, and a task waits rather than failing for good.
    pub fn sure(&self) -> bool {
        self.listening_since
            .lock()
            .expect("registry lock")
            .elapsed()
            >= self.ttl
    }

    /// Records a heartbeat; a `leaving` one removes the worker.
    pub fn heard(&self, info: WorkerInfo) {
        if !info.leaving {
            let mut seen = self.tools_seen.lock().expect("registry lock");
            for tool in &info.tools {
                seen.insert(tool.clone(), Instant::now());
            }
        }
        let mut workers = self.workers.lock().expect("registry lock");
        if info.leaving {
            workers.remove(&info.id);
        } else {
            workers.insert(info.id.clone(), (info, Instant::now()));
        }
    }

    /// Whether some worker announced `tool` within [`TOOL_REMEMBERED`]:
    /// its tasks are dispatched even while no live worker is heard.
    pub fn known(&self, tool: &ToolName) -> bool {
        let seen = self.tools_seen.lock().expect("registry lock");
        seen.get(tool)
            .is_some_and(|at| at.elapsed() < TOOL_REMEMBERED)
    }

    /// Whether a live worker serves `tool`.
    pub fn serves(&self, tool: &ToolName) -> bool {
        let workers = self.workers.lock().expect("registry lock");
        workers
            .values()
            .any(|(info, seen)| seen.elapsed() < self.ttl && info.tools.contains(tool))
    }

    /// Whether a live worker serves `tool`, asking the fleet before saying
    /// no: the view may be stale (this coordinator was cut off from NATS, or
    /// a worker has just started), and a wrong "no" fails tasks for good.
    /// At most one ping goes out per `PING_WAIT`; callers wait for answers.
    pub async fn confirm_serves(
        &self,
        client: &async_nats::Client,
        subjects: &Subjects,
        tool: &ToolName,
    ) -> bool {
        if self.serves(tool) {
            return true;
        }
        let ping = {
            let mut last = self.last_ping.lock().expect("registry lock");
            let due = last.is_none_or(|at| at.elapsed() >= PING_WAIT);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if ping {
            if let Err(e) = client.publish(subjects.ping(), "".into()).await {
                tracing::warn!(error = %e, "could not ping the workers");
            }
        }
        tokio::time::sleep(PING_WAIT).await;
        self.serves(tool)
    }

    /// This coordinator could not hear anyone for a while (it was cut off
    /// from NATS): silence is no evidence, so every known worker gets a full
    /// TTL from now to be heard again.
    pub fn forgive_silence(&self) {
        let now = Instant::now();
        *self.listening_since.lock().expect("registry lock") = now;
        let mut workers = self.workers.lock().expect("registry lock");
        for (_, seen) in workers.values_mut() {
            *seen = now;
        }
    }

    /// The tool a live worker serves whose name is closest to `tool`, if
    /// one is close enough to be what was meant (a typo).
    pub fn closest_served(&self, tool: &ToolName) -> Option<ToolName> {
        let live = self.live();
        let names = live
            .iter()
            .flat_map(|w| w.tools.iter().map(ToolName::as_str));
        let closest = crate::suggest::closest(tool.as_str(), names)?;
        closest.parse().ok()
    }

    /// How many tasks the live workers serving `tool` run at once, together.
    pub fn capacity(&self, tool: &ToolName) -> u32 {
        let workers = self.workers.lock().expect("registry lock");
        workers
            .values()
            .filter(|(info, seen)| seen.elapsed() < self.ttl && info.tools.contains(tool))
            .map(|(info, _)| info.concurrency)
            .sum()
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
    let connection = client.clone();
    let task = tokio::spawn(async move {
        let mut check = tokio::time::interval(Duration::from_millis(100));
        let mut was_connected = true;
        loop {
            tokio::select! {
                _ = check.tick() => {
                    let connected = connection.connection_state() == async_nats::connection::State::Connected;
                    if connected && !was_connected {
                        tracing::info!("reconnected to NATS; giving workers a full TTL to be heard");
                        registry.forgive_silence();
                    }
                    was_connected = connected;
                }
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
    fn a_tool_once_served_stays_known_while_its_workers_are_silent() {
        let registry = Registry::new(Duration::from_millis(10));
        let echo = ToolName::new("echo").unwrap();
        assert!(!registry.known(&echo), "never announced: unknown");
        registry.heard(info("w1", &["echo"], false));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!registry.serves(&echo), "no live worker");
        assert!(registry.known(&echo), "but served a moment ago: waited for");
        assert!(!registry.known(&ToolName::new("sleep").unwrap()));
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

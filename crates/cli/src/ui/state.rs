//! What `/api/state` answers ([`UiState`]), gathered from the fleet: the
//! workers (`Client::workers`), the queues (the consumers `toolfan stats`
//! reads), the coordinators' jobs (`Client::jobs`) and, with a Redis URL,
//! the limits. Requests within [`FRESH_FOR`] of the last gather share it,
//! so any number of open pages costs the fleet one gather a second or less.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use toolfan::{Client, FinishedJob, LiveJobInfo, WorkerInfo};
use toolfan_protocol::{now_unix_ms, Subjects};
use toolfan_transport::{ConsumerStats, Topology, TopologyOptions};

use super::limits::{LimitRow, Limits};
use crate::fleet::ClusterArgs;

/// How long one gather's answer is served again.
const FRESH_FOR: Duration = Duration::from_millis(500);
/// How long workers and coordinators are listened to per gather.
const LISTEN: Duration = Duration::from_millis(250);
/// The bound on every other read of a gather.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// A worker unheard for this long is dropped from the page.
const FORGET_AFTER_MS: u64 = 30_000;
/// How many recent jobs the page gets.
const RECENT_SHOWN: usize = 50;

/// The page's view of the fleet.
#[derive(Debug, Serialize)]
pub(crate) struct UiState {
    now_unix_ms: u64,
    workers: Vec<WorkerRow>,
    /// Jobs waiting for a coordinator.
    jobs_queued: Option<u64>,
    queues: Vec<QueueRow>,
    live: Vec<LiveRow>,
    recent: Vec<FinishedJob>,
    coordinators: usize,
    /// `None` when the UI was given no Redis URL.
    limits: Option<Vec<LimitRow>>,
    /// What could not be read this time.
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct WorkerRow {
    #[serde(flatten)]
    info: WorkerInfo,
    last_heard_unix_ms: u64,
}

#[derive(Debug, Serialize)]
struct QueueRow {
    tool: String,
    queued: u64,
    in_flight: usize,
    redelivered: usize,
    pullers: usize,
}

#[derive(Debug, Serialize)]
struct LiveRow {
    #[serde(flatten)]
    info: LiveJobInfo,
    coordinator: String,
}

/// Gathers [`UiState`], at most once per [`FRESH_FOR`].
pub(crate) struct Gatherer {
    client: Client,
    topology: Topology,
    limits: Option<Limits>,
    /// Workers heard lately: what each said last, and when.
    heard: Mutex<BTreeMap<String, (WorkerInfo, u64)>>,
    last: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Gatherer {
    /// Connects to the cluster and, if `redis_url` is given, the limits store.
    pub(crate) async fn connect(
        cluster: &ClusterArgs,
        redis_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let client = crate::jobs::connect(cluster).await?;
        let nats = toolfan_transport::connect_observed(
            &cluster.nats_url,
            "toolfan-cli ui",
            &cluster.auth.to_auth(),
            None,
        )
        .await?;
        let subjects = Subjects::new(&cluster.prefix)?;
        let topology = Topology::new(nats, subjects, TopologyOptions::default());
        let limits = redis_url.map(|url| Limits::new(url, &cluster.prefix));
        Ok(Self {
            client,
            topology,
            limits,
            heard: Mutex::default(),
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// The state as JSON: the last gather's if it is fresh, else a new one.
    pub(crate) async fn state(&self) -> String {
        let mut last = self.last.lock().await;
        if let Some((at, json)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return json.clone();
            }
        }
        let json = serde_json::to_string(&self.gather().await)
            .unwrap_or_else(|e| format!(r#"{{"errors":["cannot encode the state: {e}"]}}"#));
        *last = Some((Instant::now(), json.clone()));
        json
    }

    async fn gather(&self) -> UiState {
        let (workers, jobs, stats, limits) = tokio::join!(
            self.client.workers(LISTEN),
            self.client.jobs(LISTEN),
            tokio::time::timeout(READ_TIMEOUT, self.topology.stats()),
            super::limits::read(self.limits.as_ref()),
        );
        let mut errors = Vec::new();
        let mut state = UiState {
            now_unix_ms: now_unix_ms(),
            workers: Vec::new(),
            jobs_queued: None,
            queues: Vec::new(),
            live: Vec::new(),
            recent: Vec::new(),
            coordinators: 0,
            limits: None,
            errors: Vec::new(),
        };
        match workers {
            Ok(workers) => state.workers = self.heard(workers, state.now_unix_ms),
            Err(e) => errors.push(format!("workers: {e}")),
        }
        match jobs {
            Ok(listings) => {
                state.coordinators = listings.len();
                for listing in listings {
                    state
                        .live
                        .extend(listing.live.into_iter().map(|info| LiveRow {
                            info,
                            coordinator: listing.coordinator.clone(),
                        }));
                    state.recent.extend(listing.recent);
                }
                state.live.sort_by_key(|j| j.info.started_unix_ms);
                state
                    .recent
                    .sort_by_key(|j| std::cmp::Reverse(j.ended_unix_ms));
                state.recent.truncate(RECENT_SHOWN);
            }
            Err(e) => errors.push(format!("jobs: {e}")),
        }
        match stats {
            Ok(Ok((_, consumers))) => self.queues(&mut state, &consumers),
            Ok(Err(e)) => errors.push(format!("queues: {e}")),
            Err(_) => errors.push("queues: no answer within 2 s".to_owned()),
        }
        match limits {
            Ok(rows) => state.limits = rows,
            Err(e) => errors.push(format!("limits: {e}")),
        }
        state.errors = errors;
        state
    }

    /// The workers heard now and lately, each with when it was last heard.
    fn heard(&self, now_heard: Vec<WorkerInfo>, now: u64) -> Vec<WorkerRow> {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        for info in now_heard {
            heard.insert(info.id.clone(), (info, now));
        }
        heard.retain(|_, (_, at)| now.saturating_sub(*at) < FORGET_AFTER_MS);
        heard
            .values()
            .map(|(info, at)| WorkerRow {
                info: info.clone(),
                last_heard_unix_ms: *at,
            })
            .collect()
    }

    fn queues(&self, state: &mut UiState, consumers: &[ConsumerStats]) {
        let subjects = &self.topology.subjects;
        for c in consumers {
            if c.stream == subjects.jobs_stream() {
                state.jobs_queued = Some(c.pending);
            } else if let Some(tool) = c.name.strip_prefix("tool_") {
                state.queues.push(QueueRow {
                    tool: tool.to_owned(),
                    queued: c.pending,
                    in_flight: c.ack_pending,
                    redelivered: c.redelivered,
                    pullers: c.waiting,
                });
            }
        }
        state.queues.sort_by(|a, b| a.tool.cmp(&b.tool));
    }
}

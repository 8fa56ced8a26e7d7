//! [`WorkerOptions`]: where a worker connects and how much it takes on,
//! with the checks a configuration must pass.

use std::collections::BTreeMap;
use std::time::Duration;

use toolfan_limits::{check_key, LimiterOptions};
use toolfan_protocol::Subjects;
use toolfan_transport::TopologyOptions;

use crate::cache::CacheOptions;
use crate::error::ConfigError;

/// Where and how a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// NATS server URL.
    pub nats_url: String,
    /// NATS credentials and TLS.
    pub nats_auth: toolfan_transport::NatsAuth,
    /// This worker's id in the fleet (default `w-` and 8 random hex digits).
    pub id: String,
    /// How many tasks run at once, across all tools.
    pub concurrency: u32,
    /// Subject prefix (default `toolfan`).
    pub subjects: Subjects,
    /// Stream and consumer settings.
    pub topology: TopologyOptions,
    /// How often the worker announces itself.
    pub heartbeat_interval: Duration,
    /// How long a shutdown waits for running tasks.
    pub drain_timeout: Duration,
    /// Fleet-wide rate limits and concurrency caps; `None` runs every task unlimited.
    pub limits: Option<LimiterOptions>,
    /// The fleet-wide result cache for cached calls; `None` runs them uncached.
    pub cache: Option<CacheOptions>,
    /// Most prefetched calls running at once, as a fraction of
    /// `concurrency` (at least one): speculative work never takes the
    /// slots confirmed calls need.
    pub prefetch_share: f64,
    /// The limit keys each tool's calls are under (besides `global` and
    /// each task's own `rate_key`).
    pub tool_limit_keys: BTreeMap<String, Vec<String>>,
    /// Fleet-wide cap on a tool's tasks in flight (its consumer's `max_ack_pending`).
    pub tool_max_in_flight: BTreeMap<String, i64>,
    /// First retry delay ceiling; attempt n waits a random time up to
    /// `min(retry_cap, retry_base · 2^(n-1))` (exponential backoff, full jitter).
    pub retry_base: Duration,
    /// Longest retry delay ceiling.
    pub retry_cap: Duration,
    /// Largest result published, in bytes of JSON; larger ones are answered
    /// `result_too_large` (NATS refuses messages over its max payload, 1 MiB
    /// by default).
    pub max_result_bytes: usize,
    /// Where the metrics go.
    pub metrics: prometheus::Registry,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// If `metrics_addr`'s port is taken, serve on the next free one
    /// instead of failing (for a default address, not one the user gave).
    pub metrics_addr_is_default: bool,
    /// Most tasks a worker holds at once, running or waiting for a limit,
    /// as a multiple of `concurrency`. Tasks waiting for a limit hold no
    /// run slot, so other tools' tasks can run meanwhile.
    pub max_held_factor: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_auth: Default::default(),
            id: format!("w-{:08x}", rand::random::<u32>()),
            concurrency: 64,
            subjects: Subjects::default(),
            topology: TopologyOptions::default(),
            heartbeat_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            limits: None,
            cache: None,
            prefetch_share: 0.25,
            tool_limit_keys: BTreeMap::new(),
            tool_max_in_flight: BTreeMap::new(),
            max_held_factor: 4,
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(10),
            max_result_bytes: 512 * 1024,
            metrics: prometheus::Registry::new(),
            metrics_addr: None,
            metrics_addr_is_default: false,
        }
    }
}

impl WorkerOptions {
    /// Checks the options against the tools served (`serves(name)`).
    pub(crate) fn check(&self, serves: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::NoConcurrency);
        }
        if self.id.is_empty() {
            return Err(ConfigError::EmptyId);
        }
        for (tool, keys) in &self.tool_limit_keys {
            if !serves(tool) {
                return Err(ConfigError::NotServed {
                    tool: tool.clone(),
                    what: "limit keys",
                });
            }
            for key in keys {
                check_key(key)?;
            }
        }
        if self.limits.is_none() && self.tool_limit_keys.values().any(|k| !k.is_empty()) {
            return Err(ConfigError::LimitsWithoutRedis);
        }
        for (tool, max) in &self.tool_max_in_flight {
            if !serves(tool) || *max < 1 {
                return Err(ConfigError::MaxInFlight {
                    tool: tool.clone(),
                    max: *max,
                });
            }
        }
        if !(self.prefetch_share > 0.0 && self.prefetch_share <= 1.0) {
            return Err(ConfigError::PrefetchShare(self.prefetch_share));
        }
        if self.max_held_factor == 0 {
            return Err(ConfigError::MaxHeldFactor);
        }
        Ok(())
    }
}

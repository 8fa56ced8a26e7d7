//! Callers' weights and caps, read from the limits store (`caller:<name>`
//! keys, as `toolfan limits set caller:acme --concurrency 200 --weight 2`
//! writes them) every second. Without a store every caller weighs 1 and
//! has no cap; while the store cannot be read the last rules stay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use toolfan_limits::{LazyRedis, LimitStore};

use super::book::CallerRule;
use super::Fair;

/// The limit keys that carry a caller's rule start with this.
pub(crate) const CALLER_KEY: &str = "caller:";

/// How often the rules are read.
const EVERY: Duration = Duration::from_secs(1);

/// Reads the rules from the store at `redis` under `prefix` into `fair`
/// every second until `stop`.
pub(crate) fn follow(
    fair: Arc<Fair>,
    redis: LazyRedis,
    prefix: String,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match read(&redis, &prefix).await {
                Ok(rules) => {
                    warned = false;
                    fair.set_rules(rules);
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(error = %e, "cannot read callers' weights and caps; keeping the last ones");
                }
                Err(_) => {}
            }
        }
    })
}

async fn read(
    redis: &LazyRedis,
    prefix: &str,
) -> Result<HashMap<String, CallerRule>, Box<dyn std::error::Error + Send + Sync>> {
    let store = LimitStore::with_connection(redis.get().await?, prefix);
    let stored = store.read().await?;
    let rules = stored
        .specs
        .into_iter()
        .filter_map(|(key, spec)| {
            let caller = key.strip_prefix(CALLER_KEY)?.to_owned();
            let spec = spec.ok()?;
            let rule = CallerRule {
                weight: f64::from(spec.weight.unwrap_or(1)),
                cap: spec.concurrency,
            };
            Some((caller, rule))
        })
        .collect();
    Ok(rules)
}

impl Fair {
    fn set_rules(&self, rules: HashMap<String, CallerRule>) {
        let mut book = self.book();
        if book.rules != rules {
            tracing::info!(callers = rules.len(), "callers' weights and caps changed");
            book.rules = rules;
            book.freed = true;
        }
    }
}

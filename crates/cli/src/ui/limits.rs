//! The limits section of `/api/state`: each defined limit with its
//! configured rate and cap, and what is in use now (burst, rate since the
//! last read, leases, the effective rate after a backend's "too many")
//! from the state workers keep in Redis.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use toolfan_limits::{LimitSpec, LimitStore, Usage};

/// The bound on each read of Redis.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How many limits the page shows at most.
const MAX_SHOWN: usize = 500;

/// One limit as the page shows it.
#[derive(Debug, Serialize)]
pub(super) struct LimitRow {
    key: String,
    /// The limits as `toolfan limits list` prints them, or why they do not parse.
    spec: String,
    per_second: Option<f64>,
    burst: Option<u64>,
    concurrency: Option<u32>,
    /// Units per second taken since the previous read, when the limit was
    /// busy at both reads (else it held nothing back: the page says "under").
    rate_now: Option<f64>,
    /// Units of burst in use now.
    burst_in_use: Option<f64>,
    /// Leases of the concurrency cap held now.
    leases: Option<u64>,
    /// Units per second admitted now: the configured rate, or less while it
    /// recovers from a backend's "too many".
    effective_per_second: Option<f64>,
}

/// The limits store (connected at the first read that reaches it, so the
/// page comes up, naming the error, while Redis is down), and the last
/// reading of each key's usage.
pub(super) struct Limits {
    url: String,
    prefix: String,
    store: tokio::sync::OnceCell<LimitStore>,
    last: Mutex<BTreeMap<String, Usage>>,
}

impl Limits {
    /// The store at `url` under `prefix`, not connected yet.
    pub(super) fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            store: tokio::sync::OnceCell::new(),
            last: Mutex::default(),
        }
    }
}

/// Every limit with its usage; `None` without a store.
pub(super) async fn read(limits: Option<&Limits>) -> anyhow::Result<Option<Vec<LimitRow>>> {
    let Some(limits) = limits else {
        return Ok(None);
    };
    let read = async {
        let store = limits
            .store
            .get_or_try_init(|| LimitStore::connect(&limits.url, &limits.prefix))
            .await?;
        let listed = store.list().await?;
        let keys: Vec<String> = listed.keys().take(MAX_SHOWN).cloned().collect();
        let usage = store.usage(&keys).await?;
        anyhow::Ok((listed, usage))
    };
    let (listed, usage) = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| anyhow::anyhow!("Redis gave no answer within 2 s"))??;
    let mut last = limits.last.lock().unwrap_or_else(|p| p.into_inner());
    let rows = listed
        .into_iter()
        .zip(usage)
        .map(|((key, spec), now)| {
            let row = match spec {
                Ok(spec) => row(&key, &spec, &now, last.get(&key)),
                Err(e) => LimitRow {
                    key: key.clone(),
                    spec: format!("malformed: {e}"),
                    per_second: None,
                    burst: None,
                    concurrency: None,
                    rate_now: None,
                    burst_in_use: None,
                    leases: None,
                    effective_per_second: None,
                },
            };
            last.insert(key, now);
            row
        })
        .collect::<Vec<_>>();
    last.retain(|key, _| rows.iter().any(|r| &r.key == key));
    Ok(Some(rows))
}

fn row(key: &str, spec: &LimitSpec, now: &Usage, before: Option<&Usage>) -> LimitRow {
    let interval = spec.rate.map(|r| r.interval_us());
    LimitRow {
        key: key.to_owned(),
        spec: spec.to_string(),
        per_second: spec.rate.map(|r| r.per_second()),
        burst: spec.rate.map(|_| spec.burst),
        concurrency: spec.concurrency,
        rate_now: interval.zip(before).and_then(|(i, b)| now.rate_since(b, i)),
        burst_in_use: interval.map(|i| now.burst_in_use(i)),
        leases: spec.concurrency.map(|_| now.leases),
        effective_per_second: spec.rate.map(|r| now.effective_per_second(&r)),
    }
}

//! Taking a task's limits: every rate token and concurrency lease it needs,
//! in one call of `lua/acquire.lua` (EVALSHA), all or nothing; and after
//! the call, what it learned (`after`).

mod after;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::connection::LazyRedis;
use tokio_util::sync::CancellationToken;

use crate::{Adaptation, LimitError, LimitSpec, LimitStore};
pub use after::{Learned, Settled};

static ACQUIRE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/acquire.lua")));
static RENEW: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/renew.lua")));

/// The key every task is under, when a limit is defined for it.
pub const GLOBAL_KEY: &str = "global";

/// How a worker's limiter connects and behaves.
#[derive(Debug, Clone)]
pub struct LimiterOptions {
    /// Redis URL (`redis://[user:pass@]host:port`, or `rediss://` for TLS).
    pub redis_url: String,
    /// Key prefix in Redis (the subject prefix, `toolfan`).
    pub prefix: String,
    /// Limits used for keys Redis does not define.
    pub defaults: BTreeMap<String, LimitSpec>,
    /// Run limited tasks unlimited while Redis is unreachable (default: they wait).
    pub fail_open: bool,
    /// How long a lease lasts unless its holder renews it.
    pub lease_ttl: Duration,
    /// How often the definitions are read again from Redis.
    pub refresh_every: Duration,
    /// How keys adapt after a backend's "too many".
    pub adaptation: Adaptation,
}

impl LimiterOptions {
    /// Defaults for a limiter on `redis_url`.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            prefix: "toolfan".into(),
            defaults: BTreeMap::new(),
            fail_open: false,
            lease_ttl: Duration::from_secs(10),
            refresh_every: Duration::from_millis(500),
            adaptation: Adaptation::default(),
        }
    }
}

/// What the limiter says to a task.
#[derive(Debug)]
pub enum Decision {
    /// Run now; hold the lease (if any cap applies) until the task ends.
    Admitted(Option<Lease>),
    /// Ask again after `after`; `key` is the limit that held it back.
    Wait {
        /// How long until it could pass.
        after: Duration,
        /// The limit that denied it.
        key: String,
        /// Whether a concurrency cap (not a rate) denied it.
        cap: bool,
    },
    /// It can never pass (its cost exceeds a burst).
    Never(String),
}

/// Concurrency leases held by one running task.
#[derive(Debug, Clone)]
pub struct Lease {
    keys: Vec<String>,
    member: String,
}

/// A worker's view of the fleet's limits, and its way to take them.
pub struct Limiter {
    redis: LazyRedis,
    /// Whether the last read of the definitions reached Redis.
    healthy: std::sync::atomic::AtomicBool,
    options: LimiterOptions,
    definitions: RwLock<Arc<BTreeMap<String, LimitSpec>>>,
    /// The definitions last read from a written store: written back if
    /// Redis comes back without its data.
    last_read: std::sync::Mutex<BTreeMap<String, LimitSpec>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("Limiter")
            .field("prefix", &self.options.prefix)
            .field("fail_open", &self.options.fail_open)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter for `options`; Redis need not be up yet.
    pub fn new(options: LimiterOptions) -> Result<Self, LimitError> {
        for (key, spec) in &options.defaults {
            crate::check_key(key)?;
            spec.validate()?;
        }
        let redis = LazyRedis::new(&options.redis_url)
            .map_err(|e| LimitError::Spec(format!("invalid Redis URL: {e}")))?;
        Ok(Self {
            redis,
            healthy: std::sync::atomic::AtomicBool::new(false),
            definitions: RwLock::new(Arc::new(options.defaults.clone())),
            last_read: Default::default(),
            options,
        })
    }

    /// Whether limited tasks run unlimited while Redis is unreachable.
    pub fn fails_open(&self) -> bool {
        self.options.fail_open
    }

    async fn conn(&self) -> Result<ConnectionManager, LimitError> {
        self.redis
            .get()
            .await
            .map_err(|e| LimitError::redis("connecting", e))
    }

    /// Whether the last read of the definitions reached Redis.
    pub fn healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the definitions from Redis now; defaults fill keys it lacks.
    pub async fn refresh(&self) -> Result<(), LimitError> {
        let outcome = self.read_definitions().await;
        self.healthy
            .store(outcome.is_ok(), std::sync::atomic::Ordering::Relaxed);
        outcome
    }

    async fn read_definitions(&self) -> Result<(), LimitError> {
        let store = LimitStore::with_connection(self.conn().await?, &self.options.prefix);
        let stored = store.read().await?;
        if !stored.written {
            let last = self.last_read.lock().expect("last read lock").clone();
            if !last.is_empty() {
                // Redis lost its data (a restart without persistence): the
                // limits were not lifted, so write them back and keep them.
                tracing::warn!(
                    keys = last.len(),
                    "the limit definitions are gone from Redis; writing back the last ones read"
                );
                return store.restore(&last).await;
            }
        }
        let mut read = BTreeMap::new();
        for (key, spec) in stored.specs {
            match spec {
                Ok(spec) => {
                    read.insert(key, spec);
                }
                Err(e) => tracing::warn!(%key, error = %e, "ignoring a malformed limit definition"),
            }
        }
        let mut merged = self.options.defaults.clone();
        merged.extend(read.iter().map(|(k, v)| (k.clone(), v.clone())));
        *self.last_read.lock().expect("last read lock") = read;
        *self.definitions.write().expect("definitions lock") = Arc::new(merged);
        Ok(())
    }

    /// Keeps the definitions current until `shutdown`.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let limiter = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(limiter.options.refresh_every);
            let mut was_ok = true;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let ok = match limiter.refresh().await {
                    Ok(()) => true,
                    Err(e) => {
                        if was_ok {
                            tracing::warn!(error = %e, "cannot read limit definitions; keeping the last ones");
                        }
                        false
                    }
                };
                if ok && !was_ok {
                    tracing::info!("limit definitions readable again");
                }
                was_ok = ok;
            }
        })
    }

    /// The defined limits a task is under: its tool's keys, `global`, and
    /// its own `rate_key`, each only if a limit is defined for it.
    pub fn applicable(
        &self,
        tool_keys: &[String],
        rate_key: Option<&str>,
    ) -> Vec<(String, LimitSpec)> {
        let definitions = self.definitions.read().expect("definitions lock").clone();
        let mut keys: Vec<&str> = tool_keys.iter().map(String::as_str).collect();
        keys.push(GLOBAL_KEY);
        keys.extend(rate_key);
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| definitions.get(k).map(|spec| (k.to_owned(), spec.clone())))
            .collect()
    }

    /// Takes every limit in `limits` for a call of `cost` units, or none.
    /// `member` names the lease (unique per task attempt).
    pub async fn acquire(
        &self,
        limits: &[(String, LimitSpec)],
        cost: u64,
        member: &str,
    ) -> Result<Decision, LimitError> {
        let asked = Asked::new(limits);
        if let Some((key, _, burst)) = asked.rated.iter().find(|(_, _, burst)| cost > *burst) {
            return Ok(Decision::Never(format!(
                "a call of cost {cost} can never pass limit {key:?}, whose burst is {burst}; raise its burst to at least {cost}"
            )));
        }
        let call = asked.invocation(&self.options, cost, member);
        let mut conn = self.conn().await?;
        let reply: Vec<i64> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError::redis("acquire script", e))?;
        asked.decision(&reply, &self.options.prefix, member)
    }

    /// Extends `lease` by the lease TTL from now.
    pub async fn renew(&self, lease: &Lease) -> Result<(), LimitError> {
        let mut conn = self.conn().await?;
        let mut call = RENEW.prepare_invoke();
        for key in &lease.keys {
            call.key(key);
        }
        call.arg(&lease.member)
            .arg(self.options.lease_ttl.as_millis() as u64)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(|e| LimitError::redis("renewing a lease", e))
    }

    /// Gives `lease` back at once.
    pub async fn release(&self, lease: &Lease) {
        let result = async {
            let mut conn = self.conn().await?;
            let mut pipe = redis::pipe();
            for key in &lease.keys {
                pipe.cmd("ZREM").arg(key).arg(&lease.member).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| LimitError::redis("releasing a lease", e))
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "lease not released; it frees itself when it expires");
        }
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        self.options.lease_ttl
    }
}

/// The limits one call asks for: rates (key, rate, burst) and caps (key, cap).
struct Asked<'a> {
    rated: Vec<(&'a String, &'a crate::Rate, u64)>,
    capped: Vec<(&'a String, u32)>,
}

impl<'a> Asked<'a> {
    fn new(limits: &'a [(String, LimitSpec)]) -> Self {
        let rated = limits
            .iter()
            .filter_map(|(k, s)| s.rate.as_ref().map(|r| (k, r, s.burst)))
            .collect();
        let capped = limits
            .iter()
            .filter_map(|(k, s)| s.concurrency.map(|c| (k, c)))
            .collect();
        Self { rated, capped }
    }

    /// The call of `lua/acquire.lua` (its KEYS and ARGV) for these limits.
    fn invocation(
        &self,
        options: &LimiterOptions,
        cost: u64,
        member: &str,
    ) -> redis::ScriptInvocation<'static> {
        let prefix = &options.prefix;
        let mut call = ACQUIRE.prepare_invoke();
        for (key, _, _) in &self.rated {
            call.key(format!("{prefix}:gcra:{key}"));
        }
        for (key, _) in &self.capped {
            call.key(format!("{prefix}:lease:{key}"));
        }
        for (key, _, _) in &self.rated {
            call.key(format!("{prefix}:adapt:{key}"));
        }
        call.arg(self.rated.len())
            .arg(self.capped.len())
            .arg(cost)
            .arg(member)
            .arg(options.lease_ttl.as_millis() as u64);
        for (_, rate, burst) in &self.rated {
            call.arg(rate.interval_us()).arg(*burst);
        }
        for (_, cap) in &self.capped {
            call.arg(*cap);
        }
        call
    }

    /// What the script's `reply` means.
    fn decision(&self, reply: &[i64], prefix: &str, member: &str) -> Result<Decision, LimitError> {
        match reply {
            [1] => Ok(Decision::Admitted((!self.capped.is_empty()).then(|| {
                Lease {
                    keys: self
                        .capped
                        .iter()
                        .map(|(k, _)| format!("{prefix}:lease:{k}"))
                        .collect(),
                    member: member.to_owned(),
                }
            }))),
            [0, wait_us, index] => {
                // The script names the denying limit by its 1-based place among KEYS.
                let place = (*index as usize).saturating_sub(1);
                let (key, cap) = match place.checked_sub(self.rated.len()) {
                    None => {
                        let key = self.rated.get(place).map(|(k, _, _)| (*k).clone());
                        (key.unwrap_or_default(), false)
                    }
                    Some(j) => {
                        let key = self.capped.get(j).map(|(k, _)| (*k).clone());
                        (key.unwrap_or_default(), true)
                    }
                };
                Ok(Decision::Wait {
                    after: Duration::from_micros((*wait_us).max(1) as u64),
                    key,
                    cap,
                })
            }
            other => Err(LimitError::Reply {
                context: "acquire script",
                reply: format!("{other:?}"),
            }),
        }
    }
}

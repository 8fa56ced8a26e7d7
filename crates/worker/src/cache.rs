//! The fleet-wide result cache and single flight, kept in Redis.
//!
//! A cached call (`cache: true` or an `idempotency_key`) is keyed by its
//! caller, tool and [`Task::cache_id`](toolfan_protocol::Task::cache_id).
//! Before running it a worker *claims* the key in one script call
//! (`lua/cache_claim.lua`): a stored outcome is answered at once; otherwise
//! the first claimant sets the *flight* key and runs the tool; any other
//! claimant waits for that flight's outcome (told on
//! `toolfan.flight.<id>`, and rechecked in Redis in case the word is lost).
//! The flight key is a lease the leader renews, so a leader that dies frees
//! it within one lease and a waiter takes over. A leader that is cancelled
//! leaves no outcome; its waiters claim again and one of them runs.

use std::sync::LazyLock;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use toolfan_protocol::{Subjects, TaskError, TaskMessage, DEFAULT_CACHE_TTL_MS};

use toolfan_limits::LazyRedis;

static CLAIM: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/cache_claim.lua")));
static FINISH: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/cache_finish.lua")));
static RENEW: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/cache_renew.lua")));

/// How long the outcome of a flight stays for the calls that joined it.
const SHARED_OUTCOME_TTL_MS: u64 = 60_000;

/// Where the cache lives and how its flights behave.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Redis URL (`redis://[user:pass@]host:port`, or `rediss://` for TLS).
    pub redis_url: String,
    /// Key prefix in Redis (the subject prefix, `toolfan`).
    pub prefix: String,
    /// How long a flight lasts unless its leader renews it: a dead leader's
    /// waiters take over after at most this long.
    pub flight_lease: Duration,
    /// How often a waiting call rechecks Redis, should the word that the
    /// flight ended be lost.
    pub recheck: Duration,
}

impl CacheOptions {
    /// Defaults for a cache on `redis_url`.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            prefix: "toolfan".into(),
            flight_lease: Duration::from_secs(5),
            recheck: Duration::from_millis(250),
        }
    }
}

/// The cache could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the result cache in Redis ({context}): {source}")]
pub struct CacheError {
    context: &'static str,
    #[source]
    source: std::sync::Arc<redis::RedisError>,
}

impl CacheError {
    fn redis(context: &'static str, e: redis::RedisError) -> Self {
        Self {
            context,
            source: std::sync::Arc::new(e),
        }
    }
}

/// An outcome as stored: a value or an error.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stored {
    Ok(Value),
    Error(TaskError),
}

fn decode_stored(text: &str) -> Result<Value, TaskError> {
    match serde_json::from_str::<Stored>(text) {
        Ok(Stored::Ok(value)) => Ok(value),
        Ok(Stored::Error(error)) => Err(error),
        Err(e) => Err(TaskError::new(
            toolfan_protocol::ErrorKind::Internal,
            format!("an unreadable cached outcome: {e}"),
        )),
    }
}

/// A cached call's keys in Redis.
#[derive(Debug, Clone)]
pub(crate) struct CacheKey {
    stored: String,
    flight: String,
    ttl_ms: u64,
    store_failures: bool,
}

/// What claiming a key found.
pub(crate) enum Claim {
    /// A stored outcome.
    Hit(Result<Value, TaskError>),
    /// This call leads the flight: run the tool, then [`Cache::finish`].
    Leader(Flight),
    /// Another call is running it; wait with [`Cache::wait`].
    Running(String),
}

/// A flight this worker leads.
#[derive(Debug)]
pub(crate) struct Flight {
    pub(crate) id: String,
    key: CacheKey,
}

/// How a wait for another call's flight ended.
pub(crate) enum Waited {
    /// Its outcome.
    Outcome(Result<Value, TaskError>),
    /// It ended without one (cancelled, or its leader died): claim again.
    Vacant,
}

/// The cache, shared by a worker's tasks.
pub(crate) struct Cache {
    redis: LazyRedis,
    nats: async_nats::Client,
    subjects: Subjects,
    options: CacheOptions,
}

impl Cache {
    /// A cache on `options.redis_url`, connected on first use (a worker
    /// starts while Redis is down; its cached calls run uncached meanwhile).
    pub(crate) fn new(
        options: CacheOptions,
        nats: async_nats::Client,
        subjects: Subjects,
    ) -> Result<Self, CacheError> {
        let redis = LazyRedis::new(&options.redis_url)
            .map_err(|e| CacheError::redis("invalid Redis URL", e))?;
        Ok(Self {
            redis,
            nats,
            subjects,
            options,
        })
    }

    async fn conn(&self) -> Result<redis::aio::ConnectionManager, CacheError> {
        self.redis
            .get()
            .await
            .map_err(|e| CacheError::redis("connecting", e))
    }

    /// The keys of `task`, if it is cached.
    pub(crate) fn key(&self, task: &TaskMessage) -> Option<CacheKey> {
        let id = task.task.cache_id()?;
        let p = &self.options.prefix;
        let scope = format!("{}:{}:{id}", task.caller, task.task.tool);
        Some(CacheKey {
            stored: format!("{p}:cache:{scope}"),
            flight: format!("{p}:flight:{scope}"),
            ttl_ms: task.task.cache_ttl_ms.unwrap_or(DEFAULT_CACHE_TTL_MS),
            store_failures: task.task.cache_failures,
        })
    }

    /// Takes the stored outcome, the lead of the flight, or the id of the
    /// flight to wait for.
    pub(crate) async fn claim(&self, key: &CacheKey) -> Result<Claim, CacheError> {
        let id = format!("{:032x}", rand::random::<u128>());
        let (what, text): (String, String) = CLAIM
            .key(&key.stored)
            .key(&key.flight)
            .arg(&id)
            .arg(self.options.flight_lease.as_millis() as u64)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(|e| CacheError::redis("claiming", e))?;
        Ok(match what.as_str() {
            "hit" => Claim::Hit(decode_stored(&text)),
            "leader" => Claim::Leader(Flight {
                id,
                key: key.clone(),
            }),
            _ => Claim::Running(text),
        })
    }

    /// Keeps `flight`'s lease while the leader runs; stops when dropped.
    /// (The flight was just claimed, so the connection exists.)
    pub(crate) async fn renew(
        &self,
        flight: &Flight,
    ) -> Result<tokio_util::task::AbortOnDropHandle<()>, CacheError> {
        let conn = self.conn().await?;
        let (key, id) = (flight.key.flight.clone(), flight.id.clone());
        let lease = self.options.flight_lease;
        Ok(crate::keep::every_third_of(
            lease,
            "a flight's lease",
            move || {
                let (key, id, mut conn) = (key.clone(), id.clone(), conn.clone());
                async move {
                    RENEW
                        .key(&key)
                        .arg(&id)
                        .arg(lease.as_millis() as u64)
                        .invoke_async::<i64>(&mut conn)
                        .await
                        .map(drop)
                }
            },
        ))
    }

    /// Whether a call has joined `flight` (a prefetched call that nobody
    /// joined may be cancelled).
    pub(crate) async fn joined(&self, flight: &Flight) -> Result<bool, CacheError> {
        redis::cmd("EXISTS")
            .arg(self.claimed_key(&flight.id))
            .query_async::<bool>(&mut self.conn().await?)
            .await
            .map_err(|e| CacheError::redis("checking a flight's waiters", e))
    }

    /// Ends `flight` with `outcome` (`None` when the call did not finish:
    /// nothing is stored and its waiters claim again) and tells the waiters.
    pub(crate) async fn finish(
        &self,
        flight: Flight,
        outcome: Option<&Result<Value, TaskError>>,
    ) -> Result<(), CacheError> {
        let (text, store) = match outcome {
            Some(Ok(value)) => (encode_stored(&Stored::Ok(value.clone())), true),
            Some(Err(error)) => (
                encode_stored(&Stored::Error(error.clone())),
                flight.key.store_failures,
            ),
            None => (String::new(), false),
        };
        let ended = FINISH
            .key(&flight.key.stored)
            .key(&flight.key.flight)
            .key(self.shared_key(&flight.id))
            .arg(&flight.id)
            .arg(&text)
            .arg(if store { "1" } else { "0" })
            .arg(flight.key.ttl_ms)
            .arg(SHARED_OUTCOME_TTL_MS)
            .invoke_async::<i64>(&mut self.conn().await?)
            .await
            .map_err(|e| CacheError::redis("ending a flight", e));
        // Waiters recheck Redis on this word (or on their own every `recheck`).
        let _ = self
            .nats
            .publish(self.subjects.flight(&flight.id), "".into())
            .await;
        ended.map(|_| ())
    }

    /// Waits for the flight `id` that another call leads.
    pub(crate) async fn wait(&self, key: &CacheKey, id: &str) -> Result<Waited, CacheError> {
        let mut conn = self.conn().await?;
        let mut ended = if id.is_empty() {
            None
        } else {
            let _: () = redis::cmd("SET")
                .arg(self.claimed_key(id))
                .arg(1)
                .arg("PX")
                .arg(SHARED_OUTCOME_TTL_MS)
                .query_async(&mut conn)
                .await
                .map_err(|e| CacheError::redis("joining a flight", e))?;
            self.nats.subscribe(self.subjects.flight(id)).await.ok()
        };
        loop {
            let (stored, shared, flight): (Option<String>, Option<String>, Option<String>) =
                redis::pipe()
                    .get(&key.stored)
                    .get(self.shared_key(id))
                    .get(&key.flight)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| CacheError::redis("waiting for a flight", e))?;
            if let Some(text) = stored.or(shared) {
                return Ok(Waited::Outcome(decode_stored(&text)));
            }
            if id.is_empty() || flight.as_deref() != Some(id) {
                return Ok(Waited::Vacant);
            }
            let word = async {
                match ended.as_mut() {
                    Some(sub) => {
                        sub.next().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let _ = tokio::time::timeout(self.options.recheck, word).await;
        }
    }

    fn shared_key(&self, flight_id: &str) -> String {
        format!("{}:flown:{flight_id}", self.options.prefix)
    }

    fn claimed_key(&self, flight_id: &str) -> String {
        format!("{}:joined:{flight_id}", self.options.prefix)
    }
}

fn encode_stored(stored: &Stored) -> String {
    serde_json::to_string(stored).expect("values and task errors are JSON")
}

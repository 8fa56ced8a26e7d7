//! A tool call as the caller asks for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ToolName;

/// One tool call of a job.
///
/// ```
/// use std::time::Duration;
/// use toolfan_protocol::Task;
///
/// let task = Task::new("search", serde_json::json!({"q": "rust"}))
///     .timeout(Duration::from_secs(5))
///     .retries(2);
/// assert_eq!(task.timeout_ms, Some(5000));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Which tool runs it.
    pub tool: ToolName,
    /// The tool's arguments; `{}` when absent.
    #[serde(default = "empty_object")]
    pub args: Value,
    /// How long one attempt may run; absent means "until the job deadline".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How many more attempts a retryable failure gets.
    #[serde(default)]
    pub retries: u32,
    /// An extra rate-limit key this call is under (e.g. `tenant:acme`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
    /// How many units of its limits the call takes (e.g. estimated tokens).
    #[serde(default = "one")]
    pub cost: u32,
    /// A key under which equal calls of the tool share one execution and
    /// its stored result (within `cache_ttl_ms`); implies caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Cache the result under a hash of the tool and its canonical args.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
    /// How long a cached result is served, in ms (default 10 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_ms: Option<u64>,
    /// Cache failures too (by default only successes are stored; a call
    /// that joins a running one gets its outcome either way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_failures: bool,
    /// Set on speculative calls (`client.prefetch`): the call runs only with
    /// a spare slot, and is cancelled if nobody has claimed its result this
    /// many ms after it was dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch_ttl_ms: Option<u64>,
    /// Tasks of the same job (by index) that must succeed before this one
    /// is dispatched; a `$from` reference in the args implies its task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<u32>,
}

/// How long a cached result is served unless the task says otherwise.
pub const DEFAULT_CACHE_TTL_MS: u64 = 10 * 60 * 1000;

/// The SHA-256 of `prefix` and `bytes`, in hex.
fn sha256_hex(prefix: &[u8], bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(prefix);
    hash.update(bytes);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `value` as JSON with every object's keys sorted, so equal values
/// give equal text whatever order their keys arrived in.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn one() -> u32 {
    1
}

impl Task {
    /// A call of `tool` with `args`. The tool name is checked when the job
    /// is validated (the client does that before submitting).
    pub fn new(tool: impl Into<String>, args: Value) -> Self {
        Self {
            tool: ToolName::unchecked(tool.into()),
            args,
            timeout_ms: None,
            retries: 0,
            rate_key: None,
            cost: 1,
            idempotency_key: None,
            cache: false,
            cache_ttl_ms: None,
            cache_failures: false,
            prefetch_ttl_ms: None,
            after: Vec::new(),
        }
    }

    /// Shares one execution and its stored result among calls with `key`.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Caches the result under a hash of the tool and its canonical args:
    /// an equal call within the TTL gets it without running the tool, one
    /// that arrives while this one runs waits for it.
    pub fn cached(mut self) -> Self {
        self.cache = true;
        self
    }

    /// Serves the cached result for `ttl` (default 10 minutes); implies [`cached`](Self::cached)
    /// unless an idempotency key is set.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = self.cache || self.idempotency_key.is_none();
        self.cache_ttl_ms = Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Stores failures in the cache too.
    pub fn cache_failures(mut self) -> Self {
        self.cache_failures = true;
        self
    }

    /// Whether the call's result is shared through the cache.
    pub fn is_cached(&self) -> bool {
        self.cache || self.idempotency_key.is_some()
    }

    /// The id equal calls share in the cache: a SHA-256 of the idempotency
    /// key, or of the canonical args (object keys sorted, no whitespace).
    /// `None` if the call is not cached. Scope it by caller and tool.
    pub fn cache_id(&self) -> Option<String> {
        match (&self.idempotency_key, self.cache) {
            (Some(key), _) => Some(sha256_hex(b"key:", key.as_bytes())),
            (None, true) => Some(self.args_cache_id()),
            (None, false) => None,
        }
    }

    /// The id the call has when cached by its args (`cache: true`, no
    /// idempotency key): a SHA-256 of its canonical args.
    pub fn args_cache_id(&self) -> String {
        let mut text = String::new();
        canonical_json(&self.args, &mut text);
        sha256_hex(b"args:", text.as_bytes())
    }

    /// Limits one attempt to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Allows `retries` more attempts after a retryable failure.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Puts the call under the extra rate-limit key `key`.
    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    /// Sets how many units of its limits the call takes.
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// The per-attempt timeout, if one was set.
    pub fn timeout_duration(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_args_share_a_cache_id_whatever_their_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"q": "rust", "opts": {"n": 3, "lang": "en"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"opts": {"lang": "en", "n": 3}, "q": "rust"}"#).unwrap();
        let id = Task::new("search", a).cached().cache_id().unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(Some(id.clone()), Task::new("search", b).cached().cache_id());
        assert_ne!(
            Some(id),
            Task::new("search", json!({"q": "rusty"}))
                .cached()
                .cache_id()
        );
        assert_eq!(Task::new("search", json!({})).cache_id(), None);
        let keyed = Task::new("search", json!({"q": 1})).idempotency_key("k1");
        assert_eq!(
            keyed.cache_id(),
            Task::new("search", json!({"q": 2}))
                .idempotency_key("k1")
                .cache_id()
        );
        assert!(keyed.is_cached());
    }
}

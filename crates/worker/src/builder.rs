//! Building a [`Worker`]: where it connects, what it serves, how much at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use toolfan_protocol::{Subjects, ToolDescription, ToolName};
use toolfan_transport::TopologyOptions;

use crate::batch::{BatchOptions, BatchOutcome, Batched};
use crate::cache::CacheOptions;
use crate::describe::{any_object, check_parameters, schema_of};
use crate::limits::{check_key, LimiterOptions};
use crate::tool::Typed;
use crate::{TaskContext, Tool, ToolError, Worker, WorkerError};

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
        }
    }
}

/// Builds a [`Worker`]; see the crate example.
#[derive(Default)]
pub struct WorkerBuilder {
    options: WorkerOptions,
    tools: BTreeMap<String, Arc<dyn Tool>>,
    descriptions: BTreeMap<String, String>,
    parameters: BTreeMap<String, Value>,
    /// Mistakes found while building, reported by `build`.
    problems: Vec<String>,
}

impl WorkerBuilder {
    /// Uses all of `options` at once.
    pub fn options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// Connects to the NATS server at `url`.
    pub fn nats_url(mut self, url: impl Into<String>) -> Self {
        self.options.nats_url = url.into();
        self
    }

    /// Names this worker in the fleet.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.options.id = id.into();
        self
    }

    /// Runs at most `n` tasks at once.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.options.concurrency = n;
        self
    }

    /// Takes limits from Redis (and `options.defaults`).
    pub fn limits(mut self, options: LimiterOptions) -> Self {
        self.options.limits = Some(options);
        self
    }

    /// Shares results of cached calls through Redis, fleet-wide.
    pub fn cache(mut self, options: CacheOptions) -> Self {
        self.options.cache = Some(options);
        self
    }

    /// Puts every call of `tool` under the limit keys `keys`.
    pub fn limit_keys<I, K>(mut self, tool: impl Into<String>, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.options
            .tool_limit_keys
            .insert(tool.into(), keys.into_iter().map(Into::into).collect());
        self
    }

    /// Caps `tool`'s tasks in flight across the whole fleet.
    pub fn tool_max_in_flight(mut self, tool: impl Into<String>, max: i64) -> Self {
        self.options.tool_max_in_flight.insert(tool.into(), max);
        self
    }

    /// Serves `tool` under `name`: an async fn of a [`TaskContext`] and JSON args.
    pub fn tool<F, Fut>(mut self, name: impl Into<String>, tool: F) -> Self
    where
        F: Fn(TaskContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        self.tools.insert(name.into(), Arc::new(tool));
        self
    }

    /// Serves a tool whose args deserialize into `A`; args that do not fit
    /// fail with `invalid_args` without calling it. Callers see `A`'s JSON
    /// Schema as the tool's parameters and `A`'s doc comment as its
    /// description (unless [`describe`](Self::describe) says otherwise).
    pub fn typed_tool<F, Fut, A, R>(mut self, name: impl Into<String>, tool: F) -> Self
    where
        F: Fn(TaskContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
        A: DeserializeOwned + JsonSchema + 'static,
        R: Serialize + 'static,
    {
        let name = name.into();
        self.describe_args::<A>(&name);
        self.tools
            .insert(name, Arc::new(Typed::<F, A, R>::new(tool)));
        self
    }

    /// Serves a batch tool under `name`: the handler gets up to
    /// `options.max_size` calls' args at once and returns one outcome per
    /// input, in order; see [`crate::batch`].
    pub fn batch_tool<F, Fut>(
        self,
        name: impl Into<String>,
        options: BatchOptions,
        handler: F,
    ) -> Self
    where
        F: Fn(Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BatchOutcome<Value>> + Send + 'static,
    {
        self.add_batch::<F, Fut, Value, Value>(name.into(), options, handler)
    }

    /// A batch tool whose args deserialize into `A` (a call whose args do
    /// not fit fails alone with `invalid_args`, outside any batch); callers
    /// see `A`'s JSON Schema, as for [`typed_tool`](Self::typed_tool).
    pub fn typed_batch_tool<F, Fut, A, R>(
        mut self,
        name: impl Into<String>,
        options: BatchOptions,
        handler: F,
    ) -> Self
    where
        F: Fn(Vec<A>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BatchOutcome<R>> + Send + 'static,
        A: DeserializeOwned + JsonSchema + Send + 'static,
        R: Serialize + Send + 'static,
    {
        let name = name.into();
        self.describe_args::<A>(&name);
        self.add_batch::<F, Fut, A, R>(name, options, handler)
    }

    /// Takes `tool`'s parameters from `A`'s JSON Schema and, unless one was
    /// given, its description from `A`'s doc comment.
    fn describe_args<A: JsonSchema>(&mut self, tool: &str) {
        let (doc, schema) = schema_of::<A>();
        self.parameters.insert(tool.to_owned(), schema);
        if !doc.is_empty() {
            self.descriptions.entry(tool.to_owned()).or_insert(doc);
        }
    }

    fn add_batch<F, Fut, A, R>(mut self, name: String, options: BatchOptions, handler: F) -> Self
    where
        F: Fn(Vec<A>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BatchOutcome<R>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        if options.max_size == 0 || options.max_wait > Duration::from_secs(60) {
            self.problems.push(format!(
                "batch tool {name:?}: max_size must be at least 1 and max_wait at most 60 s (got {} and {:?})",
                options.max_size, options.max_wait
            ));
        }
        self.tools
            .insert(name, Arc::new(Batched::<F, A, R>::new(handler, options)));
        self
    }

    /// Tells callers (and through them the LLM) what `tool` does.
    pub fn describe(mut self, tool: impl Into<String>, description: impl Into<String>) -> Self {
        self.descriptions.insert(tool.into(), description.into());
        self
    }

    /// Gives `tool`'s arguments as a JSON Schema (an object schema); tools
    /// added with [`tool`](Self::tool) otherwise take any object.
    pub fn parameters(mut self, tool: impl Into<String>, schema: Value) -> Self {
        self.parameters.insert(tool.into(), schema);
        self
    }

    /// Serves an already boxed tool.
    pub fn boxed_tool(mut self, name: impl Into<String>, tool: Arc<dyn Tool>) -> Self {
        self.tools.insert(name.into(), tool);
        self
    }

    /// Checks the configuration and returns the worker.
    pub fn build(mut self) -> Result<Worker, WorkerError> {
        if let Some(problem) = self.problems.first() {
            return Err(WorkerError::Config(problem.clone()));
        }
        if self.tools.is_empty() {
            return Err(WorkerError::Config(
                "a worker needs at least one tool".into(),
            ));
        }
        if self.options.concurrency == 0 {
            return Err(WorkerError::Config("concurrency must be at least 1".into()));
        }
        if self.options.id.is_empty() {
            return Err(WorkerError::Config(
                "the worker id must not be empty".into(),
            ));
        }
        for (tool, keys) in &self.options.tool_limit_keys {
            if !self.tools.contains_key(tool) {
                return Err(WorkerError::Config(format!(
                    "limit keys given for {tool:?}, which this worker does not serve"
                )));
            }
            for key in keys {
                check_key(key).map_err(|e| WorkerError::Config(e.to_string()))?;
            }
        }
        if self.options.limits.is_none()
            && self.options.tool_limit_keys.values().any(|k| !k.is_empty())
        {
            return Err(WorkerError::Config(
                "limit keys need a Redis URL for the limits".into(),
            ));
        }
        for (tool, max) in &self.options.tool_max_in_flight {
            if !self.tools.contains_key(tool) || *max < 1 {
                return Err(WorkerError::Config(format!("max in flight {max} for {tool:?}: the tool must be served here and the cap at least 1")));
            }
        }
        if !(self.options.prefetch_share > 0.0 && self.options.prefetch_share <= 1.0) {
            return Err(WorkerError::Config(format!(
                "prefetch_share must be in (0, 1], not {}",
                self.options.prefetch_share
            )));
        }
        if self.options.max_held_factor == 0 {
            return Err(WorkerError::Config(
                "max_held_factor must be at least 1".into(),
            ));
        }
        for tool in self.descriptions.keys().chain(self.parameters.keys()) {
            if !self.tools.contains_key(tool) {
                return Err(WorkerError::Config(format!(
                    "a description or schema given for {tool:?}, which this worker does not serve"
                )));
            }
        }
        let mut tools = BTreeMap::new();
        let mut described = Vec::new();
        for (name, tool) in self.tools {
            let parameters = self.parameters.remove(&name).unwrap_or_else(any_object);
            check_parameters(&parameters)
                .map_err(|e| WorkerError::Config(format!("tool {name:?}: {e}")))?;
            let description = self.descriptions.remove(&name).unwrap_or_default();
            let name = ToolName::new(name).map_err(|e| WorkerError::Config(e.to_string()))?;
            described.push(ToolDescription {
                name: name.clone(),
                description,
                parameters,
            });
            tools.insert(name, tool);
        }
        Ok(Worker::new(self.options, tools, described))
    }
}

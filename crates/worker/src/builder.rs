//! Building a [`Worker`]: where it connects, what it serves, how much at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use toolfan_limits::LimiterOptions;
use toolfan_protocol::{ToolDescription, ToolName};

use crate::batch::{BatchOptions, BatchOutcome, Batched};
use crate::cache::CacheOptions;
use crate::describe::{any_object_schema, check_parameters, schema_of};
use crate::error::{ConfigError, WorkerError};
use crate::options::WorkerOptions;
use crate::tool::{TaskContext, Tool, ToolError, Typed};
use crate::worker::Worker;

impl Worker {
    /// Starts building a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
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
    problems: Vec<ConfigError>,
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
    /// input, in order; see the batch module (`crate::batch`).
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
            self.problems.push(ConfigError::Batch {
                tool: name.clone(),
                max_size: options.max_size,
                max_wait: options.max_wait,
            });
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
        if let Some(problem) = self.problems.pop() {
            return Err(problem.into());
        }
        if self.tools.is_empty() {
            return Err(ConfigError::NoTools.into());
        }
        self.options.check(|tool| self.tools.contains_key(tool))?;
        for tool in self.descriptions.keys().chain(self.parameters.keys()) {
            if !self.tools.contains_key(tool) {
                return Err(ConfigError::NotServed {
                    tool: tool.clone(),
                    what: "a description or schema",
                }
                .into());
            }
        }
        let mut tools = BTreeMap::new();
        let mut described = Vec::new();
        for (name, tool) in std::mem::take(&mut self.tools) {
            let description = self.described(&name)?;
            tools.insert(description.name.clone(), tool);
            described.push(description);
        }
        Ok(Worker::new(self.options, tools, described))
    }

    /// `name`'s description and checked argument schema.
    fn described(&mut self, name: &str) -> Result<ToolDescription, ConfigError> {
        let parameters = self
            .parameters
            .remove(name)
            .unwrap_or_else(any_object_schema);
        check_parameters(&parameters).map_err(|source| ConfigError::Schema {
            tool: name.to_owned(),
            source,
        })?;
        Ok(ToolDescription {
            name: ToolName::new(name)?,
            description: self.descriptions.remove(name).unwrap_or_default(),
            parameters,
        })
    }
}

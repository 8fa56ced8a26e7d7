//! What a tool is: an async function of a [`TaskContext`] and JSON args.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use toolfan_protocol::{ErrorKind, JobId, TaskError, ToolName};

/// The future a tool returns.
pub type ToolFuture = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>;

/// A tool the worker can run. Implemented for every
/// `Fn(TaskContext, Value) -> impl Future<Output = Result<Value, ToolError>>`.
pub trait Tool: Send + Sync + 'static {
    /// Runs the tool once with `args`.
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture;

    /// Called once when the worker starts serving the tool, inside its
    /// runtime: a tool with background work (a batch collector) starts it here.
    fn start(&self, _runtime: ToolRuntime) {}
}

/// What a tool's background work gets from its worker.
#[derive(Clone)]
pub struct ToolRuntime {
    pub(crate) batch_sizes: prometheus::Histogram,
    pub(crate) name: ToolName,
    pub(crate) descriptions: crate::describe::Described,
}

impl ToolRuntime {
    /// The name the tool is served under.
    pub fn name(&self) -> &ToolName {
        &self.name
    }

    /// Changes what callers are told the tool does and what arguments it
    /// takes, from the next time they ask (`toolfan.worker.tools`); a
    /// schema that cannot describe a tool's arguments is refused.
    pub fn redescribe(
        &self,
        description: impl Into<String>,
        parameters: Value,
    ) -> Result<(), crate::describe::SchemaError> {
        crate::describe::check_parameters(&parameters)?;
        let mut all = match self.descriptions.write() {
            Ok(all) => all,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(described) = all.iter_mut().find(|d| d.name == self.name) {
            described.description = description.into();
            described.parameters = parameters;
        }
        Ok(())
    }
}

impl<F, Fut> Tool for F
where
    F: Fn(TaskContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
{
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        Box::pin(self(ctx, args))
    }
}

/// A tool whose arguments deserialize into `A` and whose value serializes
/// from `R`; arguments that do not fit `A` fail with `invalid_args`.
pub(crate) struct Typed<F, A, R> {
    f: F,
    _types: PhantomData<fn(A) -> R>,
}

impl<F, A, R> Typed<F, A, R> {
    pub(crate) fn new(f: F) -> Self {
        Self {
            f,
            _types: PhantomData,
        }
    }
}

impl<F, Fut, A, R> Tool for Typed<F, A, R>
where
    F: Fn(TaskContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        let args = match typed_args::<A>(args) {
            Ok(args) => args,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let fut = (self.f)(ctx, args);
        Box::pin(async move { json_value(fut.await?) })
    }
}

/// A typed tool's args, or `invalid_args` saying what does not fit.
pub(crate) fn typed_args<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::invalid_args(e.to_string()))
}

/// A typed tool's value as JSON.
pub(crate) fn json_value<R: Serialize>(value: R) -> Result<Value, ToolError> {
    serde_json::to_value(value)
        .map_err(|e| ToolError::new(format!("the tool's value is not JSON: {e}")))
}

/// What a tool knows about the task it runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub(crate) job: JobId,
    pub(crate) index: u32,
    pub(crate) attempt: u32,
    pub(crate) worker: String,
    pub(crate) cancel: tokio_util::sync::CancellationToken,
    /// What the call learned about its limits, told to the fleet after it.
    pub(crate) learned: std::sync::Arc<std::sync::Mutex<toolfan_limits::Learned>>,
}

impl TaskContext {
    /// The job the task belongs to.
    pub fn job(&self) -> &JobId {
        &self.job
    }

    /// The task's position in its job.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Which attempt this is, from 1 (JetStream's delivery count).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The id of the worker running it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Resolves when the task is cancelled (its job was cancelled, or a
    /// policy or the deadline ended it). A cooperative tool selects on this
    /// to clean up; the worker drops the tool's future shortly after anyway.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether the task has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports what the call really cost under limit `key` (e.g. the
    /// tokens an LLM API says it used), when the task's `cost` was only an
    /// estimate. After the tool returns, the key's bucket is debited by
    /// the difference (or credited, if it cost less), so the limit holds
    /// over time; the estimate is the task's `cost` for a key the task was
    /// under, 0 for another defined key. Charges to one key add up; a key
    /// without a rate limit is ignored. Fails only on a malformed key.
    pub fn charge(&self, key: &str, units: u64) -> Result<(), ToolError> {
        toolfan_limits::check_key(key).map_err(|e| ToolError::new(e.to_string()))?;
        let mut learned = self
            .learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = learned.charges.entry(key.to_owned()).or_default();
        *total = total.saturating_add(units);
        Ok(())
    }
}

/// The kind a [`ToolError::for_person`] carries inside the worker; it is
/// never published as a result.
pub(crate) const FOR_PERSON: &str = "waiting_for_person";

/// A tool's failure. Any `std::error::Error` converts into a non-retryable
/// `tool_error`, so tools can use `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    kind: ErrorKind,
    message: String,
    retryable: bool,
    retry_after: Option<std::time::Duration>,
    too_many: bool,
}

impl ToolError {
    /// A `tool_error` that another attempt will not fix.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::ToolError,
            message: message.into(),
            retryable: false,
            retry_after: None,
            too_many: false,
        }
    }

    /// The backend refused the call for its rate (an HTTP 429, a
    /// provider's "rate limit exceeded"): retryable, and the whole fleet
    /// backs off on the task's limit keys (their effective rate is cut,
    /// and held for the whole `with_retry_after` if given). Answered as a
    /// retryable `tool_error` if no attempt succeeds.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self {
            too_many: true,
            ..Self::retryable(message)
        }
    }

    /// A `tool_error` that another attempt may fix (a 503, a reset connection).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::new(message)
        }
    }

    /// Not a failure: the tool hands its task to a person, who is asked
    /// `prompt`. The worker stores that the task waits and frees its slot
    /// at once; the job's caller (or an operator) later resolves it with
    /// a value (`toolfan resolve`, `Client::resolve`) or rejects it.
    ///
    /// ```
    /// use toolfan_worker::ToolError;
    /// let handed: Result<serde_json::Value, ToolError> = Err(ToolError::for_person("Send the mail?"));
    /// assert!(handed.unwrap_err().to_string().contains("Send the mail?"));
    /// ```
    pub fn for_person(prompt: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Other(FOR_PERSON.into()),
            ..Self::new(prompt)
        }
    }

    /// The arguments do not fit the tool; never retried.
    pub fn invalid_args(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidArgs,
            ..Self::new(message)
        }
    }

    /// Asks any retry to wait at least `after` (e.g. an HTTP `Retry-After`).
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether the backend refused the call for its rate ([`Self::rate_limited`]).
    pub fn is_rate_limited(&self) -> bool {
        self.too_many
    }

    /// How long the tool asked any retry to wait.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ToolError {
    fn from(e: E) -> Self {
        Self::new(e.to_string())
    }
}

impl From<ToolError> for TaskError {
    fn from(e: ToolError) -> Self {
        TaskError {
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
            retry_after_ms: e.retry_after.map(|d| d.as_millis() as u64),
        }
    }
}

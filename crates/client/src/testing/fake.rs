//! [`FakeTool`]: a tool for tests, with injected latency and failures.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use toolfan_worker::{TaskContext, Tool, ToolError, ToolFuture};

/// What a fake returns from its arguments.
type Returns = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// A tool for tests. By default it answers at once with its arguments;
/// each method changes one thing:
///
/// ```
/// # use std::time::Duration;
/// # use serde_json::json;
/// use toolfan::testing::{FakeTool, ToolError};
///
/// // Sleeps 200 ms, fails its first call retryably, then returns the query.
/// let search = FakeTool::new()
///     .latency(Duration::from_millis(200))
///     .fail_first(1)
///     .returns(|args| json!({"hits": [args["q"].clone()]}));
/// // Sleeps as many milliseconds as its `ms` argument says.
/// let sleep = FakeTool::new().latency_from_args("ms");
/// // Always fails with `invalid_args`, which is never retried.
/// let broken = FakeTool::new().fail_with(ToolError::invalid_args("no such page"));
/// ```
///
/// Calls are numbered in the order they start, across all the tasks the
/// tool serves (a retry is a new call), so [`fail_first`](Self::fail_first)
/// fails the first calls of the tool, whichever tasks they belong to.
/// Clones share that count: give each tool a fake of its own.
#[derive(Clone)]
pub struct FakeTool {
    latency: Duration,
    latency_arg: Option<String>,
    fail_first: u32,
    fail_with: Option<ToolError>,
    returns: Option<Returns>,
    calls: Arc<AtomicU32>,
}

impl Default for FakeTool {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTool")
            .field("latency", &self.latency)
            .field("latency_arg", &self.latency_arg)
            .field("fail_first", &self.fail_first)
            .field("fail_with", &self.fail_with)
            .field("returns", &self.returns.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl FakeTool {
    /// A tool that returns its arguments at once.
    pub fn new() -> Self {
        Self {
            latency: Duration::ZERO,
            latency_arg: None,
            fail_first: 0,
            fail_with: None,
            returns: None,
            calls: Arc::default(),
        }
    }

    /// Sleeps `latency` in every call before answering (or failing).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sleeps as many milliseconds as the call's argument `field` says
    /// (a non-negative integer); a call without it sleeps the fixed
    /// [`latency`](Self::latency).
    pub fn latency_from_args(mut self, field: impl Into<String>) -> Self {
        self.latency_arg = Some(field.into());
        self
    }

    /// Fails the tool's first `n` calls with a retryable `tool_error`, so a
    /// task with `retries` ≥ `n` succeeds on attempt `n + 1`.
    pub fn fail_first(mut self, n: u32) -> Self {
        self.fail_first = n;
        self
    }

    /// Fails every call (after those of [`fail_first`](Self::fail_first))
    /// with `error`: e.g. [`ToolError::new`] (a `tool_error`, not retried),
    /// [`ToolError::retryable`] or [`ToolError::invalid_args`].
    pub fn fail_with(mut self, error: ToolError) -> Self {
        self.fail_with = Some(error);
        self
    }

    /// Answers each successful call with `value(args)` instead of its args.
    pub fn returns(mut self, value: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Self {
        self.returns = Some(Arc::new(value));
        self
    }

    /// How long a call with `args` sleeps.
    fn delay(&self, args: &Value) -> Duration {
        self.latency_arg
            .as_deref()
            .and_then(|field| args.get(field))
            .and_then(Value::as_u64)
            .map_or(self.latency, Duration::from_millis)
    }

    /// The outcome of call number `call` (from 1) with `args`.
    fn outcome(&self, call: u32, args: &Value) -> Result<Value, ToolError> {
        if call <= self.fail_first {
            return Err(ToolError::retryable(format!(
                "injected failure: call {call} of the first {} fails",
                self.fail_first
            )));
        }
        if let Some(error) = &self.fail_with {
            return Err(error.clone());
        }
        Ok(match &self.returns {
            Some(value) => value(args),
            None => args.clone(),
        })
    }
}

impl Tool for FakeTool {
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        let call = self.calls.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        let delay = self.delay(&args);
        let outcome = self.outcome(call, &args);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.cancelled() => return Err(ToolError::new("cancelled")),
                }
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fails_first_then_with_then_answers() {
        let fake = FakeTool::new().fail_first(1);
        assert!(fake.outcome(1, &json!({})).is_err_and(|e| e.is_retryable()));
        assert_eq!(fake.outcome(2, &json!({"a": 1})), Ok(json!({"a": 1})));
        let fake = fake.fail_with(ToolError::invalid_args("bad"));
        assert_eq!(
            fake.outcome(2, &json!({})),
            Err(ToolError::invalid_args("bad"))
        );
        let fake = FakeTool::new().returns(|args| json!([args["q"]]));
        assert_eq!(fake.outcome(1, &json!({"q": "x"})), Ok(json!(["x"])));
    }

    #[test]
    fn latency_comes_from_args_or_the_fixed_one() {
        let fake = FakeTool::new()
            .latency(Duration::from_millis(5))
            .latency_from_args("ms");
        assert_eq!(fake.delay(&json!({"ms": 40})), Duration::from_millis(40));
        assert_eq!(fake.delay(&json!({"ms": "x"})), Duration::from_millis(5));
        assert_eq!(fake.delay(&json!(null)), Duration::from_millis(5));
    }
}

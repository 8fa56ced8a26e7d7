//! The tools of the `toolfan-worker` binary, for demos, tests and benchmarks:
//! `sleep`, `echo`, `fail`, `flaky` and `span`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use toolfan_worker::{TaskContext, ToolError, WorkerBuilder};

use crate::ToolsError;

/// Names of the built-in tools.
pub const BUILTIN_TOOLS: [&str; 6] = ["sleep", "echo", "fail", "flaky", "span", "approve"];

/// Microseconds since the Unix epoch, now.
fn now_unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Waits, then says how long it waited.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SleepArgs {
    /// How long to wait, in milliseconds.
    ms: u64,
}

/// Always fails; for trying out error handling and retries.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FailArgs {
    /// The error message.
    #[serde(default = "default_fail_message")]
    message: String,
    /// Whether the error is marked retryable.
    #[serde(default)]
    retryable: bool,
}

fn default_fail_message() -> String {
    "failed as asked".into()
}

/// Fails retryably on its first attempts, then succeeds.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlakyArgs {
    /// How many attempts fail before one succeeds.
    fail_attempts: u32,
}

/// Asks a person: the task waits until `toolfan resolve` gives its value
/// (or `--reject` its reason), holding no worker slot meanwhile.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ApproveArgs {
    /// What the person is asked.
    prompt: String,
}

/// Adds the built-in tool `name` to `builder`, or says which names exist.
pub fn add_builtin(builder: WorkerBuilder, name: &str) -> Result<WorkerBuilder, ToolsError> {
    Ok(match name {
        // `sleep {ms}`: waits `ms` milliseconds, returns `{"slept_ms": ms}`.
        "sleep" => builder.typed_tool("sleep", |_ctx: TaskContext, a: SleepArgs| async move {
            tokio::time::sleep(Duration::from_millis(a.ms)).await;
            Ok::<_, ToolError>(json!({ "slept_ms": a.ms }))
        }),
        // `echo {..}`: returns its args.
        "echo" => builder.tool(
            "echo",
            |_ctx: TaskContext, args: Value| async move { Ok(args) },
        )
        .describe("echo", "Returns its arguments unchanged."),
        // `fail {message, retryable}`: always fails with `tool_error`.
        "fail" => builder.typed_tool("fail", |_ctx: TaskContext, a: FailArgs| async move {
            Err::<Value, _>(if a.retryable {
                ToolError::retryable(a.message)
            } else {
                ToolError::new(a.message)
            })
        }),
        // `flaky {fail_attempts}`: fails (retryably) while the attempt is <= fail_attempts.
        "flaky" => builder.typed_tool("flaky", |ctx: TaskContext, a: FlakyArgs| async move {
            if ctx.attempt() <= a.fail_attempts {
                Err(ToolError::retryable(format!(
                    "attempt {} of a task that fails its first {}",
                    ctx.attempt(),
                    a.fail_attempts
                )))
            } else {
                Ok(json!({ "attempt": ctx.attempt() }))
            }
        }),
        // `span {ms}`: like sleep, but returns when it ran, in µs since the
        // Unix epoch, so tests and benchmarks can see rates and overlaps.
        "span" => builder
            .typed_tool("span", |ctx: TaskContext, a: SleepArgs| async move {
            let started = now_unix_us();
            tokio::time::sleep(Duration::from_millis(a.ms)).await;
            Ok::<_, ToolError>(json!({
                "started_us": started,
                "ended_us": now_unix_us(),
                "worker": ctx.worker(),
            }))
            })
            .describe("span", "Waits, then says when it started and ended (µs since the Unix epoch) and on which worker."),
        // `approve {prompt}`: hands the task to a person.
        "approve" => builder.typed_tool("approve", |_ctx: TaskContext, a: ApproveArgs| async move {
            Err::<Value, _>(ToolError::for_person(a.prompt))
        }),
        other => {
            return Err(ToolsError::UnknownBuiltin {
                name: other.to_owned(),
            })
        }
    })
}
